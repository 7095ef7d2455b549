"""Feasibility probe: frozen features of nsfwjs 4.4.0's MobileNetV2 (MIT; a Keras MobileNetV2
trained to classify 5 NSFW classes) on ACNE04 grades, with a logistic-regression head.
Not part of the product; informs whether a pretrained backbone is worth building in Go.
Usage (after dump_weights.js OUT; Debian python3-torch, python3-pil):
  MNV2_DIR=OUT /usr/bin/python3 probe.py sanity PHOTOS...          # NSFW class probabilities
  MNV2_DIR=OUT /usr/bin/python3 probe.py feats MANIFEST SIZE OUT.npz  # pooled 1280-d features
MANIFEST is the manifest.jsonl of `acdtcm dataset import --format acne04-voc`."""
import json, sys, os, re, numpy as np, torch, torch.nn.functional as F
from PIL import Image
torch.set_num_threads(2)
D = os.environ.get("MNV2_DIR", "/tmp/mnv2")
man = json.load(open(f"{D}/manifest.json")); raw = np.fromfile(f"{D}/weights.bin", dtype=np.float32)
W, off = {}, 0
for e in man:
    n = int(np.prod(e["shape"])); W[e["name"]] = torch.from_numpy(raw[off:off+n].reshape(e["shape"]).copy()); off += n
layers = json.load(open(f"{D}/topology.json"))

def run(x, upto_pool=True):
    t = {}
    t["input_1"] = x
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
                k = W[name + "/kernel"].permute(3, 2, 0, 1); groups = 1
            else:
                k = W[name + "/depthwise_kernel"].permute(2, 3, 0, 1); groups = h.shape[1]  # [kh,kw,C,1] -> [C,1,kh,kw]
            kh = k.shape[2]
            pad = 0
            if cfg["padding"] == "same":
                assert s == 1
                pad = kh // 2
            y = F.conv2d(h, k, W.get(name + "/bias"), stride=s, padding=pad, groups=groups)
        elif c == "BatchNormalization":
            y = F.batch_norm(h, W[name + "/moving_mean"], W[name + "/moving_variance"], W[name + "/gamma"], W[name + "/beta"], False, 0.0, cfg["epsilon"])
        elif c == "ReLU":
            y = torch.clamp(h, 0, cfg.get("max_value") or 1e30)
        elif c == "Add":
            y = ins[0] + ins[1]
        elif c == "AveragePooling2D":
            if upto_pool:
                return h  # out_relu: [B,1280,h,w]
            y = F.avg_pool2d(h, cfg["pool_size"][0])
        elif c == "Flatten":
            y = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)
        elif c == "Dense":
            y = h @ W[name + "/kernel"] + W[name + "/bias"]
            if cfg["activation"] == "relu": y = F.relu(y)
            if cfg["activation"] == "softmax": y = F.softmax(y, -1)
        elif c == "Dropout":
            y = h
        else:
            raise ValueError(c)
        t[name] = y
    return y

def load(path, size):
    im = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)

if sys.argv[1] == "sanity":
    for p in sys.argv[2:]:
        print(os.path.basename(p), [round(v, 3) for v in run(load(p, 224)[None], upto_pool=False)[0].tolist()], "(Drawing, Hentai, Neutral, Porn, Sexy)")
    sys.exit()

# features: manifest.jsonl of `acdtcm dataset import` (image paths relative to it)
mpath, size, out = sys.argv[2], int(sys.argv[3]), sys.argv[4]
recs = [json.loads(l) for l in open(mpath)]
base = os.path.dirname(mpath)
feats, meta = [], []
with torch.no_grad():
    for i in range(0, len(recs), 16):
        b = recs[i:i+16]
        x = torch.stack([load(os.path.normpath(os.path.join(base, r["image"])), size) for r in b])
        f = run(x)                       # [B,1280,h,w]
        g = torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)
        feats.append(g.numpy())
        for r in b:
            meta.append((r["split"], r.get("source_id", r["image_id"]), r["diagnosis"]["severity"]["value"], r["diagnosis"].get("lesion_count", 0)))
        if i % 320 == 0: print(i, len(recs), flush=True)
np.savez(out, x=np.concatenate(feats), split=np.array([m[0] for m in meta]), src=np.array([m[1] for m in meta]),
         y=np.array([m[2] for m in meta]), n=np.array([m[3] for m in meta]))
