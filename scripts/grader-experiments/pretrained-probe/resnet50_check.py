"""Checks resnet50.py + mnv2.run against TF.js on the same model.json: writes the 4 sample photos,
preprocessed, for resnet50_check.js, runs the Keras ResNet-50 in PyTorch, prints its top
ImageNet classes, and (with --compare) the largest differences from TF.js's outputs.

    RESNET_DIR=/path/package/ResNet50 /usr/bin/python3 resnet50_check.py /tmp/rncheck
    (cd "$(mktemp -d)" && npm install @tensorflow/tfjs@4.22.0 && NODE_PATH=$PWD/node_modules \\
        node .../resnet50_check.js "$RESNET_DIR" /tmp/rncheck)
    RESNET_DIR=... /usr/bin/python3 resnet50_check.py /tmp/rncheck --compare

2026-11-29: stage-3 output (activation_21) within 4.7e-5 of TF.js (values up to 18.6), class
probabilities within 8e-7, the same argmax on all 4 photos.
"""
import glob
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mnv2  # noqa: E402
import resnet50  # noqa: E402


def main():
    work = sys.argv[1]
    os.makedirs(work, exist_ok=True)
    rdir = os.environ.get("RESNET_DIR", "/tmp/resnet50")
    w, topo = resnet50.load(rdir)
    files = sorted(glob.glob(os.path.join(HERE, "..", "..", "..", "testdata", "samples", "*.jpg")))[:4]
    xs = np.stack([np.asarray(Image.open(f).convert("RGB").resize((224, 224), Image.BILINEAR)) for f in files]).astype(np.float32)
    x = resnet50.preprocess(torch.from_numpy(xs).permute(0, 3, 1, 2))
    x.permute(0, 2, 3, 1).contiguous().numpy().tofile(os.path.join(work, "x.bin"))  # NHWC for TF.js
    stop = next(i for i, l in enumerate(topo) if l["config"]["name"] == "activation_21")
    with torch.no_grad():
        probs = mnv2.run(topo, w.get, x, upto_pool=False).numpy()
        mid = mnv2.run(topo[:stop + 1], w.get, x, upto_pool=False).permute(0, 2, 3, 1).numpy()
    labels = json.load(open(os.path.join(rdir, "..", "assets", "labels.json")))
    for f, p in zip(files, probs):
        top = np.argsort(-p)[:3]
        print(os.path.basename(f), [(labels[str(i)], round(float(p[i]), 3)) for i in top])
    if "--compare" in sys.argv:
        jm = np.fromfile(os.path.join(work, "tfjs_mid.bin"), np.float32).reshape(mid.shape)
        jp = np.fromfile(os.path.join(work, "tfjs_probs.bin"), np.float32).reshape(probs.shape)
        print(f"activation_21: max |torch - tfjs| {np.abs(mid - jm).max():.3g} (max |tfjs| {np.abs(jm).max():.3g})")
        print(f"probabilities: max |torch - tfjs| {np.abs(probs - jp).max():.3g}; same argmax: {(probs.argmax(1) == jp.argmax(1)).all()}")


if __name__ == "__main__":
    main()
