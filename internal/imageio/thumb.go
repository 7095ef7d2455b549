package imageio

import (
	"image"
	"image/color"

	"github.com/disintegration/imaging"
)

// GrayThumbnail returns a w×h grayscale thumbnail of img by averaging boxes of source
// pixels. YCbCr (JPEG) and Gray images take a fast path that reads only the luma plane;
// other images go through imaging.Resize with a box filter.
func GrayThumbnail(img image.Image, w, h int) *image.Gray {
	dst := image.NewGray(image.Rect(0, 0, w, h))
	b := img.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 || w <= 0 || h <= 0 {
		return dst
	}
	var (
		plane  []uint8
		stride int
		x0, y0 int
	)
	switch m := img.(type) {
	case *image.YCbCr:
		plane, stride = m.Y, m.YStride
		x0, y0 = m.Rect.Min.X, m.Rect.Min.Y
		plane = plane[m.YOffset(x0, y0):]
	case *image.Gray:
		plane, stride = m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride
	default:
		small := imaging.Resize(img, w, h, imaging.Box)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				dst.SetGray(x, y, color.GrayModel.Convert(small.At(x, y)).(color.Gray))
			}
		}
		return dst
	}
	sw, sh := b.Dx(), b.Dy()
	for ty := 0; ty < h; ty++ {
		ya, yb := ty*sh/h, (ty+1)*sh/h
		if yb <= ya {
			yb = ya + 1
		}
		for tx := 0; tx < w; tx++ {
			xa, xb := tx*sw/w, (tx+1)*sw/w
			if xb <= xa {
				xb = xa + 1
			}
			sum := 0
			for y := ya; y < yb; y++ {
				row := plane[y*stride:]
				for x := xa; x < xb; x++ {
					sum += int(row[x])
				}
			}
			n := (yb - ya) * (xb - xa)
			dst.Pix[ty*dst.Stride+tx] = uint8((sum + n/2) / n)
		}
	}
	return dst
}
