"""Small models made from a seed: the example network and random layers for tests.

Everything here is deterministic in its seed. Weights are random, so the networks compute
nothing useful; they exercise every scheme, layer kind and output kind the format has.
"""

from __future__ import annotations

import numpy as np

from .golden import accumulator_bounds
from .format import Conv2d, Dense, Flatten, MaxPool, Model, Output, OutputKind, Scheme, Weights

__all__ = ["scheme_codebook", "activation_codebook", "random_weights", "random_dense",
           "random_conv2d", "random_thresholds", "example_model"]


def scheme_codebook(scheme: Scheme | str, bits: int) -> np.ndarray:
    """A full codebook of the scheme at `bits`-bit codes, in a canonical order.

    uniform: code k is k read as two's complement. binary: [-1, +1]. ternary:
    [0, +1, -1]. pot: 0, +1, +2, .. in the lower half of the codes, -1, -2, .. in the upper.
    apot: 0, then the smallest sums of at most two powers of two, then their negations.
    lut: distinct integers drawn from the seed `bits`.
    """
    scheme = Scheme(scheme)
    if scheme is Scheme.UNIFORM:
        k = np.arange(2**bits)
        return np.where(k >= 2 ** (bits - 1), k - 2**bits, k)
    if scheme is Scheme.BINARY:
        return np.array([-1, 1])
    if scheme is Scheme.TERNARY:
        return np.array([0, 1, -1])
    if scheme is Scheme.POT:
        # Code 0 is zero, codes 1 .. half-1 are +2**(k-1), the upper half -2**(k-half).
        if bits == 1:
            return np.array([0, 1])
        if bits > 6:
            # -2**(2**(bits-1)-1) would not fit an int64 (the quantizer stops at 6 too)
            raise ValueError(f"pot codebooks have 1 to 6 bits, not {bits}")
        half = 2 ** (bits - 1)
        return np.concatenate([[0], 2 ** np.arange(half - 1), -(2 ** np.arange(half))])
    if scheme is Scheme.APOT:
        levels = sorted({0} | {2**a + 2**b for a in range(bits) for b in range(a)} |
                        {2**a for a in range(bits)})
        levels = [v for v in levels if v > 0][: 2 ** (bits - 1) - 1]
        return np.array([0] + levels + [-v for v in levels])
    if scheme is Scheme.LUT:
        rng = np.random.default_rng(bits)
        return np.sort(rng.choice(np.arange(-4 * 2**bits, 4 * 2**bits), 2**bits, replace=False))
    raise ValueError(f"scheme {scheme.value!r} has no codebook; it gives products directly")


def activation_codebook(kind: str, bits: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """``uniform``: A[c] = c; ``bipolar``: [-1, +1]; ``learned``: increasing integers."""
    if kind == "uniform":
        return np.arange(2**bits)
    if kind == "bipolar":
        if bits != 1:
            raise ValueError(f"bipolar activations have 1-bit codes, not {bits}")
        return np.array([-1, 1])
    if kind == "learned":
        rng = rng or np.random.default_rng(bits)
        return np.cumsum(rng.integers(1, 6, 2**bits)) - 3
    raise ValueError(f"activation codebook kind must be uniform, bipolar or learned, not {kind!r}")


def random_weights(rng: np.random.Generator, scheme: Scheme | str, bits: int,
                   shape: tuple[int, ...], act_codes: int) -> Weights:
    scheme = Scheme(scheme)
    if scheme is Scheme.TABLE:
        k = 2**bits
        products = rng.integers(-50, 51, (k, act_codes))
        return Weights(scheme, bits, rng.integers(0, k, shape), products=products)
    cb = scheme_codebook(scheme, bits)
    return Weights(scheme, bits, rng.integers(0, cb.size, shape), codebook=cb)


def random_thresholds(rng: np.random.Generator, layer_bounds, out_bits: int) -> np.ndarray:
    """Sorted thresholds drawn inside each channel's reachable range (so codes vary)."""
    lo, hi = layer_bounds.low, layer_bounds.high
    n = 2**out_bits - 1
    t = rng.uniform(0, 1, (lo.size, n))
    t.sort(axis=1)
    return np.floor(lo[:, None] + t * (hi - lo + 1)[:, None] / 2 + (hi - lo)[:, None] / 4).astype(np.int64)


def _finish(rng, layer_cls, name, weights, in_shape, out_bits, output_kind, act_cb, **geo):
    out = weights.codes.shape[0]
    bias = rng.integers(-8, 9, out)
    acc_only = layer_cls(name=name, weights=weights, bias=bias, activation_codebook=act_cb,
                         output=Output(OutputKind.ACC), **geo)
    if output_kind != "thresholds":
        return layer_cls(name=name, weights=weights, bias=bias, activation_codebook=act_cb,
                         output=Output(output_kind), **geo)
    bounds = accumulator_bounds(acc_only, in_shape)
    t = random_thresholds(rng, bounds, out_bits)
    return layer_cls(name=name, weights=weights, bias=bias, activation_codebook=act_cb,
                     output=Output(OutputKind.THRESHOLDS, out_bits, t), **geo)


def random_dense(rng: np.random.Generator, n_in: int, n_out: int, *, scheme: str = "uniform",
                 wbits: int = 4, in_bits: int = 2, out_bits: int = 2,
                 act: str = "uniform", output: str = "thresholds", name: str = "fc") -> Dense:
    act_cb = None if scheme == "table" else activation_codebook(act, in_bits, rng)
    w = random_weights(rng, scheme, wbits, (n_out, n_in), 2**in_bits)
    return _finish(rng, Dense, name, w, (n_in,), out_bits, output, act_cb)


def random_conv2d(rng: np.random.Generator, in_shape: tuple[int, int, int], out_channels: int,
                  kernel: tuple[int, int] = (3, 3), stride: tuple[int, int] = (1, 1),
                  padding: tuple[int, int] = (0, 0), *, scheme: str = "uniform", wbits: int = 4,
                  in_bits: int = 2, out_bits: int = 2, act: str = "uniform",
                  output: str = "thresholds", name: str = "conv") -> Conv2d:
    act_cb = None if scheme == "table" else activation_codebook(act, in_bits, rng)
    w = random_weights(rng, scheme, wbits, (out_channels, *kernel, in_shape[2]), 2**in_bits)
    return _finish(rng, Conv2d, name, w, in_shape, out_bits, output, act_cb,
                   stride=stride, padding=padding)


def example_model(seed: int = 0) -> Model:
    """A small conv + dense network using several schemes: the repository's example."""
    rng = np.random.default_rng(seed)
    conv = random_conv2d(rng, (8, 8, 1), 4, (3, 3), (1, 1), (1, 1), scheme="pot", wbits=4,
                         in_bits=2, out_bits=2, name="conv1")
    pool = MaxPool(name="pool1", kernel=(2, 2))
    flat = Flatten(name="flatten")
    fc1 = random_dense(rng, 64, 16, scheme="apot", wbits=4, in_bits=2, out_bits=2, name="fc1")
    fc2 = random_dense(rng, 16, 10, scheme="table", wbits=2, in_bits=2, output="acc",
                       name="fc2")
    return Model(name=f"example-{seed}", input_shape=(8, 8, 1), input_bits=2,
                 layers=(conv, pool, flat, fc1, fc2),
                 metadata={"source": "mulfree.gen.model.examples.example_model", "seed": seed,
                           "note": "random weights: exercises the format, computes nothing useful"})
