#!/usr/bin/env python3
"""Where the built-in grader's grade errors come from: its lesion-count errors.

    bin/acdtcm diagnose - --format jsonl --output /tmp/train-pred.jsonl < train-photos.txt
    /usr/bin/python3 scripts/grader-experiments/count-errors.py data/acne04/manifest.jsonl /tmp/train-pred.jsonl

(train-photos.txt: the train split's image paths, one per line; see BENCHMARKS.md.) Prints
1. how accurate ACNE04's counting rule (<=5, <=20, <=50) is on the annotated counts, and with
   simulated multiplicative count noise (log1p(count) + N(0, s)), i.e. how good a counter must
   be for a given accuracy;
2. the predictions' accuracy, count MAE and log-count error by grade;
3. the split of the log-count error variance into between source photos and within the
   augmented versions of one source (photo-specific vs. view-specific error).
Uses the predictions' total lesion count (typed or untyped). Never reads the valid split
unless the predictions are of valid photos.
"""
import collections
import json
import sys

import numpy as np


def rule(c):
    return np.digitize(c, [5.5, 20.5, 50.5])


def main():
    manifest, preds = sys.argv[1], sys.argv[2]
    man = {}
    for line in open(manifest):
        r = json.loads(line)
        man[r["image_id"]] = r
    rows = []
    for line in open(preds):
        p = json.loads(line)
        if p.get("error"):
            continue
        m = man[p["image_id"]]
        rows.append((m["source_id"], m["diagnosis"]["lesion_count"], sum(x["count"] for x in p.get("lesions", [])),
                     m["diagnosis"]["severity"]["value"], p["severity"]["value"]))
    src = [r[0] for r in rows]
    a = np.array([r[1:] for r in rows], float)
    true, pred, grade, pgrade = a[:, 0], a[:, 1], a[:, 2].astype(int), a[:, 3].astype(int)
    print(f"{len(a)} photos of {len(set(src))} sources")
    print(f"counting rule on annotated counts: accuracy {(rule(true) == grade).mean():.4f}")
    rng = np.random.default_rng(0)
    for s in [0.1, 0.2, 0.25, 0.3, 0.4]:
        acc = [(rule(np.expm1(np.log1p(true) + rng.normal(0, s, len(true)))) == grade).mean() for _ in range(200)]
        print(f"  with log-count noise sd {s:.2f}: accuracy {np.mean(acc):.4f}")
    err = np.log1p(pred) - np.log1p(true)
    print(f"predictions: accuracy {(pgrade == grade).mean():.4f}, count MAE {np.abs(pred - true).mean():.2f}, "
          f"log-count error sd {err.std():.3f}")
    for g in range(4):
        k = grade == g
        print(f"  grade {g}: n {k.sum()}, median true {np.median(true[k]):.0f} pred {np.median(pred[k]):.1f}, "
              f"mean error {np.mean(pred[k] - true[k]):+.2f}, MAE {np.abs(pred[k] - true[k]).mean():.2f}, "
              f"log error sd {err[k].std():.3f}, predicted grades {np.bincount(pgrade[k], minlength=4).tolist()}")
    by = collections.defaultdict(list)
    for s, e in zip(src, err):
        by[s].append(e)
    groups = [np.array(v) for v in by.values() if len(v) > 1]
    if groups:
        within = np.mean([v.var() for v in groups])
        between = np.var([v.mean() for v in groups])
        print(f"log-count error variance over {len(groups)} multi-version sources: between sources {between:.4f}, "
              f"within a source {within:.4f} ({between / (between + within):.0%} photo-specific)")


if __name__ == "__main__":
    main()
