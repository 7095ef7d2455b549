"""Does a pretrained backbone count ACNE04 lesions better? A feasibility probe outside the product.

The first blocks of nsfwjs 4.4.0's MobileNetV2 (MIT; ImageNet-initialised Keras MobileNetV2
fine-tuned by its authors on 5 NSFW classes), up to block_5_add (stride 8: a 28x28x32 map at
224 px), fine-tuned end to end as a lesion-density counter with a small head, with the losses,
data, augmentation, holdout and calibration of the PyTorch replica
(../torch-capacity/explore.py: total-lesion density SSE x10 + |log1p count| x2, flip +
brightness, 10% of train sources held out with seed 42, three count thresholds fitted on the
training photos). BatchNorm statistics stay frozen (the pretrained ones); every weight trains.

    cd "$(mktemp -d)" && npm pack nsfwjs@4.4.0 && tar xzf nsfwjs-4.4.0.tgz
    node scripts/grader-experiments/pretrained-probe/dump_weights.js package/dist/models/mobilenet_v2 /tmp/mnv2
    MNV2_DIR=/tmp/mnv2 /usr/bin/python3 scripts/grader-experiments/pretrained-probe/finetune_counter.py --epochs 10

Writes /tmp/torch-capacity/<tag>.json like explore.py. Never reads the valid split.

Status (2026-11-27): 74 k parameters in the counter; the whole flow was smoke-tested on 60
train photos for one epoch (CPU), never trained on the full set: on the 2-core VM one step of
16 photos takes 5-10 s (PyTorch 1.13's CPU depthwise convolutions at 112x112), 15-27 min per
epoch, so it is a job for the device machine (`--device cuda`, never yet run there) or a
longer session.
"""
import argparse
import importlib.util
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mnv2  # noqa: E402
spec = importlib.util.spec_from_file_location("explore", os.path.join(HERE, "..", "torch-capacity", "explore.py"))
explore = importlib.util.module_from_spec(spec)
spec.loader.exec_module(explore)


class PretrainedCounter(nn.Module):
    """MobileNetV2 (Keras topology interpreted layer by layer) up to `stop`, then a density head."""

    def __init__(self, mnv2_dir, stop="block_5_add", head=64):
        super().__init__()
        weights, topology = mnv2.load(mnv2_dir)
        self.layers = []
        for l in topology:
            self.layers.append(l)
            if l["config"]["name"] == stop:
                break
        used = {l["config"]["name"] for l in self.layers}  # the layers after `stop` are not part of the counter
        self.w = nn.ParameterDict()
        self.stats = {}  # frozen BatchNorm statistics
        for name, t in weights.items():
            if name.split("/")[0] not in used:
                continue
            if name.endswith(("moving_mean", "moving_variance")):
                self.stats[name] = t
            else:
                self.w[name.replace("/", "__")] = nn.Parameter(t)
        ch = self.w["block_5_project_BN__gamma"].shape[0] if stop == "block_5_add" else None
        self.head = nn.Sequential(nn.Conv2d(ch, head, 3, padding=1), nn.GroupNorm(4, head), nn.ReLU(), nn.Conv2d(head, 1, 1))
        nn.init.constant_(self.head[-1].bias, 0.541)

    def param(self, name):
        """A backbone weight by its Keras name (None when the layer has none, e.g. no bias)."""
        if name in self.stats:
            return self.stats[name]
        key = name.replace("/", "__")
        return self.w[key] if key in self.w else None

    def backbone(self, x):
        return mnv2.run(self.layers, self.param, x, upto_pool=False)

    def forward(self, x):
        """x: uint8-valued float [b, 3, s, s] -> lesion density [b, 1, s/8, s/8]."""
        return F.softplus(self.head(self.backbone(x / 255.0))) / 100.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", default="data/acne04/manifest.jsonl")
    ap.add_argument("--mnv2", default=os.environ.get("MNV2_DIR", "/tmp/mnv2"))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tag", default="mnv2-counter")
    ap.add_argument("--out", default="/tmp/torch-capacity")
    ap.add_argument("--cache-dir", default="/tmp/torch-capacity", help="where the resized-photo cache (~0.5 GB) goes")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed); random.seed(a.seed); np.random.seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.cache_dir, exist_ok=True)
    pixels, recs = explore.load_photos(a.manifest, 224, os.path.join(a.cache_dir, "photos-224.npz"))
    grid = 28
    dens = np.stack([explore.density_target(r["centres"], grid, 1.0) for r in recs]).sum(1, keepdims=True)
    counts = np.array([r["count"] for r in recs], np.float32)
    grades = np.array([r["grade"] for r in recs])
    sources = sorted({r["source"] for r in recs if r["split"] == "train"})
    hold_src = set(random.Random(42).sample(sources, max(1, len(sources) // 10)))  # explore.py's holdout
    idx_train = [i for i, r in enumerate(recs) if r["split"] == "train" and r["source"] not in hold_src]
    idx_hold = [i for i, r in enumerate(recs) if r["split"] == "train" and r["source"] in hold_src]
    dev = torch.device(a.device)
    model = PretrainedCounter(a.mnv2)
    model.stats = {k: v.to(dev) for k, v in model.stats.items()}
    model.to(dev)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"[{a.tag}] {nparams} params, train {len(idx_train)} holdout {len(idx_hold)}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.wd)
    steps_per_epoch = len(idx_train) // a.batch
    total, warm = steps_per_epoch * a.epochs, 30

    def lr_at(step):
        if step < warm:
            return a.lr * (step + 1) / warm
        p = (step - warm) / max(1, total - warm)
        return a.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))

    X = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    D, C = torch.from_numpy(dens), torch.from_numpy(counts)

    def predict(idx):
        model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(idx), 32):
                xb = X[idx[i:i + 32]].float().to(dev)
                out.append(((model(xb).sum((1, 2, 3)) + model(torch.flip(xb, [3])).sum((1, 2, 3))) / 2).cpu())
        model.train()
        return torch.cat(out).numpy()

    step, log = 0, []
    for ep in range(1, a.epochs + 1):
        t0 = time.time()
        order = list(idx_train)
        random.shuffle(order)
        tot = 0.0
        for bi in range(steps_per_epoch):
            b = order[bi * a.batch:(bi + 1) * a.batch]
            xb, db = explore.flip_and_brightness(X[b].float(), D[b])
            xb, db = xb.to(dev), db.to(dev)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            pd = model(xb)
            ld = ((pd - db) ** 2).sum() / len(b)
            lc = (torch.log1p(pd.sum((1, 2, 3))) - torch.log1p(C[b].to(dev))).abs().mean()
            loss = 10 * ld + 2 * lc
            opt.zero_grad(); loss.backward(); opt.step()
            tot += loss.item(); step += 1
        ph = predict(idx_hold)
        rec = dict(epoch=ep, loss=tot / steps_per_epoch, hold_spearman=explore.spearman(ph, counts[idx_hold]),
                   hold_mae=float(np.abs(ph - counts[idx_hold]).mean()), secs=time.time() - t0)
        log.append(rec)
        print(json.dumps(rec), flush=True)
    pt = predict(idx_train)
    th, tracc = explore.fit_thresholds(np.log1p(pt), grades[idx_train])
    ph = predict(idx_hold)
    summary = dict(tag=a.tag, args=vars(a), params=nparams, last_train_acc_calibrated=tracc,
                   last_hold_acc_calibrated=float(np.mean(np.searchsorted(th, np.log1p(ph)) == grades[idx_hold])),
                   last_hold_mae=float(np.abs(ph - counts[idx_hold]).mean()),
                   last_hold_spearman=explore.spearman(ph, counts[idx_hold]), last_thresholds=np.expm1(th).tolist())
    print("SUMMARY " + json.dumps(summary), flush=True)
    with open(os.path.join(a.out, f"{a.tag}.json"), "w") as f:
        json.dump(dict(summary=summary, epochs=log), f, indent=1)


if __name__ == "__main__":
    main()
