#!/usr/bin/env python3
"""Write a random PEFT LoRA adapter for a Qwen2.5-VL checkpoint's text layers.

For measuring `acdtcm export --merge` at real widths without training an adapter first
(BENCHMARKS.md, "`export --merge` streams"). Every linear module of every text layer
(q/k/v/o, gate/up/down) gets float32 A [r, in] and B [out, r] with entries N(0, 0.01^2),
keyed as PEFT saves them (legacy names: base_model.model.model.layers.N...).

    /usr/bin/python3 scripts/lora/synthetic_adapter.py /tmp/qwen3b /tmp/ad3b --rank 8

Needs numpy only. Seeded: the same arguments give the same bytes.
"""
import argparse
import json
import os
import struct

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="checkpoint directory with config.json")
    ap.add_argument("out", help="adapter directory to write")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    cfg = json.load(open(os.path.join(args.model, "config.json")))
    text = cfg.get("text_config", cfg)
    hidden, inter = text["hidden_size"], text["intermediate_size"]
    head_dim = hidden // text["num_attention_heads"]
    kv = text["num_key_value_heads"] * head_dim
    modules = {
        "self_attn.q_proj": (hidden, hidden), "self_attn.k_proj": (kv, hidden),
        "self_attn.v_proj": (kv, hidden), "self_attn.o_proj": (hidden, hidden),
        "mlp.gate_proj": (inter, hidden), "mlp.up_proj": (inter, hidden), "mlp.down_proj": (hidden, inter),
    }
    rng = np.random.default_rng(args.seed)
    tensors = {}
    for layer in range(text["num_hidden_layers"]):
        for name, (out_dim, in_dim) in modules.items():
            key = f"base_model.model.model.layers.{layer}.{name}"
            tensors[key + ".lora_A.weight"] = (rng.standard_normal((args.rank, in_dim)) * 0.01).astype(np.float32)
            tensors[key + ".lora_B.weight"] = (rng.standard_normal((out_dim, args.rank)) * 0.01).astype(np.float32)
    header, offset, blobs = {}, 0, []
    for key in sorted(tensors):
        data = tensors[key].tobytes()
        header[key] = {"dtype": "F32", "shape": list(tensors[key].shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    head = json.dumps(header).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "adapter_model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for data in blobs:
            f.write(data)
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": args.model,
              "r": args.rank, "lora_alpha": args.alpha, "lora_dropout": 0.0, "bias": "none",
              "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
    with open(os.path.join(args.out, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"wrote {len(tensors)} tensors ({offset} bytes) to {args.out}")


if __name__ == "__main__":
    main()
