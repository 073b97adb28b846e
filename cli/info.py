"""``mulfree info MODEL``: what is in a model, and what it will cost to hold."""

from __future__ import annotations

import argparse
import json

import numpy as np

from mulfree.gen.model.golden import accumulator_bounds, product_table
from mulfree.gen.model.format import Conv2d, Dense, Model, Scheme, load


def add_arguments(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("model", help="model file (.mf)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _bits_for_values(values: np.ndarray) -> int:
    lo, hi = int(values.min()), int(values.max())
    if lo >= 0:
        return max(1, hi.bit_length())
    return max((hi if hi >= 0 else ~hi).bit_length(), (~lo).bit_length()) + 1


def summarize(model: Model) -> dict:
    """Per layer: type, shapes, scheme, sizes, memory bits, accumulator range and width."""
    layers = []
    totals = {"parameters": 0, "memory_bits": 0}
    for i, (layer, io) in enumerate(zip(model.layers, model.io)):
        row: dict = {"index": i, "name": layer.name, "type": type(layer).__name__.lower(),
                     "in_shape": list(io.in_shape), "out_shape": list(io.out_shape),
                     "in_bits": io.in_bits, "out_bits": io.out_bits}
        if isinstance(layer, (Dense, Conv2d)):
            w = layer.weights
            table = product_table(layer)
            bounds = accumulator_bounds(layer, io.in_shape)
            weight_bits = int(w.codes.size) * w.bits
            codebook_bits = 0 if w.codebook is None else int(w.codebook.size) * _bits_for_values(w.codebook)
            table_bits = 0 if w.scheme is not Scheme.TABLE else int(table.size) * _bits_for_values(table)
            thr = layer.output.thresholds
            threshold_bits = 0 if thr is None else int(thr.size) * bounds.width
            bias_bits = int(layer.bias.size) * bounds.width
            memory = weight_bits + codebook_bits + table_bits + threshold_bits + bias_bits
            row.update({
                "scheme": w.scheme.value, "weight_bits": w.bits,
                "weight_codes": w.num_codes,
                "codebook": None if w.codebook is None else w.codebook.tolist(),
                "table_entries": int(table.size),
                "parameters": int(w.codes.size),
                "output": layer.output.kind.value,
                "acc_min": bounds.min, "acc_max": bounds.max, "acc_width": bounds.width,
                "memory_bits": {"weights": weight_bits, "codebook": codebook_bits,
                                "table": table_bits, "thresholds": threshold_bits,
                                "bias": bias_bits, "total": memory},
            })
            if isinstance(layer, Conv2d):
                row.update({"kernel": list(layer.kernel), "stride": list(layer.stride),
                            "padding": list(layer.padding)})
            totals["parameters"] += int(w.codes.size)
            totals["memory_bits"] += memory
        layers.append(row)
    return {"name": model.name, "input_shape": list(model.input_shape),
            "input_bits": model.input_bits, "output_shape": list(model.output_shape),
            "output": model.output_kind.value, "layers": layers, "totals": totals,
            "metadata": model.metadata}


def _table(summary: dict) -> str:
    head = ["#", "name", "type", "in", "out", "scheme", "wbits", "K", "table", "params",
            "acc range", "acc w", "mem bits"]
    rows = []
    for r in summary["layers"]:
        shape = lambda s: "x".join(map(str, s))  # noqa: E731
        if "scheme" in r:
            rows.append([r["index"], r["name"], r["type"], f"{shape(r['in_shape'])}/{r['in_bits']}b",
                         f"{shape(r['out_shape'])}/" + (f"{r['out_bits']}b" if r["out_bits"] else r["output"]),
                         r["scheme"], r["weight_bits"], r["weight_codes"], r["table_entries"],
                         r["parameters"], f"[{r['acc_min']}, {r['acc_max']}]", r["acc_width"],
                         r["memory_bits"]["total"]])
        else:
            rows.append([r["index"], r["name"], r["type"], f"{shape(r['in_shape'])}/{r['in_bits']}b",
                         f"{shape(r['out_shape'])}/{r['out_bits']}b", "", "", "", "", "", "", "", ""])
    cells = [head] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    t = summary["totals"]
    title = (f"model {summary['name']}: input {'x'.join(map(str, summary['input_shape']))} "
             f"codes of {summary['input_bits']} bits, output {summary['output']} "
             f"{'x'.join(map(str, summary['output_shape']))}")
    foot = f"total: {t['parameters']} weights, {t['memory_bits']} bits ({t['memory_bits'] / 8192:.1f} KiB)"
    return "\n".join([title, *lines, foot])


def run(args: argparse.Namespace) -> int:
    summary = summarize(load(args.model))
    print(json.dumps(summary, indent=2) if args.json else _table(summary))
    return 0
