#!/usr/bin/env python3
"""Reference outputs of the grader's pretrained MobileNetV2 backbone for Go's test
(internal/grader/testdata/mobilenetv2-block5.json, read by TestMobileNetV2MatchesKerasTopology).

The network is evaluated layer by layer from nsfwjs's own Keras topology (pretrained-probe's
mnv2.run, the interpreter the PyTorch probes used), with the weights of the committed
internal/grader/pretrained/mobilenetv2-nsfwjs-block5.safetensors, in float64, on two fixed
pseudo-random 48x48 photos (uint8, seed 7). Needs the topology from dump_weights.js:

    cd "$(mktemp -d)" && npm pack nsfwjs@4.4.0 && tar xzf nsfwjs-4.4.0.tgz
    node /path/to/repo/scripts/grader-experiments/pretrained-probe/dump_weights.js package/dist/models/mobilenet_v2 /tmp/mnv2
    /usr/bin/python3 scripts/grader-torch/mobilenetv2_fixture.py /tmp/mnv2/topology.json
"""
import json
import os
import struct
import sys

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "scripts", "grader-experiments", "pretrained-probe"))
import mnv2  # noqa: E402

WEIGHTS = os.path.join(ROOT, "internal", "grader", "pretrained", "mobilenetv2-nsfwjs-block5.safetensors")
OUT = os.path.join(ROOT, "internal", "grader", "testdata", "mobilenetv2-block5.json")
STOP, SIZE, BATCH = "block_5_add", 48, 2


def read_safetensors(path):
    buf = open(path, "rb").read()
    n = struct.unpack("<Q", buf[:8])[0]
    header = json.loads(buf[8:8 + n])
    data = buf[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(e["shape"]).astype(np.float64))
    return out


def main():
    topology = json.load(open(sys.argv[1]))
    layers = []
    for l in topology:
        layers.append(l)
        if l["config"]["name"] == STOP:
            break
    weights = read_safetensors(WEIGHTS)
    pixels = np.random.default_rng(7).integers(0, 256, size=(BATCH, SIZE, SIZE, 3), dtype=np.uint8)
    x = torch.from_numpy(pixels.astype(np.float64) / 255).permute(0, 3, 1, 2)
    y = mnv2.run(layers, lambda name: weights.get(name), x, upto_pool=False)  # [b, 32, s/8, s/8]
    y = y.permute(0, 2, 3, 1).contiguous()
    fixture = {"input_shape": list(pixels.shape), "input": pixels.ravel().tolist(),
               "output_shape": list(y.shape), "output": [round(v, 9) for v in y.ravel().tolist()]}
    with open(OUT, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
    print(f"{OUT}: output {list(y.shape)}, |y| max {y.abs().max().item():.4f}")


if __name__ == "__main__":
    main()
