"""Benchmark: the resource model (gen/plan/cost.py) against Yosys, and its calibration.

Every stage (layer engine, max-pool, argmax) of a spread of models and folds is
synthesized on its own with Yosys (``synth_ice40``; ``synth_ecp5 -nodsp``, no place and
route) and compared with the model's estimate: LUT4 (ECP5: LUT4 + 2 x CCU2C, what nextpnr
counts as TRELLIS_COMB), flip-flops and block RAMs. Then whole networks are compared, the
sum over their stages.

    .venv/bin/python bench/fold_fit.py              # estimate vs Yosys, per stage and network
    .venv/bin/python bench/fold_fit.py --fit        # refit gen/plan/cost.py's COEFFS (prints them)
    .venv/bin/python bench/fold_fit.py --targets ice40 --quick

Yosys results are cached in out/fold_fit/cache.json (keyed by a hash of the Verilog and
the target), so a rerun after changing only the model takes seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "out" / "fold_fit" / "cache.json"
os.environ["AMARANTH_USE_YOSYS"] = "builtin"


def _mlp(name, sizes, scheme, wbits, ibits, abits, act="uniform", output="argmax", seed=0):
    from mulfree.gen.model.examples import random_dense
    from mulfree.gen.model.format import Model

    rng = np.random.default_rng(seed)
    layers = []
    for n, (a, b) in enumerate(zip(sizes, sizes[1:])):
        last = n == len(sizes) - 2
        layers.append(random_dense(rng, a, b, scheme=scheme, wbits=wbits,
                                   in_bits=ibits if n == 0 else abits, out_bits=abits,
                                   act=act if n else "uniform",
                                   output=output if last else "thresholds", name=f"fc{n}"))
    return Model(name=name, input_shape=(sizes[0],), input_bits=ibits, layers=tuple(layers))


def _cnn(name, scheme, wbits, ch=4, seed=0):
    from mulfree.gen.model.examples import random_conv2d, random_dense
    from mulfree.gen.model.format import Flatten, MaxPool, Model

    rng = np.random.default_rng(seed)
    conv = random_conv2d(rng, (8, 8, 1), ch, (3, 3), (1, 1), (1, 1), scheme=scheme,
                         wbits=wbits, in_bits=2, out_bits=2, name="conv1")
    fc = random_dense(rng, 16 * ch, 10, scheme=scheme, wbits=wbits, in_bits=2,
                      output="argmax", name="fc1")
    return Model(name=name, input_shape=(8, 8, 1), input_bits=2,
                 layers=(conv, MaxPool(name="pool1", kernel=(2, 2)), Flatten(name="flat"), fc))


def models(quick: bool = False):
    from mulfree.gen.model.examples import example_model

    out = [
        ("example", example_model(0)),
        ("digits-pot", _mlp("digits-pot", (64, 16, 10), "pot", 3, 4, 2)),
        ("mlp-uniform", _mlp("mlp-uniform", (64, 32, 10), "uniform", 4, 4, 2)),
        ("mlp-apot", _mlp("mlp-apot", (64, 16, 10), "apot", 4, 4, 3)),
        ("mlp-table", _mlp("mlp-table", (32, 16, 10), "table", 2, 2, 2)),
        ("mlp-lut-learned", _mlp("mlp-lut-learned", (32, 16, 8), "lut", 3, 2, 2,
                                 act="learned")),
        ("cnn-uniform", _cnn("cnn-uniform", "uniform", 3, ch=4)),
        ("mlp-ternary", _mlp("mlp-ternary", (128, 32, 10), "ternary", 2, 2, 2, output="acc")),
    ]
    return out[:3] if quick else out


def folds_for(model, seed: int = 0):
    """serial, auto, and two seeded random divisor folds (one with block ROMs)."""
    from mulfree.gen.model.format import Conv2d, Dense
    from mulfree.gen.plan.folds import divisors as _divisors

    rng = np.random.default_rng(seed)
    out = [("serial", "serial"), ("auto", "auto")]
    for n in range(2):
        layers = {}
        for layer in model.layers:
            if isinstance(layer, Dense):
                oc, taps = layer.out_features, layer.in_features
            elif isinstance(layer, Conv2d):
                oc, taps = layer.out_channels, layer.kernel[0] * layer.kernel[1] * layer.in_channels
            else:
                continue
            # at most 64 lanes a layer: the sweep stays minutes, not hours
            pe = int(rng.choice([d for d in _divisors(oc) if d <= 8]))
            simd = int(rng.choice([d for d in _divisors(taps) if d * pe <= 64]))
            entry = {"pe": pe, "simd": simd}
            if n == 1:
                entry["rom"] = "block"
            layers[layer.name] = entry
        out.append((f"random{n}", {"layers": layers}))
    return out


def _load_cache() -> dict:
    try:
        return json.loads(CACHE.read_text())
    except FileNotFoundError:
        return {}


def _save_cache(cache: dict) -> None:
    from mulfree.gen.fileio import atomic_write_text

    atomic_write_text(CACHE, json.dumps(cache, indent=0, sort_keys=True))


CACHED_ONLY = False


def measure(spec, target: str, cache: dict) -> dict:
    """Yosys's counts for one stage: lut (ECP5: LUT4 + 2 x CCU2C), ff, bram."""
    from mulfree.boards.synth import Flow, emit_verilog, synthesize
    from mulfree.boards.toolchain import ToolchainError
    from mulfree.hw.network import build_stage

    text = emit_verilog(build_stage(spec))
    key = hashlib.sha256((target + "\n" + text).encode()).hexdigest()
    if key not in cache and CACHED_ONLY:
        return None
    if key not in cache:
        t = time.monotonic()
        try:
            r = synthesize(text, Flow(target=target, pnr=False)).report
        except ToolchainError as e:      # reported, not fatal: the sweep goes on
            print(f"\n{target}: Yosys failed on a stage ({str(e).splitlines()[0]})",
                  file=sys.stderr)
            return None
        lut = r.lut + (2 * r.carry if target == "ecp5" else 0)
        cache[key] = {"lut": lut, "ff": r.ff, "bram": r.bram, "lut4": r.lut, "carry": r.carry,
                      "seconds": round(time.monotonic() - t, 1)}
        _save_cache(cache)
    return cache[key]


def points(targets, quick: bool):
    """(model label, fold label, stage name, spec, target, measured) for every stage."""
    from mulfree.gen.plan.network import plan_network

    cache = _load_cache()
    for label, model in models(quick):
        for flabel, fold in folds_for(model):
            stages, manifest = plan_network(model, "runtime", fold)
            names = _stage_names(manifest, stages)
            for spec, sname in zip(stages, names):
                for target in targets:
                    m = measure(spec, target, cache)
                    if m is not None:
                        yield label, flabel, sname, spec, target, m


def _stage_names(manifest, stages):
    from mulfree.hw.argmax import ArgMaxSpec

    rows = [r["name"] for r in manifest["layers"] if r["type"] != "flatten"]
    names, it = [], iter(rows)
    for s in stages:
        names.append(f"{names[-1]}.argmax" if isinstance(s, ArgMaxSpec) else next(it))
    return names


# Pull of the structural prior (every coefficient 1: one LUT4 per counted bit) against
# the data: without it collinear features (the adder trees and the PoT shifters grow
# together) trade off into meaningless values that extrapolate badly to other folds.
PRIOR = 0.002


def fit(data, target: str) -> dict:
    """Non-negative least squares of the LUT coefficients on the relative error, with a
    ridge pull towards the structural prior (all ones)."""
    from scipy.optimize import nnls

    from mulfree.gen.plan.cost import FEATURES, stage_features

    rows = [(stage_features(spec, target), m["lut"]) for *_, spec, t, m in data if t == target]
    a = np.array([[f[k] for k in FEATURES] for f, _ in rows], float)
    y = np.array([lut for _, lut in rows], float)
    w = 1.0 / np.maximum(y, 30.0)
    used = a.any(axis=0)
    k = int(used.sum())
    reg = np.sqrt(PRIOR * len(y)) * np.eye(k)
    # the per-stage constant (counters, handshakes) is not a bit count: no prior on it
    reg = reg[[n for n, name in enumerate(np.array(FEATURES)[used]) if name != "stage"]]
    aw = np.vstack([a[:, used] * w[:, None], reg])
    yw = np.concatenate([y * w, reg @ np.ones(k)])
    coef = np.ones(len(FEATURES))
    sol, _ = nnls(aw, yw)
    coef[used] = sol
    return {k: round(float(c), 3) for k, c in zip(FEATURES, coef)}


def harness(boards, folds) -> None:
    """Board builds of the demo-shaped digits MLP: placed logic cells against Yosys's
    LUT4 and FF of the whole design (network + harness) and of the network alone, which
    give the iCE40 packing fraction and the harness's share."""
    from mulfree.boards.build import build
    from mulfree.boards.registry import get_board
    from mulfree.gen.plan.network import plan_network

    cache = _load_cache()
    model = dict(models())["digits-pot"]
    print(f"{'board':<12}{'fold':<22}{'LC/COMB placed':>15}{'LUT4':>7}{'FF':>7}{'net LUT':>8}"
          f"{'net FF':>8}{'(LC-LUT)/FF':>12}{'harness LUT':>12}{'harness FF':>11}")
    for bname in boards:
        board = get_board(bname)
        fam = board.family
        for fold in folds:
            if fold == "device":
                fold = f"device:{board.part.name}"
            out = ROOT / "out" / "fold_fit" / "builds" / f"{bname}-{str(fold).replace(':', '_')}"
            r = build(model, board, out, fold=fold)
            cell = {"ice40": "ICESTORM_LC", "ecp5": "TRELLIS_COMB"}[fam]
            placed = r.resources.placed[cell]["used"]
            lut = r.resources.lut + (2 * r.resources.carry if fam == "ecp5" else 0)
            stages, _ = plan_network(model, "runtime", fold)
            net = [measure(s, fam, cache) for s in stages]
            nl, nf = sum(m["lut"] for m in net), sum(m["ff"] for m in net)
            print(f"{bname:<12}{str(fold):<22}{placed:>15}{lut:>7}{r.resources.ff:>7}{nl:>8}"
                  f"{nf:>8}{(placed - lut) / r.resources.ff:>12.2f}{lut - nl:>12}"
                  f"{r.resources.ff - nf:>11}", flush=True)


def fit_scale(data, target: str, base: str = "ice40") -> dict:
    """``target``'s constants as ``base``'s times one factor, with a factor of its own for
    the multipliers (Yosys maps them differently per family): non-negative least squares
    on the relative error, for a target with too few measured stages for a full fit."""
    from scipy.optimize import nnls

    from mulfree.gen.plan.cost import COEFFS, FEATURES, stage_features

    rows = [(stage_features(spec, target), m["lut"]) for *_, spec, t, m in data if t == target]
    mult = np.array([COEFFS[base]["prod_uniform"] * f["prod_uniform"] for f, _ in rows])
    rest = np.array([sum(COEFFS[base][k] * f[k] for k in FEATURES) for f, _ in rows]) - mult
    y = np.array([lut for _, lut in rows], float)
    w = 1.0 / np.maximum(y, 30.0)
    (scale, umul), _ = nnls(np.stack([rest * w, mult * w], axis=1), y * w)
    print(f"{target}: {len(rows)} stages, scale {scale:.3f} x {base}, multipliers "
          f"{umul:.3f} x {base}", file=sys.stderr)
    out = {k: round(COEFFS[base][k] * scale, 3) for k in FEATURES}
    out["prod_uniform"] = round(COEFFS[base]["prod_uniform"] * umul, 3)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", default="ice40,ecp5")
    p.add_argument("--quick", action="store_true", help="three models only")
    p.add_argument("--fit", action="store_true", help="fit and print COEFFS")
    p.add_argument("--stages", action="store_true", help="print every stage")
    p.add_argument("--cached", action="store_true",
                   help="use only stages already measured (skip the rest)")
    p.add_argument("--scale", action="store_true",
                   help="with --fit: fit one factor on top of the iCE40 constants")
    p.add_argument("--harness", metavar="BOARDS",
                   help="board builds (comma-separated boards) for the iCE40 packing "
                        "fraction and the harness reserve")
    args = p.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    global CACHED_ONLY
    CACHED_ONLY = args.cached
    if args.harness:
        harness(args.harness.split(","), ["serial", {"layers": {
            "fc0": {"pe": 2, "simd": 8}, "fc1": {"pe": 2, "simd": 4}}}, "auto", "device"])
        return 0

    from mulfree.gen.plan.cost import stage_cost

    data = []
    for point in points(targets, args.quick):
        data.append(point)
        print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if args.fit:
        from mulfree.gen.plan import cost
        for target in targets:
            cost.COEFFS[target] = fit_scale(data, target) if args.scale else fit(data, target)
            print(f"COEFFS[{target!r}] = {json.dumps(cost.COEFFS[target])}")

    errors = {t: [] for t in targets}
    ff_err = {t: [] for t in targets}
    nets: dict = {}
    if args.stages:
        print(f"{'model':<16}{'fold':<9}{'stage':<14}{'target':<7}{'est':>7}{'yosys':>7}"
              f"{'err':>7}{'ff est':>8}{'ff':>7}{'bram':>9}")
    from mulfree.gen.plan.network import plan_network
    complete = {}
    for label, model in models(args.quick):
        for flabel, fold in folds_for(model):
            complete[(label, flabel)] = len(plan_network(model, "runtime", fold)[0])
    counted: dict = {}
    for label, flabel, sname, spec, target, m in data:
        counted[(label, flabel, target)] = counted.get((label, flabel, target), 0) + 1
    for label, flabel, sname, spec, target, m in data:
        c = stage_cost(spec, target)
        n = nets.setdefault((label, flabel, target), [0, 0, 0, 0, 0, 0])
        for i, v in enumerate((c.lut, m["lut"], c.ff, m["ff"], c.bram, m["bram"])):
            n[i] += v
        if args.stages:
            err = (c.lut - m["lut"]) / max(m["lut"], 1)
            print(f"{label:<16}{flabel:<9}{sname:<14}{target:<7}{c.lut:>7}{m['lut']:>7}"
                  f"{100 * err:>6.0f}%{c.ff:>8}{m['ff']:>7}{c.bram:>4}/{m['bram']:<4}")
    print(f"\n{'network':<16}{'fold':<9}{'target':<7}{'LUT est':>8}{'yosys':>7}{'err':>7}"
          f"{'FF est':>8}{'yosys':>7}{'err':>7}{'BRAM est/yosys':>16}")
    for (label, flabel, target), (le, lm, fe, fm, be, bm) in nets.items():
        if counted[(label, flabel, target)] < complete[(label, flabel)]:
            continue            # a stage was not measured (Yosys failed, or --cached)
        err, ferr = (le - lm) / lm, (fe - fm) / fm
        errors[target].append(err)
        ff_err[target].append(ferr)
        print(f"{label:<16}{flabel:<9}{target:<7}{le:>8}{lm:>7}{100 * err:>6.1f}%{fe:>8}{fm:>7}"
              f"{100 * ferr:>6.1f}%{be:>10}/{bm}")
    for t in targets:
        e = np.abs(np.array(errors[t]))
        f = np.abs(np.array(ff_err[t]))
        print(f"{t}: {len(e)} networks, LUT |error| median {100 * np.median(e):.1f}%, "
              f"90th percentile {100 * np.percentile(e, 90):.1f}%, max {100 * e.max():.1f}%; "
              f"FF |error| median {100 * np.median(f):.1f}%, max {100 * f.max():.1f}%")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
