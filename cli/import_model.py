"""``mulfree import MODEL.onnx -o NET.mf``: a QONNX model as a mulfree model description."""

from __future__ import annotations

import argparse

from mulfree.gen.model.format import save
from mulfree.gen.importers.qonnx import import_qonnx

from .options import add_output


def add_arguments(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("onnx", help="QONNX model (Brevitas export): a chain of Quant/MatMul/BatchNorm")
    add_output(p, required=True, metavar="NET.mf", help="model description to write (.mf)")
    p.add_argument("--name", help="model name (default: the file name)")


def run(args: argparse.Namespace) -> int:
    model = import_qonnx(args.onnx, name=args.name)
    save(model, args.output)
    schemes = ", ".join(f"{l.name} {l.weights.scheme.value}" for l in model.layers)
    print(f"wrote {args.output}: {len(model.layers)} layers ({schemes}), "
          f"{model.input_bits}-bit input codes of shape {list(model.input_shape)}")
    return 0
