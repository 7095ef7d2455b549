#!/usr/bin/env python3
"""Score prediction ensembles of grader checkpoints on the holdout.

Input: one CSV per checkpoint, written by the opt-in Go experiment (see
internal/grader/experiment_scale_test.go) at one input size (-exp-sizes 224): per photo and mirror
flag, the predicted lesion counts by type. For every non-empty combination of the checkpoints the
photo's total count is the mean over the members (each flip-averaged, as the shipped model is),
the ordinal count -> grade model is fitted on the training photos (holdout sources excluded, as
`acdtcm train --calibrate-only` does) and scored on the holdout: the 99 holdout sources, one photo
each (the first version by ID, as the trainer's holdout metric), and all 297 holdout photos.
Decisions are made on the holdout only.

    /usr/bin/python3 scripts/grader-experiments/ensemble.py v150=/tmp/ens/v150.csv v140=/tmp/ens/v140.csv [--valid]

--valid also prints the valid split (for the record; never used to choose).
Needs numpy and scipy (Debian: python3-numpy python3-scipy).
"""
import itertools
import sys

import numpy as np
from scipy.stats import spearmanr

import scale_tta
from scale_tta import fit_ordinal


def load(path, size="224"):
    """Returns the rows of the unflipped pass at `size` (photo metadata) and the flip-averaged
    counts (n, 4)."""
    data = scale_tta.load(path)
    if (size, "false") not in data:
        sys.exit(f"{path}: no counts at {size} px (run the experiment with -exp-sizes {size})")
    a = data[(size, "false")]
    b = data.get((size, "true"), a)
    assert [r["source"] for r in a] == [r["source"] for r in b], path
    c = lambda rs: np.array([[float(r[f"c{i}"]) for i in range(4)] for r in rs])
    return a, (c(a) + c(b)) / 2


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    show_valid = "--valid" in sys.argv
    models = {}
    meta = None
    for a in args:
        name, path = a.split("=", 1)
        rows, counts = load(path)
        if meta is None:
            meta = rows
        assert [r["source"] for r in rows] == [r["source"] for r in meta], f"{path}: photo order differs"
        models[name] = counts
    grade = np.array([int(r["grade"]) for r in meta])
    gt = np.array([int(r["gt"]) for r in meta])
    tr, ho, ho1, va = scale_tta.split_masks(meta)  # ho1: the trainer's holdout, one photo per source
    print(f"fit on {tr.sum()} train photos; holdout {ho1.sum()} sources ({ho.sum()} photos)")
    print("| members | holdout accuracy (1/source) | holdout accuracy (all versions) | holdout count Spearman |" + (" valid accuracy | valid Spearman |" if show_valid else ""))
    print("|---|---|---|---|" + ("---|---|" if show_valid else ""))
    names = list(models)
    for k in range(1, len(names) + 1):
        for combo in itertools.combinations(names, k):
            total = np.mean([models[n].sum(1) for n in combo], 0)
            X = np.log1p(total)[:, None]
            pred = fit_ordinal(X[tr], grade[tr])
            row = (f"| {'+'.join(combo)} | {np.mean(pred(X[ho1]) == grade[ho1]):.3f} | {np.mean(pred(X[ho]) == grade[ho]):.3f}"
                   f" | {spearmanr(total[ho1], gt[ho1])[0]:.3f} |")
            if show_valid:
                row += f" {np.mean(pred(X[va]) == grade[va]):.3f} | {spearmanr(total[va], gt[va])[0]:.3f} |"
            print(row)


if __name__ == "__main__":
    main()
