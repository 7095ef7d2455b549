package memlimit

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestMachine: the memory size comes from a cgroup limit below the physical memory, else
// from MemTotal; "max" and the cgroup v1 "unlimited" value are no limit.
func TestMachine(t *testing.T) {
	const total = 24576000 * 1024
	tests := []struct {
		name, meminfo, v2, v1 string
		want                  int64
		from                  string
		wantErr               bool
	}{
		{name: "no cgroup files", meminfo: "testdata/meminfo", v2: "testdata/absent", v1: "testdata/absent", want: total, from: "testdata/meminfo"},
		{name: "cgroup v2 max", meminfo: "testdata/meminfo", v2: "testdata/cgroup-v2-max", v1: "testdata/absent", want: total, from: "testdata/meminfo"},
		{name: "cgroup v2 8 GiB", meminfo: "testdata/meminfo", v2: "testdata/cgroup-v2-8g", v1: "testdata/cgroup-v1-unlimited", want: 8 << 30, from: "testdata/cgroup-v2-8g"},
		{name: "cgroup v1 unlimited", meminfo: "testdata/meminfo", v2: "testdata/absent", v1: "testdata/cgroup-v1-unlimited", want: total, from: "testdata/meminfo"},
		{name: "cgroup v1 8 GiB", meminfo: "testdata/meminfo", v2: "testdata/absent", v1: "testdata/cgroup-v2-8g", want: 8 << 30, from: "testdata/cgroup-v2-8g"},
		{name: "no MemTotal", meminfo: "testdata/meminfo-no-total", v2: "testdata/absent", v1: "testdata/absent", wantErr: true},
		{name: "no meminfo", meminfo: "testdata/absent", v2: "testdata/cgroup-v2-8g", v1: "testdata/absent", wantErr: true},
	}
	defer func(m, v2, v1 string) { procMeminfo, cgroupV2Max, cgroupV1Limit = m, v2, v1 }(procMeminfo, cgroupV2Max, cgroupV1Limit)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			procMeminfo, cgroupV2Max, cgroupV1Limit = tc.meminfo, tc.v2, tc.v1
			got, from, err := Machine()
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %d from %s, want an error", got, from)
				}
				return
			}
			if err != nil || got != tc.want || from != tc.from {
				t.Fatalf("got %d from %q (%v), want %d from %q", got, from, err, tc.want, tc.from)
			}
		})
	}
}

// TestApply: the soft limit is Fraction of the machine's memory, and GOMEMLIMIT wins.
func TestApply(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	defer func(m, v2, v1 string) { procMeminfo, cgroupV2Max, cgroupV1Limit = m, v2, v1 }(procMeminfo, cgroupV2Max, cgroupV1Limit)
	procMeminfo, cgroupV2Max, cgroupV1Limit = "testdata/meminfo", "testdata/cgroup-v2-8g", "testdata/absent"
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOMEMLIMIT", "")
	mem := int64(8 << 30)
	want := int64(float64(mem) * Fraction)
	if got := Apply(); got != want {
		t.Fatalf("Apply set %d, want %d", got, want)
	}
	if got := debug.SetMemoryLimit(-1); got != want {
		t.Fatalf("runtime limit %d, want %d", got, want)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOMEMLIMIT", "1GiB")
	if got := Apply(); got != 0 {
		t.Fatalf("Apply set %d with GOMEMLIMIT in the environment, want nothing", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("runtime limit changed to %d with GOMEMLIMIT in the environment", got)
	}
}
