"""Yosys's count of a link FIFO (hw/link_fifo.py) alone, per family, over depths and widths:
what gen/plan/cost.py prices link FIFOs from.

    .venv/bin/python bench/link_fifo.py            # synthesis only, about a minute
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SHAPES = [(3, 32), (3, 128), (16, 8), (36, 64), (38, 2), (64, 16), (239, 8), (512, 32)]
# a memory style forced (where block RAM is spent): (depth, bits, style, family)
FORCED = [(239, 8, "distributed", "ecp5"), (78, 1, "distributed", "ecp5"),
          (36, 64, "logic", "ice40"), (239, 8, "logic", "ice40")]


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from mulfree.boards.synth import Flow, synthesize_component
    from mulfree.gen.plan.cost import stage_cost
    from mulfree.hw.link_fifo import LinkFifo, LinkFifoSpec

    # "cells": LUT4 + 2 x carry (ECP5: and 2 per TRELLIS_DPR16X4, the slice it takes), what
    # the estimate's "lut" prices
    print("| depth x bits | family | memory | LUT4 | carry | DPR16X4 | cells | FF | BRAM | "
          "est. cells | est. FF | est. BRAM |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    jobs = [(d, w, None, f) for d, w in SHAPES for f in ("ice40", "ecp5")] + FORCED
    for depth, width, style, family in jobs:
        spec = LinkFifoSpec(width=width, depth=depth, style=style)
        r = synthesize_component(LinkFifo(spec), Flow(target=family, pnr=False)).report
        dist = r.cells.get("TRELLIS_DPR16X4", 0)
        cells = r.lut + 2 * r.carry + 2 * dist if family == "ecp5" else r.lut
        est = stage_cost(spec, family)
        print(f"| {depth} x {width} | {family} | {style or 'Yosys decides'} | {r.lut} | "
              f"{r.carry} | {dist} | {cells} | {r.ff} | {r.bram - dist} | {est.lut} | "
              f"{est.ff} | {est.bram} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
