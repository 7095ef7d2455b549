#!/usr/bin/python3
"""Reference values for internal/eval, computed with scikit-learn.

Writes internal/eval/testdata/sklearn_reference.json: several fixed prediction sets and the
metrics scikit-learn computes for them. internal/eval's tests assert equality to 1e-9.

Run from the repository root (Debian: apt-get install -y python3-sklearn):
    /usr/bin/python3 scripts/sklearn_reference.py

Conventions mirrored from internal/eval (see its package comment):
  * labels=range(K) everywhere, zero_division=0 for precision/recall/F1;
  * AUC is one-vs-rest per class with roc_auc_score on (y_true == k, probs[:, k]); a class
    with no positives or no negatives is undefined (null) and left out of the macro mean;
    when every class is defined and the rows sum to 1, the macro mean is also checked here
    against roc_auc_score(multi_class="ovr", average="macro");
  * kappa is cohen_kappa_score(weights="quadratic", labels=range(K));
  * sensitivity/specificity/Youden come from sklearn's confusion matrix (null when a
    denominator is 0);
  * ECE is not in scikit-learn: it is computed here with numpy from its definition
    (15 bins, bin = ceil(15*conf)-1, confidence = max prob, correctness of the arg-max) as an
    independent cross-check, and marked as such ("ece_numpy").
"""

import json
import os
import sys

import numpy as np
import sklearn
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    mean_absolute_error,
    precision_recall_fscore_support,
    roc_auc_score,
)

OUT = os.path.join("internal", "eval", "testdata", "sklearn_reference.json")


def null(x):
    x = float(x)
    return None if not np.isfinite(x) else x


def safe_ratio(num, den):
    return None if den == 0 else float(num) / float(den)


def ece_numpy(y_true, probs, bins=15):
    conf = probs.max(axis=1)
    pred = probs.argmax(axis=1)  # first index on ties
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    n = len(y_true)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        cnt = int(sel.sum())
        if cnt == 0:
            continue
        acc = float((pred[sel] == y_true[sel]).sum()) / cnt
        c = float(conf[sel].sum()) / cnt
        total += cnt / n * abs(acc - c)
    return total


def reference(name, k, y_true, y_pred, probs=None, count_true=None, count_pred=None):
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    labels = list(range(k))
    exp = {}
    exp["accuracy"] = float(accuracy_score(y_true, y_pred))
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    exp["precision"] = [float(v) for v in p]
    exp["recall"] = [float(v) for v in r]
    exp["f1"] = [float(v) for v in f]
    exp["support"] = [int(v) for v in s]
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=avg, zero_division=0
        )
        exp[avg + "_precision"] = float(ap)
        exp[avg + "_recall"] = float(ar)
        exp[avg + "_f1"] = float(af)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    exp["confusion"] = cm.tolist()
    with np.errstate(all="ignore"):
        exp["kappa"] = null(cohen_kappa_score(y_true, y_pred, labels=labels, weights="quadratic"))
    exp["mae"] = float(mean_absolute_error(y_true, y_pred))
    sens, spec, youden = [], [], []
    n = cm.sum()
    for c in range(k):
        tp = cm[c, c]
        fn = cm[c, :].sum() - tp
        fp = cm[:, c].sum() - tp
        tn = n - tp - fn - fp
        se, sp = safe_ratio(tp, tp + fn), safe_ratio(tn, tn + fp)
        sens.append(se)
        spec.append(sp)
        youden.append(None if se is None or sp is None else se + sp - 1)
    exp["sensitivity"], exp["specificity"], exp["youden"] = sens, spec, youden
    case = {"name": name, "k": k, "y_true": y_true.tolist(), "y_pred": y_pred.tolist()}
    if probs is not None:
        probs = np.asarray(probs, dtype=float)
        case["probs"] = probs.tolist()
        aucs = []
        for c in range(k):
            pos = y_true == c
            if pos.all() or not pos.any():
                aucs.append(None)
            else:
                aucs.append(float(roc_auc_score(pos.astype(int), probs[:, c])))
        exp["auc"] = aucs
        defined = [a for a in aucs if a is not None]
        exp["auc_undefined"] = [c for c, a in enumerate(aucs) if a is None]
        exp["macro_auc"] = float(np.mean(defined)) if defined else None
        if k > 2 and not exp["auc_undefined"] and np.allclose(probs.sum(axis=1), 1):
            ovr = float(roc_auc_score(y_true, probs, multi_class="ovr", average="macro", labels=labels))
            assert abs(ovr - exp["macro_auc"]) < 1e-12, (name, ovr, exp["macro_auc"])
            exp["macro_auc_sklearn_ovr"] = ovr
        exp["ece_numpy"] = ece_numpy(y_true, probs)
    if count_true is not None:
        case["count_true"] = [float(v) for v in count_true]
        case["count_pred"] = [float(v) for v in count_pred]
        exp["lesion_count_mae"] = float(mean_absolute_error(count_true, count_pred))
    case["expected"] = exp
    return case


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def main():
    rng = np.random.default_rng(20260127)
    cases = []

    # 1. Random 4-class, informative probabilities, arg-max predictions, lesion counts.
    n, k = 200, 4
    y = rng.choice(k, size=n, p=[0.4, 0.3, 0.2, 0.1])
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.5
    pr = softmax(logits)
    ct = rng.integers(0, 80, size=n)
    cp = np.maximum(0, ct + rng.integers(-10, 11, size=n))
    cases.append(reference("random4", k, y, pr.argmax(axis=1), pr, ct, cp))

    # 2. Ties: probability rows drawn from a few fixed vectors, so scores repeat a lot.
    vecs = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25],
                     [0.1, 0.1, 0.4, 0.4], [0.4, 0.4, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]])
    n = 90
    y = rng.choice(4, size=n)
    pick = np.where(rng.random(n) < 0.5, np.minimum(y, 5), rng.choice(len(vecs), size=n))
    pick = np.where(pick == 3, 5, pick)  # true 3 maps to the 0.7-on-3 vector
    pr = vecs[pick]
    cases.append(reference("ties4", 4, y, pr.argmax(axis=1), pr))

    # 3. Grade 3 absent from the ground truth, but predicted sometimes.
    n = 80
    y = rng.choice(3, size=n)
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), y] += 1.0
    pr = softmax(logits)
    cases.append(reference("missing_true3", 4, y, pr.argmax(axis=1), pr))

    # 4. Grade 2 never predicted (precision 0/0 -> 0).
    n = 80
    y = rng.choice(4, size=n)
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), y] += 1.0
    logits[:, 2] -= 100
    pr = softmax(logits)
    cases.append(reference("missing_pred2", 4, y, pr.argmax(axis=1), pr))

    # 5. Perfect predictor.
    n = 40
    y = rng.choice(4, size=n)
    pr = np.full((n, 4), 0.02)
    pr[np.arange(n), y] = 0.94
    cases.append(reference("perfect", 4, y, y, pr, y * 10, y * 10))

    # 6. Constant predictor: always grade 1 with the same probabilities (all scores tie).
    n = 50
    y = rng.choice(4, size=n)
    pr = np.tile([0.2, 0.5, 0.2, 0.1], (n, 1))
    cases.append(reference("constant", 4, y, np.ones(n, dtype=int), pr))

    # 7. Binary.
    n = 120
    y = rng.choice(2, size=n, p=[0.65, 0.35])
    p1 = np.clip(0.35 + 0.3 * (y - 0.35) + rng.normal(scale=0.2, size=n), 0.001, 0.999)
    p1 = np.round(p1, 2)  # some ties
    pr = np.stack([1 - p1, p1], axis=1)
    cases.append(reference("binary", 2, y, (p1 > 0.5).astype(int), pr))

    vals = rng.normal(size=37)
    qs = [2.5, 50.0, 97.5]
    pct = {"values": np.sort(vals).tolist(), "q": qs,
           "expected": [float(np.percentile(vals, q)) for q in qs]}

    doc = {
        "generator": "scripts/sklearn_reference.py",
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "cases": cases,
        "percentile": pct,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    tmp = OUT + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, OUT)
    print("wrote", OUT, "with", len(cases), "cases", file=sys.stderr)


if __name__ == "__main__":
    main()
