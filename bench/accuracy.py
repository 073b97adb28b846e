"""The accuracy table: scheme x bits -> digits test accuracy of the golden integer model,
float beside it. Writes docs/accuracy.md (atomically) and prints it.

    .venv/bin/python bench/accuracy.py [--seeds 0,1,2] [--quick] [--out docs/accuracy.md]

Every row is trained with mulfree.gen.train (the code `mulfree train` runs) once per
seed; the integer accuracy is the golden model's (argmax of the last layer's
accumulators) on the fixed 360-image test split; the float column is the same
architecture and input code width trained without quantization, same seeds and epochs.
Numbers are the mean over the seeds, with the range in brackets.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from mulfree.gen.train import datasets  # noqa: E402
from mulfree.gen.fileio import atomic_write_text  # noqa: E402
from mulfree.gen.model.format import Conv2d, Dense  # noqa: E402
from mulfree.gen.train.config import TrainConfig
from mulfree.gen.train.evaluate import evaluate_model
from mulfree.gen.train.export import export, to_model
from mulfree.gen.train.trainer import float_accuracy, train

H = (64, 32)
# (group, label, config options)
ROWS = [
    ("MLP 64-64-32-10, 4-bit inputs", "uniform w8 a8", dict(scheme="uniform", wbits=8, abits=8)),
    ("MLP 64-64-32-10, 4-bit inputs", "uniform w4 a4", dict(scheme="uniform", wbits=4, abits=4)),
    ("MLP 64-64-32-10, 4-bit inputs", "pot w4 a4", dict(scheme="pot", wbits=4, abits=4)),
    ("MLP 64-64-32-10, 4-bit inputs", "apot w4 a4", dict(scheme="apot", wbits=4, abits=4)),
    ("MLP 64-64-32-10, 4-bit inputs", "lut (LUT-Q) w4 a4", dict(scheme="lut", wbits=4, abits=4)),
    ("MLP 64-64-32-10, 4-bit inputs", "lut pot-dictionary w4 a4",
     dict(scheme="lut", wbits=4, abits=4, lut_pot=True)),
    ("MLP 64-64-32-10, 4-bit inputs", "lut pruned 50% w4 a4",
     dict(scheme="lut", wbits=4, abits=4, lut_prune=0.5)),
    ("MLP 64-64-32-10, 4-bit inputs", "uniform w2 a2", dict(scheme="uniform", wbits=2, abits=2)),
    ("MLP 64-64-32-10, 4-bit inputs", "pot w3 a2", dict(scheme="pot", wbits=3, abits=2)),
    ("MLP 64-64-32-10, 4-bit inputs", "apot w3 a2", dict(scheme="apot", wbits=3, abits=2)),
    ("MLP 64-64-32-10, 4-bit inputs", "lut w2 a2", dict(scheme="lut", wbits=2, abits=2)),
    ("MLP 64-64-32-10, 4-bit inputs", "ternary a2", dict(scheme="ternary", wbits=2, abits=2)),
    ("MLP 64-64-32-10, 4-bit inputs", "binary a2", dict(scheme="binary", wbits=1, abits=2)),
    ("MLP 64-64-32-10, 4-bit inputs", "binary, bipolar a1",
     dict(scheme="binary", wbits=1, abits=1, act="bipolar")),
    ("MLP 64-64-32-10, 2-bit inputs", "table 40 entries/layer (10x4), a2",
     dict(scheme="table", wbits=4, abits=2, ibits=2, table_entries=40)),
    ("MLP 64-64-32-10, 3-bit inputs", "table 40 entries/layer (5x8 first, 10x4 hidden), a2",
     dict(scheme="table", wbits=4, abits=2, ibits=3, table_entries=40)),
    ("MLP 64-64-32-10, 3-bit inputs", "table 320 entries/layer (40x8), a3",
     dict(scheme="table", wbits=6, abits=3, ibits=3, table_entries=320)),
    ("MLP 64-32-10 (board size), 3-bit inputs", "ternary a2",
     dict(scheme="ternary", wbits=2, abits=2, ibits=3, hidden=(32,))),
    ("MLP 64-32-10 (board size), 3-bit inputs", "binary a2",
     dict(scheme="binary", wbits=1, abits=2, ibits=3, hidden=(32,))),
    ("MLP 64-32-10 (board size), 3-bit inputs", "ternary a1",
     dict(scheme="ternary", wbits=2, abits=1, ibits=3, hidden=(32,))),
    ("MLP 64-16-10 (board size), 4-bit inputs", "ternary a2",
     dict(scheme="ternary", wbits=2, abits=2, ibits=4, hidden=(16,))),
    ("MLP 64-16-10 (board size), 4-bit inputs", "pot w3 a2",
     dict(scheme="pot", wbits=3, abits=2, ibits=4, hidden=(16,))),
    ("CNN 8-16 (3x3 conv, 2x2 pool) + dense, 4-bit inputs", "pot w4 a4",
     dict(arch="cnn", scheme="pot", wbits=4, abits=4, epochs=30)),
    ("CNN 8-16 (3x3 conv, 2x2 pool) + dense, 4-bit inputs", "ternary a2",
     dict(arch="cnn", scheme="ternary", wbits=2, abits=2, epochs=30)),
]


def table_sizes(model) -> int:
    return max(l.weights.products.size for l in model.layers
               if isinstance(l, (Dense, Conv2d)) and l.weights.products is not None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--quick", action="store_true", help="first seed only, fewer rows")
    p.add_argument("--out", default=str(ROOT / "docs" / "accuracy.md"))
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = ROWS
    if args.quick:
        seeds = seeds[:1]
        rows = [r for r in ROWS if "CNN" not in r[0]][::3]
    data = datasets.load("digits")
    floats: dict = {}
    lines = []
    group = None
    t_start = time.monotonic()
    max_mlp_seconds = 0.0
    for g, label, opts in rows:
        cfg0 = TrainConfig(**{"hidden": H, **opts})
        if g != group:
            group = g
            lines.append(f"| **{g}** | | | | |")
        ints, flts, secs = [], [], []
        extra = ""
        for seed in seeds:
            cfg = replace(cfg0, seed=seed)
            fkey = (cfg.arch, cfg.hidden, cfg.channels, cfg.ibits, cfg.epochs, seed)
            if fkey not in floats:
                fnet, _ = train(replace(cfg, scheme="float", table_entries=None), data)
                floats[fkey] = float_accuracy(fnet, data)
            flts.append(floats[fkey])
            t0 = time.monotonic()
            net, _ = train(cfg, data)
            secs.append(time.monotonic() - t0)
            model = to_model(export(net))
            ints.append(evaluate_model(model, data))
            if cfg.scheme == "table":
                extra = f" (largest table {table_sizes(model)} entries)"
        if cfg0.arch == "mlp":
            max_mlp_seconds = max(max_mlp_seconds, max(secs))
        fi, ff = np.mean(ints) * 100, np.mean(flts) * 100
        lines.append(f"| {label}{extra} | {fi:.2f} [{min(ints) * 100:.1f}-{max(ints) * 100:.1f}] "
                     f"| {ff:.2f} | {fi - ff:+.2f} | {np.mean(secs):.1f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    head = [
        "# Accuracy on scikit-learn's digits",
        "",
        "Made by `bench/accuracy.py` (do not edit by hand): "
        f"`.venv/bin/python bench/accuracy.py --seeds {','.join(map(str, seeds))}`"
        + (" --quick" if args.quick else "") + ".",
        "",
        "Test accuracy (%) of the **golden integer model** (argmax of the last layer's "
        "accumulators) on the fixed 360-image test split, mean over seeds "
        f"{', '.join(map(str, seeds))} with the range in brackets; *float* is the same "
        "architecture and input code width trained without quantization (same seeds and "
        "epochs); *delta* = integer - float. `wN aM`: N-bit weight codes, M-bit hidden "
        "activations. Training time is one model's QAT on this machine (2 cores, "
        "single-threaded BLAS). 60 epochs unless noted (CNN: 30).",
        "",
        "| scheme | integer % | float % | delta | train s |",
        "|---|---|---|---|---|",
    ]
    tail = ["", f"Longest MLP training: {max_mlp_seconds:.1f} s. Whole table: "
                f"{time.monotonic() - t_start:.0f} s.", ""]
    text = "\n".join(head + lines + tail)
    atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
