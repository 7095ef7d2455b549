#!/usr/bin/env python3
"""JPEG decoding fixtures for internal/imageio: small JPEGs in three chroma subsamplings and
odd sizes, cut from a sample photo, and the RGB pixels PIL (libjpeg-turbo) decodes them to,
stored losslessly as PNG. TestJPEGDecodesLikeLibjpeg compares acdtcm's decoder with them.

    /usr/bin/python3 scripts/imageio-reference/jpeg_fixtures.py     # Debian python3-pil
"""
import os

import PIL
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
SRC = os.path.join(ROOT, "testdata", "samples", "acne04-levle2_102.jpg")
OUT = os.path.join(ROOT, "internal", "imageio", "testdata", "libjpeg")

# name: (crop box in the 640x640 photo, size, PIL subsampling: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0)
CASES = {
    "s420-odd": ((200, 180, 420, 350), (61, 47), 2),
    "s420-even": ((100, 300, 356, 556), (96, 96), 2),
    "s422": ((250, 250, 410, 350), (64, 41), 1),
    "s444": ((300, 200, 400, 300), (33, 33), 0),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    photo = Image.open(SRC).convert("RGB")
    for name, (box, size, sub) in CASES.items():
        img = photo.crop(box).resize(size, Image.BICUBIC)
        jpg = os.path.join(OUT, name + ".jpg")
        img.save(jpg, quality=85, subsampling=sub)
        Image.open(jpg).convert("RGB").save(os.path.join(OUT, name + ".png"))
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("Made by scripts/imageio-reference/jpeg_fixtures.py (Pillow %s, %s): each .png is the RGB\n"
                "PIL decodes the .jpg beside it to. Cut from testdata/samples/acne04-levle2_102.jpg (ACNE04; see\n"
                "testdata/samples/ATTRIBUTION.md for attribution).\n" % (PIL.__version__, "libjpeg-turbo"))


if __name__ == "__main__":
    main()
