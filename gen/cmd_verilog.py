"""``mulfree verilog MODEL -o DIR [--mode runtime|baked] [--fold FILE|PRESET]``."""

from __future__ import annotations

import argparse
import json

from .model import load
from .plan import FOLD_PRESETS
from .verilog import emit_verilog


def add_arguments(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("model", help="model file (.mf)")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="folder for <top>.v and manifest.json")
    p.add_argument("--mode", choices=("runtime", "baked"), default="runtime",
                   help="runtime: weight codes in ROM, folded by PE x SIMD (default); "
                        "baked: weights as constants, fully parallel")
    p.add_argument("--fold", metavar="FILE",
                   help=f"fold file (JSON, see docs/hardware.md) or a preset: "
                        f"{', '.join(FOLD_PRESETS)} (default: auto)")


def run(args: argparse.Namespace) -> int:
    model = load(args.model)
    path = emit_verilog(model, args.output, mode=args.mode, fold=args.fold)
    manifest = json.loads((path.parent / "manifest.json").read_text())
    out = manifest["output"]
    print(f"wrote {path} and {path.parent / 'manifest.json'}")
    print(f"top {manifest['top']}: {manifest['input']['beats']} input beats of "
          f"{manifest['input']['values_per_beat']} x {manifest['input']['value_bits']} bits, "
          f"{out['beats']} output beats of {out['values_per_beat']} x {out['value_bits']} "
          f"bits ({out['kind']})")
    print(f"latency {manifest['latency_cycles']} cycles, one inference every "
          f"{manifest['cycles_per_inference']} cycles")
    for r in manifest["layers"]:
        if "pe" in r:
            print(f"  {r['name']:<12} {r['type']:<7} pe {r['pe']:>3} simd {r['simd']:>4} "
                  f"acc {r['acc_width']:>2} bits  {r['cycles']} steps  {r['unit']}")
        else:
            print(f"  {r['name']:<12} {r['type']}")
    return 0
