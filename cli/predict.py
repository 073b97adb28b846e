"""``mulfree predict MODEL INPUTS.npy -o OUT.npy``: the golden model on a batch."""

from __future__ import annotations

import argparse
from pathlib import Path

from mulfree.gen.fileio import load_npy, safe_name, save_npy
from mulfree.gen.model.golden import run as golden_run
from mulfree.gen.model.format import load

from .options import add_output, output_path


def add_arguments(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("model", help="model file (.mf)")
    p.add_argument("inputs", help="input codes, .npy of integers: [N, *input shape] or one sample")
    add_output(p, required=True, metavar="Y.npy",
               help="where to write the last layer's output (.npy)")
    output_path(p, "--layer-outputs", kind="dir", metavar="DIR",
                help="also write every layer's output (and accumulators) into DIR, as "
                     "NN_<layer name>.npy (the name reduced to letters, digits and ._+-)")


def run(args: argparse.Namespace) -> int:
    model = load(args.model)
    x = load_npy(args.inputs)
    result = golden_run(model, x)
    save_npy(args.output, result.output)
    if args.layer_outputs:
        out = Path(args.layer_outputs)
        for i, (layer, y, acc) in enumerate(zip(model.layers, result.outputs, result.accumulators)):
            stem = f"{i:02d}_{safe_name(layer.name)}"
            save_npy(out / f"{stem}.npy", y)
            if acc is not None:
                save_npy(out / f"{stem}.acc.npy", acc)
    print(f"wrote {args.output}: {list(result.output.shape)} ({model.output_kind.value})")
    return 0
