// Package imageio decodes untrusted image files safely. Every decode reads the header first
// (image.DecodeConfig) and refuses files whose byte size or pixel count exceeds the limits
// before any pixel buffer is allocated, so a small file claiming a huge canvas (a
// decompression bomb) costs nothing. Supported formats: JPEG (with EXIF orientation
// applied), PNG, GIF (first frame), WebP and BMP. The format is chosen by sniffing the
// leading bytes, never by the file name. Errors name the file and the problem and wrap
// ErrTooLarge, ErrUnknownFormat or ErrTruncated where one applies.
package imageio

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"strings"

	"github.com/disintegration/imaging"
	"golang.org/x/image/bmp"
	"golang.org/x/image/webp"
)

// Default limits: 50 megapixels and 50 MiB.
const (
	DefaultMaxPixels int64 = 50_000_000
	DefaultMaxBytes  int64 = 50 << 20
)

// Sentinel errors wrapped by decode errors; test with errors.Is.
var (
	// ErrTooLarge means the file's byte size or its declared pixel count exceeds the limits.
	ErrTooLarge = errors.New("image too large")
	// ErrUnknownFormat means the leading bytes match no supported image format.
	ErrUnknownFormat = errors.New("unknown image format")
	// ErrTruncated means the data ended before the image was complete.
	ErrTruncated = errors.New("truncated image data")
	// ErrInvalidSize means the header declares a zero or negative width or height.
	ErrInvalidSize = errors.New("invalid image dimensions")
)

// Limits bounds what a decode accepts. A zero or negative field means the default.
type Limits struct {
	MaxPixels int64 // width*height as declared in the header
	MaxBytes  int64 // encoded file size
}

// DefaultLimits returns the default limits (50 MP, 50 MiB).
func DefaultLimits() Limits { return Limits{MaxPixels: DefaultMaxPixels, MaxBytes: DefaultMaxBytes} }

func (l Limits) normalized() Limits {
	if l.MaxPixels <= 0 {
		l.MaxPixels = DefaultMaxPixels
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	return l
}

// Config is what the header says about an image.
type Config struct {
	Format      string `json:"format"`                // jpeg, png, gif, webp, bmp
	Width       int    `json:"width"`                 // as displayed, after EXIF orientation
	Height      int    `json:"height"`                // as displayed, after EXIF orientation
	Orientation int    `json:"orientation,omitempty"` // EXIF orientation 1..8 (JPEG only; 0 = absent)
	Bytes       int64  `json:"bytes"`                 // encoded size
}

// Pixels is Width*Height.
func (c Config) Pixels() int64 { return int64(c.Width) * int64(c.Height) }

// Error is a decode failure of one named input.
type Error struct {
	File string // file name or other label of the input
	Err  error
}

// Error returns "image FILE: problem".
func (e *Error) Error() string { return fmt.Sprintf("image %s: %v", e.File, e.Err) }

// Unwrap returns the image's problem.
func (e *Error) Unwrap() error { return e.Err }

func fail(name string, err error) error { return &Error{File: name, Err: err} }

// ReadFile reads path into memory, refusing it (without reading) when it is larger than
// maxBytes (0 = default). It is the first step of DecodeFile.
func ReadFile(path string, maxBytes int64) ([]byte, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fail(path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fail(path, err)
	}
	if st.IsDir() {
		return nil, fail(path, errors.New("is a directory"))
	}
	if st.Size() > maxBytes {
		return nil, fail(path, fmt.Errorf("%w: %d bytes exceeds the limit of %d bytes", ErrTooLarge, st.Size(), maxBytes))
	}
	data, err := readLimited(f, maxBytes)
	if err != nil {
		return nil, fail(path, err)
	}
	return data, nil
}

// readLimited reads all of r, failing with ErrTooLarge past maxBytes.
func readLimited(r io.Reader, maxBytes int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if int64(len(data)) > maxBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxBytes)
	}
	return data, nil
}

// DecodeConfig sniffs data's format and reads its header, checking the limits, without
// decoding pixels. name labels errors.
func DecodeConfig(name string, data []byte, lim Limits) (Config, error) {
	lim = lim.normalized()
	if int64(len(data)) > lim.MaxBytes {
		return Config{}, fail(name, fmt.Errorf("%w: %d bytes exceeds the limit of %d bytes", ErrTooLarge, len(data), lim.MaxBytes))
	}
	format := Sniff(data)
	if format == "" {
		return Config{}, fail(name, fmt.Errorf("%w (leading bytes % x)", ErrUnknownFormat, head(data, 8)))
	}
	var (
		c   image.Config
		err error
	)
	r := bytes.NewReader(data)
	switch format {
	case FormatJPEG:
		c, err = jpeg.DecodeConfig(r)
	case FormatPNG:
		c, err = png.DecodeConfig(r)
	case FormatGIF:
		c, err = gif.DecodeConfig(r)
	case FormatWebP:
		c, err = webp.DecodeConfig(r)
	case FormatBMP:
		c, err = bmp.DecodeConfig(r)
	}
	if err != nil {
		return Config{}, fail(name, fmt.Errorf("read %s header: %w", format, classify(err)))
	}
	if c.Width <= 0 || c.Height <= 0 {
		return Config{}, fail(name, fmt.Errorf("%w: %dx%d", ErrInvalidSize, c.Width, c.Height))
	}
	cfg := Config{Format: format, Width: c.Width, Height: c.Height, Bytes: int64(len(data))}
	if px := cfg.Pixels(); px > lim.MaxPixels {
		return Config{}, fail(name, fmt.Errorf("%w: %dx%d = %d pixels exceeds the limit of %d (refused before decoding)", ErrTooLarge, c.Width, c.Height, px, lim.MaxPixels))
	}
	if format == FormatJPEG {
		cfg.Orientation = JPEGOrientation(data)
		if cfg.Orientation >= 5 && cfg.Orientation <= 8 {
			cfg.Width, cfg.Height = cfg.Height, cfg.Width
		}
	}
	return cfg, nil
}

// Decode decodes data after DecodeConfig accepted it, applying the JPEG EXIF orientation.
func Decode(name string, data []byte, lim Limits) (image.Image, Config, error) {
	cfg, err := DecodeConfig(name, data, lim)
	if err != nil {
		return nil, Config{}, err
	}
	var img image.Image
	r := bytes.NewReader(data)
	switch cfg.Format {
	case FormatJPEG:
		img, err = jpeg.Decode(r)
		if y, ok := img.(*image.YCbCr); ok && err == nil {
			img = libjpegRGB(y) // the pixels PIL (libjpeg) gives, not Go's box-upsampled ones
		}
	case FormatPNG:
		img, err = png.Decode(r)
	case FormatGIF:
		img, err = gif.Decode(r)
	case FormatWebP:
		img, err = webp.Decode(r)
	case FormatBMP:
		img, err = bmp.Decode(r)
	}
	if err != nil {
		return nil, Config{}, fail(name, fmt.Errorf("decode %s: %w", cfg.Format, classify(err)))
	}
	img = orient(img, cfg.Orientation)
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		return nil, Config{}, fail(name, fmt.Errorf("decoded %s is %dx%d but its header says %dx%d", cfg.Format, b.Dx(), b.Dy(), cfg.Width, cfg.Height))
	}
	return img, cfg, nil
}

// DecodeReader reads at most lim.MaxBytes from r and decodes it (for uploads and pipes).
func DecodeReader(name string, r io.Reader, lim Limits) (image.Image, Config, error) {
	lim = lim.normalized()
	data, err := readLimited(r, lim.MaxBytes)
	if err != nil {
		return nil, Config{}, fail(name, err)
	}
	return Decode(name, data, lim)
}

// DecodeFile reads and decodes the image file at path within the limits.
func DecodeFile(path string, lim Limits) (image.Image, Config, error) {
	lim = lim.normalized()
	data, err := ReadFile(path, lim.MaxBytes)
	if err != nil {
		return nil, Config{}, err
	}
	return Decode(path, data, lim)
}

// ReadConfigFile reads path (refused without reading beyond lim.MaxBytes) and checks its
// header within the limits without decoding pixels.
func ReadConfigFile(path string, lim Limits) (Config, error) {
	lim = lim.normalized()
	data, err := ReadFile(path, lim.MaxBytes)
	if err != nil {
		return Config{}, err
	}
	return DecodeConfig(path, data, lim)
}

// truncationMessages are decoder messages that mean the data ended early (the standard
// decoders turn io.ErrUnexpectedEOF into these format errors without wrapping it).
var truncationMessages = []string{"unexpected EOF", "short Huffman data", "not enough pixel data"}

// classify wraps decoder errors that mean "the data ended early" with ErrTruncated.
func classify(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %v", ErrTruncated, err)
	}
	for _, m := range truncationMessages {
		if strings.Contains(err.Error(), m) {
			return fmt.Errorf("%w: %v", ErrTruncated, err)
		}
	}
	return err
}

func head(b []byte, n int) []byte {
	if len(b) < n {
		return b
	}
	return b[:n]
}

// orient applies an EXIF orientation (1..8) the way a viewer displays the photo.
func orient(img image.Image, o int) image.Image {
	switch o {
	case 2:
		return imaging.FlipH(img)
	case 3:
		return imaging.Rotate180(img)
	case 4:
		return imaging.FlipV(img)
	case 5:
		return imaging.Transpose(img)
	case 6:
		return imaging.Rotate270(img)
	case 7:
		return imaging.Transverse(img)
	case 8:
		return imaging.Rotate90(img)
	}
	return img
}
