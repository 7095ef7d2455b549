"""Feasibility probe: frozen features of nsfwjs 4.4.0's MobileNetV2 (MIT; a Keras MobileNetV2
trained to classify 5 NSFW classes) on ACNE04 grades, with a logistic-regression head.
Not part of the product; informs whether a pretrained backbone is worth building in Go.
Usage (after dump_weights.js OUT; Debian python3-torch, python3-pil):
  MNV2_DIR=OUT /usr/bin/python3 probe.py sanity PHOTOS...          # NSFW class probabilities
  MNV2_DIR=OUT /usr/bin/python3 probe.py feats MANIFEST SIZE OUT.npz  # pooled 1280-d features
MANIFEST is the manifest.jsonl of `acdtcm dataset import --format acne04-voc`."""
import json, sys, os, numpy as np, torch
from PIL import Image
torch.set_num_threads(2)
D = os.environ.get("MNV2_DIR", "/tmp/mnv2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mnv2  # noqa: E402
W, layers = mnv2.load(D)


def run(x, upto_pool=True):
    return mnv2.run(layers, W.get, x, upto_pool)


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
