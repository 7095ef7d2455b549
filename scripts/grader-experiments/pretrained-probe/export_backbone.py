"""Writes the MobileNetV2 layers that acdtcm's pretrained grader backbone uses (nsfwjs 4.4.0's
Keras MobileNetV2 from its input up to block_5_add: 55,488 weights + BatchNorm statistics) as a
float32 safetensors file with their Keras names and layouts (conv kernels HWIO, depthwise
kernels [kh, kw, C, 1]), from the dump that dump_weights.js makes:

    cd "$(mktemp -d)" && npm pack nsfwjs@4.4.0 && tar xzf nsfwjs-4.4.0.tgz
    node /path/to/repo/scripts/grader-experiments/pretrained-probe/dump_weights.js package/dist/models/mobilenet_v2 /tmp/mnv2
    python3 scripts/grader-experiments/pretrained-probe/export_backbone.py /tmp/mnv2 internal/grader/pretrained/mobilenetv2-nsfwjs-block5.safetensors

The output is deterministic (tensors sorted by name, no timestamps)."""
import json
import os
import struct
import sys

import numpy as np

STOP = "block_5_add"


def main():
    src, out = sys.argv[1], sys.argv[2]
    topology = json.load(open(os.path.join(src, "topology.json")))
    used = []
    for l in topology:
        used.append(l["config"]["name"])
        if l["config"]["name"] == STOP:
            break
    raw = np.fromfile(os.path.join(src, "weights.bin"), dtype=np.float32)
    tensors, off = {}, 0
    for e in json.load(open(os.path.join(src, "manifest.json"))):
        n = int(np.prod(e["shape"]))
        if e["name"].split("/")[0] in used:
            tensors[e["name"]] = raw[off:off + n].reshape(e["shape"])
        off += n
    header, data, pos = {"__metadata__": {"source": "nsfwjs@4.4.0 dist/models/mobilenet_v2 (MIT, Infinite Red)",
                                          "layers": "input_1.." + STOP}}, [], 0
    for name in sorted(tensors):
        b = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [pos, pos + len(b)]}
        data.append(b)
        pos += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(data))
    os.replace(tmp, out)
    weights = sum(t.size for k, t in tensors.items() if not k.endswith(("moving_mean", "moving_variance")))
    print(f"{len(tensors)} tensors ({weights} weights + BatchNorm statistics), {pos} bytes -> {out}")


if __name__ == "__main__":
    main()
