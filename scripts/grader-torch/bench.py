#!/usr/bin/env python3
"""The built-in grader's network in PyTorch, with the same weights, for BENCHMARKS.md.

1. Export the weights, a preprocessed input batch and Go's outputs:
     go test ./internal/grader -run TestExportTorchFixture -torch-fixture /tmp/grader-torch
   (add -torch-ckpt FILE for a checkpoint other than the built-in weights)
2. Run this script with Debian's python3-torch on the CPU:
     /usr/bin/python3 scripts/grader-torch/bench.py /tmp/grader-torch [THREADS]
It rebuilds internal/grader's BuildModel layer by layer (space-to-depth stem or the pretrained
MobileNetV2 backbone, 3x3 convs with TF-style "same" padding, GroupNorm, softplus density head,
grade head), checks that its
outputs equal Go's (max |diff| printed; it fails above 1e-4), then times the forward pass of
the same batch with torch.set_num_threads(THREADS, default 2) and prints photos/s. Compare with
  go test ./internal/grader -run '^$' -bench NetworkForward -torch-ckpt FILE
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def load(d, name, shape=None):
    a = np.fromfile(os.path.join(d, name), dtype="<f4")
    return torch.from_numpy(a.reshape(shape) if shape else a)


def same_pad(size, k, stride):
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def group_norm(x, groups, scale, offset, eps=1e-5):
    # x is NCHW here; statistics over H, W and each group of C/groups channels.
    return F.group_norm(x, groups, scale, offset, eps)


# MobileNetV2 blocks up to block_5 (internal/grader/mobilenet.go): name, expansion, out, stride.
MOBILENET_BLOCKS = [("expanded_conv", 1, 16, 1), ("block_1", 6, 24, 2), ("block_2", 6, 24, 1),
                    ("block_3", 6, 32, 2), ("block_4", 6, 32, 1), ("block_5", 6, 32, 1)]


def mobilenet_v2(w):
    """The grader's pretrained backbone in plain PyTorch (NCHW, BatchNorm in eval mode with the
    stored statistics, as torch users run it), from the checkpoint's Keras-named tensors."""
    g = lambda layer, param: w[f"/model/mobilenetv2/{layer}/{param}"]
    conv_k = lambda layer: g(layer, "kernel").permute(3, 2, 0, 1).contiguous()  # [kh,kw,in,out] -> [out,in,kh,kw]
    dw_k = lambda layer: g(layer, "depthwise_kernel").permute(2, 3, 0, 1).contiguous()  # [kh,kw,C,1] -> [C,1,kh,kw]
    bn = lambda layer: (g(layer, "moving_mean"), g(layer, "moving_variance"), g(layer, "gamma"), g(layer, "beta"))
    stem = (conv_k("Conv1"), bn("bn_Conv1"))
    blocks = []
    for name, t, _, stride in MOBILENET_BLOCKS:
        blocks.append((conv_k(name + "_expand") if t > 1 else None, bn(name + "_expand_BN") if t > 1 else None,
                       dw_k(name + "_depthwise"), bn(name + "_depthwise_BN"), stride,
                       conv_k(name + "_project"), bn(name + "_project_BN")))

    def batch_norm(x, p):
        return F.batch_norm(x, p[0], p[1], p[2], p[3], False, 0.0, 1e-3)

    def padded(x, k, stride):  # TF "same" padding, as Go's convolutions
        ph, pw = same_pad(x.shape[2], k, stride), same_pad(x.shape[3], k, stride)
        return F.pad(x, (pw[0], pw[1], ph[0], ph[1]))

    def forward(x):
        x = F.relu6(batch_norm(F.conv2d(padded(x, 3, 2), stem[0], stride=2), stem[1]))
        for ek, ebn, dk, dbn, stride, pk, pbn in blocks:
            h = x
            if ek is not None:
                h = F.relu6(batch_norm(F.conv2d(h, ek), ebn))
            h = F.relu6(batch_norm(F.conv2d(padded(h, 3, stride), dk, stride=stride, groups=h.shape[1]), dbn))
            h = batch_norm(F.conv2d(h, pk), pbn)
            x = x + h if stride == 1 and x.shape[1] == h.shape[1] else h
        return x
    return forward


def main():
    d = sys.argv[1]
    meta = json.load(open(os.path.join(d, "fixture.json")))
    mc, b = meta["model"], meta["batch"]
    w = {t["name"]: load(d, t["file"], t["shape"]) for t in meta["tensors"]}
    s = mc["input_size"]
    nc = 5 if mc["highpass"] else 3
    p, groups = mc["patch"], mc["norm_groups"]
    x_nhwc = load(d, "input.f32", (b, s, s, nc))

    # Convert Go's layouts once: conv [kh, kw, cin, cout] -> [cout, cin, kh, kw].
    convs = []
    for i, layer in enumerate(mc["layers"]):
        k = w[f"/model/conv{i}/weights"].permute(3, 2, 0, 1).contiguous()
        convs.append((k, w[f"/model/conv{i}/biases"], w[f"/model/conv{i}/norm/scale"], w[f"/model/conv{i}/norm/offset"], layer["stride"]))

    mobilenet = mc.get("backbone") == "mobilenetv2"
    if mobilenet:
        mb = mobilenet_v2(w)

    def forward(x_nhwc):
        n = x_nhwc.shape[0]
        if mobilenet:
            x = mb(x_nhwc.permute(0, 3, 1, 2) * 0.25 + 0.5)  # MobileNetV2 takes v/255
        else:
            # Space-to-depth stem then the 1x1 projection (Go: reshape/transpose/einsum).
            x = x_nhwc.reshape(n, s // p, p, s // p, p, nc).permute(0, 1, 3, 2, 4, 5).reshape(n, s // p, s // p, p * p * nc)
            x = x @ w["/model/stem/weights"] + w["/model/stem/bias"]
            x = x.permute(0, 3, 1, 2)  # NCHW for conv
            x = F.relu(group_norm(x, groups, w["/model/stem/norm/scale"], w["/model/stem/norm/offset"]))
        for k, bias, scale, offset, stride in convs:
            ph, pw = same_pad(x.shape[2], 3, stride), same_pad(x.shape[3], 3, stride)
            x = F.conv2d(F.pad(x, (pw[0], pw[1], ph[0], ph[1])), k, bias, stride=stride)
            x = F.relu(group_norm(x, groups, scale, offset))
        feat = x.permute(0, 2, 3, 1)  # NHWC
        density = F.softplus(feat @ w["/model/density/weights"] + w["/model/density/bias"]) / 100.0
        counts = density.sum(dim=(1, 2))
        log_counts = torch.log1p(counts)
        log_total = torch.log1p(counts.sum(dim=1, keepdim=True))
        pooled = feat.mean(dim=(1, 2))
        g = torch.cat([log_counts, log_total, pooled], dim=1)
        h = F.relu(g @ w["/model/grade_hidden/weights"] + w["/model/grade_hidden/bias"])
        logits = h @ w["/model/grade_out/weights"] + w["/model/grade_out/bias"]
        return density, counts, torch.softmax(logits, dim=-1)

    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    with torch.no_grad():
        dens, counts, probs = forward(x_nhwc)
        grid, nt = meta["grid"], meta["types"]
        checks = {
            "density": (dens, load(d, "density.f32", (b, grid, grid, nt))),
            "counts": (counts, load(d, "counts.f32", (b, nt))),
            "probs": (probs, load(d, "probs.f32", (b, 4))),
        }
        worst = 0.0
        for name, (got, want) in checks.items():
            diff = (got - want).abs().max().item()
            rel = diff / max(want.abs().max().item(), 1e-12)
            print(f"{name}: max |torch - go| = {diff:.3g} (relative {rel:.3g})")
            worst = max(worst, rel)
        if worst > 1e-4:
            sys.exit(f"PyTorch and Go disagree (relative {worst:.3g}): not the same network")
        for _ in range(3):
            forward(x_nhwc)
        runs = []
        for _ in range(20):
            t0 = time.perf_counter()
            forward(x_nhwc)
            runs.append(time.perf_counter() - t0)
    med = float(np.median(runs))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads: batch {b} forward median {med*1000:.1f} ms "
          f"-> {b/med:.1f} photos/s (min {min(runs)*1000:.1f} ms, max {max(runs)*1000:.1f} ms over {len(runs)} runs)")


if __name__ == "__main__":
    main()
