package lora

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph-building code reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/layers"
)

// Module is a linear layer that can carry an adapter: its canonical name and sizes.
type Module struct {
	Name    string
	In, Out int
}

// scope is the context scope of a module's adapter variables.
func scope(module string) string { return "/lora/" + strings.ReplaceAll(module, ".", "/") }

// paramDropout is the context parameter holding the LoRA dropout rate.
const paramDropout = "lora_dropout"

// Attach creates adapter variables for every targeted module: A [r, in] Kaiming-uniform
// (bound 1/√in, as PEFT's kaiming_uniform_(a=√5)), B [out, r] zero, and the scale s as a
// frozen scalar. It returns the adapted module names, sorted. It fails only when a module
// already has adapter variables whose old values cannot be replaced on their device.
func Attach(ctx *context.Context, cfg *Config, modules []Module, seed uint64) ([]string, error) {
	rng := rand.New(rand.NewPCG(seed, 0x10a))
	var names []string
	sorted := append([]Module(nil), modules...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, m := range sorted {
		if !cfg.Targets(m.Name) {
			continue
		}
		r, s := cfg.RankAndScaling(m.Name)
		bound := 1 / math.Sqrt(float64(m.In))
		a := make([]float32, r*m.In)
		for i := range a {
			a[i] = float32((rng.Float64()*2 - 1) * bound)
		}
		if err := setAdapter(ctx, m.Name, tensors.FromFlatDataAndDimensions(a, r, m.In), tensors.FromFlatDataAndDimensions(make([]float32, m.Out*r), m.Out, r), s); err != nil {
			return nil, fmt.Errorf("attach LoRA adapters: %w", err)
		}
		names = append(names, m.Name)
	}
	ctx.SetParam(paramDropout, cfg.Dropout)
	return names, nil
}

// setAdapter creates the adapter variables of a module, or overwrites their values when
// they exist (loading a checkpoint into a model that already has adapters).
func setAdapter(ctx *context.Context, module string, a, b *tensors.Tensor, s float64) error {
	c := ctx.InAbsPath(scope(module)).Checked(false)
	set := func(name string, value *tensors.Tensor) (*context.Variable, error) {
		if v := ctx.GetVariableByScopeAndName(scope(module), name); v != nil {
			if err := v.SetValue(value); err != nil {
				return nil, fmt.Errorf("adapter %s: set %s: %w", module, name, err)
			}
			return v, nil
		}
		return c.VariableWithValue(name, value), nil
	}
	if _, err := set("lora_A", a); err != nil {
		return err
	}
	if _, err := set("lora_B", b); err != nil {
		return err
	}
	scaling, err := set("scaling", tensors.FromScalar(float32(s)))
	if err != nil {
		return err
	}
	scaling.SetTrainable(false)
	return nil
}

// Apply adds the adapter update of module (if it has one) to the base output y of a linear
// layer with input x: y + s · (dropout(x) Aᵀ) Bᵀ. Dropout only acts while training.
//
// The adapter computes in its own dtype (float32) whatever the base's: as PEFT does, x is
// cast to A's dtype and the sum y + update, formed in that dtype, is cast back to y's (a
// bfloat16 base keeps float32 adapters, their gradients and optimizer state).
func Apply(ctx *context.Context, x, y *Node, module string) *Node {
	sc := scope(module)
	av := ctx.GetVariableByScopeAndName(sc, "lora_A")
	if av == nil {
		return y
	}
	g := x.Graph()
	a := av.ValueGraph(g)
	b := ctx.GetVariableByScopeAndName(sc, "lora_B").ValueGraph(g)
	s := ctx.GetVariableByScopeAndName(sc, "scaling").ValueGraph(g)
	x = ConvertDType(x, a.DType())
	if p := context.GetParamOr(ctx, paramDropout, 0.0); p > 0 {
		x = layers.DropoutStatic(ctx.InAbsPath(sc), x, p)
	}
	h := DotGeneral(x, []int{x.Rank() - 1}, nil, a, []int{1}, nil)
	h = DotGeneral(h, []int{h.Rank() - 1}, nil, b, []int{1}, nil)
	return ConvertDType(Add(ConvertDType(y, h.DType()), Mul(h, s)), y.DType())
}

// Adapted lists the modules that carry an adapter in ctx, sorted.
func Adapted(ctx *context.Context) []string {
	var names []string
	for v := range ctx.IterVariables() {
		if v.Name() == "lora_A" && strings.HasPrefix(v.Scope(), "/lora/") {
			names = append(names, strings.ReplaceAll(strings.TrimPrefix(v.Scope(), "/lora/"), "/", "."))
		}
	}
	sort.Strings(names)
	return names
}

// Weights returns the A and B matrices (row-major) and scale of an adapted module.
func Weights(ctx *context.Context, module string) (a, b []float32, aShape, bShape []int, s float32, err error) {
	sc := scope(module)
	av, bv, sv := ctx.GetVariableByScopeAndName(sc, "lora_A"), ctx.GetVariableByScopeAndName(sc, "lora_B"), ctx.GetVariableByScopeAndName(sc, "scaling")
	if av == nil || bv == nil || sv == nil {
		return nil, nil, nil, nil, 0, fmt.Errorf("module %s has no adapter", module)
	}
	at, bt, st := av.MustValue(), bv.MustValue(), sv.MustValue()
	if a, err = tensors.CopyFlatData[float32](at); err != nil {
		return
	}
	if b, err = tensors.CopyFlatData[float32](bt); err != nil {
		return
	}
	sf, err := tensors.CopyFlatData[float32](st)
	if err != nil {
		return
	}
	return a, b, at.Shape().Dimensions, bt.Shape().Dimensions, sf[0], nil
}
