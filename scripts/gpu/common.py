"""Helpers shared by scripts/gpu/hf_bench.py and scripts/gpu/peft_step.py.

They run with transformers 4.50 (the CPU reference of scripts/pyshim, torch 1.13) and with
transformers 5.x on the GPU machine (torch 2.x); every version-dependent call is behind a check.
"""
import json
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "qwen-reference"))
from refckpt import reference_dir  # noqa: E402,F401

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION = "<|vision_start|><|image_pad|><|vision_end|>"
DEFAULT_SYSTEM = "You are a helpful assistant."  # tokenizer.DefaultSystemPrompt

# cli.BenchPrompt: the user turn of `acdtcm quantize --bench`.
BENCH_PROMPT = "Describe the acne lesions on this patient's face and grade their severity."


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def render_message(role, parts):
    """tokenizer.RenderMessage: parts are strings or None (an image)."""
    body = "".join(VISION if p is None else p for p in parts)
    return f"{IM_START}{role}\n{body}{IM_END}\n"


def render_chat(messages, add_generation_prompt):
    """tokenizer.RenderChat for [(role, parts)], with Qwen's default system turn."""
    out = ""
    if not messages or messages[0][0] != "system":
        out += render_message("system", [DEFAULT_SYSTEM])
    for role, parts in messages:
        out += render_message(role, parts)
    if add_generation_prompt:
        out += f"{IM_START}assistant\n"
    return out


def transformers_version():
    import transformers

    return transformers.__version__


def _version_tuple(v):
    out = []
    for p in v.split(".")[:2]:
        digits = "".join(ch for ch in p if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def dtype_kwargs(dtype):
    """from_pretrained's dtype argument: `dtype=` since transformers 4.56, `torch_dtype=` before
    (older versions would silently store an unknown `dtype=` in the config and load float32)."""
    if _version_tuple(transformers_version()) >= (4, 56):
        return {"dtype": dtype}
    return {"torch_dtype": dtype}


def load_model(ckpt, dtype, device, attn=None):
    """Qwen2_5_VLForConditionalGeneration on device, in dtype; returns (model, seconds)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    kw = dtype_kwargs(dtype)
    if attn:
        kw["attn_implementation"] = attn
    if device.startswith("cuda"):
        kw["device_map"] = device
    sync(device)
    t0 = time.perf_counter()
    try:
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(ckpt, **kw)
    except TypeError:
        # a transformers that knows neither spelling as expected: try the other one
        alt = {k: v for k, v in kw.items() if k not in ("dtype", "torch_dtype")}
        alt["torch_dtype" if "dtype" in kw else "dtype"] = dtype
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(ckpt, **alt)
    model.to(device)
    sync(device)
    seconds = time.perf_counter() - t0
    got = next(model.parameters()).dtype
    if got != dtype:
        raise SystemExit(f"model loaded in {got}, wanted {dtype}")
    return model, seconds


def load_tokenizer(ref):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(ref)
    except Exception as e:  # noqa: BLE001 - fall back to the slow tokenizer
        log(f"fast tokenizer unavailable ({str(e).strip().splitlines()[0]}); using the slow one")
        return AutoTokenizer.from_pretrained(ref, use_fast=False)


def encode(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def weight_bytes(model):
    n = sum(p.numel() * p.element_size() for p in model.parameters())
    n += sum(b.numel() * b.element_size() for b in model.buffers())
    return n


def gpu_info(device):
    if not device.startswith("cuda"):
        return {"device": device}
    p = torch.cuda.get_device_properties(torch.device(device))
    return {"device": device, "gpu": p.name, "gpu_memory_bytes": p.total_memory}


def versions():
    out = {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers_version()}
    try:
        import peft

        out["peft"] = peft.__version__
    except Exception:  # noqa: BLE001
        pass
    if torch.cuda.is_available():
        out["cuda"] = torch.version.cuda
    return out


def parse_dtype(name):
    return {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32,
            "float16": torch.float16, "fp16": torch.float16}[name]


def emit(result, path):
    """Print the result as one JSON line on stdout and append it to path (JSON Lines)."""
    line = json.dumps(result, sort_keys=True)
    print(line, flush=True)
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def smart_resize(h, w, factor=28, min_pixels=3136, max_pixels=12845056):
    """qwen.SmartResize / transformers' smart_resize (Python's round is half-to-even too)."""
    import math

    hb, wb = round(h / factor) * factor, round(w / factor) * factor
    if hb * wb > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        hb = max(factor, math.floor(h / beta / factor) * factor)
        wb = max(factor, math.floor(w / beta / factor) * factor)
    elif hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        hb, wb = math.ceil(h * beta / factor) * factor, math.ceil(w * beta / factor) * factor
    return hb, wb


def failure(exc):
    """Print the traceback of exc and return the fields that record the failure."""
    import traceback

    traceback.print_exc()
    return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def free_memory(device):
    """Drop unreferenced tensors (and the CUDA cache) between measurements."""
    import gc

    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
