"""``mulfree predict MODEL INPUTS.npy -o OUT.npy``: the golden model on a batch."""

from __future__ import annotations

import argparse
from pathlib import Path

from mulfree.gen.fileio import load_npy, save_npy
from mulfree.gen.model.golden import run as golden_run
from mulfree.gen.model.format import load


def add_arguments(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("model", help="model file (.mf)")
    p.add_argument("inputs", help="input codes, .npy of integers: [N, *input shape] or one sample")
    p.add_argument("-o", "--output", required=True, help="where to write the last layer's output (.npy)")
    p.add_argument("--layer-outputs", metavar="DIR",
                   help="also write every layer's output (and accumulators) into DIR")


def run(args: argparse.Namespace) -> int:
    model = load(args.model)
    x = load_npy(args.inputs)
    result = golden_run(model, x)
    save_npy(args.output, result.output)
    if args.layer_outputs:
        out = Path(args.layer_outputs)
        for i, (layer, y, acc) in enumerate(zip(model.layers, result.outputs, result.accumulators)):
            save_npy(out / f"{i:02d}_{layer.name}.npy", y)
            if acc is not None:
                save_npy(out / f"{i:02d}_{layer.name}.acc.npy", acc)
    print(f"wrote {args.output}: {list(result.output.shape)} ({model.output_kind.value})")
    return 0
