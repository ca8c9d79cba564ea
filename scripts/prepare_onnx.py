#!/usr/bin/env python3
"""Makes a torch ONNX export loadable by OpenCV 4.6 dnn.

torch.onnx.export puts an Identity node on each duplicated initializer, and
OpenCV 4.6 refuses Identity nodes whose input is an initializer ("Identity
... inputs.size()", opencv/opencv#23886). This replaces each such node by a
copy of its initializer under the node's output name.

It can also write medpipe's marks into the model's metadata_props
(infer/model_info.h): --name NAME (medpipe.name), --untrained
(medpipe.untrained = true: medpipe then says "untrained model: levels mean
nothing" in every result) and the number of outputs (medpipe.outputs) read
from the graph's first output when its shape is known. Marks already in the
file are kept unless given again.

Usage: prepare_onnx.py IN.onnx OUT.onnx [--name NAME] [--untrained]   (needs python3-onnx)
"""
import argparse
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


def set_marks(model, name=None, untrained=False):
    """Adds medpipe's marks to `model`'s metadata_props, keeping others."""
    props = {p.key: p.value for p in model.metadata_props}
    if name:
        props["medpipe.name"] = name
    if untrained:
        props["medpipe.untrained"] = "true"
    out = model.graph.output[0].type.tensor_type.shape.dim if model.graph.output else []
    sizes = [d.dim_value for d in out[1:]]
    if sizes and all(v > 0 for v in sizes):
        n = 1
        for v in sizes:
            n *= v
        props["medpipe.outputs"] = str(n)
    onnx.helper.set_model_props(model, props)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--name", help="medpipe.name: the model's name in medpipe's results")
    ap.add_argument("--untrained", action="store_true", help="mark the weights as untrained (random)")
    a = ap.parse_args(argv[1:])
    model = onnx.load(a.input)
    n = fold_identity_initializers(model)
    set_marks(model, a.name, a.untrained)
    onnx.checker.check_model(model)
    onnx.save(model, a.output)
    print(f"prepare_onnx: folded {n} Identity node(s) into initializers: {a.output}")


if __name__ == "__main__":
    main(sys.argv)
