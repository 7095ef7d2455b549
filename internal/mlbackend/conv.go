package mlbackend

import (
	"fmt"
	"reflect"
	"slices"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// convParams are the static parameters of a ConvGeneral node.
type convParams struct {
	axes                               ConvolveAxesConfig
	strides, inputDilations, dilations []int
	paddings                           [][2]int
	channelGroups, batchGroups         int
}

// readConvParams reads a ConvGeneral node's parameters, filling defaults (stride 1, no padding,
// dilation 1) for the spatial axes.
func readConvParams(node *Node) convParams {
	p := nodeParams(node)
	axesV := p.FieldByName("axes")
	readInt := func(v reflect.Value, name string) int { return int(v.FieldByName(name).Int()) }
	readInts := func(v reflect.Value, name string) []int { return intsField(v, name) }
	cp := convParams{
		axes: ConvolveAxesConfig{
			InputBatch: readInt(axesV, "InputBatch"), InputChannels: readInt(axesV, "InputChannels"),
			InputSpatial:        readInts(axesV, "InputSpatial"),
			KernelInputChannels: readInt(axesV, "KernelInputChannels"), KernelOutputChannels: readInt(axesV, "KernelOutputChannels"),
			KernelSpatial: readInts(axesV, "KernelSpatial"),
			OutputBatch:   readInt(axesV, "OutputBatch"), OutputChannels: readInt(axesV, "OutputChannels"),
			OutputSpatial: readInts(axesV, "OutputSpatial"),
		},
		strides:        intsField(p, "strides"),
		inputDilations: intsField(p, "inputDilations"),
		dilations:      intsField(p, "kernelDilations"),
		channelGroups:  intField(p, "channelGroupCount"),
		batchGroups:    intField(p, "batchGroupCount"),
	}
	n := len(cp.axes.InputSpatial)
	pads := p.FieldByName("paddings")
	cp.paddings = make([][2]int, n)
	for i := 0; i < pads.Len() && i < n; i++ {
		cp.paddings[i] = [2]int{int(pads.Index(i).Index(0).Int()), int(pads.Index(i).Index(1).Int())}
	}
	ones := func(x []int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = 1
			if i < len(x) && x[i] > 0 {
				out[i] = x[i]
			}
		}
		return out
	}
	cp.strides, cp.inputDilations, cp.dilations = ones(cp.strides), ones(cp.inputDilations), ones(cp.dilations)
	return cp
}

// convGeneralVJP replaces GoMLX v0.26.0's ConvGeneral gradient, whose input gradient uses
// Reverse (not in simplego). The kernel is reversed with Slice + Concatenate instead, and the
// paddings of both backward convolutions are derived directly from the forward definition
// out[o] = sum_k x[o*stride + k*dilation - padLow] * w[k].
// Input dilation and batch grouping fall back to GoMLX's rule.
func convGeneralVJP(node, v *Node) []*Node {
	cp := readConvParams(node)
	if slices.ContainsFunc(cp.inputDilations, func(d int) bool { return d != 1 }) || cp.batchGroups > 1 {
		return stockVJP[NodeTypeConvGeneral](node, []*Node{v}, shapes.Shape{})
	}
	in := node.Inputs()
	x, kernel := in[0], in[1]
	if cp.channelGroups <= 1 {
		return []*Node{convInputGrad(x, kernel, v, cp), convKernelGrad(x, kernel, v, cp)}
	}
	// Grouped convolution: each group is an independent convolution.
	g := cp.channelGroups
	xs := Split(x, cp.axes.InputChannels, g)
	ks := Split(kernel, cp.axes.KernelOutputChannels, g)
	vs := Split(v, cp.axes.OutputChannels, g)
	gx, gk := make([]*Node, g), make([]*Node, g)
	for i := range g {
		gx[i] = convInputGrad(xs[i], ks[i], vs[i], cp)
		gk[i] = convKernelGrad(xs[i], ks[i], vs[i], cp)
	}
	return []*Node{Concatenate(gx, cp.axes.InputChannels), Concatenate(gk, cp.axes.KernelOutputChannels)}
}

// reverseAxis reverses x along axis with Slice + Concatenate (for small kernel axes).
func reverseAxis(x *Node, axis int) *Node {
	n := x.Shape().Dimensions[axis]
	if n <= 1 {
		return x
	}
	parts := make([]*Node, n)
	for i := range n {
		parts[i] = SliceAxis(x, axis, AxisElem(n-1-i))
	}
	return Concatenate(parts, axis)
}

// convInputGrad: dx = conv(v dilated by stride, reversed kernel with in/out channels swapped),
// with kernel dilation unchanged and padding (keff-1-padLow, I+padLow-(O-1)*stride-1).
func convInputGrad(x, kernel, v *Node, cp convParams) *Node {
	a := cp.axes
	rk := kernel
	for _, ax := range a.KernelSpatial {
		rk = reverseAxis(rk, ax)
	}
	n := len(a.InputSpatial)
	pads := make([][2]int, n)
	for i := range n {
		k := kernel.Shape().Dimensions[a.KernelSpatial[i]]
		keff := (k-1)*cp.dilations[i] + 1
		inDim := x.Shape().Dimensions[a.InputSpatial[i]]
		outDim := v.Shape().Dimensions[a.OutputSpatial[i]]
		lo := keff - 1 - cp.paddings[i][0]
		hi := inDim + cp.paddings[i][0] - (outDim-1)*cp.strides[i] - 1
		if lo < 0 || hi < 0 {
			panic(fmt.Sprintf("mlbackend: ConvGeneral gradient: padding %v larger than the dilated kernel (%d) on spatial axis %d is not supported",
				cp.paddings[i], keff, i))
		}
		pads[i] = [2]int{lo, hi}
	}
	axes := ConvolveAxesConfig{
		InputBatch: a.OutputBatch, InputChannels: a.OutputChannels, InputSpatial: a.OutputSpatial,
		KernelInputChannels: a.KernelOutputChannels, KernelOutputChannels: a.KernelInputChannels, KernelSpatial: a.KernelSpatial,
		OutputBatch: a.InputBatch, OutputChannels: a.InputChannels, OutputSpatial: a.InputSpatial,
	}
	return ConvGeneral(v, rk, axes, onesN(n), pads, cp.strides, cp.dilations, 1, 1)
}

// convKernelGrad: dw[k] = sum_{b,o} x[o*stride + k*dilation - padLow] * v[o], a convolution of x
// (batch and channel roles swapped) with v as the kernel, kernel dilation = stride and
// stride = dilation. Unused trailing input is sliced off.
func convKernelGrad(x, kernel, v *Node, cp convParams) *Node {
	a := cp.axes
	n := len(a.InputSpatial)
	pads := make([][2]int, n)
	for i := range n {
		k := kernel.Shape().Dimensions[a.KernelSpatial[i]]
		inDim := x.Shape().Dimensions[a.InputSpatial[i]]
		outDim := v.Shape().Dimensions[a.OutputSpatial[i]]
		// Last input index read: (outDim-1)*stride + (k-1)*dilation - padLow.
		hi := (k-1)*cp.dilations[i] + (outDim-1)*cp.strides[i] + 1 - inDim - cp.paddings[i][0]
		if hi < 0 {
			x = SliceAxis(x, a.InputSpatial[i], AxisRange(0, inDim+hi))
			hi = 0
		}
		pads[i] = [2]int{cp.paddings[i][0], hi}
	}
	axes := ConvolveAxesConfig{
		InputBatch: a.InputChannels, InputChannels: a.InputBatch, InputSpatial: a.InputSpatial,
		KernelInputChannels: a.OutputBatch, KernelOutputChannels: a.OutputChannels, KernelSpatial: a.OutputSpatial,
		OutputBatch: a.KernelInputChannels, OutputChannels: a.KernelOutputChannels, OutputSpatial: a.KernelSpatial,
	}
	return ConvGeneral(x, v, axes, cp.dilations, pads, onesN(n), cp.strides, 1, 1)
}

// onesN returns n ones. ConvGeneral on simplego (v0.26.0) rejects empty stride lists, so
// strides and dilations are always given explicitly.
func onesN(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = 1
	}
	return out
}
