package mlbackend

import (
	"fmt"
	"reflect"
	"slices"
	"sync"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// registerOnce makes RegisterGradients idempotent.
var registerOnce sync.Once

// stockVJP keeps GoMLX's own rules replaced by RegisterGradients (nil entries: there was none),
// so tests and benchmarks can compare against them.
var stockVJP = map[NodeType]VJP{}

// ourVJP are the rules installed by RegisterGradients.
var ourVJP = map[NodeType]VJP{
	NodeTypeDot:          single(dotVJP),
	NodeTypeDotGeneral:   single(dotGeneralVJP),
	NodeTypeSlice:        single(sliceVJP),
	NodeTypeRsqrt:        single(rsqrtVJP),
	NodeTypeClamp:        single(clampVJP),
	NodeTypeConvGeneral:  single(convGeneralVJP),
	NodeTypeReduceWindow: single(reduceWindowVJP),
	// Piecewise-constant ops: zero gradient almost everywhere (v0.26.0 has no rule and panics).
	NodeTypeSign:  single(zeroVJP),
	NodeTypeRound: single(zeroVJP),
	NodeTypeFloor: single(zeroVJP),
	NodeTypeCeil:  single(zeroVJP),
}

func init() { RegisterGradients() }

// RegisterGradients installs this package's gradient rules in graph.VJPRegistration: Dot and
// DotGeneral as two matmuls, Slice without Pad, Rsqrt, Clamp, ConvGeneral without Reverse,
// ReduceWindow (MaxPool/MinPool/MeanPool) without SelectAndScatter or Pad, and zero gradients
// for Sign, Round, Floor and Ceil.
// It is idempotent and is also run by this package's init and by New. It must not run
// concurrently with graph building (graph.VJPRegistration is a plain map); init guarantees that.
func RegisterGradients() {
	registerOnce.Do(func() {
		for t, fn := range ourVJP {
			stockVJP[t] = VJPRegistration[t]
			VJPRegistration[t] = fn
		}
	})
}

// single adapts a single-output VJP to graph.VJP.
func single(fn func(node, v *Node) []*Node) VJP {
	return func(node *Node, vjpOutputs []*Node, _ shapes.Shape) []*Node {
		return fn(node, vjpOutputs[0])
	}
}

// nodeParams returns the (unexported) parameter struct of a node, e.g. graph.nodeInputsSlice,
// read through reflection: GoMLX v0.26.0 exposes the input nodes but not static parameters such
// as slice limits or contracting axes. Reading unexported fields with reflect is allowed; only
// Interface() and setting are not.
func nodeParams(node *Node) reflect.Value {
	v := reflect.ValueOf(node).Elem().FieldByName("inputs")
	if !v.IsValid() || v.IsNil() {
		panic(fmt.Sprintf("mlbackend: node %s has no inputs field (GoMLX version changed?)", node))
	}
	v = v.Elem()
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	return v
}

// intsField reads an []int field of a node's parameter struct.
func intsField(params reflect.Value, name string) []int {
	f := params.FieldByName(name)
	if !f.IsValid() || f.Kind() != reflect.Slice {
		panic(fmt.Sprintf("mlbackend: parameter %q not found in %s (GoMLX version changed?)", name, params.Type()))
	}
	out := make([]int, f.Len())
	for i := range out {
		out[i] = int(f.Index(i).Int())
	}
	return out
}

// intField reads an int field of a node's parameter struct.
func intField(params reflect.Value, name string) int {
	f := params.FieldByName(name)
	if !f.IsValid() || f.Kind() != reflect.Int {
		panic(fmt.Sprintf("mlbackend: parameter %q not found in %s (GoMLX version changed?)", name, params.Type()))
	}
	return int(f.Int())
}

// freeAxes returns the axes of a rank-r operand that are neither contracting nor batch, ascending.
func freeAxes(rank int, contracting, batch []int) []int {
	var out []int
	for a := 0; a < rank; a++ {
		if !slices.Contains(contracting, a) && !slices.Contains(batch, a) {
			out = append(out, a)
		}
	}
	return out
}

// seq returns [start, start+1, ..., start+n-1].
func seq(start, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = start + i
	}
	return out
}

// transposeTo transposes x, whose axis i is to become axis dst[i], to that order.
func transposeTo(x *Node, dst []int) *Node {
	perm := make([]int, len(dst))
	identity := true
	for i, d := range dst {
		perm[d] = i
		if d != i {
			identity = false
		}
	}
	if identity {
		return x
	}
	return TransposeAllAxes(x, perm...)
}

// dotGeneralGrads returns the gradients of DotGeneral(lhs, lc, lb, rhs, rc, rb) given the adjoint
// v (shaped [batch..., lhsFree..., rhsFree...]), each computed by one DotGeneral plus a transpose,
// with no intermediate larger than the operands.
func dotGeneralGrads(lhs *Node, lc, lb []int, rhs *Node, rc, rb []int, v *Node) (gradLHS, gradRHS *Node) {
	nb := len(lb)
	lf := freeAxes(lhs.Rank(), lc, lb)
	rf := freeAxes(rhs.Rank(), rc, rb)
	nlf, nrf := len(lf), len(rf)

	// d lhs: contract v's rhs-free axes with rhs's free axes, batch with batch.
	// Result axes: [batch..., lhsFree..., rhs contracting axes in ascending order].
	g := DotGeneral(v, seq(nb+nlf, nrf), seq(0, nb), rhs, rf, rb)
	dst := make([]int, 0, lhs.Rank())
	dst = append(dst, lb...)
	dst = append(dst, lf...)
	for _, r := range sortedCopy(rc) {
		dst = append(dst, lc[slices.Index(rc, r)])
	}
	gradLHS = transposeTo(g, dst)

	// d rhs: contract lhs's free axes with v's lhs-free axes, batch with batch.
	// Result axes: [batch..., lhs contracting axes in ascending order..., rhsFree...].
	g = DotGeneral(lhs, lf, lb, v, seq(nb, nlf), seq(0, nb))
	dst = dst[:0]
	dst = append(dst, rb...)
	for _, l := range sortedCopy(lc) {
		dst = append(dst, rc[slices.Index(lc, l)])
	}
	dst = append(dst, rf...)
	gradRHS = transposeTo(g, dst)
	return gradLHS, gradRHS
}

func sortedCopy(x []int) []int {
	out := slices.Clone(x)
	slices.Sort(out)
	return out
}

// dotGeneralVJP replaces GoMLX v0.26.0's rule, which materialises a broadcast M*N*K product.
func dotGeneralVJP(node, v *Node) []*Node {
	p := nodeParams(node)
	in := node.Inputs()
	gl, gr := dotGeneralGrads(in[0], intsField(p, "lhsContractingAxes"), intsField(p, "lhsBatchAxes"),
		in[1], intsField(p, "rhsContractingAxes"), intsField(p, "rhsBatchAxes"), v)
	return []*Node{gl, gr}
}

// dotVJP handles Dot (vector/matrix products of rank <= 2, used by MatMul): it contracts the
// last axis of lhs with the first of rhs.
func dotVJP(node, v *Node) []*Node {
	in := node.Inputs()
	lhs, rhs := in[0], in[1]
	gl, gr := dotGeneralGrads(lhs, []int{lhs.Rank() - 1}, nil, rhs, []int{0}, nil, v)
	return []*Node{gl, gr}
}

// sliceVJP scatters the adjoint back into a zero tensor shaped like the sliced input, axis by
// axis, using Concatenate (and Reshape for strides) instead of Pad, which simplego lacks.
func sliceVJP(node, v *Node) []*Node {
	p := nodeParams(node)
	x := node.Inputs()[0]
	starts, limits, strides := intsField(p, "starts"), intsField(p, "limits"), intsField(p, "strides")
	grad := v
	for axis := 0; axis < x.Rank(); axis++ {
		stride := 1
		if axis < len(strides) && strides[axis] > 1 {
			stride = strides[axis]
		}
		grad = unsliceAxis(grad, axis, x.Shape().Dimensions[axis], starts[axis], limits[axis], stride)
	}
	return []*Node{grad}
}

// zerosLikeAxis returns zeros shaped like x except for n elements on axis.
func zerosLikeAxis(x *Node, axis, n int) *Node {
	dims := slices.Clone(x.Shape().Dimensions)
	dims[axis] = n
	return Zeros(x.Graph(), shapes.Make(x.DType(), dims...))
}

// unsliceAxis places g's elements i along axis at start+i*stride of a zero tensor of size dim.
func unsliceAxis(g *Node, axis, dim, start, limit, stride int) *Node {
	n := g.Shape().Dimensions[axis]
	if start == 0 && stride == 1 && n == dim {
		return g
	}
	if stride > 1 && n > 0 {
		// Interleave stride-1 zeros after each element: [.., n, ..] -> [.., n, stride, ..] -> [.., n*stride, ..].
		dims := slices.Clone(g.Shape().Dimensions)
		expanded := InsertAxes(g, axis+1)
		zeros := zerosLikeAxis(expanded, axis+1, stride-1)
		g = Concatenate([]*Node{expanded, zeros}, axis+1)
		dims[axis] = n * stride
		g = Reshape(g, dims...)
		// Keep only up to the last real element; the trailing zeros are re-added below.
		if keep := (n-1)*stride + 1; keep < n*stride {
			g = SliceAxis(g, axis, AxisRange(0, keep))
		}
		n = (n-1)*stride + 1
	}
	parts := make([]*Node, 0, 3)
	if start > 0 {
		parts = append(parts, zerosLikeAxis(g, axis, start))
	}
	parts = append(parts, g)
	if end := dim - start - n; end > 0 {
		parts = append(parts, zerosLikeAxis(g, axis, end))
	}
	if len(parts) == 1 {
		return g
	}
	return Concatenate(parts, axis)
}

// zeroVJP gives no gradient to any input (nil: the input is treated as constant).
func zeroVJP(node, _ *Node) []*Node { return make([]*Node, len(node.Inputs())) }

// rsqrtVJP: d/dx x^(-1/2) = -1/2 * rsqrt(x)^3.
func rsqrtVJP(node, v *Node) []*Node {
	y := node
	return []*Node{Mul(v, MulScalar(Mul(y, Mul(y, y)), -0.5))}
}

// clampVJP follows JAX: the adjoint goes to x where min < x < max, to min where x < min (and
// min < max), and to max where x > max. Scalar bounds get the sum of their adjoints.
func clampVJP(node, v *Node) []*Node {
	in := node.Inputs()
	lo, x, hi := in[0], in[1], in[2]
	zeros := ZerosLike(v)
	bLo, bHi := BroadcastToShape(lo, x.Shape()), BroadcastToShape(hi, x.Shape())
	gx := Where(LogicalAnd(GreaterThan(x, bLo), LessThan(x, bHi)), v, zeros)
	gLo := Where(LogicalAnd(GreaterThan(bLo, x), LessThan(bLo, bHi)), v, zeros)
	gHi := Where(LessThan(bHi, x), v, zeros)
	return []*Node{reduceToShape(gLo, lo.Shape()), gx, reduceToShape(gHi, hi.Shape())}
}

// reduceToShape sums g down to shape when shape is a scalar (a broadcast bound).
func reduceToShape(g *Node, shape shapes.Shape) *Node {
	if shape.IsScalar() && !g.IsScalar() {
		return ReduceAllSum(g)
	}
	return g
}
