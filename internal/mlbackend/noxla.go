//go:build noxla || !cgo

package mlbackend

// This build has no XLA backend: xlaNew stays nil and New("xla:...") returns ErrXLANotCompiled.
