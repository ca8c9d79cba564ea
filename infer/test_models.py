#!/usr/bin/env python3
"""Model files the model tests need beside the reference network, written
with python3-torch and python3-onnx:

  test_models.py OUT_DIR TINY_CXR.onnx

- unmarked.pt: a TorchScript module without medpipe's marks, 5 outputs per
  image (the mean of each fifth of the image, left to right).
- state_dict.pt: torch.save of a state dict: a PyTorch zip archive that is
  not TorchScript.
- unknown_op.onnx: a well-formed ONNX model (18 outputs declared) whose one
  node is an operator no runtime has: it passes a structural check and
  fails to load.
- unmarked.onnx: TINY_CXR.onnx with its metadata_props removed.
"""
import os
import sys

import onnx
import torch
from onnx import TensorProto, helper


class Fifths(torch.nn.Module):
    def forward(self, x):
        return torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, [1, 5]), 1)


def main():
    out, tiny_onnx = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    torch.jit.save(torch.jit.script(Fifths()), os.path.join(out, "unmarked.pt"))
    torch.save({"weight": torch.zeros(3)}, os.path.join(out, "state_dict.pt"))

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 224, 224])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 18])
    node = helper.make_node("NoSuchOp", ["input"], ["logits"], domain="")
    graph = helper.make_graph([node], "unknown", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.save(model, os.path.join(out, "unknown_op.onnx"))

    m = onnx.load(tiny_onnx)
    del m.metadata_props[:]
    onnx.save(m, os.path.join(out, "unmarked.onnx"))


if __name__ == "__main__":
    main()
