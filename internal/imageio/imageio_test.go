package imageio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
)

// testImage is a w×h image with a red 4×4 block in the top-left corner on a gradient.
func testImage(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255}
			if x < 4 && y < 4 {
				c = color.NRGBA{255, 0, 0, 255}
			}
			m.SetNRGBA(x, y, c)
		}
	}
	return m
}

func encode(t testing.TB, format string, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch format {
	case FormatJPEG:
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95})
	case FormatPNG:
		err = png.Encode(&buf, img)
	case FormatGIF:
		err = gif.Encode(&buf, img, nil)
	case FormatBMP:
		err = bmp.Encode(&buf, img)
	default:
		t.Fatalf("no encoder for %s", format)
	}
	if err != nil {
		t.Fatalf("encode %s: %v", format, err)
	}
	return buf.Bytes()
}

// pngHeader is a syntactically valid PNG signature + IHDR chunk claiming w×h pixels, with
// no image data after it.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk := append([]byte("IHDR"), ihdr...)
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

// withOrientation inserts an EXIF APP1 segment with the given orientation after the SOI.
func withOrientation(jpg []byte, o uint16) []byte {
	tiff := []byte("MM\x00\x2a\x00\x00\x00\x08" + // header, IFD0 at 8
		"\x00\x01" + // one entry
		"\x01\x12\x00\x03\x00\x00\x00\x01") // orientation, SHORT, count 1
	tiff = binary.BigEndian.AppendUint16(tiff, o)
	tiff = append(tiff, 0, 0, 0, 0, 0, 0) // value padding + next IFD offset
	payload := append([]byte("Exif\x00\x00"), tiff...)
	seg := []byte{0xFF, 0xE1}
	seg = binary.BigEndian.AppendUint16(seg, uint16(len(payload)+2))
	seg = append(seg, payload...)
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

func TestDecodeFormats(t *testing.T) {
	webpData, err := os.ReadFile(filepath.Join("testdata", "blue-purple-pink.lossy.webp"))
	if err != nil {
		t.Fatal(err)
	}
	src := testImage(32, 24)
	tests := []struct {
		name   string
		data   []byte
		format string
		w, h   int
	}{
		{"jpeg", encode(t, FormatJPEG, src), FormatJPEG, 32, 24},
		{"png", encode(t, FormatPNG, src), FormatPNG, 32, 24},
		{"gif", encode(t, FormatGIF, src), FormatGIF, 32, 24},
		{"bmp", encode(t, FormatBMP, src), FormatBMP, 32, 24},
		{"webp", webpData, FormatWebP, 0, 0}, // size checked against DecodeConfig below
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, cfg, err := Decode(tt.name, tt.data, DefaultLimits())
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if cfg.Format != tt.format {
				t.Errorf("format %q, want %q", cfg.Format, tt.format)
			}
			if tt.w != 0 && (cfg.Width != tt.w || cfg.Height != tt.h) {
				t.Errorf("config %dx%d, want %dx%d", cfg.Width, cfg.Height, tt.w, tt.h)
			}
			if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height || cfg.Width == 0 {
				t.Errorf("image %v does not match config %dx%d", b, cfg.Width, cfg.Height)
			}
			if cfg.Bytes != int64(len(tt.data)) {
				t.Errorf("bytes %d, want %d", cfg.Bytes, len(tt.data))
			}
			if got := SniffContentType(tt.data); got != "image/"+tt.format {
				t.Errorf("content type %q", got)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	jpg := encode(t, FormatJPEG, testImage(64, 48))
	pngData := encode(t, FormatPNG, testImage(64, 48))
	tests := []struct {
		name    string
		data    []byte
		lim     Limits
		want    error  // sentinel, or nil when only the message is checked
		message string // substring of the error
	}{
		{"truncated jpeg", jpg[:len(jpg)/2], Limits{}, ErrTruncated, "truncated"},
		{"truncated png", pngData[:len(pngData)/2], Limits{}, ErrTruncated, "truncated"},
		{"header only jpeg", jpg[:3], Limits{}, ErrTruncated, "header"},
		{"png bomb header", pngHeader(100000, 100000), Limits{}, ErrTooLarge, "10000000000 pixels"},
		{"over pixel limit", jpg, Limits{MaxPixels: 64*48 - 1}, ErrTooLarge, "exceeds the limit"},
		{"over byte limit", jpg, Limits{MaxBytes: 100}, ErrTooLarge, "bytes exceeds"},
		{"text", []byte("this is not an image, just some text\n"), Limits{}, ErrUnknownFormat, "unknown image format"},
		{"empty", nil, Limits{}, ErrUnknownFormat, "unknown image format"},
		{"zero size png", pngHeader(0, 10), Limits{}, nil, "png header"},
		{"corrupt jpeg body", corruptJPEG(jpg), Limits{}, nil, "decode jpeg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Decode(tt.name+".img", tt.data, tt.lim)
			if err == nil {
				t.Fatal("Decode succeeded, want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v does not wrap %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.name+".img") {
				t.Errorf("error %q does not name the file", err)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not contain %q", err, tt.message)
			}
		})
	}
}

// corruptJPEG overwrites the quantisation-table marker so the decoder rejects the data.
func corruptJPEG(jpg []byte) []byte {
	out := append([]byte{}, jpg...)
	i := bytes.Index(out, []byte{0xFF, 0xDB})
	out[i+4] = 0x7F // invalid table precision/id
	return out
}

// TestBombRefusedBeforeDecoding checks that a header claiming 10^10 pixels is refused
// without allocating a pixel buffer.
func TestBombRefusedBeforeDecoding(t *testing.T) {
	data := pngHeader(100000, 100000)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := Decode("bomb.png", data, DefaultLimits())
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("want ErrTooLarge, got %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("refusing the bomb allocated %d bytes", alloc)
	}
}

func TestDecodeFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.png")
	big := filepath.Join(dir, "big.png")
	if err := os.WriteFile(good, encode(t, FormatPNG, testImage(10, 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, make([]byte, 2000), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, cfg, err := DecodeFile(good, Limits{}); err != nil || cfg.Width != 10 {
		t.Fatalf("DecodeFile(good) = %+v, %v", cfg, err)
	}
	if _, err := ReadConfigFile(good, Limits{}); err != nil {
		t.Errorf("ReadConfigFile(good): %v", err)
	}
	_, _, err := DecodeFile(big, Limits{MaxBytes: 1000})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), big) {
		t.Errorf("DecodeFile(big) error %v, want ErrTooLarge naming the file", err)
	}
	_, _, err = DecodeFile(filepath.Join(dir, "missing.jpg"), Limits{})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.jpg") {
		t.Errorf("DecodeFile(missing) error %v", err)
	}
	_, _, err = DecodeReader("upload", bytes.NewReader(make([]byte, 5000)), Limits{MaxBytes: 1000})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("DecodeReader over limit: %v", err)
	}
}

func TestEXIFOrientation(t *testing.T) {
	jpg := encode(t, FormatJPEG, testImage(32, 24))
	tests := []struct {
		o      uint16
		w, h   int
		redAtX int // x of the corner that holds the red block, in the displayed image
		redAtY int
	}{
		{1, 32, 24, 0, 0},
		{2, 32, 24, 31, 0},  // mirrored horizontally
		{3, 32, 24, 31, 23}, // rotated 180
		{6, 24, 32, 23, 0},  // stored rotated; display rotates 90° clockwise
		{8, 24, 32, 0, 31},  // display rotates 90° counter-clockwise
	}
	for _, tt := range tests {
		data := withOrientation(jpg, tt.o)
		if got := JPEGOrientation(data); got != int(tt.o) {
			t.Errorf("JPEGOrientation = %d, want %d", got, tt.o)
		}
		img, cfg, err := Decode("o.jpg", data, Limits{})
		if err != nil {
			t.Fatalf("orientation %d: %v", tt.o, err)
		}
		if cfg.Width != tt.w || cfg.Height != tt.h || img.Bounds().Dx() != tt.w {
			t.Errorf("orientation %d: size %dx%d, want %dx%d", tt.o, cfg.Width, cfg.Height, tt.w, tt.h)
		}
		r, g, _, _ := img.At(tt.redAtX, tt.redAtY).RGBA()
		if r>>8 < 200 || g>>8 > 60 {
			t.Errorf("orientation %d: pixel (%d,%d) = r%d g%d, want red", tt.o, tt.redAtX, tt.redAtY, r>>8, g>>8)
		}
	}
	if got := JPEGOrientation(jpg); got != 0 {
		t.Errorf("plain JPEG orientation %d, want 0", got)
	}
}

func TestSniff(t *testing.T) {
	tests := []struct {
		data []byte
		want string
	}{
		{[]byte{0xFF, 0xD8, 0xFF, 0xE0}, FormatJPEG},
		{[]byte("\x89PNG\r\n\x1a\n...."), FormatPNG},
		{[]byte("GIF89a......"), FormatGIF},
		{[]byte("RIFF\x00\x00\x00\x00WEBPVP8 "), FormatWebP},
		{[]byte("RIFF\x00\x00\x00\x00WAVEfmt "), ""},
		{[]byte("BM\x00\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00"), FormatBMP},
		{[]byte("BM"), ""},
		{[]byte("<html><body>"), ""},
		{[]byte("%PDF-1.7"), ""},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := Sniff(tt.data); got != tt.want {
			t.Errorf("Sniff(%q) = %q, want %q", tt.data, got, tt.want)
		}
		if IsImage(tt.data) != (tt.want != "") {
			t.Errorf("IsImage(%q) = %v", tt.data, !(tt.want != ""))
		}
	}
	format, whole, err := SniffReader(bytes.NewReader([]byte("GIF89a and the rest of the stream")))
	if err != nil || format != FormatGIF {
		t.Fatalf("SniffReader = %q, %v", format, err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(whole)
	if buf.String() != "GIF89a and the rest of the stream" {
		t.Errorf("SniffReader lost bytes: %q", buf.String())
	}
	path := filepath.Join(t.TempDir(), "x.bin")
	os.WriteFile(path, encode(t, FormatPNG, testImage(4, 4)), 0o644)
	if f, err := SniffFile(path); err != nil || f != FormatPNG {
		t.Errorf("SniffFile = %q, %v", f, err)
	}
}

func TestGrayThumbnail(t *testing.T) {
	src := testImage(64, 48)
	jpgImg, _, err := Decode("t.jpg", encode(t, FormatJPEG, src), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	pngImg, _, err := Decode("t.png", encode(t, FormatPNG, src), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := GrayThumbnail(jpgImg, 16, 12), GrayThumbnail(pngImg, 16, 12)
	if a.Bounds().Dx() != 16 || a.Bounds().Dy() != 12 {
		t.Fatalf("thumbnail bounds %v", a.Bounds())
	}
	// The fast luma path (JPEG) and the generic path (PNG) agree within JPEG noise.
	for i := range a.Pix {
		d := int(a.Pix[i]) - int(b.Pix[i])
		if d < -12 || d > 12 {
			t.Fatalf("pixel %d: fast path %d, generic path %d", i, a.Pix[i], b.Pix[i])
		}
	}
	// Brightness increases to the right and down in the source gradient (G grows with y).
	if a.GrayAt(15, 11).Y <= a.GrayAt(8, 0).Y {
		t.Errorf("thumbnail lost the gradient: %d vs %d", a.GrayAt(15, 11).Y, a.GrayAt(8, 0).Y)
	}
}

// noisy640 is a 640×640 JPEG with photo-like texture, for decode benchmarks.
func noisy640(b *testing.B) []byte {
	m := image.NewNRGBA(image.Rect(0, 0, 640, 640))
	seed := uint32(1)
	for i := 0; i < len(m.Pix); i += 4 {
		seed = seed*1664525 + 1013904223
		p := i / 4
		x, y := p%640, p/640
		m.Pix[i] = uint8(x/3 + int(seed>>28))
		m.Pix[i+1] = uint8(y/3 + int(seed>>29))
		m.Pix[i+2] = uint8((x+y)/6 + int(seed>>30))
		m.Pix[i+3] = 255
	}
	return encode(b, FormatJPEG, m)
}

func BenchmarkDecodeJPEG640(b *testing.B) {
	data := noisy640(b)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := Decode("bench.jpg", data, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGrayThumbnail640(b *testing.B) {
	img, _, err := Decode("bench.jpg", noisy640(b), Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		GrayThumbnail(img, 64, 64)
	}
}
