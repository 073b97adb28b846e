"""``mulfree inputs MODEL --dataset digits -n 16 -o X.npy``: a model's input codes from a
data set, the file ``mulfree predict``, ``sim --inputs`` and ``run`` take."""

from __future__ import annotations

import argparse

from mulfree.gen.errors import InputError
from mulfree.gen.fileio import save_npy
from mulfree.gen.model.format import load
from mulfree.gen.train import datasets
from mulfree.gen.train.evaluate import model_inputs

from .options import add_output, output_path, positive_float, positive_int


def add_arguments(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("model", help="model file (.mf): its own input encoding (an imported "
                                 "model's metadata, else the digits pixel codes) decides the codes")
    p.add_argument("--dataset", default="digits", metavar="NAME|FILE.npz",
                   help="data set to take the samples from: digits (the default) or a .npz "
                        "file (docs/training.md)")
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="which split (default: test)")
    p.add_argument("-n", "--count", type=positive_int, default=None,
                   help="the first N samples of the split (default: all)")
    p.add_argument("--data-scale", type=positive_float, metavar="S",
                   help="imported models: multiply the data set's values by S before the "
                        "model's own input encoding (as mulfree eval --data-scale)")
    p.add_argument("--data-offset", type=float, metavar="B",
                   help="imported models: then add B (as mulfree eval --data-offset)")
    add_output(p, required=True, metavar="X.npy", help="where to write the codes (.npy)")
    output_path(p, "--labels", metavar="Y.npy", help="also write the samples' labels (.npy)")


def run(args: argparse.Namespace) -> int:
    model = load(args.model)
    data = datasets.load(args.dataset)
    codes = model_inputs(model, data, args.split, scale=args.data_scale,
                         offset=args.data_offset)
    labels = data.y_test if args.split == "test" else data.y_train
    if args.count is not None:
        if args.count > codes.shape[0]:
            raise InputError(f"--count {args.count}: the {args.dataset} {args.split} split has "
                             f"{codes.shape[0]} samples")
        codes, labels = codes[:args.count], labels[:args.count]
    save_npy(args.output, codes)
    if args.labels:
        save_npy(args.labels, labels)
    shape = "x".join(str(v) for v in codes.shape[1:])
    print(f"wrote {args.output}: {codes.shape[0]} samples of {shape} input codes "
          f"({model.input_bits} bits, {args.dataset} {args.split} split)"
          + (f"; labels in {args.labels}" if args.labels else ""))
    return 0
