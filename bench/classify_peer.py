#!/usr/bin/env python3
"""The PyTorch-eager peer of the classify benchmark: the same end-to-end job
as medpipe's classify stage (decode PNG, torchxrayvision preprocessing in
NumPy/OpenCV, DenseNet121 forward in batches, sigmoid, top label, write a
results CSV), with Debian's python3-torch on OpenBLAS and two threads.

  classify_peer.py IMAGE_DIR OUT_CSV --batch B [--threads 2]

The network is make_reference_model.make_model(tiny=False, seed=0): the same
weights medpipe loads from densenet121_cxr.pt. Prints "images/s X".
"""
import argparse
import glob
import os
import sys
import time

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from make_reference_model import make_model  # noqa: E402

LABELS = ["Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema", "Fibrosis",
          "Effusion", "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass", "Hernia", "Lung Lesion",
          "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum"]


def preprocess(path):
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE).astype(np.float32)
    img = (2 * (img / 255.0) - 1.0) * 1024
    y, x = img.shape
    c = min(x, y)
    img = img[y // 2 - c // 2:y // 2 - c // 2 + c, x // 2 - c // 2:x // 2 - c // 2 + c]
    return cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("images")
    ap.add_argument("out_csv")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(1)
    model = make_model(False, 0).eval()
    files = sorted(glob.glob(os.path.join(a.images, "*.png")))
    start = time.perf_counter()
    rows = []
    with torch.no_grad():
        for i in range(0, len(files), a.batch):
            chunk = files[i:i + a.batch]
            x = torch.from_numpy(np.stack([preprocess(f) for f in chunk]))[:, None]
            probs = torch.sigmoid(model(x)).numpy()
            for f, p in zip(chunk, probs):
                k = int(np.argmax(p))
                rows.append(f"{os.path.basename(f)},{LABELS[k]},{p[k]:.6f}," + ",".join(f"{v:.6f}" for v in p))
    with open(a.out_csv, "w") as out:
        out.write("file,top_label,top_probability," + ",".join(LABELS) + "\n" + "\n".join(rows) + "\n")
    elapsed = time.perf_counter() - start
    print(f"images/s {len(files) / elapsed:.2f}")


if __name__ == "__main__":
    main()
