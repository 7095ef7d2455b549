#!/usr/bin/env python3
"""Training-step time and memory of PyTorch + PEFT LoRA on a Qwen2.5-VL checkpoint, set up as
`acdtcm train --model qwen-lora` trains (internal/train, train.DefaultLoRAConfig):

  * LoRA r 64, alpha 16, dropout 0.1 on q/k/v/o/gate/up/down_proj of the language model only
    (--lora-lm-only: the vision tower stays frozen), scale alpha/r, PEFT's default init;
  * the first record of a sharegpt/messages JSON Lines file (the file given to acdtcm train
    --data), every sample of the batch being that record: the same system/user/assistant turns,
    the same photo resized with the same min/max_pixels, so every row has the same length;
  * labels as qwen.Model.Labels: only the assistant answer and its <|im_end|> are supervised;
    loss = transformers' next-token cross-entropy + the grade-token loss (weight 1, label
    smoothing 0.1, class weights 1..4) when the answer starts with a grade digit (acdtcm's LM
    loss also uses label smoothing 0.1; the cost is the same);
  * AdamW (lr 2e-5, betas 0.9/0.999, eps 1e-8, weight decay 0.01) on the LoRA parameters only,
    global gradient-norm clipping at 1.0; base weights in --dtype (bfloat16), LoRA weights in
    float32 (PEFT's autocast_adapter_dtype); no gradient checkpointing; train mode.

Two modes, each with --warmup untimed steps then --steps timed ones (synchronised):
  cached  the vision tower runs once and its output is reused, as acdtcm's trainer does (it
          caches each photo's features: the tower is frozen): the like-for-like comparison;
  full    the vision tower runs in every step (no gradient through it), as a plain PEFT loop.

One JSON line per mode on stdout (appended to --json): step seconds (mean, median, min, all),
tokens per step (batch x sequence), losses, torch.cuda.max_memory_allocated/reserved.

    python3 scripts/gpu/peft_step.py /tmp/qwen-3b --data /tmp/train.jsonl --batch 4 \\
        --max-pixels 200704 --warmup 2 --steps 5 --json out.jsonl
    scripts/pyref-env.sh python3 scripts/gpu/peft_step.py /tmp/qwen-tiny --data d.jsonl --device cpu
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

IGNORE = -100
# internal/lora: the language-model-only targets, as a full-match regex over module names of
# transformers < 4.52 (model.layers.N...) and >= 4.52 (model.language_model.layers.N...).
LM_TARGETS = r"model\.(language_model\.)?layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
GRADE_WEIGHT, LABEL_SMOOTHING, CLASS_WEIGHTS = 1.0, 0.1, [1.0, 2.0, 3.0, 4.0]


def read_record(path):
    """The first record of a sharegpt/messages JSON Lines file (or JSON array): [(role, parts)]
    with None for each <image>, and the image paths (relative to the file)."""
    with open(path) as f:
        text = f.read().strip()
    rec = json.loads(text)[0] if text.startswith("[") else json.loads(text.splitlines()[0])
    msgs = []
    for m in rec["messages"]:
        parts = []
        for k, piece in enumerate(m["content"].split("<image>")):
            if k > 0:
                parts.append(None)
            if piece:
                parts.append(piece)
        msgs.append((m["role"], parts))
    base = os.path.dirname(os.path.abspath(path))
    images = [p if os.path.isabs(p) else os.path.join(base, p) for p in rec.get("images", [])]
    return msgs, images


def load_processor(ref, min_pixels, max_pixels):
    """AutoProcessor with the trainer's min/max_pixels (passed to from_pretrained, the usage
    documented for Qwen2.5-VL, and also set on the image processor: transformers 4.50 reads
    min_pixels/max_pixels attributes, newer ones size{shortest,longest}_edge). The slow (PIL)
    image processor is preferred: it resizes like acdtcm."""
    from transformers import AutoProcessor

    proc = None
    for kw in ({"use_fast": False, "min_pixels": min_pixels, "max_pixels": max_pixels},
               {"min_pixels": min_pixels, "max_pixels": max_pixels}, {}):
        try:
            proc = AutoProcessor.from_pretrained(ref, **kw)
            break
        except Exception as e:  # noqa: BLE001 - try the next spelling
            common.log(f"AutoProcessor.from_pretrained({kw}): {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}")
    if proc is None:
        raise SystemExit("no processor could be loaded")
    ip = proc.image_processor
    ip.min_pixels, ip.max_pixels = min_pixels, max_pixels
    size = getattr(ip, "size", None)
    if isinstance(size, dict):
        ip.size = dict(size, shortest_edge=min_pixels, longest_edge=max_pixels)
    elif size is not None and hasattr(size, "shortest_edge"):
        try:
            size.shortest_edge, size.longest_edge = min_pixels, max_pixels
        except Exception:  # noqa: BLE001 - a frozen size object: the call arguments will do
            pass
    common.log(f"processor {type(proc).__name__}, image processor {type(ip).__name__}")
    return proc


def build_batch(proc, tokenizer, msgs, image_paths, batch, device, model_dtype, min_pixels, max_pixels):
    """The batch, with the photos at acdtcm's size (qwen.SmartResize with the trainer's
    min/max_pixels), so both sides see the same number of image tokens. Tried in turn: the
    processor settings made by load_processor; min/max_pixels as call arguments; the photos
    resized to that size first (the processor's own smart_resize then keeps it when its
    configured bounds allow)."""
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in image_paths]
    want = [list(common.smart_resize(im.height, im.width, 28, min_pixels, max_pixels)) for im in images]
    attempts = [
        ("processor settings", images, {}),
        ("call arguments", images, {"min_pixels": min_pixels, "max_pixels": max_pixels}),
        ("photos resized first", [im.resize((w, h), Image.BICUBIC) for im, (h, w) in zip(images, want)], {}),
    ]
    got = None
    for how, imgs, kw in attempts:
        try:
            inputs, grade, prompt_len = _build(proc, msgs, imgs, batch, device, model_dtype, kw)
        except (TypeError, ValueError) as e:
            common.log(f"{how}: {e}")
            continue
        got = [[int(g[1]) * 14, int(g[2]) * 14] for g in inputs["image_grid_thw"][: len(imgs)].tolist()]
        if got == want:
            if how != attempts[0][0]:
                common.log(f"image size {want} obtained with {how}")
            return inputs, grade, prompt_len
        common.log(f"{how}: the processor resized to {got}, acdtcm uses {want}")
    raise SystemExit(f"cannot make the processor use the image size {want} (got {got})")


def _build(proc, msgs, images, batch, device, model_dtype, kw):
    full = common.render_chat(msgs, False)
    prompt_msgs = [m for m in msgs if m[0] != "assistant"]
    prompt = common.render_chat(prompt_msgs, True)
    if not full.startswith(prompt):
        raise SystemExit("the record must end with the assistant turn")
    inputs = proc(text=[full] * batch, images=images * batch, return_tensors="pt", **kw)
    prompt_ids = proc(text=[prompt], images=images, return_tensors="pt", **kw)["input_ids"][0].tolist()
    ids = inputs["input_ids"][0].tolist()
    if ids[: len(prompt_ids)] != prompt_ids:
        raise SystemExit("the prompt's tokens are not a prefix of the conversation's")
    # Supervised: the answer and its <|im_end|>; not the prompt, not the template's final "\n".
    labels = [IGNORE] * len(prompt_ids) + ids[len(prompt_ids) : -1] + [IGNORE]
    inputs["labels"] = torch.tensor([labels] * batch)
    out = {k: v.to(device) for k, v in inputs.items()}
    out["pixel_values"] = out["pixel_values"].to(model_dtype)
    answer = "".join(p for r, parts in msgs if r == "assistant" for p in parts if p)
    grade = int(answer[0]) if answer[:1].isdigit() and int(answer[0]) < len(CLASS_WEIGHTS) else None
    return out, grade, len(prompt_ids)


def grade_token_ids(tokenizer):
    ids = []
    for g in range(len(CLASS_WEIGHTS)):
        enc = common.encode(tokenizer, str(g))
        if len(enc) != 1:
            return None
        ids.append(enc[0])
    return ids


def grade_loss(logits, pos, grade_ids, grade):
    """qwen.gradeLoss: label-smoothed, class-weighted cross-entropy over the grade tokens' logits
    at the position predicting the answer's first token (same grade in every row)."""
    logp = torch.log_softmax(logits[:, pos, grade_ids].float(), dim=-1)
    K = len(grade_ids)
    onehot = torch.nn.functional.one_hot(torch.tensor(grade, device=logp.device), K).to(logp.dtype)
    target = onehot * (1 - LABEL_SMOOTHING) + LABEL_SMOOTHING / K
    return -(target * logp).sum(-1).mean()  # equal class weights in the batch: weighted mean = mean


def find_visual(model):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, "model", None)
    if inner is not None and hasattr(inner, "visual"):
        return inner.visual
    return base.visual


def run_mode(args, model, batch, grade, grade_ids, grade_pos, mode):
    device = args.device
    visual = find_visual(model)
    real_forward = visual.forward
    cache, calls = {}, [0]

    def counted_forward(*a, **k):
        calls[0] += 1
        return real_forward(*a, **k)

    def cached_forward(*a, **k):
        if "out" not in cache:
            with torch.no_grad():
                cache["out"] = counted_forward(*a, **k)
        out = cache["out"]
        if isinstance(out, torch.Tensor):
            return out
        # transformers 5.x returns a ModelOutput and get_image_features then replaces its
        # pooler_output with the per-image split (a tuple) in place: hand out a fresh copy.
        return type(out)(**dict(out.items()))

    visual.forward = cached_forward if mode == "cached" else counted_forward
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model.train()
    times, losses = [], []
    try:
        for step in range(args.warmup + args.steps):
            common.sync(device)
            t0 = time.perf_counter()
            out = model(**batch, use_cache=False)
            loss = out.loss
            if grade is not None and grade_ids is not None and GRADE_WEIGHT > 0:
                loss = loss + GRADE_WEIGHT * grade_loss(out.logits, grade_pos, grade_ids, grade)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            common.sync(device)
            dt = time.perf_counter() - t0
            losses.append(float(loss.detach()))
            if step >= args.warmup:
                times.append(dt)
            common.log(f"[{mode}] step {step + 1}/{args.warmup + args.steps}: {dt:.3f} s, loss {losses[-1]:.4f}")
            del out, loss
    finally:
        visual.forward = real_forward
        del opt
    res = {
        "mode": mode,
        "step_seconds_mean": statistics.mean(times),
        "step_seconds_median": statistics.median(times),
        "step_seconds_min": min(times),
        "step_seconds": times,
        "losses": losses,
        "vision_forward_calls": calls[0],
    }
    if device.startswith("cuda"):
        res["max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated()
        res["max_memory_reserved_bytes"] = torch.cuda.max_memory_reserved()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--data", required=True, help="sharegpt/messages JSON Lines: its first record is the sample")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--min-pixels", type=int, default=3136)
    ap.add_argument("--max-pixels", type=int, default=28 * 28 * 256)
    ap.add_argument("--r", type=int, default=64)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per mode")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per mode")
    ap.add_argument("--modes", default="cached,full")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--attn", default=None, help="attn_implementation (default: transformers' choice)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", default=None)
    ap.add_argument("--label", default="peft_step")
    args = ap.parse_args()
    torch.manual_seed(0)
    from peft import LoraConfig, get_peft_model

    ckpt = os.path.abspath(args.checkpoint)
    ref = common.reference_dir(ckpt)
    dtype = common.parse_dtype(args.dtype)
    proc = load_processor(ref, args.min_pixels, args.max_pixels)
    tokenizer = proc.tokenizer
    msgs, images = read_record(args.data)
    model, load_s = common.load_model(ckpt, dtype, args.device, args.attn)
    model.config.use_cache = False
    cfg = LoraConfig(r=args.r, lora_alpha=args.alpha, lora_dropout=args.dropout, target_modules=LM_TARGETS, bias="none",
                     task_type="CAUSAL_LM")
    model = get_peft_model(model, cfg)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lora_modules = sum(1 for n, _ in model.named_modules() if n.endswith(".lora_A"))
    if any(".visual." in n for n, p in model.named_parameters() if p.requires_grad):
        raise SystemExit("LoRA reached the vision tower; the targets must be language-model only")
    batch, grade, prompt_len = build_batch(proc, tokenizer, msgs, images, args.batch, args.device, dtype, args.min_pixels, args.max_pixels)
    grade_ids = grade_token_ids(tokenizer)
    grid = batch["image_grid_thw"][0].tolist()
    B, S = batch["input_ids"].shape
    common.log(f"loaded in {load_s:.2f} s; LoRA on {lora_modules} modules, {trainable} trainable parameters; batch {B} x {S} tokens, image grid {grid}")
    base = {
        "stage": args.label, "impl": "peft", "checkpoint": ckpt, "dtype": args.dtype, "batch": B, "seq_len": S,
        "tokens_per_step": B * S, "prompt_tokens": prompt_len, "image_grid_thw": grid, "min_pixels": args.min_pixels,
        "max_pixels": args.max_pixels, "lora_r": args.r, "lora_alpha": args.alpha, "lora_dropout": args.dropout,
        "lora_modules": lora_modules, "trainable_parameters": trainable, "grade_loss": grade is not None and grade_ids is not None,
        "warmup_steps": args.warmup, "timed_steps": args.steps, "load_seconds": load_s,
        "attn_implementation": getattr(model.config, "_attn_implementation", None), "versions": common.versions(),
    }
    base.update(common.gpu_info(args.device))
    failed = False
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        res = dict(base)
        try:
            res.update(run_mode(args, model, batch, grade, grade_ids, prompt_len - 1, mode))
            res["tokens_per_second"] = B * S / res["step_seconds_median"]
            res["ok"] = True
        except Exception as e:  # noqa: BLE001 - report and go on with the next mode
            res.update({"mode": mode, **common.failure(e)})
            failed = True
        model.zero_grad(set_to_none=True)
        common.free_memory(args.device)
        common.emit(res, args.json)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
