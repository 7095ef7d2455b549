package imageio

import "image"

// libjpeg's YCbCr -> RGB conversion and "fancy" chroma upsampling, so that a JPEG decodes to
// the pixels libjpeg(-turbo) gives by default, which is what PIL, and so Hugging Face
// transformers' image processors, see. Go's image/jpeg hands back the subsampled chroma
// planes and its YCbCr.At replicates each chroma sample (box upsampling) with its own
// rounding: on a 4:2:0 photo that differs from libjpeg by up to ~13 levels at colour edges.
// The IDCTs still differ (Go's and libjpeg's islow round differently), by 1 level at most
// pixels where they differ at all.

// libjpeg fixed-point constants (jdcolor.c): SCALEBITS 16, FIX(x) = x·2^16 rounded.
const (
	yccScaleBits = 16
	yccOneHalf   = 1 << (yccScaleBits - 1)
)

func yccFix(x float64) int32 { return int32(x*(1<<yccScaleBits) + 0.5) }

// yccTables are libjpeg's build_ycc_rgb_table tables, indexed by the chroma sample.
var yccTables = func() (t struct{ crR, cbB, crG, cbG [256]int32 }) {
	for i := range 256 {
		x := int32(i - 128)
		t.crR[i] = (yccFix(1.40200)*x + yccOneHalf) >> yccScaleBits
		t.cbB[i] = (yccFix(1.77200)*x + yccOneHalf) >> yccScaleBits
		t.crG[i] = -yccFix(0.71414) * x
		t.cbG[i] = -yccFix(0.34414)*x + yccOneHalf
	}
	return t
}()

func clampByte(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// libjpegRGB converts a decoded JPEG's YCbCr image to RGB the way libjpeg does by default
// (fancy upsampling for 4:2:0 and 4:2:2, its colour tables for every ratio it handles). Other
// subsampling ratios, and images not anchored at the origin (image/jpeg never returns one),
// are returned unchanged.
func libjpegRGB(src *image.YCbCr) image.Image {
	if src.Rect.Min != (image.Point{}) {
		return src
	}
	var hShift, vShift int
	switch src.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
	case image.YCbCrSubsampleRatio422:
		hShift = 1
	case image.YCbCrSubsampleRatio420:
		hShift, vShift = 1, 1
	default:
		return src
	}
	b := src.Rect
	w, h := b.Dx(), b.Dy()
	cw, ch := (w+hShift)>>hShift, (h+vShift)>>vShift
	if w == 0 || h == 0 || (hShift == 1 && cw < 2) {
		return src
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	cb, cr := make([]uint8, cw<<hShift), make([]uint8, cw<<hShift) // one upsampled row
	for y := range h {
		chromaRow(src.Cb, src, y, cw, ch, hShift, vShift, cb)
		chromaRow(src.Cr, src, y, cw, ch, hShift, vShift, cr)
		yRow := src.Y[y*src.YStride : y*src.YStride+w]
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*w]
		for x, yy := range yRow {
			Y, cbv, crv := int32(yy), cb[x], cr[x]
			out[4*x] = clampByte(Y + yccTables.crR[crv])
			out[4*x+1] = clampByte(Y + ((yccTables.cbG[cbv] + yccTables.crG[crv]) >> yccScaleBits))
			out[4*x+2] = clampByte(Y + yccTables.cbB[cbv])
			out[4*x+3] = 255
		}
	}
	return dst
}

// chromaRow writes the chroma plane's samples for output row y into out, upsampled as
// libjpeg's h2v2_fancy_upsample / h2v1_fancy_upsample (jdsample.c) do: a triangle filter
// (3/4 nearer sample, 1/4 further) with the edge samples replicated beyond the plane.
func chromaRow(plane []uint8, src *image.YCbCr, y, cw, ch, hShift, vShift int, out []uint8) {
	row := func(r int) []uint8 { return plane[r*src.CStride : r*src.CStride+cw] }
	if hShift == 0 {
		copy(out, row(y))
		return
	}
	if vShift == 0 {
		in := row(y)
		out[0] = in[0]
		out[1] = uint8((int(in[0])*3 + int(in[1]) + 2) >> 2)
		for c := 1; c < cw-1; c++ {
			v := int(in[c]) * 3
			out[2*c] = uint8((v + int(in[c-1]) + 1) >> 2)
			out[2*c+1] = uint8((v + int(in[c+1]) + 2) >> 2)
		}
		last := int(in[cw-1])
		out[2*cw-2] = uint8((last*3 + int(in[cw-2]) + 1) >> 2)
		out[2*cw-1] = uint8(last)
		return
	}
	near := y >> 1
	far := near - 1 // even output rows lean on the row above, odd ones on the row below
	if y&1 == 1 {
		far = near + 1
	}
	far = min(max(far, 0), ch-1)
	in0, in1 := row(near), row(far)
	colSum := func(c int) int { return int(in0[c])*3 + int(in1[c]) }
	this, next := colSum(0), colSum(1)
	out[0] = uint8((this*4 + 8) >> 4)
	out[1] = uint8((this*3 + next + 7) >> 4)
	last := this
	this = next
	for c := 1; c < cw-1; c++ {
		next = colSum(c + 1)
		out[2*c] = uint8((this*3 + last + 8) >> 4)
		out[2*c+1] = uint8((this*3 + next + 7) >> 4)
		last, this = this, next
	}
	out[2*cw-2] = uint8((this*3 + last + 8) >> 4)
	out[2*cw-1] = uint8((this*4 + 7) >> 4)
}
