"""Benchmark: threshold units and the result frame memory against Yosys, and their cost.

One dense layer at a time (the stage synthesized alone, Yosys ``synth_ice40``), with each
threshold unit the engine has (``hw/threshold.py``): ``parallel`` (a comparator per
threshold, the thresholds constants selected by the channel group), ``search`` (a
pipelined binary search over thresholds in memories), ``sequential`` (one memory, one
comparison per cycle). Printed per point: LUT4, FF and block RAMs from Yosys beside the
resource model's estimate (``gen/plan/cost.py``); with ``--fit`` the constants of the
features these units add (``thr_rom``, ``thr_seq``, ``thr_search``, ``out_mem``) are fitted with every
other constant held fixed, and printed.

    .venv/bin/python bench/threshold_units.py              # Yosys vs estimate
    .venv/bin/python bench/threshold_units.py --fit        # and the new constants
    .venv/bin/python bench/threshold_units.py --quick      # four points
    .venv/bin/python bench/threshold_units.py --decode     # signed activations

Yosys results are cached in out/fold_fit/cache.json (shared with bench/fold_fit.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["AMARANTH_USE_YOSYS"] = "builtin"

NEW = ("thr_rom", "thr_seq", "thr_search", "out_mem")

# (label, inputs, outputs, in_bits, out_bits, scheme, wbits, pe, simd): the digits MLP's
# layers (4-bit codes), TFC-like 2-bit layers, the UNSW-NB15 first layer's 8-bit output,
# KWS's 3-bit 256-wide layer, and small ones where constants win
POINTS = [
    ("digits-fc0", 64, 64, 4, 4, "pot", 4, 1, 1),
    ("digits-fc0", 64, 64, 4, 4, "pot", 4, 4, 16),
    ("digits-fc0", 64, 64, 4, 4, "pot", 4, 2, 8),
    ("digits-fc1", 64, 32, 4, 4, "pot", 4, 1, 4),
    ("tfc-fc1", 64, 64, 2, 2, "ternary", 2, 1, 1),
    ("tfc-fc1", 64, 64, 2, 2, "ternary", 2, 8, 8),
    ("small", 16, 8, 2, 2, "uniform", 3, 8, 16),
    ("small", 32, 16, 2, 1, "binary", 1, 2, 4),
    ("unsw-fc0", 600, 64, 1, 8, "ternary", 2, 1, 8),
    ("unsw-fc0", 600, 64, 1, 8, "ternary", 2, 2, 25),
    ("kws-fc1", 256, 256, 3, 3, "uniform", 3, 1, 4),
    ("kws-fc1", 256, 256, 3, 3, "uniform", 3, 4, 8),
    ("w6", 32, 32, 6, 6, "uniform", 4, 1, 8),
    ("w6", 32, 32, 6, 6, "uniform", 4, 4, 8),
]

# the parallel unit on an 8-bit output is 255 comparators and their constants per PE: not
# synthesized (Yosys takes very long on it), its estimate alone is printed
SKIP_PARALLEL_BITS = 7


def _spec(point, unit):
    from mulfree.gen.model.examples import random_dense
    from mulfree.gen.model.format import Model
    from mulfree.gen.plan.network import plan_network

    label, n_in, n_out, ib, ob, scheme, wb, pe, simd = point
    rng = np.random.default_rng(n_in * 1000 + n_out)
    layer = random_dense(rng, n_in, n_out, scheme=scheme, wbits=wb, in_bits=ib, out_bits=ob,
                         name="fc")
    model = Model(name=label, input_shape=(n_in,), input_bits=ib, layers=(layer,))
    fold = {"layers": {"fc": {"pe": pe, "simd": simd, "thresholds": unit}},
            "input_values_per_beat": 1}
    stages, _ = plan_network(model, "runtime", fold)
    return stages[0]


def units_for(point):
    _, n_in, _, _, ob, _, _, _, simd = point
    units = ["parallel", "search"]
    if n_in // simd >= ob:
        units.append("sequential")
    return units


def decode_points(cache) -> None:
    """Signed activations: a product table against the scheme's unit behind a wiring
    decode, one dense stage each (64 inputs, 16 outputs, SIMD 8), Yosys against the
    estimate."""
    import dataclasses as dc

    import fold_fit
    from mulfree.gen.model.examples import random_dense
    from mulfree.gen.model.format import Model
    from mulfree.gen.plan import cost
    from mulfree.gen.plan.network import plan_network
    from mulfree.gen.model.golden import product_table

    print(f"\n{'activations':<22}{'weights':<9}{'unit':<8}{'LUT4':>7}{'est':>7}{'FF':>6}", flush=True)
    for bits, scheme, wbits in ((4, "pot", 4), (4, "uniform", 4), (8, "uniform", 3)):
        rng = np.random.default_rng(bits + wbits)
        layer = random_dense(rng, 64, 16, scheme=scheme, wbits=wbits, in_bits=bits,
                             out_bits=2, name="fc")
        levels = np.arange(2**bits) - 2 ** (bits - 1)      # signed, offset order
        layer = dc.replace(layer, activation_codebook=levels)
        model = Model(name="signed", input_shape=(64,), input_bits=bits, layers=(layer,))
        spec = plan_network(model, "runtime", {"layers": {"fc": {"pe": 1, "simd": 8}},
                                               "input_values_per_beat": 1})[0][0]
        table = product_table(layer)
        variants = [("decode", spec)]
        if table.size <= 256:
            variants.append(("table", dc.replace(
                spec, unit_kind="table", unit_params={"table": table.tolist()},
                native=tuple(range(table.shape[0])), act_decode=None)))
        for label, v in variants:
            m = fold_fit.measure(v, "ice40", cache)
            c = cost.stage_cost(v, "ice40")
            if m is not None:
                print(f"signed {bits}-bit{'':<12}{scheme} {wbits}{'':<2}{label:<8}{m['lut']:>7}"
                      f"{c.lut:>7}{m['ff']:>6}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fit", action="store_true", help="fit the new features' constants")
    p.add_argument("--quick", action="store_true", help="four points")
    p.add_argument("--cached", action="store_true", help="only points already measured")
    p.add_argument("--decode", action="store_true",
                   help="signed activations: product table against unit and decode")
    args = p.parse_args(argv)

    import fold_fit
    from mulfree.gen.plan import cost

    fold_fit.CACHED_ONLY = args.cached
    cache = fold_fit._load_cache()
    if args.decode:
        decode_points(cache)
        return 0
    points = POINTS[:4] if args.quick else POINTS
    rows = []
    print(f"{'layer':<11}{'in':>4}{'out':>4}{'ob':>3}{'pe':>4}{'simd':>5} {'unit':<11}"
          f"{'LUT4':>7}{'est':>7}{'FF':>6}{'est':>6}{'BRAM':>5}{'est':>4}{'s':>5}", flush=True)
    for point in points:
        for unit in units_for(point):
            spec = _spec(point, unit)
            c = cost.stage_cost(spec, "ice40")
            label, n_in, n_out, _, ob, *_ = point
            head = (f"{label:<11}{n_in:>4}{n_out:>4}{ob:>3}{spec.pe:>4}{spec.simd:>5} "
                    f"{unit:<11}")
            if unit == "parallel" and ob >= SKIP_PARALLEL_BITS:
                print(f"{head}{'-':>7}{c.lut:>7}{'-':>6}{c.ff:>6}{'-':>5}{c.bram:>4}",
                      flush=True)
                continue
            t = time.monotonic()
            m = fold_fit.measure(spec, "ice40", cache)
            if m is None:
                continue
            rows.append((spec, m))
            print(f"{head}{m['lut']:>7}{c.lut:>7}{m['ff']:>6}{c.ff:>6}{m['bram']:>5}"
                  f"{c.bram:>4}{time.monotonic() - t:>5.0f}", flush=True)
    if args.fit and rows:
        from scipy.optimize import nnls

        co = cost.COEFFS["ice40"]
        # a fully parallel stage (one ROM word: constant weights, which Yosys folds into
        # the logic) is mispriced by the base model whatever its thresholds: left out
        rows_fit = [(spec, m) for spec, m in rows if spec.nf * spec.sf > 1]
        feats = [cost.stage_features(spec, "ice40") for spec, _ in rows_fit]
        y = np.array([m["lut"] for _, m in rows_fit], float)
        fixed = np.array([sum(co[k] * f[k] for k in cost.FEATURES if k not in NEW)
                          for f in feats])
        a = np.array([[f[k] for k in NEW] for f in feats], float)
        w = 1.0 / np.maximum(y, 30.0)
        used = a.any(axis=0)
        sol, _ = nnls(a[:, used] * w[:, None], (y - fixed) * w)
        coef = dict(zip(np.array(NEW)[used], np.round(sol, 3)))
        print("fitted:", {str(k): float(v) for k, v in coef.items()})
        for k, v in coef.items():
            co[k] = float(v)
    # the error of the model as it now stands
    for label, subset in (("all", rows), ("not fully parallel",
                                          [r for r in rows if r[0].nf * r[0].sf > 1])):
        errs = [(cost.stage_cost(spec, "ice40").lut - m["lut"]) / max(m["lut"], 1)
                for spec, m in subset]
        if not errs:
            continue
        e = np.abs(errs)
        print(f"{label}: {len(e)} stages, LUT4 |error| median {100 * np.median(e):.1f}%, "
              f"max {100 * e.max():.1f}%, mean signed {100 * np.mean(errs):+.1f}%; BRAM "
              f"exact on {sum(cost.stage_cost(s, 'ice40').bram == m['bram'] for s, m in subset)}"
              f" of {len(subset)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
