"""Simulation speed of one network on Icarus, Verilator and Amaranth's simulator, in one run.

    .venv/bin/python bench/sim_speed.py [--model FILE.mf] [--samples-icarus N] ...

Every run is also a check: all outputs are compared with the golden model (a mismatch
fails the benchmark). Builds are cached and not timed; the time is the simulation proper
(from the cocotb test's start to the testbench's done flag; for Amaranth, ``sim.run()``),
with no idle cycles and no back-pressure. Two speeds per simulator: per wall-clock second,
and per second of the simulator process's CPU time, which stays meaningful on a machine
shared with other jobs. The default network is digits-sized: 8x8 4-bit inputs, dense
64-64-32-10 (PoT, APoT, table), random weights from a seed (the speed does not depend on
the weight values); pass a trained model with --model.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

from mulfree.gen.model.examples import random_dense  # noqa: E402
from mulfree.gen.model.format import Flatten, Model, load  # noqa: E402
from mulfree.sim.runner import SimOptions, simulate  # noqa: E402


def digits_mlp(seed: int = 0) -> Model:
    rng = np.random.default_rng(seed)
    fc1 = random_dense(rng, 64, 64, scheme="pot", wbits=4, in_bits=4, out_bits=2, name="fc1")
    fc2 = random_dense(rng, 64, 32, scheme="apot", wbits=4, in_bits=2, out_bits=2, name="fc2")
    fc3 = random_dense(rng, 32, 10, scheme="table", wbits=2, in_bits=2, output="acc",
                       name="fc3")
    return Model("digits-mlp", (8, 8, 1), 4, (Flatten("flatten"), fc1, fc2, fc3))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model file (default: the digits-sized MLP above)")
    ap.add_argument("--mode", default="runtime", choices=["runtime", "baked"])
    ap.add_argument("--fold", help="fold file or preset (serial, parallel, auto)")
    ap.add_argument("--samples-icarus", type=int, default=40)
    ap.add_argument("--samples-verilator", type=int, default=20000)
    ap.add_argument("--samples-amaranth", type=int, default=10)
    ap.add_argument("--clock-mhz", type=float, default=50.0)
    ap.add_argument("--cache-dir", default=os.environ.get("MULFREE_SIM_CACHE", "build/sim-cache"))
    ap.add_argument("--simulators", default="icarus,verilator,amaranth")
    args = ap.parse_args(argv)

    model = load(args.model) if args.model else digits_mlp()
    sims = [s.strip() for s in args.simulators.split(",") if s.strip()]
    rng = np.random.default_rng(0)
    rows = {}
    print(f"network '{model.name}' ({args.mode} mode), every output checked against the "
          f"golden model; no idle, no back-pressure")
    for sim in sims:
        n = getattr(args, f"samples_{sim}")
        x = rng.integers(0, 2**model.input_bits, (n, *model.input_shape))
        opt = SimOptions(simulator=sim, mode=args.mode, fold=args.fold, idle=0.0,
                         backpressure=0.0, cache_dir=Path(args.cache_dir), opt_level=2)
        t0 = time.perf_counter()
        res = simulate(model, x, opt)
        total = time.perf_counter() - t0
        if not res.ok:
            print(f"{sim}: FAIL: {res.mismatch.describe() if res.mismatch else 'timeout'}")
            return 1
        rows[sim] = res
        print(f"{sim:>9}: {n:5d} inferences, {res.cycles:9,} cycles in {res.sim_wall_s:8.3f} s "
              f"= {res.cycles_per_s:12,.0f} cycles/s wall, {res.cycles_per_cpu_s:12,.0f} "
              f"cycles/s CPU, {res.inferences_per_s:10,.1f} inferences/s "
              f"(build {'cached' if res.cache_hit else f'{res.build_s:.0f} s'}, "
              f"run total {total:.1f} s)")
    any_res = next(iter(rows.values()))
    cpi = any_res.cycles_per_inference()
    print(f"hardware: {cpi} cycles per inference, latency {any_res.latency_manifest} cycles; "
          f"at {args.clock_mhz:g} MHz {args.clock_mhz * 1e6 / cpi:,.0f} inferences/s")
    if "icarus" in rows:
        base = rows["icarus"]
        for sim, res in rows.items():
            if sim == "icarus":
                continue
            print(f"{sim} / icarus: {res.cycles_per_s / base.cycles_per_s:6.1f}x wall, "
                  f"{res.cycles_per_cpu_s / base.cycles_per_cpu_s:6.1f}x CPU")
        if "verilator" in rows:
            r = rows["verilator"].cycles_per_cpu_s / base.cycles_per_cpu_s
            print(f"target Verilator >= 20x Icarus (CPU): {'met' if r >= 20 else 'NOT met'} "
                  f"({r:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
