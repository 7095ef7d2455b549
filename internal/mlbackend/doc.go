// Package mlbackend selects the GoMLX backend and patches GoMLX v0.26.0 so that models train
// on the pure-Go simplego backend.
//
// Usage:
//
//	var spec string
//	mlbackend.AddFlag(cmd.Flags(), &spec)      // --backend, default "go"
//	backend, err := mlbackend.New(spec)        // "go", "go:parallelism=2", "xla:cuda", "xla:/abs/plugin.so"
//	// New calls RegisterGradients; call it yourself if you build graphs on a backend made elsewhere.
//	y := mlbackend.Conv2DLayer(ctx.In("conv1"), x, 32, 3, true, mlbackend.ConvOptions{Stride: 2})
//	y = mlbackend.GroupNorm(ctx.In("gn1"), y, 8, 1e-5)
//	y = mlbackend.Pool2D(activations.Swish(y), mlbackend.PoolOptions{Kind: mlbackend.PoolMax})
//
// Backends: the default build (CGO_ENABLED=0 -tags noxla) has only "go" (simplego); a build with
// cgo and without the noxla tag (make build-xla) adds "xla", which never downloads plugins.
// The "go" spec is simplego with unbounded workers and parallel op scheduling
// (NormalizeGoConfig): simplego's own default bounds the worker pool, which deadlocks on 2
// cores when ops run in parallel. NewForInference, for commands that only run a model,
// schedules ops one at a time instead (NormalizeGoInferenceConfig).
//
// Gradients: RegisterGradients (idempotent) replaces or adds VJP rules in graph.VJPRegistration:
// Dot and DotGeneral (two matmuls instead of a broadcast M*N*K product), Slice (zero-filling by
// concatenation instead of Pad, which simplego lacks), Rsqrt and Clamp (no rule in v0.26.0),
// ConvGeneral (kernel reversal without Reverse, which simplego lacks), ReduceWindow (pooling
// without SelectAndScatter or Pad), plus zero gradients for
// Sign/Round/Floor/Ceil. Conv2D, Pool2D, GroupNorm and Conv2DLayer are building blocks whose
// gradients work on simplego. See README.md for what trains on simplego.
package mlbackend
