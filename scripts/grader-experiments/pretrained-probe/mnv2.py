"""nsfwjs 4.4.0's MobileNetV2 (Keras topology and weights dumped by dump_weights.js) evaluated
layer by layer in PyTorch; shared by probe.py (frozen features) and finetune_counter.py.
`run` also evaluates the Keras ResNet-50 of resnet50.py (Activation and MaxPooling2D layers)."""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F


def load(mnv2_dir):
    """Returns ({weight name: tensor}, [Keras layer configs]) from a dump_weights.js output."""
    man = json.load(open(os.path.join(mnv2_dir, "manifest.json")))
    raw = np.fromfile(os.path.join(mnv2_dir, "weights.bin"), dtype=np.float32)
    weights, off = {}, 0
    for e in man:
        n = int(np.prod(e["shape"]))
        weights[e["name"]] = torch.from_numpy(raw[off:off + n].reshape(e["shape"]).copy())
        off += n
    return weights, json.load(open(os.path.join(mnv2_dir, "topology.json")))


def preprocess(x):
    """uint8-valued RGB [b, 3, h, w] -> MobileNetV2's input (values in 0..1, as nsfwjs feeds it)."""
    return x / 255.0


def run(layers, param, x, upto_pool=True, input_name="input_1"):
    """Evaluates layers on x ([b, 3, s, s], values in 0..1) and returns the last output, or the
    input of the average pooling (the [b, 1280, h, w] features) with upto_pool. param(name)
    gives a weight tensor by its Keras name (e.g. "Conv1/kernel"), or None when absent.
    input_name names the layer whose output x is, for running a later part of the network."""
    t = {input_name: x}
    y = x
    for l in layers:
        c, cfg, name = l["class_name"], l["config"], l["config"]["name"]
        if c == "InputLayer":
            continue
        ins = [t[i[0]] for i in l["inbound_nodes"][0]]
        h = ins[0]
        if c == "ZeroPadding2D":
            (t0, b0), (l0, r0) = cfg["padding"]
            y = F.pad(h, (l0, r0, t0, b0))
        elif c in ("Conv2D", "DepthwiseConv2D"):
            s = cfg["strides"][0]
            if c == "Conv2D":
                k, groups = param(name + "/kernel").permute(3, 2, 0, 1), 1
            else:
                k, groups = param(name + "/depthwise_kernel").permute(2, 3, 0, 1), h.shape[1]  # [kh,kw,C,1] -> [C,1,kh,kw]
            pad = 0
            if cfg["padding"] == "same":
                assert s == 1
                pad = k.shape[2] // 2
            y = F.conv2d(h, k, param(name + "/bias"), stride=s, padding=pad, groups=groups)
        elif c == "BatchNormalization":
            y = F.batch_norm(h, param(name + "/moving_mean"), param(name + "/moving_variance"), param(name + "/gamma"),
                             param(name + "/beta"), False, 0.0, cfg["epsilon"])
        elif c == "ReLU":
            y = torch.clamp(h, 0, cfg.get("max_value") or 1e30)
        elif c == "Activation":
            if cfg["activation"] == "relu":
                y = F.relu(h)
            elif cfg["activation"] == "softmax":
                y = F.softmax(h, 1)
            else:
                raise ValueError(f"{name}: activation {cfg['activation']}")
        elif c == "MaxPooling2D":
            assert cfg["padding"] == "valid"
            y = F.max_pool2d(h, cfg["pool_size"][0], cfg["strides"][0])
        elif c == "GlobalAveragePooling2D":
            if upto_pool:
                return h
            y = h.mean((2, 3))
        elif c == "Add":
            y = ins[0] + ins[1]
        elif c == "AveragePooling2D":
            if upto_pool:
                return h
            y = F.avg_pool2d(h, cfg["pool_size"][0])
        elif c == "Flatten":
            y = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)
        elif c == "Dense":
            y = h @ param(name + "/kernel") + param(name + "/bias")
            if cfg["activation"] == "relu":
                y = F.relu(y)
            if cfg["activation"] == "softmax":
                y = F.softmax(y, -1)
        elif c == "Dropout":
            y = h
        else:
            raise ValueError(c)
        t[name] = y
    return y
