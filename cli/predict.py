"""``mulfree predict MODEL INPUTS.npy -o OUT.npy``: the golden model on a batch.

Without ``--float`` the inputs are the integer network's input codes and the output is the
last layer's (codes, accumulators or class). With ``--float`` (imported models, and
models trained on a ``.npz`` data set) the inputs are what the source model takes (its
layout and float values, through the model's own input encoding); the output is what an
imported source model gives (its logits through the output affine, or its quantized
outputs, then its tail: Softmax, TopK, ...), or, for a model trained here, the last
layer's output as without ``--float``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mulfree.gen.fileio import load_npy, safe_name, save_npy
from mulfree.gen.model.encoding import decode_outputs, encode_inputs, has_decoding
from mulfree.gen.model.golden import run as golden_run
from mulfree.gen.model.format import load

from .options import add_output, output_path


def add_arguments(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("model", help="model file (.mf)")
    p.add_argument("inputs", help="input codes, .npy of integers: [N, *input shape] or one "
                                  "sample (with --float: the source model's float inputs)")
    add_output(p, required=True, metavar="Y.npy",
               help="where to write the last layer's output (.npy)")
    p.add_argument("--float", dest="float_io", action="store_true",
                   help="models with an input encoding (imported, or trained on a .npz "
                        "data set): float inputs as the source model takes them; imported "
                        "models give the source model's outputs (logits, Softmax, ...)")
    output_path(p, "--layer-outputs", kind="dir", metavar="DIR",
                help="also write every layer's output (and accumulators) into DIR, as "
                     "NN_<layer name>.npy (the name reduced to letters, digits and ._+-)")


def run(args: argparse.Namespace) -> int:
    model = load(args.model)
    x = load_npy(args.inputs)
    if args.float_io:
        x = encode_inputs(model, x)
    result = golden_run(model, x)
    if args.float_io and has_decoding(model):
        out = decode_outputs(model, result)
        out = out.astype(np.float32) if out.dtype.kind == "f" else out
        what = "source-model outputs"
    else:
        out = result.output
        what = model.output_kind.value
    save_npy(args.output, out)
    if args.layer_outputs:
        folder = Path(args.layer_outputs)
        for i, (layer, y, acc) in enumerate(zip(model.layers, result.outputs, result.accumulators)):
            stem = f"{i:02d}_{safe_name(layer.name)}"
            save_npy(folder / f"{stem}.npy", y)
            if acc is not None:
                save_npy(folder / f"{stem}.acc.npy", acc)
    print(f"wrote {args.output}: {list(out.shape)} ({what})")
    return 0
