#!/usr/bin/env python3
"""Python peer of medpipe's degrade stage (bench/degrade_bench.sh).

For every clip of its shard: read it with pydicom, draw one degradation
(Gaussian noise sigma 0.2-0.4 of the range, a motion-blur line kernel of
5/7/9 px at a random angle, contrast reduced 30-70% toward the mean, or a
combination), apply it to every frame with NumPy and OpenCV in float32 as
medpipe does (contrast, blur, noise; rounded and clipped to 8 bits), and
write a derived DICOM with pydicom: new SOP Instance and Series Instance
UIDs, ImageType DERIVED, DerivationDescription, SourceImageSequence.

  degrade_peer.py --in DIR --out DIR --shard K/N
"""
import argparse
import hashlib
import os
import sys

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence


def uid(key):
    return "2.25." + str(int(hashlib.sha256(key.encode()).hexdigest()[:30], 16))


def line_kernel(length, angle):
    k = np.zeros((length, length), np.float32)
    half = (length - 1) / 2.0
    a = np.deg2rad(angle)
    dx, dy = np.cos(a), -np.sin(a)
    m = max(abs(dx), abs(dy))
    dx, dy = dx / m * half, dy / m * half
    c = length // 2
    cv2.line(k, (c - int(round(dx)), c - int(round(dy))), (c + int(round(dx)), c + int(round(dy))), 1.0, 1, cv2.LINE_8)
    return k / k.sum()


def draw(rng):
    kind = rng.choice(["noise", "blur", "contrast", "combined"])
    use = {"noise": kind == "noise", "blur": kind == "blur", "contrast": kind == "contrast"}
    if kind == "combined":
        mask = int(rng.choice([3, 5, 6, 7]))
        use = {"noise": bool(mask & 1), "blur": bool(mask & 2), "contrast": bool(mask & 4)}
    return kind, use, rng.uniform(0.2, 0.4), int(rng.choice([5, 7, 9])), rng.uniform(0, 180), rng.uniform(0.3, 0.7)


def degrade(frame, use, sigma, kernel, reduction, rng):
    f = frame.astype(np.float32)
    if use["contrast"]:
        mean = f.mean()
        f = f * (1 - reduction) + mean * reduction
    if use["blur"]:
        f = cv2.filter2D(f, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    if use["noise"]:
        f += rng.normal(0, sigma * 255, f.shape).astype(np.float32)
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--in", dest="inp", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--shard", default="0/1")
    a = ap.parse_args()
    k, n = map(int, a.shard.split("/"))
    files = sorted(f for f in os.listdir(a.inp) if f.endswith(".dcm"))[k::n]
    os.makedirs(a.out, exist_ok=True)
    for name in files:
        i = int(name.split("_")[1].split(".")[0])
        rng = np.random.default_rng(i)
        ds = pydicom.dcmread(os.path.join(a.inp, name))
        px = ds.pixel_array
        frames = px if int(getattr(ds, "NumberOfFrames", 1)) > 1 else px[None]
        kind, use, sigma, length, angle, reduction = draw(rng)
        kernel = line_kernel(length, angle)
        out = np.stack([degrade(f, use, sigma, kernel, reduction, rng) for f in frames])
        src_class, src_uid = ds.SOPClassUID, ds.SOPInstanceUID
        ds.SOPInstanceUID = uid(f"{name}/sop")
        ds.SeriesInstanceUID = uid(f"{name}/series")
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        ds.ImageType = ["DERIVED", "SECONDARY"] + list(ds.get("ImageType", []))[2:]
        ds.DerivationDescription = f"python degrade {kind}: noise={sigma:.3f} blur={length}px/{angle:.1f}deg contrast={reduction:.3f}"
        ref = Dataset()
        ref.ReferencedSOPClassUID = src_class
        ref.ReferencedSOPInstanceUID = src_uid
        ds.SourceImageSequence = Sequence([ref])
        ds.PhotometricInterpretation = "RGB" if out.ndim == 4 else "MONOCHROME2"
        ds.PixelData = out.tobytes()
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(os.path.join(a.out, "synthetic_" + name), write_like_original=False)
    print(f"shard {a.shard}: {len(files)} clips")


if __name__ == "__main__":
    sys.exit(main())
