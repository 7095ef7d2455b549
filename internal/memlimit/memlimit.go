// Package memlimit gives the Go garbage collector a soft memory limit sized to the machine.
//
// By default Go lets the heap grow to twice what was live after the last collection before
// it collects again. For a model that keeps gigabytes live (a Qwen2.5-VL-3B checkpoint holds
// 14 GiB of float32 weights) that means gigabytes of freed temporaries waiting for the next
// collection, and the kernel's OOM killer ends the process although it never needed the
// memory. A soft limit (runtime/debug.SetMemoryLimit, the GOMEMLIMIT variable) makes the
// collector run earlier as the heap nears it; below half the limit nothing changes.
package memlimit

import (
	"bufio"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Fraction is the share of the machine's (or the container's) memory given to the soft limit.
const Fraction = 0.9

// Files read by Machine; variables so tests can point them at fixtures.
var (
	cgroupV2Max   = "/sys/fs/cgroup/memory.max"
	cgroupV1Limit = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
	procMeminfo   = "/proc/meminfo"
)

// Machine returns the memory available to this process in bytes: the cgroup's limit when it
// has one below the physical memory, else MemTotal from /proc/meminfo; and where it came from.
func Machine() (int64, string, error) {
	total, err := memTotal(procMeminfo)
	if err != nil {
		return 0, "", err
	}
	for _, path := range []string{cgroupV2Max, cgroupV1Limit} {
		if limit, ok := readLimit(path); ok && limit < total {
			return limit, path, nil
		}
	}
	return total, procMeminfo, nil
}

// readLimit reads a cgroup limit file ("max" or a byte count); false when absent or unlimited.
func readLimit(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return v, err == nil && v > 0
}

// memTotal reads MemTotal (kB) from a /proc/meminfo file, in bytes.
func memTotal(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("memory size: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil || kb <= 0 {
				return 0, fmt.Errorf("memory size: %s: bad MemTotal %q", path, fields[1])
			}
			return kb * 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("memory size: %s: %w", path, err)
	}
	return 0, fmt.Errorf("memory size: %s has no MemTotal line", path)
}

// Apply sets the soft limit to Fraction of Machine() unless the GOMEMLIMIT environment
// variable already set one (the user's choice wins). It returns the limit set (0 when none
// was) and never fails the program: without a readable memory size it leaves Go's default.
func Apply() int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	mem, _, err := Machine()
	if err != nil {
		return 0
	}
	limit := int64(float64(mem) * Fraction)
	debug.SetMemoryLimit(limit)
	return limit
}
