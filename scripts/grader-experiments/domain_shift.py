#!/usr/bin/env python3
"""Summarise TestDomainExperiment's CSV (internal/grader/experiment_domain_test.go).

For each input condition against the photo as decoded ("none"): the mean shift of
log(1 + flip-averaged predicted count) per split and grade, the mean absolute shift, and the
outlier pixels the de-noiser found per photo; with --grades, also the grade accuracy on the
train photos of the checkpoint's own calibration (--ckpt, default the built-in weights; the
grade is the most probable one, as diagnose reports it). Valid accuracy is printed only with
--score-valid (the valid split is for model selection, once).

    /usr/bin/python3 scripts/grader-experiments/domain_shift.py /tmp/domain.csv [--grades] [--score-valid] [--ckpt F]
"""
import argparse
import csv
import math
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_runs import read_checkpoint  # noqa: E402

BUILTIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../internal/grader/weights/grader.ckpt")


def grader(calibration):
    """The grade Calibration.Probabilities (internal/grader/calibrate.go) makes most probable."""
    slope, cuts = calibration["slope"], calibration["cuts"]

    def grade_of(count):
        z = slope * math.log1p(max(0.0, count))
        cum = [1 / (1 + math.exp(z - c)) for c in cuts] + [1.0]
        probs = [max(0.0, cum[0])] + [max(0.0, cum[k] - cum[k - 1]) for k in range(1, len(cum))]
        return max(range(len(probs)), key=probs.__getitem__)
    return grade_of


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--grades", action="store_true", help="train-photo accuracy per condition")
    ap.add_argument("--score-valid", action="store_true", help="also valid accuracy per condition")
    ap.add_argument("--ckpt", default=BUILTIN, help="the checkpoint whose calibration grades the counts")
    a = ap.parse_args()
    grade_of = grader(read_checkpoint(a.ckpt)[0]["calibration"])
    rows = defaultdict(dict)  # (split, id) -> cond -> row
    conds = []
    for r in csv.DictReader(open(a.csv)):
        if r["cond"] not in conds:
            conds.append(r["cond"])
        r["c"] = (float(r["count"]) + float(r["count_flip"])) / 2
        rows[(r["split"], r["id"])][r["cond"]] = r
    print(f"{len(rows)} photos, conditions {conds}")
    for split in ("train", "valid"):
        ph = [v for (s, _), v in rows.items() if s == split]
        rep = sorted(int(v["none"]["replaced"]) for v in ph)
        print(f"\n{split}: {len(ph)} photos; outlier pixels per photo: median {rep[len(rep)//2]}, "
              f"mean {sum(rep)/len(rep):.1f}, share with 0: {sum(1 for x in rep if x == 0)/len(rep):.3f}")
        for c in conds[1:]:
            by = defaultdict(list)
            for v in ph:
                d = math.log1p(v[c]["c"]) - math.log1p(v["none"]["c"])
                by[int(v["none"]["grade"])].append(d)
            allv = [d for g in by.values() for d in g]
            line = " ".join(f"g{g} {sum(by[g])/len(by[g]):+.4f}" for g in sorted(by))
            print(f"  {c:>5} vs none: mean shift of log(1+count) {line}; "
                  f"all {sum(allv)/len(allv):+.4f}, mean |shift| {sum(abs(x) for x in allv)/len(allv):.4f}")
        if a.grades and (split == "train" or a.score_valid):
            for c in conds:
                ok = sum(1 for v in ph if grade_of(v[c]["c"]) == int(v[c]["grade"]))
                print(f"  accuracy with {c}: {ok}/{len(ph)} = {ok/len(ph):.4f}")


if __name__ == "__main__":
    main()
