#!/usr/bin/env python3
"""Capacity exploration for the built-in grader's counter, in PyTorch on the CPU.

Not the product: acdtcm trains its grader with GoMLX (`acdtcm train`). This script trains the
same family of network (space-to-depth stem, 3x3 conv + GroupNorm + ReLU layers, softplus
density head, RGB + local redness/darkness input channels, density + log-count losses) much
faster than simplego can, to find out which width/depth/epochs make the counter count well
enough before spending GoMLX training time (or a GPU session) on it.

    /usr/bin/python3 scripts/grader-experiments/torch-capacity/explore.py \
        --manifest data/acne04/manifest.jsonl --layers 48/2,48/1,48/1 --epochs 22 --tag base

Selection is on a 10% holdout of train source photos (as acdtcm does); the valid split is
scored only with --score-valid, once per finished recipe.
"""
import argparse
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
from PIL import Image


def load_photos(manifest, size, cache):
    if os.path.exists(cache):
        z = np.load(cache, allow_pickle=True)
        return z["pixels"], list(z["recs"])
    base = os.path.dirname(os.path.abspath(manifest))
    recs, pix = [], []
    for line in open(manifest):
        r = json.loads(line)
        if r.get("split") not in ("train", "valid"):
            continue
        src = r["image"] if os.path.isabs(r["image"]) else os.path.join(base, r["image"])
        with Image.open(src) as im:
            w, h = im.size
            pix.append(np.asarray(im.convert("RGB").resize((size, size), Image.BOX)))
        boxes = []
        for les in r["diagnosis"].get("lesions") or []:
            b = les.get("box")
            if b:
                boxes.append(((b["x0"] + b["x1"]) / 2 / w, (b["y0"] + b["y1"]) / 2 / h, TYPES.index(les["type"])))
        recs.append(dict(split=r["split"], source=r["source_id"], grade=r["diagnosis"]["severity"]["value"],
                         count=len(boxes), centres=boxes))
    pixels = np.stack(pix)
    np.savez(cache, pixels=pixels, recs=np.array(recs, dtype=object))
    return pixels, recs


TYPES = ["comedone", "papule", "pustule", "nodule"]


def density_target(centres, grid, sigma):
    """Per-type lesion density [types, grid, grid]: one unit-mass Gaussian per lesion centre."""
    t = np.zeros((len(TYPES), grid, grid), np.float32)
    ys, xs = np.mgrid[0:grid, 0:grid].astype(np.float32) + 0.5
    for cx, cy, ty in centres:
        gx, gy = cx * grid, cy * grid
        g = np.exp(-((xs - gx) ** 2 + (ys - gy) ** 2) / (2 * sigma * sigma))
        s = g.sum()
        if s > 0:
            t[ty] += g / s
    return t


def flip_and_brightness(xb, db, amplitude=0.15):
    """The Go trainer's augmentation: a horizontal flip of half the photos (their density maps
    follow) and a brightness gain in [1 - amplitude, 1 + amplitude]. db is not modified."""
    flip = torch.rand(len(xb)) < 0.5
    xb[flip] = torch.flip(xb[flip], [3])
    db = db.clone()
    db[flip] = torch.flip(db[flip], [3])
    gain = 1 + (torch.rand(len(xb), 1, 1, 1) * 2 - 1) * amplitude
    return (xb * gain).clamp(max=255), db


def zoom(xb, db, jitter):
    """Random per-photo zoom by z, log-uniform in [1/(1+jitter), 1+jitter], at a random position:
    z > 1 crops a 1/z window and enlarges it, z < 1 shrinks the photo onto black. The density maps
    are resampled with the same transform and scaled by 1/z^2 so each lesion keeps unit mass
    (lesions cropped away leave it)."""
    n = len(xb)
    z = torch.exp((torch.rand(n) * 2 - 1) * math.log(1 + jitter))
    room = (1 - 1 / z).abs()  # how far the window (z > 1) or the shrunk photo (z < 1) can move
    tx, ty = (torch.rand(n) * 2 - 1) * room, (torch.rand(n) * 2 - 1) * room
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = 1 / z, 1 / z, tx, ty
    gx = F.affine_grid(theta, list(xb.shape), align_corners=False)
    gd = F.affine_grid(theta, list(db.shape), align_corners=False)
    xb = F.grid_sample(xb, gx, mode="bilinear", padding_mode="zeros", align_corners=False)
    db = F.grid_sample(db, gd, mode="bilinear", padding_mode="zeros", align_corners=False) / (z * z).view(n, 1, 1, 1)
    return xb, db


def features(x, highpass):
    """x: uint8-valued float tensor [b, 3, s, s] -> normalised RGB (+ redness, darkness highpass)."""
    rgb = (x / 255 - 0.5) / 0.25
    if not highpass:
        return rgb
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    red = (r - g) / 32
    dark = -(0.299 * r + 0.587 * g + 0.114 * b) / 32
    ch = torch.cat([red, dark], 1)
    blurred = F.avg_pool2d(ch, 9, stride=1, padding=4, count_include_pad=False)
    return torch.cat([rgb, ch - blurred], 1)


class Counter(nn.Module):
    def __init__(self, patch, patch_out, layers, groups, highpass, head_hidden=0, outputs=1):
        super().__init__()
        nc = 5 if highpass else 3
        self.highpass = highpass
        self.stem = nn.Conv2d(nc, patch_out, patch, stride=patch)
        self.stem_norm = nn.GroupNorm(groups, patch_out)
        convs, cin = [], patch_out
        for c, s in layers:
            convs += [nn.Conv2d(cin, c, 3, stride=s, padding=1), nn.GroupNorm(groups, c), nn.ReLU()]
            cin = c
        self.body = nn.Sequential(*convs)
        head = []
        if head_hidden:
            head += [nn.Conv2d(cin, head_hidden, 1), nn.ReLU()]
            cin = head_hidden
        self.head = nn.Sequential(*head, nn.Conv2d(cin, outputs, 1))
        feat_c = layers[-1][0]
        self.grade_hidden = nn.Linear(outputs + 1 + feat_c, 32)
        self.grade_out = nn.Linear(32, 4)
        nn.init.normal_(self.grade_out.weight, std=0.01)
        nn.init.normal_(self.head[-1].weight, std=0.01)
        nn.init.constant_(self.head[-1].bias, 0.541)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.head[-1]:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.stem_norm(self.stem(features(x, self.highpass))))
        x = self.body(x)
        self.features = x
        return F.softplus(self.head(x)) / 100.0  # [b, outputs, grid, grid]

    def grade_logits(self, density):
        """acdtcm's grade head: log counts (no gradient into the counter) + pooled features."""
        c = density.detach().sum((2, 3))
        g = torch.cat([torch.log1p(c), torch.log1p(c.sum(1, keepdim=True)), self.features.mean((2, 3))], 1)
        return self.grade_out(F.relu(self.grade_hidden(g)))


def spearman(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def fit_thresholds(logc, grades):
    """Three increasing thresholds on log1p(count) maximising accuracy (coordinate ascent)."""
    cand = np.unique(logc)
    th = np.log1p(np.array([5.5, 20.5, 50.5]))
    def acc(t):
        return float(np.mean(np.searchsorted(t, logc) == grades))
    best = acc(th)
    for _ in range(4):
        for i in range(3):
            lo = th[i - 1] if i > 0 else -np.inf
            hi = th[i + 1] if i < 2 else np.inf
            for c in cand[(cand > lo) & (cand < hi)]:
                t = th.copy(); t[i] = c + 1e-9
                a = acc(t)
                if a > best:
                    best, th = a, t
    return th, best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", default="data/acne04/manifest.jsonl")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--patch-out", type=int, default=32)
    ap.add_argument("--layers", default="48/2,48/1,48/1")
    ap.add_argument("--head-hidden", type=int, default=0)
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--no-highpass", action="store_true")
    ap.add_argument("--epochs", type=int, default=22)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--loss-density", type=float, default=10)
    ap.add_argument("--per-type", action="store_true", help="4 density channels, per-type + total count loss (acdtcm's loss)")
    ap.add_argument("--count-weight", type=float, default=2)
    ap.add_argument("--grade-loss", type=float, default=0, help="weight of acdtcm's grade head cross-entropy (0: no grade loss)")
    ap.add_argument("--type-weight", type=float, default=1, help="with --per-type: weight of the per-type count terms")
    ap.add_argument("--type-density", type=float, default=1, help="with --per-type: weight of the per-type density SSE relative to --loss-density (the rest is on the total density)")
    ap.add_argument("--scale-jitter", type=float, default=0,
                    help="random zoom per photo, log-uniform in [1/(1+S), 1+S] (zoom-in crops, zoom-out pads with black); "
                         "the density follows (resampled, mass-preserving) and the count target is its new sum")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--score-valid", action="store_true")
    ap.add_argument("--tag", default="run")
    ap.add_argument("--out", default="/tmp/torch-capacity")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed); random.seed(a.seed); np.random.seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    pixels, recs = load_photos(a.manifest, a.size, os.path.join(a.out, f"photos-{a.size}.npz"))
    layers = [tuple(int(v) for v in l.split("/")) for l in a.layers.split(",")]
    grid = a.size // a.patch
    for _, s in layers:
        grid //= s
    dens = np.stack([density_target(r["centres"], grid, a.sigma) for r in recs])
    tcounts = dens.sum((2, 3))
    if not a.per_type:
        dens = dens.sum(1, keepdims=True)
    counts = np.array([r["count"] for r in recs], np.float32)
    grades = np.array([r["grade"] for r in recs])
    sources = sorted({r["source"] for r in recs if r["split"] == "train"})
    rng = random.Random(42)
    hold_src = set(rng.sample(sources, max(1, len(sources) // 10)))
    idx_train = [i for i, r in enumerate(recs) if r["split"] == "train" and r["source"] not in hold_src]
    idx_hold = [i for i, r in enumerate(recs) if r["split"] == "train" and r["source"] in hold_src]
    idx_valid = [i for i, r in enumerate(recs) if r["split"] == "valid"]
    model = Counter(a.patch, a.patch_out, layers, a.groups, not a.no_highpass, a.head_hidden, 4 if a.per_type else 1)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"[{a.tag}] {nparams} params, grid {grid}, train {len(idx_train)} holdout {len(idx_hold)} valid {len(idx_valid)}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.wd)
    steps_per_epoch = len(idx_train) // a.batch
    total_steps = steps_per_epoch * a.epochs
    warm = 30
    def lr_at(step):
        if step < warm:
            return a.lr * (step + 1) / warm
        p = (step - warm) / max(1, total_steps - warm)
        return a.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))
    X = torch.from_numpy(pixels).permute(0, 3, 1, 2)  # uint8 NCHW
    D = torch.from_numpy(dens)
    C = torch.from_numpy(counts)
    TC = torch.from_numpy(tcounts)
    G = torch.from_numpy(grades).long()
    freq = np.bincount(grades[idx_train], minlength=4) / len(idx_train)
    class_w = torch.tensor(freq ** -0.5, dtype=torch.float32)

    def predict(idx):
        model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(idx), 64):
                xb = X[idx[i:i + 64]].float()
                c = model(xb).sum((1, 2, 3)) + model(torch.flip(xb, [3])).sum((1, 2, 3))
                out.append(c / 2)
        model.train()
        return torch.cat(out).numpy()

    step, best, log = 0, None, []
    for ep in range(1, a.epochs + 1):
        t0 = time.time()
        order = list(idx_train)
        random.shuffle(order)
        tot = 0.0
        for bi in range(steps_per_epoch):
            b = order[bi * a.batch:(bi + 1) * a.batch]
            xb, db = flip_and_brightness(X[b].float(), D[b])
            cb, tcb = C[b], TC[b]
            if a.scale_jitter > 0:
                xb, db = zoom(xb, db, a.scale_jitter)
                tcb = db.sum((2, 3)) if a.per_type else tcb
                cb = db.sum((1, 2, 3))
            for g_ in opt.param_groups:
                g_["lr"] = lr_at(step)
            pd = model(xb)
            if a.per_type and a.type_density != 1:
                ld = ((pd.sum(1) - db.sum(1)) ** 2).sum() / len(b) + a.type_density * ((pd - db) ** 2).sum() / len(b)
            else:
                ld = ((pd - db) ** 2).sum() / len(b)
            lc = (torch.log1p(pd.sum((1, 2, 3))) - torch.log1p(cb)).abs().mean()
            loss = a.loss_density * ld + a.count_weight * lc
            if a.grade_loss > 0:
                gl = F.cross_entropy(model.grade_logits(pd), G[b], weight=class_w, label_smoothing=0.1)
                loss = loss + a.grade_loss * gl
            if a.per_type:
                lt = (torch.log1p(pd.sum((2, 3))) - torch.log1p(tcb)).abs().sum(1).mean()
                loss = loss + a.type_weight * lt
            opt.zero_grad(); loss.backward(); opt.step()
            tot += loss.item(); step += 1
        ph = predict(idx_hold)
        sp = spearman(ph, counts[idx_hold]); mae = float(np.abs(ph - counts[idx_hold]).mean())
        rule = float(np.mean(np.searchsorted(np.array([5.5, 20.5, 50.5]), ph) == grades[idx_hold]))
        rec = dict(epoch=ep, loss=tot / steps_per_epoch, hold_spearman=sp, hold_mae=mae, hold_rule_acc=rule, secs=time.time() - t0)
        log.append(rec)
        print(json.dumps(rec), flush=True)
        if best is None or sp > best[0]:
            best = (sp, ep, {k: v.clone() for k, v in model.state_dict().items()})
    def calibrated(tag):
        """Thresholds fitted on the training photos' counts, scored on the holdout (and valid)."""
        pt = predict(idx_train)
        th, tracc = fit_thresholds(np.log1p(pt), grades[idx_train])
        ph = predict(idx_hold)
        r = {f"{tag}_train_acc_calibrated": tracc,
             f"{tag}_hold_acc_calibrated": float(np.mean(np.searchsorted(th, np.log1p(ph)) == grades[idx_hold])),
             f"{tag}_hold_mae": float(np.abs(ph - counts[idx_hold]).mean()),
             f"{tag}_thresholds": np.expm1(th).tolist()}
        if a.score_valid:
            pv = predict(idx_valid)
            r.update({f"{tag}_valid_acc_calibrated": float(np.mean(np.searchsorted(th, np.log1p(pv)) == grades[idx_valid])),
                      f"{tag}_valid_spearman": spearman(pv, counts[idx_valid]),
                      f"{tag}_valid_mae": float(np.abs(pv - counts[idx_valid]).mean())})
        return r

    summary = dict(tag=a.tag, args=vars(a), params=nparams, best_epoch=best[1], hold_spearman=best[0])
    summary.update(calibrated("last"))
    model.load_state_dict(best[2])
    summary.update(calibrated("best"))
    print("SUMMARY " + json.dumps(summary), flush=True)
    with open(os.path.join(a.out, f"{a.tag}.json"), "w") as f:
        json.dump(dict(summary=summary, epochs=log), f, indent=1)


if __name__ == "__main__":
    main()
