#!/usr/bin/env python3
"""Score multi-scale test-time augmentation and multi-feature count calibrations of the grader.

Input: the CSV written by the opt-in Go experiment (see internal/grader/experiment_scale_test.go):
per photo and input size / mirror flag, the predicted lesion counts by type. For each variant the
ordinal (cumulative-logit) count -> grade model is fitted by maximum likelihood on the training
photos (holdout sources excluded, as `acdtcm train --calibrate` does) and scored on the 99 holdout
sources (all three augmented versions: 297 photos). Decisions are made on the holdout only.

    /usr/bin/python3 scripts/grader-experiments/scale_tta.py /tmp/scale.csv [--valid]

--valid also prints the valid split (for the record; never used to choose).
Needs numpy and scipy (Debian: python3-numpy python3-scipy).
"""
import csv
import sys

import numpy as np
from scipy.optimize import minimize
from scipy.stats import spearmanr


def load(path):
    data = {}
    for r in csv.DictReader(open(path)):
        data.setdefault((r["size"], r["flip"]), []).append(r)
    return data


def split_masks(rows):
    """Masks over the experiment's rows: training photos (holdout sources excluded), all holdout
    photos, one holdout photo per source (the first by ID, as `acdtcm train` scores it), valid."""
    split = np.array([r["split"] for r in rows])
    hold = np.array([r["hold"] == "true" for r in rows])
    tr, ho, va = (split == "train") & ~hold, (split == "train") & hold, split == "valid"
    first = {}
    for i in sorted(np.flatnonzero(ho), key=lambda i: rows[i]["id"]):
        first.setdefault(rows[i]["source"], i)
    ho1 = np.zeros(len(rows), bool)
    ho1[list(first.values())] = True
    return tr, ho, ho1, va


def fit_ordinal(X, y, l2=1e-3):
    """P(grade <= k) = sigmoid(cut_k - X @ w), increasing cuts; returns a predict function."""
    d = X.shape[1]

    def unpack(p):
        return p[:d], np.cumsum(np.r_[p[d], np.exp(p[d + 1:])])

    def nll(p):
        w, cuts = unpack(p)
        z = X @ w
        cum = 1 / (1 + np.exp(-(cuts[None, :] - z[:, None])))
        cum = np.c_[np.zeros(len(z)), cum, np.ones(len(z))]
        pr = np.clip(cum[np.arange(len(z)), y + 1] - cum[np.arange(len(z)), y], 1e-12, 1)
        return -np.log(pr).mean() + l2 * (w @ w)

    p = minimize(nll, np.r_[np.full(d, 0.5), 2, 0, 0], method="BFGS").x
    w, cuts = unpack(p)
    return lambda Xn: ((Xn @ w)[:, None] > cuts[None, :]).sum(1)


def main():
    path = sys.argv[1]
    show_valid = "--valid" in sys.argv
    data = load(path)
    base = data[("224", "false")]
    grade = np.array([int(r["grade"]) for r in base])
    gt = np.array([int(r["gt"]) for r in base])
    tr, ho, _, va = split_masks(base)

    def counts(keys):
        return np.mean([[[float(r[f"c{i}"]) for i in range(4)] for r in data[k]] for k in keys], 0)

    def both(size):
        return [(size, "false"), (size, "true")]

    variants = {
        "224 (no flip)": [("224", "false")],
        "224 + flip (shipped)": both("224"),
        "256 + flip": both("256"),
        "288 + flip": both("288"),
        "320 + flip": both("320"),
        "224,256 + flip": both("224") + both("256"),
        "224,288 + flip": both("224") + both("288"),
        "224,256,288 + flip": both("224") + both("256") + both("288"),
        "224..320 + flip": both("224") + both("256") + both("288") + both("320"),
    }
    print(f"holdout: {ho.sum()} photos of {len(set(r['source'] for r, h in zip(base, ho) if h))} sources; fit on {tr.sum()} train photos")
    print("| counts from | holdout accuracy | holdout count Spearman | holdout count MAE |" + (" valid accuracy |" if show_valid else ""))
    for name, keys in variants.items():
        if any(k not in data for k in keys):
            print(f"| {name} | (not in the CSV: run the experiment with these -exp-sizes) | | |")
            continue
        total = counts(keys).sum(1)
        X = np.log1p(total)[:, None]
        pred = fit_ordinal(X[tr], grade[tr])
        row = f"| {name} | {np.mean(pred(X[ho]) == grade[ho]):.3f} | {spearmanr(total[ho], gt[ho])[0]:.3f} | {np.mean(abs(total[ho] - gt[ho])):.2f} |"
        if show_valid:
            row += f" {np.mean(pred(X[va]) == grade[va]):.3f} |"
        print(row)
    C = counts(both("224"))
    T = C.sum(1)
    features = {
        "log1p(total) (shipped)": np.log1p(T)[:, None],
        "log1p(count) per type": np.log1p(C),
        "log1p(total) + per type": np.c_[np.log1p(T), np.log1p(C)],
        "log1p(total) + sqrt(total)": np.c_[np.log1p(T), np.sqrt(T)],
    }
    print("\n| calibration features (224 + flip) | holdout accuracy | train accuracy |" + (" valid accuracy |" if show_valid else ""))
    for name, X in features.items():
        pred = fit_ordinal(X[tr], grade[tr])
        row = f"| {name} | {np.mean(pred(X[ho]) == grade[ho]):.3f} | {np.mean(pred(X[tr]) == grade[tr]):.3f} |"
        if show_valid:
            row += f" {np.mean(pred(X[va]) == grade[va]):.3f} |"
        print(row)


if __name__ == "__main__":
    main()
