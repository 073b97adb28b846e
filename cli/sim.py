"""``mulfree sim MODEL``: simulate the RTL and compare every output with the golden model.

Exit 0 only when every output of every sample matches bit for bit; 1 on a mismatch (the
first differing sample, layer and index are printed with the expected and the simulated
value), on a watchdog timeout or when the simulator fails; 2 on a user mistake (a bad
model, inputs or option, or a simulator that is not installed: the message says what to
install).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from mulfree.gen import limits
from mulfree.gen.errors import InputError, OutputError
from mulfree.gen.fileio import load_npy
from mulfree.gen.model.format import load
from mulfree.sim.runner import SimOptions, SimResult, SimulationError, simulate
from mulfree.sim.tools import Simulator

from .options import nonneg_int, output_path, positive_float, positive_int


def _probability(text: str) -> float:
    try:
        v = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability such as 0.25 or 25%, "
                                         f"not {text!r}") from None
    if not 0 <= v <= 0.9:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 0.9, not {text}")
    return v


def add_arguments(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("model", help="model file (.mf)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--inputs", metavar="X.npy",
                     help="input codes: [N, *input shape] integers (or one sample)")
    src.add_argument("--random", metavar="N", type=positive_int,
                     help="N random input samples (default 16)")
    p.add_argument("--float", dest="float_io", action="store_true",
                   help="with --inputs: float inputs as the source model of an imported model "
                        "takes them, encoded by its own input encoding")
    p.add_argument("--simulator", choices=[s.value for s in Simulator], default="verilator",
                   help="icarus or verilator (cocotb on the emitted Verilog), or amaranth "
                        "(Amaranth's simulator on the network component); default verilator")
    p.add_argument("--mode", choices=["runtime", "baked", "tables"], default="runtime",
                   help="weights in ROM (runtime), as constants (baked), or every neuron "
                        "a truth table (tables)")
    p.add_argument("--fold", metavar="FILE",
                   help="folding file (PE and SIMD per layer), or serial, parallel or auto")
    p.add_argument("--device", metavar="NAME",
                   help="fit the fold to a device (see mulfree verilog --device)")
    p.add_argument("--layer", metavar="N", type=nonneg_int,
                   help="simulate layer N alone, fed with the golden model's inputs for it")
    output_path(p, "--waves", metavar="FILE", type=Path,
                help="write waveforms (.vcd, or .fst on Icarus and Verilator)")
    p.add_argument("--seed", type=nonneg_int, default=1,
                   help="seed of the random inputs and of the stall patterns (default 1)")
    p.add_argument("--clock-mhz", type=positive_float, default=50.0,
                   help="clock for the inferences/s figure (default 50 MHz)")
    p.add_argument("--idle", type=_probability, default=0.25,
                   help="probability that the input side idles in a cycle (default 0.25)")
    p.add_argument("--backpressure", type=_probability, default=0.25,
                   help="probability that the output side is not ready (default 0.25)")
    p.add_argument("--per-cycle", action="store_true",
                   help="drive and monitor the streams from cocotb one cycle at a time "
                        "(slow; the default moves the whole batch inside the simulator)")
    p.add_argument("--opt", type=int, choices=[0, 1, 2, 3], default=1,
                   help="C++ optimization level of the Verilator model: 0 builds fastest, "
                        "2 runs fastest (default 1)")
    output_path(p, "--cache-dir", kind="dir", metavar="DIR", type=Path,
                help="compiled simulators and generated Verilog (default "
                     "$MULFREE_CACHE_DIR/sim, else ~/.cache/mulfree/sim); entries are signed "
                     "with a key kept in your cache folder, so a foreign cache is rebuilt, "
                     "never run")
    p.add_argument("--keep", action="store_true",
                   help="keep the run folder (inputs, logged outputs, simulator log)")


def _inputs(args, model) -> np.ndarray:
    if args.float_io and not args.inputs:
        raise InputError("--float describes the inputs of --inputs X.npy: give --inputs too")
    if args.inputs:
        x = load_npy(args.inputs)
        if args.float_io:
            from mulfree.gen.model.encoding import encode_inputs
            return encode_inputs(model, x)
        if x.shape == tuple(model.input_shape):
            x = x[None]
        return x
    n = args.random or 16
    limits.check(n * int(np.prod(model.input_shape)), f"--random {n}: the input codes")
    rng = np.random.default_rng(args.seed)
    return rng.integers(0, 2**model.input_bits, (n, *model.input_shape))


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.3g}"


def report(result: SimResult, clock_mhz: float, out=None) -> None:
    out = out or sys.stdout
    p = lambda *a: print(*a, file=out)  # noqa: E731
    stalls = (f"with {result.idle:.0%} input idle / {result.backpressure:.0%} output "
              f"back-pressure")
    cpi_m = result.cycles_per_inference_manifest
    cpi_s = result.cycles_per_inference_measured
    lat_m, lat_s = result.latency_manifest, result.latency_measured
    p(f"  build: {'cached' if result.cache_hit else f'{result.build_s:.1f} s'}")
    p(f"  cycles per inference: {cpi_m if cpi_m is not None else '?'} (manifest)"
      + (f"; measured {cpi_s:.1f} {stalls}" if cpi_s is not None else ""))
    p(f"  latency: {lat_m if lat_m is not None else '?'} cycles (manifest)"
      + (f"; measured {lat_s} {stalls}" if lat_s is not None else ""))
    ips = result.inferences_per_s_at(clock_mhz)
    if ips:
        p(f"  at {clock_mhz:g} MHz: {_fmt(ips)} inferences/s "
          f"({1e6 / ips:,.2f} us per inference)")
    p(f"  simulator speed: {result.cycles:,} cycles in {result.sim_wall_s:.3g} s = "
      f"{_fmt(result.cycles_per_s)} cycles/s ({_fmt(result.cycles_per_cpu_s)} per CPU second), "
      f"{_fmt(result.inferences_per_s)} inferences/s")
    if result.waves:
        p(f"  waveforms: {result.waves}")


def run(args: argparse.Namespace) -> int:
    model = load(args.model)
    x = _inputs(args, model)
    fold = args.fold
    if args.device:
        from .verilog import fold_argument
        fold = fold_argument(fold, args.device)
    elif fold and fold not in ("auto", "serial", "parallel"):
        if not Path(fold).is_file():
            raise InputError(f"{fold}: no such fold file (or use serial, parallel or auto)")
        fold = Path(fold)
    opt = SimOptions(simulator=args.simulator, mode=args.mode, fold=fold, layer=args.layer,
                     waves=args.waves, seed=args.seed, idle=args.idle,
                     backpressure=args.backpressure, per_cycle=args.per_cycle,
                     cache_dir=args.cache_dir, keep_run=args.keep,
                     opt_level=args.opt)
    if not args.verbose:
        for name in ("cocotb", "cocotb_tools", "cocotb.runner"):
            logging.getLogger(name).setLevel(logging.ERROR)
    what = "whole network" if args.layer is None else f"layer {args.layer} alone"
    print(f"mulfree sim: '{model.name}', {what}, {len(x)} samples on {opt.simulator.value} "
          f"({opt.mode} mode)")
    try:
        result = simulate(model, x, opt)
    except SimulationError as e:
        print(f"mulfree sim: simulation failed: {e}", file=sys.stderr)
        return 1
    report(result, args.clock_mhz)
    if args.waves is not None and not Path(result.waves or args.waves).is_file():
        raise OutputError(f"--waves {args.waves}: the simulator wrote no waveform file")
    n_out = int(np.prod(model.io[result.layer].out_shape)) * result.samples
    if result.ok:
        print(f"  PASS: all {n_out:,} outputs of {result.samples} samples match the golden "
              f"model bit for bit")
        return 0
    if result.timeout:
        print(f"  FAIL: the network stopped moving (watchdog) before all outputs arrived"
              + (f"; {result.mismatch.describe()}" if result.mismatch else ""))
    else:
        print(f"  FAIL: {result.mismatch.describe()}")
    if args.layer is None and len(model.layers) > 1:
        print("  hint: --layer N simulates one layer alone with the golden model's inputs")
    if result.run_dir:
        print(f"  run folder kept: {result.run_dir}")
    return 1
