"""Threshold folding: the integer layer gives the same output codes as the fake-quantized
float layer (dense/conv + batch norm + ReLU/clip + re-quantization), negative batch-norm
scales included; ties at exact boundaries go up."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mulfree.gen.errors import InputError, ModelError
from mulfree.gen.train.fold import affine_codes, bn_affine, flip_codes, fold_thresholds
from mulfree.gen.model.golden import accumulator_bounds, apply_thresholds, run
from mulfree.gen.model.format import Conv2d, Dense, Model, Output, OutputKind, Weights, Scheme
from mulfree.gen.train.quant import bipolar_act, learned_act, quantize_weights, uniform_act

BN_EPS = 1e-5


def _act(kind, bits):
    if kind == "uniform":
        return uniform_act(bits, 2.0)
    if kind == "bipolar":
        return bipolar_act()
    return learned_act(np.cumsum(np.linspace(0.2, 1.0, 2**bits)) - 0.3)


def _fold_dense(rng, n_in, n_out, scheme, wbits, in_act, out_act, neg_frac=0.3):
    w = rng.normal(0, 0.5, (n_out, n_in))
    q = quantize_weights(w, scheme, wbits)
    gamma = rng.uniform(0.3, 2.0, n_out) * np.where(rng.random(n_out) < neg_frac, -1, 1)
    beta = rng.normal(0, 1, n_out)
    mean = rng.normal(0, 1, n_out)
    var = rng.uniform(0.2, 3, n_out)
    scale = q.scale * in_act.step
    a, b = bn_affine(scale, 0.0, gamma, beta, mean, var, BN_EPS)
    probe = Dense("p", q.to_weights(), np.zeros(n_out, np.int64), Output(OutputKind.ACC),
                  activation_codebook=in_act.levels)
    bounds = accumulator_bounds(probe)
    t, flip = fold_thresholds(a, b, out_act.boundaries, bounds.low, bounds.high)
    codes = flip_codes(q.codes, q.codebook, flip)
    layer = Dense("fc", Weights(Scheme(scheme), wbits, codes, codebook=q.codebook),
                  np.zeros(n_out, np.int64), Output(OutputKind.THRESHOLDS, out_act.bits, t),
                  activation_codebook=in_act.levels)

    def reference(x_codes):
        xv = in_act.values[x_codes]
        z = xv @ q.values().T
        y = gamma * (z - mean) / np.sqrt(var + BN_EPS) + beta
        return out_act.codes(y)

    return layer, reference, (a, b, q, flip)


@pytest.mark.parametrize("scheme,wbits", [("uniform", 4), ("pot", 4), ("apot", 4),
                                          ("binary", 1), ("ternary", 2), ("uniform", 8)])
@pytest.mark.parametrize("in_kind,out_kind,abits", [("uniform", "uniform", 2),
                                                    ("uniform", "bipolar", 1),
                                                    ("bipolar", "uniform", 3),
                                                    ("learned", "learned", 2)])
def test_dense_fold_equals_float(scheme, wbits, in_kind, out_kind, abits):
    rng = np.random.default_rng(hash((scheme, wbits, in_kind, out_kind)) % 2**32)
    in_act = _act(in_kind, 1 if in_kind == "bipolar" else 2)
    out_act = _act(out_kind, abits)
    layer, reference, (a, b, q, flip) = _fold_dense(rng, 40, 24, scheme, wbits, in_act, out_act)
    x = rng.integers(0, in_act.levels.size, (500, 40))
    model = Model("m", (40,), in_act.bits, (layer,))
    got = run(model, x).output
    assert np.array_equal(got, reference(x))
    assert flip.any()


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_fold_exact_on_every_accumulator(seed):
    """For every integer in the reachable range, the thresholds give exactly the codes of
    the float expression a * acc + b (also for negative a, via the flipped accumulator)."""
    rng = np.random.default_rng(seed)
    out = 6
    a = rng.normal(0, 1, out) * 10.0 ** rng.integers(-3, 2, out)
    a[0] = 0.0 if seed % 3 == 0 else a[0]
    b = rng.normal(0, 3, out)
    nb = int(rng.integers(1, 8))
    bnd = np.sort(rng.normal(0, 3, nb))
    if seed % 2:   # put boundaries exactly on reachable values: ties
        bnd = np.sort(a[1] * rng.integers(-20, 20, nb) + b[1])
    low = -rng.integers(0, 300, out)
    high = rng.integers(0, 300, out)
    t, flip = fold_thresholds(a, b, bnd, low, high)
    assert np.all(np.diff(t, axis=1) >= 0)
    for j in range(out):
        xs = np.arange(low[j], high[j] + 1)
        want = affine_codes(xs[:, None], a[j:j + 1], b[j:j + 1], bnd)[:, 0]
        acc = -xs if flip[j] else xs
        got = apply_thresholds(acc[:, None], t[j:j + 1])[:, 0]
        assert np.array_equal(got, want), j


def test_ties_go_up():
    # y = 0.5 * acc: acc = 1 gives exactly the boundary 0.5 -> the higher code
    t, flip = fold_thresholds([0.5], [0.0], [0.5, 1.0, 1.5], [-10], [10])
    assert t.tolist() == [[1, 2, 3]] and not flip.any()
    t, flip = fold_thresholds([-0.5], [0.0], [0.5, 1.0, 1.5], [-10], [10])
    assert flip.tolist() == [True] and t.tolist() == [[1, 2, 3]]   # acc' = -acc


def test_unreachable_thresholds_are_clipped():
    t, _ = fold_thresholds([1.0, 1.0], [0.0, 0.0], [-100.0, 0.5, 100.0], [-5, -5], [5, 5])
    assert t.tolist() == [[-5, 1, 6], [-5, 1, 6]]


def test_conv_fold_equals_float():
    rng = np.random.default_rng(7)
    in_act, out_act = uniform_act(2, 2.0), uniform_act(2, 2.0)
    w = rng.normal(0, 0.5, (5, 3, 3, 2))
    q = quantize_weights(w, "pot", 3)
    gamma = rng.uniform(0.5, 2, 5) * np.array([1, -1, 1, -1, 1])
    beta, mean, var = rng.normal(0, 1, 5), rng.normal(0, 1, 5), rng.uniform(0.5, 2, 5)
    a, b = bn_affine(q.scale * in_act.step, 0.0, gamma, beta, mean, var, BN_EPS)
    probe = Conv2d("p", q.to_weights(), np.zeros(5, np.int64), Output(OutputKind.ACC),
                   activation_codebook=in_act.levels, padding=(1, 1))
    bounds = accumulator_bounds(probe, (6, 6, 2))
    t, flip = fold_thresholds(a, b, out_act.boundaries, bounds.low, bounds.high)
    codes = flip_codes(q.codes, q.codebook, flip)
    layer = Conv2d("c", Weights(Scheme.POT, 3, codes, codebook=q.codebook),
                   np.zeros(5, np.int64), Output(OutputKind.THRESHOLDS, 2, t),
                   activation_codebook=in_act.levels, padding=(1, 1))
    x = rng.integers(0, 4, (50, 6, 6, 2))
    got = run(Model("m", (6, 6, 2), 2, (layer,)), x).output
    # float reference: zero padding, (row, column, channel) windows
    xp = np.pad(in_act.values[x], ((0, 0), (1, 1), (1, 1), (0, 0)))
    z = np.zeros((50, 6, 6, 5))
    wv = q.values()
    for dy in range(3):
        for dx in range(3):
            z += np.einsum("nhwc,oc->nhwo", xp[:, dy:dy + 6, dx:dx + 6], wv[:, dy, dx])
    y = gamma * (z - mean) / np.sqrt(var + BN_EPS) + beta
    assert np.array_equal(got, out_act.codes(y))


def test_flip_needs_negation():
    with pytest.raises(ModelError, match="no negation"):
        flip_codes(np.array([[0, 1]]), np.array([3, 5]), np.array([True]))
    assert flip_codes(np.array([[0, 1, 2]]), np.array([0, 1, -1]),
                      np.array([True])).tolist() == [[0, 2, 1]]


def test_fold_bad_input():
    with pytest.raises(InputError, match="NaN"):
        fold_thresholds([np.nan], [0.0], [0.5], [0], [1])
    with pytest.raises(InputError, match="non-decreasing"):
        fold_thresholds([1.0], [0.0], [0.5, 0.1], [0], [1])
    with pytest.raises(InputError, match="NaN"):
        bn_affine(1.0, 0.0, [np.nan], [0.0], [0.0], [1.0])
