#!/usr/bin/env python3
"""Turns acdtcm's own outputs into results.jsonl records and summarises a run (stdlib only).

    collect.py quantize REPORT.json --stage q8 --results results.jsonl
    collect.py train METRICS.jsonl --stage train --warmup 2 --results results.jsonl [--extra k=v ...]
    collect.py summary results.jsonl          # markdown tables + ratios on stdout, a summary record appended

Used by scripts/gpu/run.sh; see scripts/gpu/README.md.
"""
import argparse
import json
import statistics
import sys


def emit(rec, path):
    line = json.dumps(rec, sort_keys=True)
    print(line)
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def extras(pairs):
    out = {}
    for p in pairs or []:
        k, _, v = p.partition("=")
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def cmd_quantize(a):
    with open(a.file) as f:
        rep = json.load(f)
    conv = rep.get("conversion") or {}
    method = conv.get("method", "?")
    common = {"stage": a.stage, "impl": "acdtcm", "backend": rep.get("backend"), "machine": rep.get("machine"),
              "compute_dtype": rep.get("compute_dtype", "float32")}
    common.update(extras(a.extra))
    for key, model in (("original", "original"), ("quantized", method)):
        st = rep.get(key)
        if not st:
            continue
        rec = dict(common, model=model, ok=True, **st)
        if key == "quantized":
            rec.update({
                "bytes_on_disk_before": conv.get("bytes_before"), "bytes_on_disk_after": conv.get("bytes_after"),
                "quantized_tensors": conv.get("quantized_tensors"), "kept_tensors": conv.get("kept_tensors"),
                "overall_snr_db": conv.get("overall_snr_db"), "overall_rel_rms": conv.get("overall_rel_rms"),
            })
            for k in ("logit_max_abs_diff_over_std", "logit_rms_diff_over_std", "argmax_agreement"):
                if k in rep:
                    rec[k] = rep[k]
        emit(rec, a.results)


def cmd_train(a):
    steps = []
    with open(a.file) as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("type") == "step":
                steps.append(r)
    rec = {"stage": a.stage, "impl": "acdtcm", "steps_done": len(steps)}
    rec.update(extras(a.extra))
    if steps:
        secs = [s.get("step_seconds") for s in steps]
        timed = [s for s in secs[a.warmup:] if s is not None]
        rec.update({"first_step_seconds": secs[0], "step_seconds_all": secs, "losses": [s.get("loss") for s in steps],
                    "tokens_per_step": steps[-1].get("tokens")})
        if timed:
            rec.update({"step_seconds_median": statistics.median(timed), "step_seconds_mean": statistics.mean(timed),
                        "step_seconds_min": min(timed), "timed_steps": len(timed)})
            if rec.get("tokens_per_step"):
                rec["tokens_per_second"] = rec["tokens_per_step"] / rec["step_seconds_median"]
    rec["ok"] = bool(steps) and "step_seconds_median" in rec
    emit(rec, a.results)


def gib(n):
    return "" if n is None else f"{n / 2**30:.2f} GiB"


def num(x, fmt="{:.1f}"):
    return "" if x is None else fmt.format(x)


def cmd_summary(a):
    recs = []
    with open(a.file) as f:
        for line in f:
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
    stages = {r["stage"]: r for r in recs if r.get("kind") == "stage"}

    def find(stage, **kw):
        for r in recs:
            if r.get("stage") == stage and r.get("kind") != "stage" and all(r.get(k) == v for k, v in kw.items()):
                return r
        return None

    def mem(stage):
        s = stages.get(stage) or {}
        v = s.get("gpu_mem_peak_mib")
        return "" if v is None else f"{v / 1024:.2f} GiB"

    env = find("smoke", kind="env") or {}
    print(f"## GPU run summary ({env.get('gpu', '?')}, driver {env.get('driver', '?')}, backend {env.get('backend', '?')})\n")
    print("| stage | rc | seconds | timed out | GPU peak (nvidia-smi) |\n|---|---|---|---|---|")
    for s in stages.values():
        status = "skipped" if s.get("skipped") else s.get("rc")
        print(f"| {s['stage']} | {status} | {num(s.get('seconds'))} | {s.get('timed_out')} | {mem(s['stage'])} |")
    summary = {"stage": "summary", "kind": "summary"}

    # Issue #5: prefill/decode, acdtcm (XLA) vs transformers, bf16 checkpoint.
    go = find("q8", model="original")
    hf = find("hf", dtype="bfloat16", ok=True)
    hf32 = find("hf32", dtype="float32", ok=True)
    print("\n### #5 prefill and decode (3B-shaped random checkpoint, bf16 files, same prompt)\n")
    print("| implementation | weights in memory | prompt tokens | prefill tok/s | decode tok/s | load s | GPU peak |\n|---|---|---|---|---|---|---|")
    if go:
        print(f"| acdtcm XLA ({go.get('compute_dtype', 'float32')} weights and compute) | {gib(go.get('weight_bytes_in_memory'))} | {go.get('prompt_tokens')} | {num(go.get('prefill_tokens_per_second'))} | {num(go.get('decode_tokens_per_second'))} | {num(go.get('load_seconds'), '{:.2f}')} | {mem('q8')} (original and int8) |")
    for r, stage in ((hf, "hf"), (hf32, "hf32")):
        if r:
            print(f"| transformers {r['dtype']} ({r.get('attn_implementation')}) | {gib(r.get('weight_bytes_in_memory'))} | {r.get('prompt_tokens')} | {num(r.get('prefill_tokens_per_second'))} | {num(r.get('decode_tokens_per_second'))} | {num(r.get('load_seconds'), '{:.2f}')} | {gib(r.get('max_memory_allocated_bytes'))} torch max allocated; {mem(stage)} |")
    if go and hf:
        if go.get("prompt_tokens") != hf.get("prompt_tokens"):
            print(f"\nWARNING: prompt lengths differ (acdtcm {go.get('prompt_tokens')}, transformers {hf.get('prompt_tokens')})")
        for k in ("prefill_tokens_per_second", "decode_tokens_per_second"):
            if go.get(k) and hf.get(k):
                summary[f"issue5_{k}_ratio_acdtcm_over_hf_bf16"] = go[k] / hf[k]
        ratios = [f"{what} x{summary[f'issue5_{k}_ratio_acdtcm_over_hf_bf16']:.2f}" for what, k in
                  (("prefill", "prefill_tokens_per_second"), ("decode", "decode_tokens_per_second"))
                  if f"issue5_{k}_ratio_acdtcm_over_hf_bf16" in summary]
        print(f"\nacdtcm / transformers-bf16 (tokens per second): {', '.join(ratios) or 'n/a'}")

    # Issue #7: bf16 checkpoint (held as compute_dtype by acdtcm) vs int8 vs nf4.
    print("\n### #7 original vs int8 vs nf4 (acdtcm XLA)\n")
    print("| model (stage) | on disk | weights in memory | prefill tok/s | decode tok/s | load s | SNR dB | argmax agreement | stage GPU peak |\n|---|---|---|---|---|---|---|---|---|")
    for stage, model in (("q8", "original"), ("q8", "int8"), ("nf4", "original"), ("nf4", "nf4"), ("q8only", "int8")):
        r = find(stage, model=model)
        if r:
            q = find(stage, model={"q8": "int8", "nf4": "nf4", "q8only": "int8"}[stage]) or {}
            disk = gib(r.get("bytes_on_disk_after")) if model != "original" else gib(q.get("bytes_on_disk_before"))
            agree = r.get("argmax_agreement")
            both = find(stage, model="original") is not None
            print(f"| {model} ({stage}) | {disk} | {gib(r.get('weight_bytes_in_memory'))} | {num(r.get('prefill_tokens_per_second'))} | {num(r.get('decode_tokens_per_second'))} | {num(r.get('load_seconds'), '{:.2f}')} | {num(r.get('overall_snr_db'))} | {'' if agree is None else f'{100 * agree:.1f}%'} | {mem(stage)}{' (both models)' if both else ''} |")

    # Issue #6: LoRA training step, acdtcm (XLA) vs PEFT.
    gt = find("train")
    print("\n### #6 LoRA training step (same r/alpha/dropout/targets, batch, image size and sequence)\n")
    print("| implementation | batch x seq | step s (median) | tokens/s | first step s | GPU peak |\n|---|---|---|---|---|---|")
    if gt:
        print(f"| acdtcm XLA ({gt.get('compute_dtype', 'float32')}) | {gt.get('batch')} x {(gt.get('tokens_per_step') or 0) // max(gt.get('batch') or 1, 1)} | {num(gt.get('step_seconds_median'), '{:.3f}')} | {num(gt.get('tokens_per_second'))} | {num(gt.get('first_step_seconds'), '{:.1f}')} | {mem('train')} |")
    for mode in ("cached", "full"):
        r = find("peft", mode=mode, ok=True)
        if r:
            print(f"| PEFT {r['dtype']} ({mode} vision) | {r.get('batch')} x {r.get('seq_len')} | {num(r.get('step_seconds_median'), '{:.3f}')} | {num(r.get('tokens_per_second'))} | | {gib(r.get('max_memory_allocated_bytes'))} torch max allocated; {mem('peft')} |")
    pc = find("peft", mode="cached", ok=True)
    if gt and pc and gt.get("step_seconds_median") and pc.get("step_seconds_median"):
        summary["issue6_step_time_ratio_acdtcm_over_peft_cached"] = gt["step_seconds_median"] / pc["step_seconds_median"]
        if gt.get("tokens_per_step") and gt["tokens_per_step"] != pc.get("tokens_per_step"):
            print(f"\nWARNING: tokens per step differ (acdtcm {gt['tokens_per_step']}, PEFT {pc.get('tokens_per_step')})")
        print(f"\nacdtcm step time / PEFT (cached vision): x{summary['issue6_step_time_ratio_acdtcm_over_peft_cached']:.2f}")
    if a.results:
        emit(summary, a.results)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("quantize", "train", "summary"):
        p = sub.add_parser(name)
        p.add_argument("file")
        p.add_argument("--stage", default=name)
        p.add_argument("--results", default=None)
        p.add_argument("--warmup", type=int, default=2)
        p.add_argument("--extra", nargs="*")
    a = ap.parse_args()
    try:
        {"quantize": cmd_quantize, "train": cmd_train, "summary": cmd_summary}[a.cmd](a)
    except FileNotFoundError as e:
        print(f"collect: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
