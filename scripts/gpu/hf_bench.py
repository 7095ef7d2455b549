#!/usr/bin/env python3
"""Prefill and decode speed of a Qwen2.5-VL checkpoint in Hugging Face transformers, measured
exactly as `acdtcm quantize --bench` measures acdtcm (internal/cli/quantize.go, benchOne):

  * prompt: the user turn cli.BenchPrompt rendered with the chat template (default system turn,
    generation prompt), no image; tokenized with the checkpoint's own tokenizer;
  * one full forward of the prompt (logits of every position), untimed: acdtcm's Forward;
  * generate(1 token) and generate(N tokens), greedy, no stop token (min_new_tokens = N), each
    run once untimed (warm-up; acdtcm compiles there) and then 3 times, keeping the fastest;
  * prefill tok/s = prompt tokens / t(1); decode tok/s = (N - 1) / (t(N) - t(1)).

Also: load time (from_pretrained to the device, synchronised), bytes of parameters and buffers,
and torch.cuda.max_memory_allocated. One JSON line per --dtypes entry on stdout (and appended to
--json). Logs go to stderr.

    python3 scripts/gpu/hf_bench.py /tmp/qwen-3b --dtypes bfloat16 --new-tokens 32 --json out.jsonl
    scripts/pyref-env.sh python3 scripts/gpu/hf_bench.py /tmp/qwen-tiny --device cpu --dtypes float32
"""
import argparse
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def bench(args, ckpt, ref, tokenizer, dtype_name):
    device = args.device
    dtype = common.parse_dtype(dtype_name)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model, load_s = common.load_model(ckpt, dtype, device, args.attn)
    model.eval()
    gen_cfg = getattr(model, "generation_config", None)
    rp = float(getattr(gen_cfg, "repetition_penalty", 1.0) or 1.0)
    text = common.render_chat([("user", [common.BENCH_PROMPT])], True)
    ids = common.encode(tokenizer, text)
    input_ids = torch.tensor([ids], device=device)
    attention = torch.ones_like(input_ids)
    pad = getattr(gen_cfg, "pad_token_id", None)
    if isinstance(pad, list):
        pad = pad[0]
    common.log(f"[{dtype_name}] loaded in {load_s:.2f} s; prompt {len(ids)} tokens; repetition_penalty {rp}")

    with torch.no_grad():
        t0 = time.perf_counter()
        logits = model(input_ids=input_ids, attention_mask=attention).logits
        common.sync(device)
        forward_s = time.perf_counter() - t0
        finite = bool(torch.isfinite(logits.float()).all())

        def generate(n):
            out = model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=n, min_new_tokens=n,
                                 do_sample=False, repetition_penalty=rp, use_cache=True, pad_token_id=pad)
            common.sync(device)
            return out

        def time_generate(n):
            t0 = time.perf_counter()
            generate(n)  # warm-up (acdtcm compiles its graphs in this call)
            warm = time.perf_counter() - t0
            best, tokens = math.inf, 0
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                out = generate(n)
                best = min(best, time.perf_counter() - t0)
                tokens = out.shape[1] - input_ids.shape[1]
            return best, tokens, warm

        t1, _, warm1 = time_generate(1)
        tn, n, warmn = time_generate(args.new_tokens)
    res = {
        "impl": "transformers",
        "checkpoint": ckpt,
        "dtype": dtype_name,
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "load_seconds": load_s,
        "weight_bytes_in_memory": common.weight_bytes(model),
        "prompt_tokens": len(ids),
        "forward_seconds": forward_s,
        "logits_finite": finite,
        "prefill_seconds": t1,
        "prefill_tokens_per_second": len(ids) / t1,
        "generate_tokens": n,
        "generate_seconds": tn,
        "decode_tokens_per_second": (n - 1) / (tn - t1) if tn > t1 and n > 1 else 0.0,
        "warmup_seconds": {"generate_1": warm1, f"generate_{args.new_tokens}": warmn},
        "repeats": args.repeats,
        "versions": common.versions(),
    }
    res.update(common.gpu_info(device))
    if device.startswith("cuda"):
        res["max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated()
        res["max_memory_reserved_bytes"] = torch.cuda.max_memory_reserved()
    del model, logits
    common.free_memory(device)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--dtypes", default="bfloat16", help="comma-separated: bfloat16, float32, float16")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--new-tokens", type=int, default=32, help="N of the decode measurement (acdtcm quantize --bench-tokens)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (the fastest is kept)")
    ap.add_argument("--attn", default=None, help="attn_implementation (default: transformers' choice, sdpa on GPU)")
    ap.add_argument("--json", default=None, help="append each result as a JSON line to this file")
    ap.add_argument("--label", default="hf_bench", help="stage name recorded in the results")
    args = ap.parse_args()
    if args.new_tokens < 2:
        ap.error("--new-tokens must be at least 2")
    torch.manual_seed(0)
    ckpt = os.path.abspath(args.checkpoint)
    ref = common.reference_dir(ckpt)
    tokenizer = common.load_tokenizer(ref)
    failed = False
    for name in [d.strip() for d in args.dtypes.split(",") if d.strip()]:
        try:
            res = bench(args, ckpt, ref, tokenizer, name)
            res["stage"] = args.label
            res["ok"] = True
        except Exception as e:  # noqa: BLE001 - report and go on with the next dtype
            res = {"stage": args.label, "impl": "transformers", "dtype": name, **common.failure(e)}
            failed = True
            common.free_memory(args.device)
        common.emit(res, args.json)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
