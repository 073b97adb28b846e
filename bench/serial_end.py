"""Benchmark: the serial end of the device fit on the iCE40UP5K, measured.

For each model, the fold the device fit finds cheapest in logic (its slowest fitting
fold: ``gen/plan/fit.py``, the solution at the largest period) and the fastest fitting
fold: every stage synthesized alone with Yosys ``synth_ice40`` (SPRAM as the
``SB_SPRAM256KA`` primitive), its LUT4, flip-flops, block RAMs and SPRAMs beside the
resource model's estimate, and what remains of a stage once its datapath is counted out:
the resource model's share of counters, handshakes and memory control (``stage``,
``frame_mem``, ``out_mem``, ``spram_mem``, the threshold search's control) next to its
datapath (products, adder trees, accumulators, comparators). With ``--build`` the
cheapest fold is also built for the iCEBreaker (``mulfree build``: Yosys and nextpnr,
harness and flash loader included) and the placed logic cells and Fmax printed.

Models (all 4 input/activation bits or as the zoo models have them):

* ``digits``: the 64-64-32-10 w4a4 PoT MLP trained on scikit-learn's digits
  (``mulfree train --dataset digits --arch mlp --hidden 64,32 --scheme pot --wbits 4
  --abits 4``, seed 0);
* ``unsw``: the QONNX zoo's UNSW-NB15 MLP (``unsw_nb15-mlp-w2a2.onnx``: 600 binary
  inputs, 64 x 8-bit codes, 64 x 2-bit, 64 x 2-bit, one 1-bit output; ternary weights),
  imported by ``mulfree import`` from ../shared/models/qonnx-zoo;
* ``kws``: the QONNX zoo's KWS MLP (``kwsmlp_w3a3.onnx``: 490 signed 8-bit inputs,
  3 x 256 x 3-bit codes, 12 accumulators; 3-bit weights), likewise.

    .venv/bin/python bench/serial_end.py                 # Yosys per stage, both folds
    .venv/bin/python bench/serial_end.py --build         # and the iCEBreaker builds
    .venv/bin/python bench/serial_end.py --models digits
    .venv/bin/python bench/serial_end.py --board         # mulfree build --board icebreaker
                                                         # and Verilator on its fold

Yosys results are cached in out/fold_fit/cache.json (shared with bench/fold_fit.py);
models and builds go to out/serial_end/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "serial_end"
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["AMARANTH_USE_YOSYS"] = "builtin"

DEVICE = "ice40up5k"
CONTROL = ("stage", "frame_mem", "out_mem", "spram_mem", "spram_mux", "thr_seq", "load",
           "load_bits", "store_bits", "send", "sel", "const")


class _Ice40Synthesis:
    """The platform passed to elaboration for a Yosys-only iCE40 synthesis: SPRAM as the
    primitive (mulfree.hw.spram.primitive_wanted)."""
    spram_primitive = True


# ../shared/models beside the checkout (a worktree one level deeper looks one up)
ZOO = next((p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared")
            if p.is_dir()), ROOT.parent / "shared") / "models" / "qonnx-zoo"


def zoo_model(onnx_name: str, label: str):
    """A QONNX zoo model imported by ``mulfree import`` (its self-check included), kept in
    out/."""
    from mulfree.gen.model.format import load

    path = OUT / f"{label}.mf"
    if not path.exists():
        src = ZOO / onnx_name
        if not src.exists():
            sys.exit(f"serial_end: {src} not found (the QONNX zoo models of ../shared/models)")
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "mulfree.cli", "import", str(src), "-o",
                        str(path)], check=True)
    return load(path)


def digits_model():
    """The trained 64-64-32-10 w4a4 PoT digits MLP (trained once, kept in out/)."""
    from mulfree.gen.model.format import load

    path = OUT / "digits-w4a4.mf"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "mulfree.cli", "train", "--dataset", "digits",
                        "--arch", "mlp", "--hidden", "64,32", "--scheme", "pot", "--wbits",
                        "4", "--abits", "4", "-o", str(path)], check=True)
    return load(path)


MODELS = {"digits": digits_model,
          "unsw": lambda: zoo_model("unsw_nb15-mlp-w2a2.onnx", "unsw_nb15-mlp-w2a2"),
          "kws": lambda: zoo_model("kwsmlp_w3a3.onnx", "kwsmlp_w3a3")}
MODEL_FILES = {"digits": "digits-w4a4", "unsw": "unsw_nb15-mlp-w2a2", "kws": "kwsmlp_w3a3"}


def folds(model):
    """(label, fold dict, FitResult) for the cheapest and the fastest fitting fold."""
    from mulfree.gen.plan.devices import get_device
    from mulfree.gen.plan.fit import _Problem, fit_fold
    from mulfree.gen.plan.folds import load_fold

    fold = load_fold(f"device:{DEVICE}")
    problem = _Problem(model, get_device(DEVICE), fold)
    cheapest = problem.result(problem.periods[-1], None)
    fastest = fit_fold(model, DEVICE, fold)
    out = []
    for label, r in (("cheapest", cheapest), ("fastest", fastest)):
        out.append((label, {"layers": r.layers, "input_values_per_beat":
                            r.input_values_per_beat, "pipeline": r.pipeline}, r))
    return out


def measure(spec, cache: dict) -> dict | None:
    """Yosys synth_ice40 of one stage (SPRAM as the primitive), cached."""
    from amaranth.back import verilog

    import fold_fit
    from mulfree.boards.synth import Flow, synthesize
    from mulfree.boards.toolchain import ToolchainError
    from mulfree.hw.network import build_stage

    text = verilog.convert(build_stage(spec), name="top", platform=_Ice40Synthesis(),
                           emit_src=False)
    key = hashlib.sha256(("ice40-spram\n" + text).encode()).hexdigest()
    if key not in cache:
        t = time.monotonic()
        try:
            r = synthesize(text, Flow(target="ice40", pnr=False)).report
        except ToolchainError as e:
            print(f"  Yosys failed: {str(e).splitlines()[0]}", file=sys.stderr)
            return None
        # boards.toolchain counts SPRAM among the block RAMs: apart here
        cache[key] = {"lut": r.lut, "ff": r.ff, "bram": r.cells.get("SB_RAM40_4K", 0),
                      "carry": r.carry, "spram": r.cells.get("SB_SPRAM256KA", 0),
                      "seconds": round(time.monotonic() - t, 1)}
        fold_fit._save_cache(cache)
    return cache[key]


def _split(spec) -> tuple[float, float]:
    """The resource model's LUT4 of a stage's control (counters, handshakes, memory
    control) and of its datapath, family iCE40."""
    from mulfree.gen.plan.cost import COEFFS, stage_features

    f = stage_features(spec, "ice40")
    c = COEFFS["ice40"]
    control = sum(c[k] * f[k] for k in CONTROL)
    return control, sum(c[k] * v for k, v in f.items()) - control


def report(name, model, builds: bool, cache: dict) -> None:
    from mulfree.gen.plan.cost import stage_cost
    from mulfree.gen.plan.network import plan_network

    done = []
    for label, fold, fit_result in folds(model):
        if fold in done:
            print(f"\n{name}: the fastest fitting fold is the cheapest")
            continue
        done.append(fold)
        stages, manifest = plan_network(model, "runtime", fold)
        rows = [r for r in manifest["layers"] if r["type"] != "flatten"]
        names = []
        it = iter(r["name"] for r in rows)
        for s in stages:
            names.append(f"{names[-1]}.argmax" if type(s).__name__ == "ArgMaxSpec"
                         else next(it))
        print(f"\n{name} ({model.name}), {label} fold on the {DEVICE}: "
              f"{manifest['cycles_per_inference']} cycles per inference, latency "
              f"{manifest['latency_cycles']}; fit estimate {fit_result.cells} cells "
              f"(harness reserve included), {fit_result.bram} EBR, {fit_result.spram} SPRAM")
        print(f"  {'stage':<12}{'fold':<34}{'LUT4':>6}{'est':>6}{'FF':>6}{'est':>6}"
              f"{'EBR':>5}{'SPR':>4}{'control':>9}{'datapath':>9}")
        total = {"lut": 0, "ff": 0, "bram": 0, "spram": 0}
        for spec, sname in zip(stages, names):
            m = measure(spec, cache)
            c = stage_cost(spec, "ice40")
            entry = fold["layers"].get(sname, {})
            what = (f"pe {entry['pe']} simd {entry['simd']} {entry.get('rom', '-')} "
                    f"{entry.get('thresholds', 'parallel')[:4]}"
                    + (f" {entry['threshold_memory']}" if "threshold_memory" in entry else "")
                    + (f" L{entry['threshold_logic_levels']}"
                       if entry.get("threshold_logic_levels") else "")) if entry else ""
            ctl, dp = _split(spec) if hasattr(spec, "unit_kind") else (float(c.lut), 0.0)
            if m is None:
                print(f"  {sname:<12}{what:<34}{'-':>6}{c.lut:>6}{'-':>6}{c.ff:>6}")
                continue
            for k in total:
                total[k] += m.get(k, 0)
            print(f"  {sname:<12}{what:<34}{m['lut']:>6}{c.lut:>6}{m['ff']:>6}{c.ff:>6}"
                  f"{m['bram']:>5}{m.get('spram', 0):>4}{ctl:>9.0f}{dp:>9.0f}", flush=True)
        print(f"  {'network':<12}{'':<34}{total['lut']:>6}{'':>6}{total['ff']:>6}{'':>6}"
              f"{total['bram']:>5}{total['spram']:>4}")
        if builds and label == "cheapest":
            build(name, model, fold)


def build(name, model, fold) -> None:
    from mulfree.boards.build import build as board_build
    from mulfree.boards.registry import get_board

    out = OUT / f"{name}-cheapest"
    t = time.monotonic()
    r = board_build(model, get_board("icebreaker"), out, fold=fold)
    res = r.resources
    placed = res.placed.get("ICESTORM_LC", {}).get("used")
    fmax = min(a for a, _ in res.fmax_mhz.values()) if res.fmax_mhz else float("nan")
    ebr = res.placed.get("ICESTORM_RAM", {}).get("used", 0)
    spram = res.placed.get("ICESTORM_SPRAM", {}).get("used", 0)
    loader = " and flash loader" if "load" in r.manifest else ""
    cycles = r.manifest["cycles_per_inference"]
    print(f"  iCEBreaker build (harness{loader}): {res.lut} LUT4, {res.ff} FF, {ebr} EBR, "
          f"{spram} SPRAM, {placed} logic cells placed of 5280, Fmax {fmax:.1f} MHz, "
          f"{cycles} cycles: {fmax * 1e6 / cycles:,.0f} inferences/s at Fmax "
          f"({time.monotonic() - t:.0f} s; {out})", flush=True)


# Verilator's inputs per model: the import corpus's inputs of a zoo model (floats, encoded
# by the model's own input encoding), random codes otherwise.
SIM_INPUTS = {"unsw": "zoo_unsw_nb15_mlp_w2a2", "kws": "zoo_kwsmlp_w3a3"}


def board_build(name) -> None:
    """``mulfree build --board icebreaker`` (the default: the fastest fold that fits, checked
    against the 12 MHz board clock), then ``mulfree sim`` of that fold on Verilator."""
    path = OUT / f"{MODEL_FILES[name]}.mf"      # written by MODELS[name]()
    out = OUT / f"build-{name}"
    cli = [sys.executable, "-m", "mulfree.cli"]
    t = time.monotonic()
    subprocess.run(cli + ["build", str(path), "--board", "icebreaker", "-o", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    took = time.monotonic() - t
    r = json.loads((out / "report.json").read_text())
    fit = r["manifest"]["device_fit"]
    fold_path = OUT / f"{name}.fold.json"
    fold_path.write_text(json.dumps({"layers": fit["fitted_layers"], "pipeline": fit["pipeline"],
                                     "input_values_per_beat": fit["input_values_per_beat"]}))
    inputs = (["--inputs", str(ROOT / "tests" / "data" / "import" / "shared" / SIM_INPUTS[name]
                               / "inputs.npy"), "--float"] if name in SIM_INPUTS
              else ["--random", "32"])
    sim = subprocess.run(cli + ["sim", str(path), "--fold", str(fold_path), "--simulator",
                                "verilator"] + inputs, capture_output=True, text=True)
    verdict = next((ln.strip() for ln in sim.stdout.splitlines() if ln.strip().startswith(
        ("PASS", "FAIL"))), f"sim exit {sim.returncode}")
    util = {u["resource"]: u["used"] for u in r["utilization"]}
    fmax = min(v["achieved"] for v in r["fmax_mhz"].values())
    print(f"\n{name}: mulfree build --board icebreaker ({took:.0f} s): {util['LUT4']} LUT4, "
          f"{util['FF']} FF, {util['BRAM']} EBR, {util.get('SPRAM', 0)} SPRAM, "
          f"{util['ICESTORM_LC (placed)']} logic cells placed of 5280, Fmax {fmax:.1f} MHz, "
          f"{r['cycles_per_inference']} cycles: {r['inferences_per_s']['at_fmax']:,.0f} "
          f"inferences/s at Fmax, {r['inferences_per_s']['at_board_clock']:,.0f} at 12 MHz")
    for layer, entry in fit["fitted_layers"].items():
        print(f"  {layer}: " + ", ".join(f"{k} {v}" for k, v in entry.items()))
    what = (f"the import corpus's {SIM_INPUTS[name]}/inputs.npy, --float" if name in SIM_INPUTS
            else "32 random inputs")
    print(f"  Verilator on that fold ({what}): {verdict}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--build", action="store_true", help="also build the cheapest fold for "
                   "the iCEBreaker (Yosys and nextpnr)")
    p.add_argument("--board", action="store_true", help="only mulfree build --board "
                   "icebreaker (the default fold) and Verilator on that fold, per model")
    args = p.parse_args(argv)
    import fold_fit

    cache = fold_fit._load_cache()
    for name in args.models.split(","):
        if args.board:
            MODELS[name]()
            board_build(name)
        else:
            report(name, MODELS[name](), args.build, cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
