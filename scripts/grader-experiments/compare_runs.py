"""Are two grader training runs the same? Compares every logged value of two metrics.jsonl
files epoch by epoch (timings and fields only one side logs are left out), and optionally two
exported grader checkpoints tensor by tensor (bytes), with their calibration and metrics.

    /usr/bin/python3 scripts/grader-experiments/compare_runs.py \
        RUN_A/metrics.jsonl RUN_B/metrics.jsonl [CKPT_A CKPT_B]

e.g. v1.7.0's run against a clean clone's (BENCHMARKS.md), with the weights it shipped as CKPT_A:
`git show 03694fa:internal/grader/weights/grader.ckpt > /tmp/v170.ckpt`.

Exit status 0 when everything compared is identical, 1 otherwise. Used for BENCHMARKS.md
("Reproducing the shipped weights from a clean checkout").
"""
import json
import struct
import sys

TIMING = {"seconds"}


def flatten(x, prefix=""):
    """{dotted key: leaf value} of a JSON value."""
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(x, list):
        out = {}
        for i, v in enumerate(x):
            out.update(flatten(v, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): x}


def compare_metrics(pa, pb):
    a = [json.loads(l) for l in open(pa) if l.strip()]
    b = [json.loads(l) for l in open(pb) if l.strip()]
    same_all = len(a) == len(b)
    if not same_all:
        print(f"metrics: {len(a)} epochs vs {len(b)}")
    for x, y in zip(a, b):
        fx, fy = flatten(x), flatten(y)
        keys = sorted((set(fx) & set(fy)) - TIMING)
        diff = [k for k in keys if fx[k] != fy[k]]
        only = sorted(set(fx) ^ set(fy))
        same_all &= not diff
        print(f"epoch {x.get('epoch')}: {len(keys)} values compared, {'identical' if not diff else 'DIFFERENT: ' + ', '.join(diff[:6])}"
              + (f" (logged by one side only: {', '.join(only)})" if only else ""))
    return same_all


def read_checkpoint(path):
    """(header, {tensor name: bytes}) of an acdtcm grader checkpoint (internal/grader/checkpoint.go)."""
    b = open(path, "rb").read()
    if b[:8] != b"ACDTCMGR":
        raise SystemExit(f"{path}: not an acdtcm grader checkpoint")
    hl = struct.unpack("<Q", b[12:20])[0]
    header = json.loads(b[20:20 + hl])
    data = b[20 + hl:]
    return header, {t["name"]: data[t["offset"]:t["offset"] + t["bytes"]] for t in header["tensors"]}


def compare_checkpoints(pa, pb):
    ha, ta = read_checkpoint(pa)
    hb, tb = read_checkpoint(pb)
    names = sorted(set(ta) | set(tb))
    diff = [n for n in names if ta.get(n) != tb.get(n)]
    print(f"checkpoint tensors: {len(ta)} vs {len(tb)} ({sum(len(v) for v in ta.values())} bytes), "
          f"{'identical' if not diff else 'DIFFERENT: ' + ', '.join(diff[:6])}")
    same = not diff
    for part in ("model", "calibration", "metrics"):
        eq = ha.get(part) == hb.get(part)
        same &= eq
        print(f"checkpoint {part}: {'identical' if eq else 'DIFFERENT'}")
    return same


def main():
    if len(sys.argv) not in (3, 5):
        raise SystemExit(__doc__)
    same = compare_metrics(sys.argv[1], sys.argv[2])
    if len(sys.argv) == 5:
        same &= compare_checkpoints(sys.argv[3], sys.argv[4])
    print("ALL IDENTICAL" if same else "NOT IDENTICAL")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
