#!/usr/bin/env python3
"""Pack an imported ACNE04 dataset small enough to travel to a device machine with the repo
(everything that travels, binary included, must stay under 64 MiB): every photo resized to
SIZE x SIZE by area averaging (PIL's BOX filter: the resize the grader itself does, so its
training resize of these photos is the identity) and re-encoded as JPEG, lesion boxes scaled
to match. Used by scripts/gpu/grader.sh; see scripts/gpu/README.md.

    /usr/bin/python3 scripts/gpu/pack-grader-data.py data/acne04/manifest.jsonl gpu-data/acne04-224

224 px at quality 90 is ~34 MiB for the 3,256 ACNE04 photos (256 px at quality 85: ~33 MiB).
"""
import argparse
import json
import os

from PIL import Image


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("manifest", help="manifest.jsonl written by acdtcm dataset import")
    ap.add_argument("out", help="output directory (manifest.jsonl + images/)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--splits", default="train,valid")
    a = ap.parse_args()
    splits = set(a.splits.split(","))
    base = os.path.dirname(os.path.abspath(a.manifest))
    os.makedirs(os.path.join(a.out, "images"), exist_ok=True)
    recs, total = [], 0
    with open(a.manifest) as f:
        for line in f:
            r = json.loads(line)
            if r.get("split") not in splits:
                continue
            src = r["image"] if os.path.isabs(r["image"]) else os.path.join(base, r["image"])
            name = os.path.join("images", r["image_id"] + ".jpg")
            dst = os.path.join(a.out, name)
            with Image.open(src) as im:
                w, h = im.size
                im.convert("RGB").resize((a.size, a.size), Image.BOX).save(dst, "JPEG", quality=a.quality)
            total += os.path.getsize(dst)
            sx, sy = a.size / (r.get("width") or w), a.size / (r.get("height") or h)
            for les in r.get("diagnosis", {}).get("lesions") or []:
                b = les.get("box")
                if b:
                    les["box"] = {"x0": b["x0"] * sx, "y0": b["y0"] * sy, "x1": b["x1"] * sx, "y1": b["y1"] * sy}
            r.update(image=name, width=a.size, height=a.size)
            recs.append(r)
    tmp = os.path.join(a.out, ".manifest.jsonl.tmp")
    with open(tmp, "w") as f:
        for r in recs:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, os.path.join(a.out, "manifest.jsonl"))
    print(f"{a.out}: {len(recs)} photos, {total / 2**20:.1f} MiB of JPEG at {a.size} px, quality {a.quality}")


if __name__ == "__main__":
    main()
