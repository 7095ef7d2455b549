package eval

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
)

// gateEpsilon absorbs floating-point noise when a drop equals the allowance exactly.
const gateEpsilon = 1e-12

// ReadBaseline loads the "summary" of a metrics.json written by `acdtcm eval --out` (or its
// --json output).
func ReadBaseline(path string) (map[string]Num, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read baseline: %w", err)
	}
	var doc struct {
		Summary map[string]Num `json:"summary"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse baseline %s: %w", path, err)
	}
	if len(doc.Summary) == 0 {
		return nil, fmt.Errorf("baseline %s has no \"summary\" object (is it an acdtcm eval metrics.json?)", path)
	}
	return doc.Summary, nil
}

// ParseGateMetrics splits a comma-separated list of summary metric names, accepting the
// alias "kappa" as is and rejecting unknown names.
func ParseGateMetrics(list []string) ([]string, error) {
	known := (&Metrics{}).Summary()
	var out []string
	for _, item := range list {
		for _, name := range strings.Split(item, ",") {
			name = strings.TrimSpace(strings.ToLower(name))
			if name == "" {
				continue
			}
			if _, ok := known[name]; !ok {
				return nil, fmt.Errorf("unknown gate metric %q (known: %s)", name, strings.Join(slices.Sorted(maps.Keys(known)), ", "))
			}
			out = append(out, name)
		}
	}
	return out, nil
}

// Gate compares current metrics with a baseline. A metric fails when it is worse than the
// baseline by more than maxDrop (absolute): lower for scores, higher for error metrics
// (mae, ece, lesion_count_mae). A gated metric missing or undefined on either side fails.
func Gate(baseline, current map[string]Num, metrics []string, maxDrop float64) []GateCheck {
	checks := make([]GateCheck, 0, len(metrics))
	for _, name := range metrics {
		b, bok := baseline[name]
		c, cok := current[name]
		gc := GateCheck{Metric: name, Baseline: Undefined, Current: Undefined, Degradation: Undefined, Allowed: Num(maxDrop)}
		if bok {
			gc.Baseline = b
		}
		if cok {
			gc.Current = c
		}
		switch {
		case !bok || !b.Defined():
			gc.Reason = name + " is missing or undefined in the baseline"
		case !cok || !c.Defined():
			gc.Reason = name + " is undefined in this evaluation"
		default:
			deg := b - c
			if LowerIsBetter(name) {
				deg = c - b
			}
			gc.Degradation = deg
			gc.Passed = float64(deg) <= maxDrop+gateEpsilon
			if !gc.Passed {
				verb := "dropped"
				if LowerIsBetter(name) {
					verb = "rose"
				}
				gc.Reason = fmt.Sprintf("%s %s by %.4f (%.4f → %.4f), more than the allowed %.4f", name, verb, float64(deg), float64(b), float64(c), maxDrop)
			}
		}
		checks = append(checks, gc)
	}
	return checks
}

// GateFailures returns the failed checks.
func GateFailures(checks []GateCheck) []GateCheck {
	var f []GateCheck
	for _, c := range checks {
		if !c.Passed {
			f = append(f, c)
		}
	}
	return f
}
