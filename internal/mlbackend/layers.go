package mlbackend

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
)

// Padding selects how Conv2D and Pool2D treat the image border.
type Padding int

const (
	// PaddingSame pads with zeros so that the output has ceil(input/stride) pixels per axis.
	PaddingSame Padding = iota
	// PaddingValid does not pad: only windows entirely inside the input are used.
	PaddingValid
)

// ConvMethod selects how Conv2D is computed.
type ConvMethod int

const (
	// ConvAuto uses ConvIm2Col on simplego (about 4x faster there, see BenchmarkConv2D) and
	// ConvNative on other backends (XLA has fast native convolutions).
	ConvAuto ConvMethod = iota
	// ConvIm2Col computes the convolution as kh*kw strided slices concatenated on the channel
	// axis and one matmul with the reshaped kernel.
	ConvIm2Col
	// ConvNative uses the backend's ConvGeneral op.
	ConvNative
)

// ConvOptions configures Conv2D. Zero values mean stride 1, same padding, dilation 1, ConvAuto.
type ConvOptions struct {
	Stride   int
	Padding  Padding
	Dilation int
	Method   ConvMethod
}

func (o ConvOptions) norm() ConvOptions {
	if o.Stride <= 0 {
		o.Stride = 1
	}
	if o.Dilation <= 0 {
		o.Dilation = 1
	}
	return o
}

// samePadding returns the (low, high) padding giving ceil(in/stride) outputs for an effective
// window of keff pixels, as TensorFlow/XLA "SAME" does.
func samePadding(in, keff, stride int) [2]int {
	out := (in + stride - 1) / stride
	total := max((out-1)*stride+keff-in, 0)
	return [2]int{total / 2, total - total/2}
}

// Conv2D convolves x [batch, height, width, inChannels] (NHWC) with kernel
// [kh, kw, inChannels, outChannels] and returns [batch, outH, outW, outChannels]. Strides and
// dilations are always passed explicitly (simplego v0.26.0 fails on empty lists). It trains
// on simplego once RegisterGradients has run (New and this package's init do that).
func Conv2D(x, kernel *Node, opts ConvOptions) *Node {
	opts = opts.norm()
	if x.Rank() != 4 || kernel.Rank() != 4 {
		panic(fmt.Sprintf("mlbackend.Conv2D: want x [N,H,W,C] and kernel [kh,kw,Cin,Cout], got %s and %s", x.Shape(), kernel.Shape()))
	}
	if x.Shape().Dimensions[3] != kernel.Shape().Dimensions[2] {
		panic(fmt.Sprintf("mlbackend.Conv2D: x has %d channels, kernel expects %d", x.Shape().Dimensions[3], kernel.Shape().Dimensions[2]))
	}
	pads := make([][2]int, 2)
	if opts.Padding == PaddingSame {
		for i := range 2 {
			keff := (kernel.Shape().Dimensions[i]-1)*opts.Dilation + 1
			pads[i] = samePadding(x.Shape().Dimensions[1+i], keff, opts.Stride)
		}
	}
	method := opts.Method
	if method == ConvAuto {
		method = ConvNative
		if b := x.Graph().Backend(); b != nil && b.String() == "go" {
			method = ConvIm2Col
		}
	}
	if method == ConvIm2Col {
		return conv2DIm2Col(x, kernel, opts, pads)
	}
	axes := ConvolveAxesConfig{
		InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
		KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
		OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2},
	}
	return ConvGeneral(x, kernel, axes, []int{opts.Stride, opts.Stride}, pads, []int{1, 1},
		[]int{opts.Dilation, opts.Dilation}, 1, 1)
}

// padZeros pads axis of x with lo and hi zeros using Concatenate (simplego has no Pad).
func padZeros(x *Node, axis, lo, hi int) *Node {
	parts := make([]*Node, 0, 3)
	if lo > 0 {
		parts = append(parts, zerosLikeAxis(x, axis, lo))
	}
	parts = append(parts, x)
	if hi > 0 {
		parts = append(parts, zerosLikeAxis(x, axis, hi))
	}
	if len(parts) == 1 {
		return x
	}
	return Concatenate(parts, axis)
}

// conv2DIm2Col: gather the kh*kw shifted, strided views of the padded input along the channel
// axis and contract them with the reshaped kernel in one DotGeneral.
func conv2DIm2Col(x, kernel *Node, opts ConvOptions, pads [][2]int) *Node {
	kh, kw := kernel.Shape().Dimensions[0], kernel.Shape().Dimensions[1]
	cin, cout := kernel.Shape().Dimensions[2], kernel.Shape().Dimensions[3]
	x = padZeros(padZeros(x, 1, pads[0][0], pads[0][1]), 2, pads[1][0], pads[1][1])
	h, w := x.Shape().Dimensions[1], x.Shape().Dimensions[2]
	oh := (h-((kh-1)*opts.Dilation+1))/opts.Stride + 1
	ow := (w-((kw-1)*opts.Dilation+1))/opts.Stride + 1
	if oh <= 0 || ow <= 0 {
		panic(fmt.Sprintf("mlbackend.Conv2D: kernel %dx%d (dilation %d) larger than padded input %dx%d", kh, kw, opts.Dilation, h, w))
	}
	cols := make([]*Node, 0, kh*kw)
	for i := range kh {
		for j := range kw {
			y0, x0 := i*opts.Dilation, j*opts.Dilation
			cols = append(cols, Slice(x, AxisRange(),
				AxisRange(y0, y0+(oh-1)*opts.Stride+1).Stride(opts.Stride),
				AxisRange(x0, x0+(ow-1)*opts.Stride+1).Stride(opts.Stride),
				AxisRange()))
		}
	}
	patches := cols[0]
	if len(cols) > 1 {
		patches = Concatenate(cols, 3) // [N, oh, ow, kh*kw*cin], ordered (i, j, c) like the kernel
	}
	k := Reshape(kernel, kh*kw*cin, cout)
	return DotGeneral(patches, []int{3}, nil, k, []int{0}, nil)
}

// DepthwiseConv2D convolves each channel of x [batch, height, width, C] (NHWC) with its own
// filter, kernel [kh, kw, C, 1] (Keras's DepthwiseConv2D layout), and returns
// [batch, outH, outW, C]. It is the sum of kh*kw shifted, strided views of the zero-padded
// input times the kernel's taps (no ConvGeneral channel groups), so it trains on simplego with
// RegisterGradients' Slice rule. Dilation and Method are ignored.
func DepthwiseConv2D(x, kernel *Node, opts ConvOptions) *Node {
	opts = opts.norm()
	if x.Rank() != 4 || kernel.Rank() != 4 || kernel.Shape().Dimensions[3] != 1 {
		panic(fmt.Sprintf("mlbackend.DepthwiseConv2D: want x [N,H,W,C] and kernel [kh,kw,C,1], got %s and %s", x.Shape(), kernel.Shape()))
	}
	kh, kw, c := kernel.Shape().Dimensions[0], kernel.Shape().Dimensions[1], kernel.Shape().Dimensions[2]
	if x.Shape().Dimensions[3] != c {
		panic(fmt.Sprintf("mlbackend.DepthwiseConv2D: x has %d channels, kernel %d", x.Shape().Dimensions[3], c))
	}
	if opts.Padding == PaddingSame {
		ph := samePadding(x.Shape().Dimensions[1], kh, opts.Stride)
		pw := samePadding(x.Shape().Dimensions[2], kw, opts.Stride)
		x = padZeros(padZeros(x, 1, ph[0], ph[1]), 2, pw[0], pw[1])
	}
	h, w := x.Shape().Dimensions[1], x.Shape().Dimensions[2]
	oh, ow := (h-kh)/opts.Stride+1, (w-kw)/opts.Stride+1
	if oh <= 0 || ow <= 0 {
		panic(fmt.Sprintf("mlbackend.DepthwiseConv2D: kernel %dx%d larger than padded input %dx%d", kh, kw, h, w))
	}
	var out *Node
	for i := range kh {
		for j := range kw {
			view := Slice(x, AxisRange(),
				AxisRange(i, i+(oh-1)*opts.Stride+1).Stride(opts.Stride),
				AxisRange(j, j+(ow-1)*opts.Stride+1).Stride(opts.Stride),
				AxisRange())
			tap := Reshape(Slice(kernel, AxisElem(i), AxisElem(j), AxisRange(), AxisRange()), 1, 1, 1, c)
			// An explicit broadcast: simplego's Mul with implicit broadcasting is slower.
			term := Mul(view, BroadcastToDims(tap, view.Shape().Dimensions...))
			if out == nil {
				out = term
			} else {
				out = Add(out, term)
			}
		}
	}
	return out
}
