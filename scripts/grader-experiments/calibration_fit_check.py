#!/usr/bin/env python3
"""Does the regulariser of the Go count -> grade calibration move the grade cuts?

grader.FitCalibration (Go) fits P(grade <= k) = sigmoid(cut_k - slope * log1p(count)) by
Nelder-Mead with a ridge of 1e-4 on all parameters (slope, first cut, log gaps); ensemble.py
fits the same model by BFGS with L2 1e-3 on the slope only. This replicates the Go fit and
compares it with no regulariser and with ensemble.py's, on the training photos of each CSV:
slope, the counts where the grade changes, and the holdout accuracy (99 sources / 297 photos).

    /usr/bin/python3 calibration_fit_check.py v170=/tmp/v170.csv d3=/tmp/d3.csv

(CSVs from the opt-in Go experiment at 224 px, see ensemble.py.) Needs numpy and scipy.
"""
import sys

import numpy as np
from scipy.optimize import minimize

import ensemble
import scale_tta


def fit(X, y, ridge_all, l2_slope):
    """Returns slope and increasing cuts, starting from the Hayashi rule as the Go fit does."""
    def unpack(p):
        return p[0], np.cumsum(np.r_[p[1], np.exp(p[2:])])

    def nll(p):
        w, c = unpack(p)
        z = X * w
        cum = 1 / (1 + np.exp(-(c[None, :] - z[:, None])))
        cum = np.c_[np.zeros(len(z)), cum, np.ones(len(z))]
        pr = np.clip(cum[np.arange(len(z)), y + 1] - cum[np.arange(len(z)), y], 1e-12, 1)
        return -np.log(pr).mean() + ridge_all * (p @ p) + l2_slope * w * w

    s0, cuts = 3.0, np.log1p([5.5, 20.5, 50.5])
    x0 = np.r_[s0, s0 * cuts[0], np.log(s0 * np.diff(cuts))]
    r = minimize(nll, x0, method="Nelder-Mead", options=dict(maxiter=20000, xatol=1e-8, fatol=1e-12))
    return unpack(r.x)


def main():
    print("| model | fit | slope | grade changes at (lesions) | holdout accuracy, 99 sources | 297 photos |")
    print("|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        name, path = arg.split("=", 1)
        rows, counts = ensemble.load(path)
        grade = np.array([int(r["grade"]) for r in rows])
        tr, ho, ho1, _ = scale_tta.split_masks(rows)
        X = np.log1p(counts.sum(1))
        for label, ridge_all, l2_slope in [("Go (ridge 1e-4, all)", 1e-4, 0), ("none", 0, 0), ("ensemble.py (L2 1e-3, slope)", 0, 1e-3)]:
            w, c = fit(X[tr], grade[tr], ridge_all, l2_slope)
            pred = lambda Z: ((Z * w)[:, None] > c[None, :]).sum(1)
            thr = " / ".join(f"{v:.1f}" for v in np.expm1(c / w))
            print(f"| {name} | {label} | {w:.3f} | {thr} | {np.mean(pred(X[ho1]) == grade[ho1]):.3f} | {np.mean(pred(X[ho]) == grade[ho]):.3f} |")


if __name__ == "__main__":
    main()
