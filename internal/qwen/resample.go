package qwen

import (
	"image"
	"image/draw"
	"math"
)

// Pillow's 8-bit resampling arithmetic (libImaging/Resample.c), reproduced exactly so the
// image processor matches transformers' Qwen2VLImageProcessor, which resizes with
// PIL.Image.resize(..., BICUBIC) on uint8 RGB.
const pilPrecisionBits = 32 - 8 - 2

// bicubicFilter is Pillow's cubic kernel with a = -0.5.
func bicubicFilter(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return ((a+2)*x-(a+3))*x*x + 1
	}
	if x < 2 {
		return (((x-5)*x+8)*x - 4) * a
	}
	return 0
}

const bicubicSupport = 2.0

// pilCoeffs are the fixed-point kernel weights of one resampling pass.
type pilCoeffs struct {
	ksize  int
	bounds []int   // per output pixel: first input pixel, count
	kk     []int32 // outSize*ksize fixed-point weights
}

// precomputeCoeffs mirrors Pillow's precompute_coeffs + normalize_coeffs_8bpc.
func precomputeCoeffs(inSize int, in0, in1 float64, outSize int) pilCoeffs {
	scale := (in1 - in0) / float64(outSize)
	filterScale := math.Max(scale, 1)
	support := bicubicSupport * filterScale
	ksize := int(math.Ceil(support))*2 + 1
	c := pilCoeffs{ksize: ksize, bounds: make([]int, outSize*2), kk: make([]int32, outSize*ksize)}
	k := make([]float64, ksize)
	for xx := 0; xx < outSize; xx++ {
		center := in0 + (float64(xx)+0.5)*scale
		ss := 1 / filterScale
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		ww := 0.0
		for x := 0; x < xmax; x++ {
			w := bicubicFilter((float64(x+xmin) - center + 0.5) * ss)
			k[x] = w
			ww += w
		}
		for x := 0; x < ksize; x++ {
			v := 0.0
			if x < xmax && ww != 0 {
				v = k[x] / ww
			}
			if v < 0 {
				c.kk[xx*ksize+x] = int32(-0.5 + v*(1<<pilPrecisionBits))
			} else {
				c.kk[xx*ksize+x] = int32(0.5 + v*(1<<pilPrecisionBits))
			}
		}
		c.bounds[xx*2], c.bounds[xx*2+1] = xmin, xmax
	}
	return c
}

func clip8(in int64) uint8 {
	if in >= 1<<pilPrecisionBits<<8 {
		return 255
	}
	if in <= 0 {
		return 0
	}
	return uint8(in >> pilPrecisionBits)
}

// ToRGBA returns img as *image.RGBA (copying only when needed).
func ToRGBA(img image.Image) *image.RGBA {
	if rgba, ok := img.(*image.RGBA); ok && rgba.Rect.Min == (image.Point{}) {
		return rgba
	}
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Rect, img, b.Min, draw.Src)
	return out
}

// ResizeBicubicPIL resizes an RGB(A) image to w×h exactly as Pillow's Image.resize with
// BICUBIC does for 8-bit RGB: horizontal pass first, then vertical, fixed-point rounding
// after each pass. Alpha is ignored (set opaque), as for PIL mode "RGB".
func ResizeBicubicPIL(src *image.RGBA, w, h int) *image.RGBA {
	inW, inH := src.Rect.Dx(), src.Rect.Dy()
	cur, curW, curH := src, inW, inH
	if w != inW {
		hc := precomputeCoeffs(inW, 0, float64(inW), w)
		tmp := image.NewRGBA(image.Rect(0, 0, w, inH))
		for y := 0; y < inH; y++ {
			row := cur.Pix[y*cur.Stride:]
			out := tmp.Pix[y*tmp.Stride:]
			for xx := 0; xx < w; xx++ {
				xmin, xmax := hc.bounds[xx*2], hc.bounds[xx*2+1]
				k := hc.kk[xx*hc.ksize:]
				for ch := 0; ch < 3; ch++ {
					ss := int64(1) << (pilPrecisionBits - 1)
					for x := 0; x < xmax; x++ {
						ss += int64(row[(x+xmin)*4+ch]) * int64(k[x])
					}
					out[xx*4+ch] = clip8(ss)
				}
				out[xx*4+3] = 255
			}
		}
		cur, curW = tmp, w
	}
	if h != curH {
		vc := precomputeCoeffs(curH, 0, float64(curH), h)
		tmp := image.NewRGBA(image.Rect(0, 0, curW, h))
		for yy := 0; yy < h; yy++ {
			ymin, ymax := vc.bounds[yy*2], vc.bounds[yy*2+1]
			k := vc.kk[yy*vc.ksize:]
			out := tmp.Pix[yy*tmp.Stride:]
			for xx := 0; xx < curW; xx++ {
				for ch := 0; ch < 3; ch++ {
					ss := int64(1) << (pilPrecisionBits - 1)
					for y := 0; y < ymax; y++ {
						ss += int64(cur.Pix[(y+ymin)*cur.Stride+xx*4+ch]) * int64(k[y])
					}
					out[xx*4+ch] = clip8(ss)
				}
				out[xx*4+3] = 255
			}
		}
		cur = tmp
	}
	return cur
}
