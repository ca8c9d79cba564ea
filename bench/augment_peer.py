#!/usr/bin/python3
"""The Python peer of medpipe's augment stage, for bench/augment_bench.sh.

What an imaging team's augmentation script does, with OpenCV's Python
bindings (Debian python3-opencv) and numpy: for every image of a COCO file,
decode it once, make COPIES augmented versions with the same transforms,
probabilities and ranges as the augment stage's defaults (hflip, rotate,
scale, translate as one cv2.warpAffine; contrast, brightness and gamma as one
cv2.LUT; cv2.GaussianBlur; Gaussian noise), transform the boxes (corners,
bounding box, clip, min_visibility 0.3) and write the copies and a COCO file.

PNG settings are medpipe's (zlib level 1, filter NONE): cv2.imencode cannot
choose the PNG filter (it leaves libpng's adaptive filtering, which costs
~3x the encoding time at level 1), so the peer writes the PNG itself: one
zlib.compress of the rows each prefixed with filter byte 0, the same zlib
medpipe's libpng calls. --opencv-png uses cv2.imencode at level 1 instead.

  augment_peer.py --coco FILE --root DIR --out DIR [--copies 3] [--seed 1] [--shard I/N] [--opencv-png]
"""
import argparse
import hashlib
import json
import math
import os
import random
import struct
import zlib

import cv2
import numpy as np

cv2.setNumThreads(1)  # one process per core, as the bench runs two of them


def png_bytes(img, level):
    """PNG, zlib `level`, every row filter NONE; grey or RGB, 8 or 16 bit."""
    if img.ndim == 3:
        img = img[:, :, ::-1]  # BGR -> RGB
    h, w = img.shape[:2]
    ch = 1 if img.ndim == 2 else img.shape[2]
    depth = 16 if img.dtype == np.uint16 else 8
    rows = np.ascontiguousarray(img).reshape(h, -1)
    if depth == 16:
        rows = rows.astype(">u2")
    raw = np.zeros((h, 1 + rows.nbytes // h), np.uint8)
    raw[:, 1:] = rows.view(np.uint8).reshape(h, -1)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, depth, 0 if ch == 1 else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw.tobytes(), level))
            + chunk(b"IEND", b""))


def plan(rng):
    """The augment stage's default probabilities and ranges."""
    u = rng.random
    p = {"hflip": u() < 0.5}
    def draw(prob, lo, hi, neutral):
        a, b = u(), u()
        return lo + (hi - lo) * b if a < prob else neutral
    p["angle"] = draw(0.5, -10, 10, 0.0)
    p["scale"] = draw(0.5, 0.9, 1.1, 1.0)
    a, bx, by = u(), u(), u()
    p["tx"], p["ty"] = ((-0.05 + 0.1 * bx, -0.05 + 0.1 * by) if a < 0.5 else (0.0, 0.0))
    p["brightness"] = draw(0.5, -0.1, 0.1, 0.0)
    p["contrast"] = draw(0.5, 0.9, 1.1, 1.0)
    p["gamma"] = draw(0.3, 0.8, 1.2, 1.0)
    p["blur"] = draw(0.2, 0.5, 1.0, 0.0)
    p["noise"] = draw(0.2, 0.005, 0.02, 0.0)
    return p


def box_affine(p, w, h):
    c, s = math.cos(math.radians(p["angle"])), math.sin(math.radians(p["angle"]))
    a, b = p["scale"] * c, p["scale"] * s
    cx, cy = w / 2, h / 2
    rs = np.array([[a, b, (1 - a) * cx - b * cy + p["tx"] * w], [-b, a, b * cx + (1 - a) * cy + p["ty"] * h],
                   [0, 0, 1]])
    flip = np.array([[-1, 0, w], [0, 1, 0], [0, 0, 1]], float) if p["hflip"] else np.eye(3)
    return (rs @ flip)[:2]


def apply(p, img, nrng):
    h, w = img.shape[:2]
    out = img
    if p["hflip"] or p["angle"] or p["scale"] != 1 or p["tx"] or p["ty"]:
        m = box_affine(p, w, h)
        m[:, 2] += 0.5 * (m[:, 0] + m[:, 1]) - 0.5  # pixel centres at integers
        out = cv2.warpAffine(out, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    top = 65535.0 if img.dtype == np.uint16 else 255.0
    if p["brightness"] or p["contrast"] != 1 or p["gamma"] != 1:
        v = np.arange(int(top) + 1) / top
        lut = np.clip((v - 0.5) * p["contrast"] + 0.5 + p["brightness"], 0, 1) ** p["gamma"] * top
        lut = np.round(lut).astype(img.dtype)
        out = cv2.LUT(out, lut) if img.dtype == np.uint8 else lut[out]
    if p["blur"]:
        out = cv2.GaussianBlur(out, (0, 0), p["blur"])
    if p["noise"]:
        noise = nrng.standard_normal(out.shape, dtype=np.float32) * (p["noise"] * top)
        out = np.clip(out + noise, 0, top).astype(img.dtype)
    return out


def transform_box(m, b, w, h, min_vis=0.3):
    x, y, bw, bh = b
    pts = np.array([[x, y, 1], [x + bw, y, 1], [x, y + bh, 1], [x + bw, y + bh, 1]], float) @ m.T
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    area = (x1 - x0) * (y1 - y0)
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    vis = (cx1 - cx0) * (cy1 - cy0) if cx1 > cx0 and cy1 > cy0 else 0.0
    if area <= 0 or vis <= 0 or vis < min_vis * area:
        return None
    return [cx0, cy0, cx1 - cx0, cy1 - cy0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coco", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shard", default="0/1")
    ap.add_argument("--opencv-png", action="store_true")
    args = ap.parse_args()
    shard, nshards = map(int, args.shard.split("/"))

    coco = json.load(open(args.coco))
    anns = {}
    for a in coco["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    images = sorted(coco["images"], key=lambda i: i["file_name"])[shard::nshards]
    out_images, out_anns, dropped = [], [], 0
    for src in images:
        img = cv2.imread(os.path.join(args.root, src["file_name"]), cv2.IMREAD_UNCHANGED)
        h, w = img.shape[:2]
        stem, ext = os.path.splitext(src["file_name"])
        for k in range(1, args.copies + 1):
            key = hashlib.sha256(f"{args.seed}/{src['file_name']}/{k}".encode()).digest()
            rng = random.Random(key)
            p = plan(rng)
            out = apply(p, img, np.random.default_rng(int.from_bytes(key[:8], "little")))
            name = f"{stem}_aug{k}{ext}"
            path = os.path.join(args.out, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if args.opencv_png:
                data = cv2.imencode(".png", out, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()
            else:
                data = png_bytes(out, 1)
            with open(path, "wb") as f:
                f.write(data)
            image_id = len(out_images) + 1
            out_images.append(dict(src, id=image_id, file_name=name, origin={"image": src["file_name"]}))
            m = box_affine(p, w, h)
            for a in anns.get(src["id"], []):
                b = transform_box(m, a["bbox"], w, h)
                if b is None:
                    dropped += 1
                    continue
                out_anns.append(dict(a, id=len(out_anns) + 1, image_id=image_id, bbox=b, area=b[2] * b[3]))
    with open(os.path.join(args.out, f"dataset.{shard}.json"), "w") as f:
        json.dump({"images": out_images, "annotations": out_anns, "categories": coco["categories"]}, f)
    print(f"images={len(images)} copies={len(out_images)} boxes_dropped={dropped}")


if __name__ == "__main__":
    main()
