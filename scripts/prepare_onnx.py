#!/usr/bin/env python3
"""Makes a torch ONNX export loadable by OpenCV 4.6 dnn.

torch.onnx.export puts an Identity node on each duplicated initializer, and
OpenCV 4.6 refuses Identity nodes whose input is an initializer ("Identity
... inputs.size()", opencv/opencv#23886). This replaces each such node by a
copy of its initializer under the node's output name.

Usage: prepare_onnx.py IN.onnx OUT.onnx   (needs python3-onnx)
"""
import sys

import onnx


def fold_identity_initializers(model):
    """Folds Identity(initializer) nodes into initializer copies, in place.

    Returns the number of nodes folded."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    keep, folded = [], 0
    for node in graph.node:
        if node.op_type == "Identity" and len(node.input) == 1 and node.input[0] in inits:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            graph.initializer.append(copy)
            inits[copy.name] = copy
            folded += 1
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    return folded


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    model = onnx.load(argv[1])
    n = fold_identity_initializers(model)
    onnx.checker.check_model(model)
    onnx.save(model, argv[2])
    print(f"prepare_onnx: folded {n} Identity node(s) into initializers: {argv[2]}")


if __name__ == "__main__":
    main(sys.argv)
