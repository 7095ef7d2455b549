#!/usr/bin/env python3
"""Parity fixture for acdtcm's Go Qwen2.5-VL against Hugging Face transformers.

Needs torch + transformers. The tiny checkpoint is made by acdtcm itself, deterministically, so
the Go test can rebuild the same weights without committing them:

    go run ./cmd/acdtcm model init --preset tiny --seed 7 --out /tmp/qwen-tiny
    python3 scripts/qwen-reference/parity.py /tmp/qwen-tiny            # where transformers is

On a machine without PyPI (Debian python3-torch 1.13 + transformers 4.50 sources on PYTHONPATH,
see scripts/pyshim/README.md):

    scripts/pyref-env.sh python3 scripts/qwen-reference/parity.py /tmp/qwen-tiny

The checkpoint has only tokenizer.json and no chat template; refckpt.reference_dir adds the
slow-tokenizer files and Qwen2.5-VL's chat template derived from it (see refckpt.py).

It records, for one image + text prompt rendered with the chat template: the vision tower's
merged features, the logits of the last prompt position, and an 8-token greedy continuation,
into internal/qwen/testdata/parity/tiny-seed7.json (kilobytes). internal/qwen's
TestParityWithTransformers compares the Go model with it to 1e-4 (float32).

    python3 scripts/qwen-reference/parity.py CKPT OUT.json

writes the same record for any other checkpoint to OUT.json (not committed; see
parity-3b-shapes.sh and TestParityWithTransformersExternal).
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refckpt import reference_dir  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "internal", "qwen", "testdata", "parity")
IMAGE = os.path.join(HERE, "..", "..", "internal", "qwen", "testdata", "imageproc", "wide-down.png")
QUESTION = "Grade the acne."


def main():
    ckpt = reference_dir(sys.argv[1])
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(ckpt, torch_dtype=torch.float32, attn_implementation="eager").eval()
    processor = AutoProcessor.from_pretrained(ckpt, use_fast=False)
    image = Image.open(IMAGE).convert("RGB")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    with torch.no_grad():
        pixel = inputs["pixel_values"].to(torch.float32)
        grid = inputs["image_grid_thw"]
        visual = model.model.visual if hasattr(model, "model") and hasattr(model.model, "visual") else model.visual
        features = visual(pixel, grid_thw=grid)
        out = model(**inputs)
        logits = out.logits[0, -1].float().numpy()
        gen = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    prompt_len = inputs["input_ids"].shape[1]
    fixture = {
        "checkpoint": "acdtcm model init --preset tiny --seed 7" if len(sys.argv) < 3 else sys.argv[1],
        "question": QUESTION,
        "image": "internal/qwen/testdata/imageproc/wide-down.png",
        "input_ids": inputs["input_ids"][0].tolist(),
        "image_grid_thw": grid[0].tolist(),
        "vision_features": np.asarray(features.float()).round(7).tolist(),
        "last_logits": logits.round(7).tolist(),
        "greedy_ids": gen[0, prompt_len:].tolist(),
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }
    path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(OUT, "tiny-seed7.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(fixture, f)
    print("wrote", path)


if __name__ == "__main__":
    main()
