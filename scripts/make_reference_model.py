#!/usr/bin/env python3
"""Writes a reference chest X-ray classifier as TorchScript and ONNX.

The network is torchvision's DenseNet121 architecture with one input channel
and 18 outputs (the outputs of torchxrayvision's "all" model), written out
here so only Debian's python3-torch is needed. Its weights are seeded random
numbers: it is UNTRAINED and stands in for the user's own model, so medpipe's
classify stage, server, tests and demo run without downloads. BatchNorm
weights, biases and running statistics are randomised (a few batches in train
mode before eval), because default BatchNorm gives logits of ~370 and
saturated probabilities that test nothing.

  make_reference_model.py OUT_DIR [--tiny] [--seed S] [--reference N] [--no-onnx] [--calibrate DIR]

writes OUT_DIR/densenet121_cxr.pt (TorchScript, not frozen: medpipe freezes
at load) and OUT_DIR/densenet121_cxr.onnx (opset 14, dynamic batch, Identity
nodes folded by prepare_onnx.py so OpenCV 4.6 reads it). --tiny writes a small
DenseNet (blocks (2, 2), growth 8) as tiny_cxr.{pt,onnx} for tests.
--reference N also writes N seeded image-like inputs (1x224x224, float32,
values in [-1024, 1024]) and the model's logits for them, as raw little-endian float32
files <name>.inputs.f32 and <name>.logits.f32.

With torchxrayvision installed, --xrv exports its trained "all" model instead
(xrv_all.pt with sigmoid + op_norm inside, and xrv_all_logits.onnx with
logits only: give classify its op_threshs, printed by this script).

Every file carries medpipe's marks (infer/model_info.h): medpipe.name,
medpipe.outputs and, for the seeded networks, medpipe.untrained = true, as
TorchScript extra files and ONNX metadata_props. medpipe then writes
"untrained model: levels mean nothing" into every result of such a model.
"""
import argparse
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prepare_onnx import fold_identity_initializers  # noqa: E402


class DenseLayer(nn.Module):
    def __init__(self, in_ch, growth, bn_size):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, x):
        y = self.conv1(F.relu(self.norm1(x)))
        y = self.conv2(F.relu(self.norm2(y)))
        return torch.cat([x, y], 1)


class Transition(nn.Sequential):
    def __init__(self, in_ch, out_ch):
        super().__init__(nn.BatchNorm2d(in_ch), nn.ReLU(), nn.Conv2d(in_ch, out_ch, 1, bias=False),
                         nn.AvgPool2d(2, 2))


class DenseNet(nn.Module):
    """torchvision.models.DenseNet with `in_channels` inputs."""

    def __init__(self, blocks=(6, 12, 24, 16), growth=32, init_features=64, bn_size=4, num_classes=18,
                 in_channels=1):
        super().__init__()
        layers = [nn.Conv2d(in_channels, init_features, 7, 2, 3, bias=False), nn.BatchNorm2d(init_features),
                  nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
        ch = init_features
        for i, n in enumerate(blocks):
            for _ in range(n):
                layers.append(DenseLayer(ch, growth, bn_size))
                ch += growth
            if i != len(blocks) - 1:
                layers.append(Transition(ch, ch // 2))
                ch //= 2
        layers.append(nn.BatchNorm2d(ch))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(ch, num_classes)

    def forward(self, x):
        x = F.relu(self.features(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


def smooth_batch(n, generator):
    """Smooth image-like inputs in the xrv range [-1024, 1024]: random
    low-frequency fields plus a little noise, closer to radiographs than
    uniform noise is, so the BatchNorm statistics fit real inputs."""
    low = torch.rand(n, 1, 8, 8, generator=generator)
    x = F.interpolate(low, size=(224, 224), mode="bilinear", align_corners=False)
    x = x + 0.05 * torch.randn(n, 1, 224, 224, generator=generator)
    return (x.clamp(0, 1) * 2 - 1) * 1024


def xrv_preprocess(path):
    """torchxrayvision's normalize + XRayCenterCrop + XRayResizer (cv2)."""
    import cv2
    import numpy as np
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE).astype(np.float32)
    img = (2 * (img / 255.0) - 1.0) * 1024
    y, x = img.shape
    c = min(x, y)
    img = img[y // 2 - c // 2:y // 2 - c // 2 + c, x // 2 - c // 2:x // 2 - c // 2 + c]
    return torch.from_numpy(cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA))[None]


def make_model(tiny, seed, calibrate=None):
    """`calibrate`: PNG/JPEG files whose preprocessed pixels set the BatchNorm
    statistics and centre the logits (default: smooth random fields)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 7)
    if calibrate:
        images = torch.stack([xrv_preprocess(f) for f in sorted(calibrate)[:16]])

        def calibration_batch(n, generator):  # noqa: F811 (images from the files)
            return images[torch.randint(len(images), (n,), generator=generator)]
    else:
        calibration_batch = smooth_batch
    model = DenseNet(blocks=(2, 2), growth=8, init_features=16) if tiny else DenseNet()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
            m.momentum = None  # cumulative average over the calibration batches
    # Realistic running statistics: a few batches of image-like inputs in
    # train mode, then eval.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(calibration_batch(4, g))
    model.eval()
    with torch.no_grad():
        # Logits of a few units around a random per-label offset on such
        # inputs, so probabilities are spread over (0, 1) and differ between
        # images instead of saturating.
        z = model(calibration_batch(8, g))
        scale = 1.5 / float(z.std(0).mean().clamp_min(1e-6))
        model.classifier.weight.mul_(scale)
        model.classifier.bias.mul_(scale).sub_(z.mean(0) * scale).add_(torch.rand(z.shape[1], generator=g) * 2 - 1.5)
    return model


def marks(name, outputs, untrained):
    """medpipe's marks, as strings (the same keys in both formats)."""
    m = {"medpipe.name": name, "medpipe.outputs": str(outputs)}
    if untrained:
        m["medpipe.untrained"] = "true"
    return m


def export(model, out_dir, name, channels=1, onnx_too=True, model_marks=None):
    os.makedirs(out_dir, exist_ok=True)
    example = torch.rand(1, channels, 224, 224) * 2048 - 1024
    pt = os.path.join(out_dir, name + ".pt")
    torch.jit.save(torch.jit.trace(model, example), pt, _extra_files=dict(model_marks or {}))
    if not onnx_too:
        print(f"make_reference_model: wrote {pt}")
        return
    onnx_path = os.path.join(out_dir, name + ".onnx")
    torch.onnx.export(model, example, onnx_path, opset_version=14, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    import onnx
    m = onnx.load(onnx_path)
    fold_identity_initializers(m)
    if model_marks:
        onnx.helper.set_model_props(m, dict(model_marks))
    onnx.save(m, onnx_path)
    print(f"make_reference_model: wrote {pt} and {onnx_path}")


def write_reference(model, out_dir, name, n, seed):
    g = torch.Generator().manual_seed(seed + 1)
    x = smooth_batch(n, g)  # image-like, as the network was calibrated on
    with torch.no_grad():
        y = model(x)
    x.numpy().astype("<f4").tofile(os.path.join(out_dir, name + ".inputs.f32"))
    y.numpy().astype("<f4").tofile(os.path.join(out_dir, name + ".logits.f32"))
    print(f"make_reference_model: {n} reference inputs, logits in [{y.min():.2f}, {y.max():.2f}]")


def export_xrv(out_dir):
    import torchxrayvision as xrv  # only on a machine that has it
    model = xrv.models.DenseNet(weights="densenet121-res224-all").eval()
    example = torch.rand(1, 1, 224, 224) * 2048 - 1024
    os.makedirs(out_dir, exist_ok=True)
    torch.jit.save(torch.jit.trace(model, example), os.path.join(out_dir, "xrv_all.pt"))

    class Logits(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            f = F.relu(self.m.features(x))
            return self.m.classifier(F.adaptive_avg_pool2d(f, 1).flatten(1))

    n = len(model.pathologies)
    torch.jit.save(torch.jit.load(os.path.join(out_dir, "xrv_all.pt")), os.path.join(out_dir, "xrv_all.pt"),
                   _extra_files=marks("torchxrayvision densenet121-res224-all", n, False))
    export(Logits(model), out_dir, "xrv_all_logits",
           model_marks=marks("torchxrayvision densenet121-res224-all (logits)", n, False))
    print("labels:", list(model.pathologies))
    print("op_threshs:", [None if t != t else round(float(t), 6) for t in model.op_threshs])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference", type=int, default=0)
    ap.add_argument("--xrv", action="store_true")
    ap.add_argument("--calibrate", help="a folder of PNG images to calibrate on (e.g. medpipe-cxrgen output)")
    ap.add_argument("--no-onnx", action="store_true", help="write the TorchScript file only (faster)")
    a = ap.parse_args()
    torch.set_num_threads(2)
    if a.xrv:
        export_xrv(a.out_dir)
        return
    name = "tiny_cxr" if a.tiny else "densenet121_cxr"
    import glob
    calibrate = sorted(glob.glob(os.path.join(a.calibrate, "*.png"))) if a.calibrate else None
    model = make_model(a.tiny, a.seed, calibrate)
    label = f"medpipe reference {'tiny DenseNet' if a.tiny else 'DenseNet121'} cxr (untrained, seed {a.seed})"
    export(model, a.out_dir, name, onnx_too=not a.no_onnx,
           model_marks=marks(label, model.classifier.out_features, True))
    if a.reference:
        write_reference(model, a.out_dir, name, a.reference, a.seed)


if __name__ == "__main__":
    main()
