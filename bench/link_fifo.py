"""Yosys's count of a link FIFO (hw/link_fifo.py) alone, per family, over depths and widths:
what gen/plan/cost.py prices link FIFOs from.

    .venv/bin/python bench/link_fifo.py            # synthesis only, about a minute
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SHAPES = [(3, 32), (3, 128), (16, 8), (36, 64), (38, 2), (64, 16), (239, 8), (512, 32)]


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from mulfree.boards.synth import Flow, synthesize_component
    from mulfree.gen.plan.cost import stage_cost
    from mulfree.hw.link_fifo import LinkFifo, LinkFifoSpec

    print("| depth x bits | family | LUT4 | CCU2C | FF | RAM16 / DPR16X4 | BRAM | est. LUT | "
          "est. FF | est. BRAM |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for depth, width in SHAPES:
        spec = LinkFifoSpec(width=width, depth=depth)
        for family in ("ice40", "ecp5"):
            r = synthesize_component(LinkFifo(spec), Flow(target=family, pnr=False)).report
            dist = r.cells.get("TRELLIS_DPR16X4", 0)
            est = stage_cost(spec, family)
            print(f"| {depth} x {width} | {family} | {r.lut} | {r.carry} | {r.ff} | {dist} | "
                  f"{r.bram} | {est.lut} | {est.ff} | {est.bram} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
