#!/usr/bin/env python3
"""Reference pixel_values for acdtcm's Qwen2.5-VL image processor (internal/qwen).

Python transformers is not installable on the development machines, so this script follows
transformers' Qwen2VLImageProcessor (the slow, PIL-based processor; use_fast=False) step by
step with the same libraries it uses: PIL.Image.resize(BICUBIC) on uint8 RGB, numpy rescale
(float64 multiply, cast to float32), float32 normalise, temporal repeat and the patch
transpose of image_processing_qwen2_vl.py. Where transformers is installed, --check-transformers
also runs the real processor and asserts equality.

Writes internal/qwen/testdata/imageproc/: input PNGs (lossless, so Go and PIL see identical
pixels), expected float32 pixel values (.f32, little endian) and cases.json.
Run with Debian's interpreter: /usr/bin/python3 scripts/qwen-reference/image_processor.py
"""
import json
import math
import os
import sys

import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "internal", "qwen", "testdata", "imageproc")
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
PATCH, MERGE, TEMPORAL = 14, 2, 2


def smart_resize(height, width, factor, min_pixels, max_pixels):
    if max(height, width) / min(height, width) > 200:
        raise ValueError("aspect ratio")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def process(img, min_pixels, max_pixels):
    img = img.convert("RGB")
    width, height = img.size
    h, w = smart_resize(height, width, PATCH * MERGE, min_pixels, max_pixels)
    arr = np.array(img.resize((w, h), resample=Image.BICUBIC, reducing_gap=None)) if (h, w) != (height, width) else np.array(img)
    arr = (arr.astype(np.float64) * (1 / 255)).astype(np.float32)
    arr = (arr - np.array(MEAN, dtype=np.float32)) / np.array(STD, dtype=np.float32)
    arr = arr.transpose(2, 0, 1)[None]  # [1, C, H, W]
    patches = np.tile(arr, (TEMPORAL, 1, 1, 1))
    gt, gh, gw = patches.shape[0] // TEMPORAL, h // PATCH, w // PATCH
    patches = patches.reshape(gt, TEMPORAL, 3, gh // MERGE, MERGE, PATCH, gw // MERGE, MERGE, PATCH)
    patches = patches.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    flat = patches.reshape(gt * gh * gw, 3 * TEMPORAL * PATCH * PATCH)
    return flat.astype(np.float32), [gt, gh, gw]


def make_image(w, h, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 7) % 256], -1)
    noise = rng.integers(-8, 9, size=(h, w, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


CASES = [  # name, width, height, min_pixels, max_pixels
    ("square-upscale", 50, 50, 3136, 28 * 28 * 16),
    ("wide-down", 300, 120, 3136, 28 * 28 * 6),
    ("tall-down", 90, 333, 3136, 28 * 28 * 6),
    ("exact-grid", 56, 112, 3136, 28 * 28 * 16),
    ("odd-round-half", 70, 98, 3136, 28 * 28 * 16),
    ("large-down", 400, 300, 3136, 28 * 28 * 6),
    ("min-pixels-path", 40, 28, 3136, 28 * 28 * 16),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    meta = []
    for i, (name, w, h, lo, hi) in enumerate(CASES):
        img = make_image(w, h, 1000 + i)
        img.save(os.path.join(OUT, name + ".png"))
        values, grid = process(Image.open(os.path.join(OUT, name + ".png")), lo, hi)
        values.astype("<f4").tofile(os.path.join(OUT, name + ".f32"))
        meta.append({"name": name, "min_pixels": lo, "max_pixels": hi, "grid_thw": grid, "shape": list(values.shape)})
        if "--check-transformers" in sys.argv:
            from transformers import Qwen2VLImageProcessor
            proc = Qwen2VLImageProcessor(min_pixels=lo, max_pixels=hi)
            out = proc(images=[img], return_tensors="np")
            assert np.array_equal(out["pixel_values"], values), name
            assert out["image_grid_thw"][0].tolist() == grid, name
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"wrote {len(meta)} cases to {OUT}")


if __name__ == "__main__":
    main()
