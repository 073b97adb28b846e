"""Small models and settings shared by the simulation tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mulfree.gen.model.examples import random_dense
from mulfree.gen.model.format import Flatten, Model
from mulfree.sim.runner import SimOptions

# One cache for every test and worker: folders are keyed by a hash of everything that
# goes into a build, so tests with different designs never share one, and reruns (and
# Verilator's runtime objects) are reused.
CACHE = Path(os.environ.get("MULFREE_SIM_CACHE",
                           Path(__file__).resolve().parents[2] / "build" / "sim-cache"))

SCHEMES = ("uniform", "binary", "ternary", "pot", "apot", "lut", "table")
WBITS = {"uniform": 4, "binary": 1, "ternary": 2, "pot": 4, "apot": 4, "lut": 3, "table": 2}


def options(simulator: str, **kw) -> SimOptions:
    kw.setdefault("opt_level", 0)      # tests want fast Verilator builds
    kw.setdefault("idle", 0.3)
    kw.setdefault("backpressure", 0.3)
    return SimOptions(simulator=simulator, cache_dir=CACHE, **kw)


def scheme_model(scheme: str, seed: int = 0, output: str = "acc") -> Model:
    """Two dense layers, the first of the given scheme."""
    rng = np.random.default_rng(seed)
    a = random_dense(rng, 12, 8, scheme=scheme, wbits=WBITS[scheme], in_bits=2, out_bits=2,
                     name=f"fc_{scheme}")
    b = random_dense(rng, 8, 5, scheme="uniform", wbits=3, in_bits=2, output=output,
                     name="out")
    return Model(f"scheme-{scheme}", (12,), 2, (a, b))


def chain_model(seed: int = 0) -> Model:
    """Every scheme in one network: one dense layer per scheme, accumulators out."""
    rng = np.random.default_rng(seed)
    layers, n = [], 12
    for k, scheme in enumerate(SCHEMES):
        last = k == len(SCHEMES) - 1
        m = 5 if last else 8
        layers.append(random_dense(rng, n, m, scheme=scheme, wbits=WBITS[scheme], in_bits=2,
                                   out_bits=2, output="acc" if last else "thresholds",
                                   name=f"{k}_{scheme}"))
        n = m
    return Model("all-schemes", (12,), 2, tuple(layers))


def digits_model(seed: int = 0, output: str = "acc") -> Model:
    """Digits-sized MLP (8x8 4-bit images, 64-64-32-10) with several schemes."""
    rng = np.random.default_rng(seed)
    fc1 = random_dense(rng, 64, 64, scheme="pot", wbits=4, in_bits=4, out_bits=2, name="fc1")
    fc2 = random_dense(rng, 64, 32, scheme="apot", wbits=4, in_bits=2, out_bits=2, name="fc2")
    fc3 = random_dense(rng, 32, 10, scheme="table", wbits=2, in_bits=2, output=output,
                       name="fc3")
    return Model("digits-mlp", (8, 8, 1), 4, (Flatten("flatten"), fc1, fc2, fc3))


def random_inputs(model: Model, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**model.input_bits, (n, *model.input_shape))
