#!/usr/bin/env python3
"""Copy a Qwen2.5-VL checkpoint keeping only its first text layers and vision blocks, so that a
model with the real widths (e.g. the 3B shapes: hidden 2048, 16/2 heads, head dim 128, MLP
11008, vision width 1280, window 112 px, M-RoPE sections 16/24/24, 151,936-row tied
embeddings) fits a small machine in float32. Standard library only; one safetensors file in.

    python3 scripts/qwen-reference/truncate.py SRC DST [--text-layers 4] [--vision-blocks 8]

The vision blocks kept must include a full-attention block: fullatt_block_indexes keeps those
below --vision-blocks.
"""
import argparse
import json
import os
import re
import shutil
import struct


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--text-layers", type=int, default=4)
    ap.add_argument("--vision-blocks", type=int, default=8)
    a = ap.parse_args()
    os.makedirs(a.dst, exist_ok=True)
    with open(os.path.join(a.src, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        meta = header.pop("__metadata__", None)
        keep = {}
        for name, t in header.items():
            m = re.match(r"model\.(language_model\.)?layers\.(\d+)\.", name)
            if m and int(m.group(2)) >= a.text_layers:
                continue
            m = re.match(r"(model\.)?visual\.blocks\.(\d+)\.", name)
            if m and int(m.group(2)) >= a.vision_blocks:
                continue
            keep[name] = t
        order = sorted(keep, key=lambda k: keep[k]["data_offsets"][0])
        out, off = {}, 0
        for name in order:
            lo, hi = keep[name]["data_offsets"]
            out[name] = {"dtype": keep[name]["dtype"], "shape": keep[name]["shape"], "data_offsets": [off, off + hi - lo]}
            off += hi - lo
        if meta:
            out["__metadata__"] = meta
        h = json.dumps(out, separators=(",", ":")).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        tmp = os.path.join(a.dst, ".model.safetensors.tmp")
        with open(tmp, "wb") as g:
            g.write(struct.pack("<Q", len(h)))
            g.write(h)
            for name in order:
                lo, hi = keep[name]["data_offsets"]
                f.seek(base + lo)
                g.write(f.read(hi - lo))
        os.replace(tmp, os.path.join(a.dst, "model.safetensors"))
    with open(os.path.join(a.src, "config.json")) as f:
        cfg = json.load(f)
    text = cfg.get("text_config", cfg)
    text["num_hidden_layers"] = a.text_layers
    vis = cfg["vision_config"]
    vis["depth"] = a.vision_blocks
    vis["fullatt_block_indexes"] = [i for i in vis.get("fullatt_block_indexes", []) if i < a.vision_blocks]
    if not vis["fullatt_block_indexes"]:
        raise SystemExit("no full-attention vision block below --vision-blocks")
    with open(os.path.join(a.dst, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for name in os.listdir(a.src):
        if name not in ("model.safetensors", "config.json") and os.path.isfile(os.path.join(a.src, name)):
            shutil.copy(os.path.join(a.src, name), os.path.join(a.dst, name))
    print(f"{a.dst}: {len(keep)} of {len(header)} tensors, {off / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
