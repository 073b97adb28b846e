"""``mulfree verilog MODEL -o DIR [--mode runtime|baked|tables] [--fold FILE|PRESET] [--device NAME]``."""

from __future__ import annotations

import argparse
import json

from mulfree.gen import progress
from mulfree.gen.plan.devices import device_names
from mulfree.gen.errors import InputError
from mulfree.gen.model.format import load
from mulfree.gen.plan.folds import FOLD_PRESETS, load_fold
from mulfree.gen.plan.verilog import emit_verilog

from .options import add_output


def add_arguments(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("model", help="model file (.mf)")
    add_output(p, kind="dir", required=True, help="folder for <top>.v and manifest.json")
    p.add_argument("--mode", choices=("runtime", "baked", "tables"), default="runtime",
                   help="runtime: weight codes in ROM, folded by PE x SIMD (default); "
                        "baked: weights as constants, fully parallel; tables: every sparse "
                        "neuron one truth table, fully pipelined, one inference per clock "
                        "(dense layers; docs/tables.md)")
    p.add_argument("--fold", metavar="FILE",
                   help=f"fold file (JSON, see docs/hardware.md) or a preset: "
                        f"{', '.join(FOLD_PRESETS)} (default: auto)")
    p.add_argument("--device", metavar="NAME",
                   help=f"fit the fold to a device: the fastest PE/SIMD per layer whose "
                        f"estimate fits it (runtime mode; with --fold FILE the layers the "
                        f"file lists are kept); one of {', '.join(device_names())}")


def fold_argument(fold: str | None, device: str | None):
    """The fold from ``--fold`` and ``--device``: ``"device:NAME"``, or a fold file with
    the device added, or ``--fold`` alone."""
    if device is None:
        return fold
    if fold is None:
        return f"device:{device}"
    if fold in FOLD_PRESETS:
        raise InputError(f"--fold {fold} and --device {device} both choose every layer's "
                         f"fold; give one (with --device, --fold takes a file whose listed "
                         f"layers are kept)")
    return {**load_fold(fold), "device": device}


def run(args: argparse.Namespace) -> int:
    model = load(args.model)
    with progress.stage(f"generating the Verilog of '{model.name}'"):
        path = emit_verilog(model, args.output, mode=args.mode,
                            fold=fold_argument(args.fold, args.device))
    manifest = json.loads((path.parent / "manifest.json").read_text())
    out = manifest["output"]
    print(f"wrote {path} and {path.parent / 'manifest.json'}")
    print(f"top {manifest['top']}: {manifest['input']['beats']} input beats of "
          f"{manifest['input']['values_per_beat']} x {manifest['input']['value_bits']} bits, "
          f"{out['beats']} output beats of {out['values_per_beat']} x {out['value_bits']} "
          f"bits ({out['kind']})")
    print(f"latency {manifest['latency_cycles']} cycles, one inference every "
          f"{manifest['cycles_per_inference']} cycles")
    fit = manifest.get("device_fit")
    if fit:
        d, e = fit["device"], fit["estimate"]
        print(f"fitted to {d['part']}: estimated {e['cells']} of {d['cells']} logic cells "
              f"(budget {fit['budget']['cells']}, harness included), {e['bram']} of "
              f"{d['bram']} block RAMs")
    for r in manifest["layers"]:
        if "pe" in r:
            print(f"  {r['name']:<12} {r['type']:<7} pe {r['pe']:>3} simd {r['simd']:>4} "
                  f"acc {r['acc_width']:>2} bits  {r['cycles']} steps  {r['unit']}")
        elif "lowering" in r:
            print(f"  {r['name']:<12} {r['type']:<7} {r['lowering']}: {r['table_neurons']} "
                  f"table neurons (up to {r['table_input_bits']} input bits), "
                  f"{r['sum_neurons']} sum neurons; fan-in {r['fan_in']['min']}.."
                  f"{r['fan_in']['max']} of {r['in_bits']}-bit codes")
        else:
            print(f"  {r['name']:<12} {r['type']}")
    return 0
