package report

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // register decoders for the photo formats acdtcm reads
	"image/jpeg"
	_ "image/png"
	"io"

	_ "golang.org/x/image/bmp"
	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp"

	"github.com/acdtcm/acdtcm/internal/result"
)

// maxThumbnailPixels bounds the photos decoded for thumbnails (a 100-megapixel photo already
// takes 400 MB decoded); larger ones get no thumbnail.
const maxThumbnailPixels = 100_000_000

// lesionColors are the box colours on thumbnails, matching the lesion chips in the HTML report.
var lesionColors = map[string]color.RGBA{
	"comedone": {0x25, 0x63, 0xeb, 0xff}, // blue
	"papule":   {0xf5, 0x9e, 0x0b, 0xff}, // amber
	"pustule":  {0xdc, 0x26, 0x26, 0xff}, // red
	"nodule":   {0x7c, 0x3a, 0xed, 0xff}, // violet
}

var otherLesionColor = color.RGBA{0x0f, 0x76, 0x6e, 0xff}

// thumbnail reads the photo from rd and returns a JPEG data URI of it scaled so its longest
// side is size pixels (never enlarged), with the lesion boxes drawn on it.
func thumbnail(rd io.Reader, size int, lesions []result.LesionFinding) (string, error) {
	data, err := io.ReadAll(io.LimitReader(rd, 512<<20))
	if err != nil {
		return "", fmt.Errorf("read photo: %w", err)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("decode photo: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxThumbnailPixels {
		return "", fmt.Errorf("photo is %dx%d pixels, too large for a thumbnail", cfg.Width, cfg.Height)
	}
	src, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("decode photo: %w", err)
	}
	data = nil
	b := src.Bounds()
	scale := float64(size) / float64(max(b.Dx(), b.Dy()))
	if scale > 1 {
		scale = 1
	}
	w, h := max(1, int(float64(b.Dx())*scale+0.5)), max(1, int(float64(b.Dy())*scale+0.5))
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	// Halving with bilinear sampling (at exactly 2x, the mean of each 2x2 block) down to
	// between 2x and 4x the thumbnail keeps CatmullRom's cost small on large photos.
	for b.Dx()/2 >= 2*w && b.Dy()/2 >= 2*h {
		half := image.NewRGBA(image.Rect(0, 0, b.Dx()/2, b.Dy()/2))
		draw.ApproxBiLinear.Scale(half, half.Bounds(), src, b, draw.Src, nil)
		src, b = half, half.Bounds()
	}
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, b, draw.Src, nil)
	sx, sy := float64(w)/float64(cfg.Width), float64(h)/float64(cfg.Height)
	for _, l := range lesions {
		c, ok := lesionColors[l.Type]
		if !ok {
			c = otherLesionColor
		}
		for _, bx := range l.Boxes {
			strokeRect(dst, int(bx.X0*sx), int(bx.Y0*sy), int(bx.X1*sx+0.5), int(bx.Y1*sy+0.5), c)
		}
	}
	var out bytes.Buffer
	if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: 82}); err != nil {
		return "", fmt.Errorf("encode thumbnail: %w", err)
	}
	return "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(out.Bytes()), nil
}

// strokeRect draws a 1-pixel rectangle outline, clipped to img.
func strokeRect(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	r := image.Rect(x0, y0, x1, y1).Intersect(img.Bounds())
	if r.Empty() {
		return
	}
	for x := r.Min.X; x < r.Max.X; x++ {
		img.SetRGBA(x, r.Min.Y, c)
		img.SetRGBA(x, r.Max.Y-1, c)
	}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		img.SetRGBA(r.Min.X, y, c)
		img.SetRGBA(r.Max.X-1, y, c)
	}
}
