#!/usr/bin/env python3
"""Is the count -> grade calibration biased by being fitted on the counter's own training photos?

The shipped calibration (`acdtcm train --calibrate`) fits the ordinal model P(grade <= k) =
sigmoid(cut_k - w * log(1 + count)) on the 2,676 photos of the train sources, whose counts the
counter has been trained on. If the counter fits those photos much better than unseen ones,
cut points fitted there are off for new photos. This compares, on the trainer's holdout (seed 1),
thresholds fitted on the training photos with thresholds fitted on the holdout itself by
leave-one-source-out (each holdout source scored by a fit on the other 98), and prints the mean
predicted and annotated counts per grade on both. Never reads the valid split.

Input: the opt-in Go experiment's CSV at 224 px (flip-averaged here, as the shipped model runs):

    go test -c -tags noxla,experiments -o /tmp/exp.test ./internal/grader && cd internal/grader
    /tmp/exp.test -test.run TestScaleExperiment -exp-sizes 224 -exp-out /tmp/v170.csv
    cd ../../scripts/grader-experiments && /usr/bin/python3 holdout_calibration.py /tmp/v170.csv

Needs numpy and scipy (Debian: python3-numpy python3-scipy).
"""
import sys

import numpy as np

import ensemble
import scale_tta
from scale_tta import fit_ordinal


def main():
    rows, counts = ensemble.load(sys.argv[1])
    grade = np.array([int(r["grade"]) for r in rows])
    annotated = np.array([float(r["gt"]) for r in rows])
    X = np.log1p(counts.sum(1))[:, None]
    tr, ho, ho1, _ = scale_tta.split_masks(rows)  # ho1: the trainer's holdout metric, one photo per source
    src = np.array([r["source"] for r in rows])
    fit = fit_ordinal(X[tr], grade[tr])
    print(f"fitted on the {tr.sum()} training photos: holdout accuracy {np.mean(fit(X[ho]) == grade[ho]):.3f} "
          f"({ho.sum()} photos), {np.mean(fit(X[ho1]) == grade[ho1]):.3f} ({ho1.sum()} sources, 1 photo each); "
          f"training photos {np.mean(fit(X[tr]) == grade[tr]):.3f}")
    pred = np.zeros(len(rows), int)
    for s in sorted(set(src[ho])):
        rest, one = ho & (src != s), ho & (src == s)
        pred[one] = fit_ordinal(X[rest], grade[rest])(X[one])
    print(f"fitted on the holdout, leave one source out: holdout accuracy {np.mean(pred[ho] == grade[ho]):.3f} "
          f"({ho.sum()} photos), {np.mean(pred[ho1] == grade[ho1]):.3f} ({ho1.sum()} sources)")
    print("| grade | mean predicted count, train | holdout | mean annotated count, train | holdout |")
    print("|---|---|---|---|---|")
    for g in range(4):
        t, h = tr & (grade == g), ho & (grade == g)
        print(f"| {g} | {counts.sum(1)[t].mean():.2f} | {counts.sum(1)[h].mean():.2f} | {annotated[t].mean():.2f} | {annotated[h].mean():.2f} |")


if __name__ == "__main__":
    main()
