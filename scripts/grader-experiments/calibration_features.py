#!/usr/bin/env python3
"""Does anything beyond the predicted total count grade better? Scores count -> grade calibrations
on other features of the grader's output, on the holdout.

The built-in grader grades a photo from its predicted total lesion count alone (an ordinal,
cumulative-logit model fitted on the training photos); its grade head's own probabilities are
computed but not used for the grade, and the density map is only summed. This script fits the
same ordinal model on other feature sets on the training photos (holdout sources excluded) and
scores each on the holdout: all 297 photos of its 99 sources, and one photo per source (the
first by ID, as `acdtcm train` scores it). Features are averaged over the photo and its mirror
image (the shipped flip TTA):
- the grade head: its expected grade, its cumulative log-odds, each with the count;
- the density map: mass in cells above a threshold (m<t>: faint, diffuse density left out),
  the number of its local maxima above a threshold (k<t>: a peak count), its largest cell.

Input: the CSV of the opt-in Go experiment (internal/grader/experiment_scale_test.go, with its
p* and density columns), at 224 px:

    go test -c -tags noxla,experiments -o /tmp/exp.test ./internal/grader && cd internal/grader
    /tmp/exp.test -test.run TestScaleExperiment -exp-sizes 224 -exp-out /tmp/v150.csv [-exp-ckpt CKPT]
    /usr/bin/python3 ../../scripts/grader-experiments/calibration_features.py /tmp/v150.csv [--valid]

--valid also prints the valid split (for the record; never used to choose). Needs numpy, scipy.
The fit is scale_tta.py's (BFGS, ridge 1e-3), not the trainer's Nelder-Mead, so the shipped
variant's figure can differ from the checkpoint header's by a photo or two.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scale_tta  # noqa: E402


def main():
    path = sys.argv[1]
    show_valid = "--valid" in sys.argv
    data = scale_tta.load(path)
    if ("224", "false") not in data:
        sys.exit(f"{path}: no rows at 224 px")
    a, b = data[("224", "false")], data.get(("224", "true"), data[("224", "false")])
    assert [r["id"] for r in a] == [r["id"] for r in b]
    if "p0" not in a[0]:
        sys.exit(f"{path}: no grade-head columns p0..p3 (rerun the experiment with the current code)")
    col = lambda rs, f: np.array([[float(r[f"{f}{i}"]) for i in range(4)] for r in rs])
    count = ((col(a, "c") + col(b, "c")) / 2).sum(1)
    prob = (col(a, "p") + col(b, "p")) / 2
    dens_cols = [k for k in a[0] if k[0] in "mk" and k[1:2].isdigit()] + (["max"] if "max" in a[0] else [])
    dens = {k: np.array([(float(r[k]) + float(q[k])) / 2 for r, q in zip(a, b)]) for k in dens_cols}
    grade = np.array([int(r["grade"]) for r in a])
    tr, ho, ho1, va = scale_tta.split_masks(a)

    lc = np.log1p(count)[:, None]
    eg = (prob * np.arange(4)).sum(1)[:, None]
    cum = np.clip(np.cumsum(prob, 1)[:, :3], 1e-6, 1 - 1e-6)
    clo = np.log(cum / (1 - cum))
    variants = {
        "log1p(count) (shipped)": lc,
        "grade head E[grade]": eg,
        "log1p(count) + E[grade]": np.c_[lc, eg],
        "log1p(count) + cumulative log-odds (3)": np.c_[lc, clo],
    }
    for k, v in dens.items():
        variants[f"log1p({k})"] = np.log1p(v)[:, None]
        variants[f"log1p(count) + log1p({k})"] = np.c_[lc, np.log1p(v)]
    if dens:
        variants["log1p(count) + every density feature"] = np.c_[lc, np.log1p(np.c_[tuple(dens.values())])]
    acc = lambda pred, m: (pred[m] == grade[m]).mean()
    print(f"fit on {tr.sum()} train photos; holdout {ho.sum()} photos of {ho1.sum()} sources")
    print("| features | train accuracy | holdout accuracy (99, 1 photo each) | holdout accuracy (297) |"
          + (" valid accuracy |" if show_valid else ""))
    print("|---|---|---|---|" + ("---|" if show_valid else ""))
    for name, X in variants.items():
        pred = scale_tta.fit_ordinal(X[tr], grade[tr])(X)
        row = f"| {name} | {acc(pred, tr):.3f} | {acc(pred, ho1):.3f} | {acc(pred, ho):.3f} |"
        print(row + (f" {acc(pred, va):.3f} |" if show_valid else ""))
    head = prob.argmax(1)
    row = f"| grade head argmax (no calibration) | {acc(head, tr):.3f} | {acc(head, ho1):.3f} | {acc(head, ho):.3f} |"
    print(row + (f" {acc(head, va):.3f} |" if show_valid else ""))


if __name__ == "__main__":
    main()
