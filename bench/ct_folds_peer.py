"""scikit-learn peers of bench_ct_folds on the same items CSV (group, labels):
StratifiedGroupKFold(5, shuffle=False) on y = the rarest label (its
shuffle=True scrambles the group mapping in sklearn 1.2.1, #32478) and
GroupKFold(5). Prints time, mean and worst relative deviation of each label's
positive share per fold (the metric of stages/multilabel_folds.h)."""
import sys
import time

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

d = np.loadtxt(sys.argv[1], delimiter=",", dtype=np.int64)
groups, Y = d[:, 0], d[:, 1:]
rare = int(np.argmin(Y.sum(0)))
overall = Y.mean(0)


def report(name, splitter, y):
    t0 = time.perf_counter()
    fold = np.zeros(len(d), dtype=int)
    for k, (_, val) in enumerate(splitter.split(Y, y, groups)):
        fold[val] = k
    dt = time.perf_counter() - t0
    devs, zero = [], 0
    for k in range(5):
        part = Y[fold == k]
        share = part.mean(0)
        devs += list(np.abs(share - overall)[overall > 0] / overall[overall > 0])
        zero += int(((part.sum(0) == 0) & (overall > 0)).sum())
    print(f"{name}: {dt:.3f} s; mean relative deviation {np.mean(devs):.4f}, worst {np.max(devs):.4f}, "
          f"zero-positive fold-label pairs {zero}")


report("sklearn StratifiedGroupKFold(shuffle=False, rarest label)", StratifiedGroupKFold(5, shuffle=False), Y[:, rare])
report("sklearn GroupKFold", GroupKFold(5), None)
