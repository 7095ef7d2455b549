#!/usr/bin/env python3
"""Summarise TestDomainExperiment's CSV (internal/grader/experiment_domain_test.go).

For each input condition against the photo as decoded ("none"): the mean shift of
log(1 + flip-averaged predicted count) per split and grade, the mean absolute shift, and the
outlier pixels the de-noiser found per photo; with --grades, also the grade accuracy of the
shipped calibration (the count thresholds below, v1.8.0's) on the train photos. Valid
accuracy is printed only with --score-valid (the valid split is for model selection, once).

    /usr/bin/python3 scripts/grader-experiments/domain_shift.py /tmp/domain.csv [--grades] [--score-valid]
"""
import argparse
import csv
import math
from collections import defaultdict

# v1.8.0's calibration (internal/grader/weights/grader.ckpt header): slope and cuts on
# slope*log1p(count); the grade changes where the cumulative log-odds cross zero.
SLOPE = 6.55173925073374
CUTS = [10.669393354132714, 18.749617456505863, 23.77168730259312]


def grade_of(count):
    z = SLOPE * math.log1p(max(0.0, count))
    return sum(1 for c in CUTS if z > c)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--grades", action="store_true", help="train-photo accuracy per condition")
    ap.add_argument("--score-valid", action="store_true", help="also valid accuracy per condition")
    a = ap.parse_args()
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
