"""Weight and activation quantizers: codebooks obey their schemes, projection is to the
nearest level and idempotent, LUT-Q k-means never increases the error, bad input fails
clearly."""

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from mulfree.gen.errors import InputError, MulfreeError
from mulfree.gen.model.format import Scheme, scheme_allows
from mulfree.gen.train.quant import (bipolar_act, integerize_levels, kmeans_assign, kmeans_step,
    learned_act, lutq_error, lutq_init, lutq_quantize, project, quantize_weights, uniform_act,
    weight_levels)

FIXED = [("uniform", 2), ("uniform", 3), ("uniform", 4), ("uniform", 8), ("binary", 1),
         ("ternary", 2), ("pot", 1), ("pot", 2), ("pot", 3), ("pot", 4), ("pot", 5),
         ("apot", 2), ("apot", 3), ("apot", 4), ("apot", 5)]


def _w(seed=0, shape=(16, 24)):
    return np.random.default_rng(seed).normal(0, 0.3, shape)


@pytest.mark.parametrize("scheme,bits", FIXED)
def test_codebook_obeys_scheme(scheme, bits):
    cb = weight_levels(scheme, bits)
    assert cb.size <= 2**bits
    assert len(set(cb.tolist())) == cb.size
    assert all(scheme_allows(Scheme(scheme), bits, v) for v in cb.tolist())
    q = quantize_weights(_w(), scheme, bits)
    w = q.to_weights()                       # the model format accepts it
    assert w.scheme is Scheme(scheme) and w.codes.shape == (16, 24)
    used = np.unique(q.codes)
    # every used level has its negation in the codebook (folding can flip a channel)
    assert all((-cb[k]) in cb for k in used)


def test_scheme_specific_levels():
    assert weight_levels("pot", 4).tolist() == [0, 1, 2, 4, 8, 16, 32, 64,
                                               -1, -2, -4, -8, -16, -32, -64]
    assert weight_levels("apot", 4).tolist() == [0, 1, 2, 3, 4, 5, 6, 8,
                                                -1, -2, -3, -4, -5, -6, -8]
    assert weight_levels("uniform", 3).tolist() == [0, 1, 2, 3, -4, -3, -2, -1]
    assert weight_levels("ternary", 2).tolist() == [0, 1, -1]
    assert all(bin(abs(v)).count("1") <= 2 for v in weight_levels("apot", 8).tolist())
    assert weight_levels("apot", 8).size == 255 and weight_levels("apot", 8).max() == 2**15 + 2**5


@pytest.mark.parametrize("scheme,bits", [s for s in FIXED if s[0] not in ("binary", "ternary")])
def test_projection_is_nearest_and_idempotent(scheme, bits):
    w = _w(1)
    q = quantize_weights(w, scheme, bits)
    usable = q.codebook[np.unique(q.codes)]
    allowed = q.codebook[q.codebook != -(2 ** (bits - 1))] if scheme == "uniform" else q.codebook
    vals = q.values()
    # nearest: no allowed level is strictly closer than the chosen one
    dist = np.abs(w[..., None] - q.scale * allowed[None, None, :])
    assert np.all(np.abs(w - vals) <= dist.min(axis=-1) + 1e-12)
    # idempotent: quantizing the quantized weights with the same scale changes nothing
    q2 = quantize_weights(vals, scheme, bits, scale=q.scale)
    assert np.array_equal(q2.values(), vals)
    assert usable.size >= 2


def test_binary_ternary():
    w = _w(2)
    b = quantize_weights(w, "binary", 1)
    assert np.array_equal(b.values() > 0, w >= 0)
    assert b.scale == pytest.approx(np.abs(w).mean())
    t = quantize_weights(w, "ternary", 2)
    assert set(np.unique(t.codebook[t.codes]).tolist()) <= {-1, 0, 1}
    zero = np.abs(w) <= 0.7 * np.abs(w).mean()
    assert np.all(t.values()[zero] == 0)
    assert np.array_equal(quantize_weights(t.values(), "ternary", 2).values() != 0,
                          t.values() != 0)


@given(st.lists(st.floats(-10, 10), min_size=1, max_size=40),
       st.lists(st.floats(-10, 10), min_size=1, max_size=8, unique=True))
@settings(max_examples=200, deadline=None)
@example(xs=[0.0, 1.0], levels=[0.0, 5e-324])  # a midpoint that rounds onto a level
def test_project_nearest_property(xs, levels):
    x = np.array(xs)
    lv = np.array(levels)
    idx = project(x, lv)
    d = np.abs(x[:, None] - lv[None, :])
    assert np.all(d[np.arange(x.size), idx] <= d.min(axis=1))
    assert np.array_equal(lv[project(lv, lv)], lv)


@pytest.mark.parametrize("pot,prune", [(False, 0.0), (True, 0.0), (False, 0.5), (True, 0.3)])
@pytest.mark.parametrize("k", [2, 4, 8, 16])
def test_kmeans_step_never_increases_error(pot, prune, k):
    rng = np.random.default_rng(k)
    w = rng.standard_t(4, (20, 30)) * 0.2
    d = lutq_init(w, k, pot=pot, prune=prune)
    a = kmeans_assign(w, d, prune)
    err = lutq_error(w, d, a)
    for _ in range(8):
        a, d = kmeans_step(w, d, pot=pot, prune=prune)
        new = lutq_error(w, d, a)
        assert new <= err * (1 + 1e-12) + 1e-12
        err = new
        if prune:
            assert d[0] == 0.0
            assert np.mean(a == 0) >= prune - 1e-9
        if pot:
            nz = np.abs(d[d != 0])
            r = np.log2(nz / nz.min())
            assert np.allclose(r, np.round(r))


@given(st.integers(0, 2**31), st.integers(1, 4))
@settings(max_examples=40, deadline=None)
def test_kmeans_property(seed, bits):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1, rng.integers(3, 60))
    d = lutq_init(w, 2**bits)
    a = kmeans_assign(w, d)
    e0 = lutq_error(w, d, a)
    a, d = kmeans_step(w, d)
    assert lutq_error(w, d, a) <= e0 + 1e-9


@pytest.mark.parametrize("pot", [False, True])
def test_lutq_quantize_codebook(pot):
    q = lutq_quantize(_w(3), 3, pot=pot)
    w = q.to_weights()
    assert w.scheme is Scheme.LUT and w.codebook.size == 8
    assert np.abs(q.codebook).max() <= 127
    if pot:
        assert all(v == 0 or (abs(v) & (abs(v) - 1)) == 0 for v in q.codebook.tolist())
    assert np.mean((q.values() - _w(3)) ** 2) < np.var(_w(3)) * 0.1


def test_lutq_pruned_sparsity():
    q = lutq_quantize(_w(4), 3, prune=0.6)
    assert q.codebook[0] == 0
    assert np.mean(q.values() == 0) >= 0.6


def test_integerize_levels_pot_exact():
    ints, s = integerize_levels(np.array([0.0, 0.25, -0.5, 1.0]), 8)
    assert ints.tolist() == [0, 1, -2, 4] and s == 0.25


def test_activation_quantizers():
    u = uniform_act(2, 3.0)
    assert u.levels.tolist() == [0, 1, 2, 3] and u.step == 1.0
    y = np.array([-1.0, 0.0, 0.49, 0.5, 1.2, 2.5, 9.0])
    assert u.codes(y).tolist() == [0, 0, 0, 1, 1, 3, 3]   # ties go up
    assert np.array_equal(u.codes(u.values), np.arange(4))  # idempotent
    b = bipolar_act()
    assert b.levels.tolist() == [-1, 1]
    assert b.codes(np.array([-0.1, 0.0, 0.3])).tolist() == [0, 1, 1]
    lq = learned_act(np.array([0.0, 0.3, 0.7, 2.0]))
    assert np.all(np.diff(lq.levels) > 0)
    assert np.array_equal(lq.codes(lq.values), np.arange(4))


@pytest.mark.parametrize("bad,match", [
    (np.array([[1.0, np.nan]]), "NaN"),
    (np.array([[np.inf, 1.0]]), "NaN or infinity"),
    (np.zeros((0, 4)), "empty"),
])
def test_bad_weights(bad, match):
    with pytest.raises(InputError, match=match):
        quantize_weights(bad, "uniform", 4)


@pytest.mark.parametrize("scheme,bits,match", [
    ("uniform", 1, "2 to 16"), ("uniform", 17, "2 to 16"), ("binary", 2, "1-bit"),
    ("ternary", 3, "2-bit"), ("pot", 7, "1 to 6"), ("pot", 0, "1 to 6"),
    ("apot", 1, "2 to 8"), ("apot", 9, "2 to 8"), ("lut", 0, "1 to 16"), ("nope", 4, "unknown"),
])
def test_bits_out_of_range(scheme, bits, match):
    with pytest.raises(MulfreeError, match=match):
        quantize_weights(_w(), scheme, bits)


def test_bad_activation_args():
    with pytest.raises(InputError):
        uniform_act(0, 1.0)
    with pytest.raises(InputError):
        uniform_act(2, float("nan"))
    with pytest.raises(InputError, match="increasing"):
        learned_act(np.array([0.0, 1.0, 0.5, 2.0]))
    with pytest.raises(InputError, match="power of two"):
        learned_act(np.array([0.0, 1.0, 2.0]))
