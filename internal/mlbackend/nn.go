package mlbackend

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
)

// Conv2DLayer is a trainable NHWC convolution: variables "weights" [k, k, C, outChannels] (He
// initialisation) and, when bias is true, "biases" [outChannels], in scope ctx. It calls Conv2D.
func Conv2DLayer(ctx *context.Context, x *Node, outChannels, kernelSize int, bias bool, opts ConvOptions) *Node {
	if x.Rank() != 4 {
		panic(fmt.Sprintf("mlbackend.Conv2DLayer: want x [N,H,W,C], got %s", x.Shape()))
	}
	g := x.Graph()
	cin := x.Shape().Dimensions[3]
	w := ctx.WithInitializer(initializers.HeFn(ctx)).
		VariableWithShape("weights", shapes.Make(x.DType(), kernelSize, kernelSize, cin, outChannels)).ValueGraph(g)
	y := Conv2D(x, w, opts)
	if bias {
		b := ctx.WithInitializer(initializers.Zero).VariableWithShape("biases", shapes.Make(x.DType(), outChannels)).ValueGraph(g)
		y = Add(y, Reshape(b, 1, 1, 1, outChannels))
	}
	return y
}

// GroupNorm normalises x [N, ..., C] (channels last) over the spatial axes and groups of C/groups
// channels, then applies a learned per-channel "scale" (init 1) and "offset" (init 0) in scope
// ctx. Unlike batch normalisation it does not depend on the batch size and has no moving
// averages, so training and inference behave the same. groups=1 is layer norm over H, W, C;
// groups=C is instance norm.
func GroupNorm(ctx *context.Context, x *Node, groups int, epsilon float64) *Node {
	dims := x.Shape().Dimensions
	c := dims[len(dims)-1]
	if x.Rank() < 2 || groups <= 0 || c%groups != 0 {
		panic(fmt.Sprintf("mlbackend.GroupNorm: %d channels of %s not divisible into %d groups", c, x.Shape(), groups))
	}
	g := x.Graph()
	normalized := groupNormalize(x, groups, epsilon)
	scale := ctx.WithInitializer(initializers.One).VariableWithShape("scale", shapes.Make(x.DType(), c)).ValueGraph(g)
	offset := ctx.WithInitializer(initializers.Zero).VariableWithShape("offset", shapes.Make(x.DType(), c)).ValueGraph(g)
	bdims := make([]int, len(dims))
	for i := range bdims {
		bdims[i] = 1
	}
	bdims[len(bdims)-1] = c
	return Add(Mul(normalized, Reshape(scale, bdims...)), Reshape(offset, bdims...))
}

// groupNormalize is GroupNorm without the learned scale and offset.
func groupNormalize(x *Node, groups int, epsilon float64) *Node {
	dims := x.Shape().Dimensions
	c := dims[len(dims)-1]
	grouped := append(append([]int{}, dims[:len(dims)-1]...), groups, c/groups)
	xg := Reshape(x, grouped...)
	axes := make([]int, 0, len(grouped)-2)
	for a := 1; a < len(grouped); a++ {
		if a != len(grouped)-2 { // every axis but batch and group
			axes = append(axes, a)
		}
	}
	mean := ReduceAndKeep(xg, ReduceMean, axes...)
	centered := Sub(xg, mean)
	variance := ReduceAndKeep(Square(centered), ReduceMean, axes...)
	return Reshape(Mul(centered, Rsqrt(AddScalar(variance, epsilon))), dims...)
}
