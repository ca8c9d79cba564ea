"""Python peer of the ctprep stage, as the CT-RATE preprocessing scripts do it:
nibabel load, HU from the metadata CSV's slope/intercept, clip, resample with
scipy.ndimage.zoom(order=1) to the target spacing, centre crop/pad, three
windows as channels, CLAHE per axial slice with cv2 (8-bit), float16 .npy.

  ctprep_peer.py VOLUMES_DIR METADATA_CSV OUT_DIR PROCESSES
"""
import csv
import os
import re
import sys
from multiprocessing import Pool

import cv2
import nibabel as nib
import numpy as np
import scipy.ndimage as nd

SPACING = (1.5, 0.75, 0.75)  # z, y, x
SHAPE = (240, 480, 480)
WINDOWS = ((-600, 1500), (40, 400), (400, 1800))
HU = (-1000, 400)


def crop_pad(v, shape, fill):
    out = np.full(shape, fill, dtype=v.dtype)
    src, dst = [], []
    for n, o in zip(v.shape, shape):
        s = (n - o) // 2 if n > o else 0
        d = (o - n) // 2 if o > n else 0
        m = min(n, o)
        src.append(slice(s, s + m))
        dst.append(slice(d, d + m))
    out[tuple(dst)] = v[tuple(src)]
    return out


def prep(args):
    path, meta, out_dir = args
    slope, inter, xy, z = meta
    raw = np.asanyarray(nib.load(path).dataobj.get_unscaled()).astype(np.float32)
    v = np.transpose(raw, (2, 1, 0))  # z, y, x
    hu = np.clip(v * slope + inter, *HU)
    factors = [n * s / t for n, s, t in zip(hu.shape, (z, xy, xy), SPACING)]
    size = [max(1, int(round(f))) for f in factors]
    hu = nd.zoom(hu, [s / n for s, n in zip(size, hu.shape)], order=1, grid_mode=True, mode="nearest")
    hu = crop_pad(hu, SHAPE, HU[0])
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    chans = []
    for c, w in WINDOWS:
        ch = np.clip((hu - (c - w / 2)) / w, 0, 1)
        u8 = np.rint(ch * 255).astype(np.uint8)
        eq = np.stack([clahe.apply(s) for s in u8])
        chans.append(eq.astype(np.float32) / 255)
    name = os.path.basename(path)[: -len(".nii.gz")]
    np.save(os.path.join(out_dir, name + ".npy"), np.stack(chans).astype(np.float16))


def main():
    vol_dir, meta_csv, out_dir, procs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    os.makedirs(out_dir, exist_ok=True)
    meta = {}
    with open(meta_csv) as f:
        for row in csv.DictReader(f):
            xy = float(re.findall(r"[-+.\d]+", row["XYSpacing"])[0])
            meta[row["VolumeName"]] = (float(row["RescaleSlope"]), float(row["RescaleIntercept"]), xy, float(row["ZSpacing"]))
    jobs = [(os.path.join(vol_dir, n), meta[n], out_dir) for n in sorted(os.listdir(vol_dir)) if n.endswith(".nii.gz")]
    with Pool(procs) as pool:
        pool.map(prep, jobs, chunksize=1)


if __name__ == "__main__":
    main()
