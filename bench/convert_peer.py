#!/usr/bin/python3
"""The Python peer of the convert benchmark: what the seeds' scripts do.

For each DICOM file: pydicom reads it, numpy applies the rescale slope and
intercept and the usual window recipe (clip to [c - w/2, c + w/2], scale to
0..255), Pillow saves a PNG with its default settings (zlib level 6,
adaptive filtering). One process; the benchmark runs two at once on halves of
the list (--shard) with glibc's heap trimming turned off through the
environment, the fastest Python a user could write (../shared/KNOWN.md).

    convert_peer.py --dicoms DIR --out DIR [--window 40/80] [--shard K/N]

Prints "files=N seconds=S bytes=B" on stdout.
"""
import argparse
import os
import sys
import time

import numpy as np
import pydicom
from PIL import Image


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dicoms", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--window", default="40/80")
    ap.add_argument("--shard", default="0/1")
    args = ap.parse_args()
    center, width = (float(x) for x in args.window.split("/"))
    k, n = (int(x) for x in args.shard.split("/"))

    files = []
    for root, _, names in os.walk(args.dicoms):
        for name in names:
            files.append(os.path.join(root, name))
    files.sort()
    files = files[k::n]

    start = time.monotonic()
    total = 0
    for path in files:
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array.astype(np.float32) * float(getattr(ds, "RescaleSlope", 1)) + float(
            getattr(ds, "RescaleIntercept", 0))
        lo, hi = center - width / 2, center + width / 2
        img = ((np.clip(hu, lo, hi) - lo) / width * 255.0).astype(np.uint8)
        rel = os.path.relpath(path, args.dicoms)
        out = os.path.join(args.out, os.path.splitext(rel)[0] + ".png")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        Image.fromarray(img).save(out)
        total += os.path.getsize(out)
    seconds = time.monotonic() - start
    print(f"files={len(files)} seconds={seconds:.3f} bytes={total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
