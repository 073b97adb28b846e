"""The golden model against a slow loop reference, on random small layers of every scheme."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import reference
from mulfree.gen.model import golden
from mulfree.gen.model.examples import example_model, random_conv2d, random_dense
from mulfree.gen.model.format import Dense, Flatten, MaxPool, Model, OutputKind, Output

SCHEMES = ["uniform", "binary", "ternary", "pot", "apot", "lut", "table"]
BITS = {"binary": 1, "ternary": 2}


def _model(layers, shape, in_bits):
    return Model(name="t", input_shape=shape, input_bits=in_bits, layers=tuple(layers))


@settings(max_examples=60)
@given(seed=st.integers(0, 2**32 - 1), scheme=st.sampled_from(SCHEMES),
       n_in=st.integers(1, 9), n_out=st.integers(1, 6), wbits=st.integers(2, 5),
       in_bits=st.integers(1, 3), out=st.sampled_from(["thresholds", "acc", "argmax"]),
       act=st.sampled_from(["uniform", "learned"]))
def test_dense_matches_reference(seed, scheme, n_in, n_out, wbits, in_bits, out, act):
    rng = np.random.default_rng(seed)
    layer = random_dense(rng, n_in, n_out, scheme=scheme, wbits=BITS.get(scheme, wbits),
                         in_bits=in_bits, out_bits=2, act=act, output=out)
    model = _model([layer], (n_in,), in_bits)
    x = rng.integers(0, 2**in_bits, (7, n_in))
    result = golden.run(model, x)
    for n in range(x.shape[0]):
        want, accs = reference.dense(layer, x[n])
        assert result.output[n].tolist() == want
        assert result.accumulators[0][n].tolist() == accs


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), scheme=st.sampled_from(SCHEMES),
       h=st.integers(1, 6), w=st.integers(1, 6), c=st.integers(1, 3), oc=st.integers(1, 3),
       kh=st.integers(1, 3), kw=st.integers(1, 3), sh=st.integers(1, 3), sw=st.integers(1, 2),
       ph=st.integers(0, 2), pw=st.integers(0, 1), in_bits=st.integers(1, 2),
       out=st.sampled_from(["thresholds", "acc", "argmax"]))
def test_conv2d_matches_reference(seed, scheme, h, w, c, oc, kh, kw, sh, sw, ph, pw,
                                  in_bits, out):
    if h + 2 * ph < kh or w + 2 * pw < kw:
        return
    rng = np.random.default_rng(seed)
    layer = random_conv2d(rng, (h, w, c), oc, (kh, kw), (sh, sw), (ph, pw), scheme=scheme,
                          wbits=BITS.get(scheme, 3), in_bits=in_bits, output=out)
    model = _model([layer], (h, w, c), in_bits)
    x = rng.integers(0, 2**in_bits, (3, h, w, c))
    result = golden.run(model, x)
    for n in range(x.shape[0]):
        want, accs = reference.conv2d(layer, x[n])
        np.testing.assert_array_equal(result.output[n], want)
        np.testing.assert_array_equal(result.accumulators[0][n], accs)


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 7), w=st.integers(1, 7),
       kh=st.integers(1, 3), kw=st.integers(1, 3), sh=st.integers(1, 3), sw=st.integers(1, 3))
def test_maxpool_matches_reference(seed, h, w, kh, kw, sh, sw):
    if kh > h or kw > w:
        return
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 8, (2, h, w, 3))
    pool = MaxPool(name="p", kernel=(kh, kw), stride=(sh, sw))
    got = golden.maxpool(x, pool.kernel, pool.stride)
    for n in range(2):
        np.testing.assert_array_equal(got[n], reference.maxpool(pool, x[n]))


def test_whole_example_network_matches_reference():
    model = example_model(0)
    x = np.random.default_rng(5).integers(0, 4, (4, 8, 8, 1))
    result = golden.run(model, x)
    for n in range(4):
        for got, want in zip(result.outputs, reference.run_sample(model, x[n])):
            np.testing.assert_array_equal(got[n], want)


def test_argmax_ties_go_to_lowest_index():
    assert golden.argmax(np.array([[3, 7, 7, 1], [5, 5, 5, 5]])).ravel().tolist() == [1, 0]


def test_threshold_ties_count_as_reached():
    t = np.array([[0, 5, 5]])
    assert golden.apply_thresholds(np.array([[-1], [0], [4], [5], [6]]), t).ravel().tolist() \
        == [0, 1, 1, 3, 3]


def test_large_batch_is_chunked_but_exact():
    rng = np.random.default_rng(0)
    layer = random_dense(rng, 50, 8, scheme="lut", wbits=4, in_bits=3, output="acc")
    model = _model([layer], (50,), 3)
    x = rng.integers(0, 8, (3000, 50))
    big = golden.run(model, x).output
    small = np.concatenate([golden.run(model, x[i:i + 7]).output for i in range(0, 3000, 7)])
    np.testing.assert_array_equal(big, small)


# -- accumulator bounds against exhaustive evaluation -------------------------------------

@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), scheme=st.sampled_from(SCHEMES),
       n_in=st.integers(1, 4), in_bits=st.integers(1, 2))
def test_dense_bounds_are_exact(seed, scheme, n_in, in_bits):
    rng = np.random.default_rng(seed)
    layer = random_dense(rng, n_in, 3, scheme=scheme, wbits=BITS.get(scheme, 3),
                         in_bits=in_bits, output="acc", act="learned")
    model = _model([layer], (n_in,), in_bits)
    every = np.array(list(itertools.product(range(2**in_bits), repeat=n_in)))
    acc = golden.run(model, every).output
    bounds = golden.accumulator_bounds(layer)
    assert acc.min(axis=0).tolist() == bounds.low.tolist()
    assert acc.max(axis=0).tolist() == bounds.high.tolist()
    assert bounds.width == max(golden.signed_width(acc.min()), golden.signed_width(acc.max()))


@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), scheme=st.sampled_from(SCHEMES),
       h=st.integers(2, 3), w=st.integers(2, 3), k=st.integers(1, 2), s=st.integers(1, 2),
       p=st.integers(0, 1))
def test_conv_bounds_are_exact(seed, scheme, h, w, k, s, p):
    rng = np.random.default_rng(seed)
    layer = random_conv2d(rng, (h, w, 1), 2, (k, k), (s, s), (p, p), scheme=scheme,
                          wbits=BITS.get(scheme, 2), in_bits=1, output="acc")
    model = _model([layer], (h, w, 1), 1)
    every = np.array(list(itertools.product(range(2), repeat=h * w))).reshape(-1, h, w, 1)
    acc = golden.run(model, every).output
    bounds = golden.accumulator_bounds(layer, (h, w, 1))
    assert acc.min(axis=(0, 1, 2)).tolist() == bounds.low.tolist()
    assert acc.max(axis=(0, 1, 2)).tolist() == bounds.high.tolist()


@pytest.mark.parametrize("value,width", [(0, 1), (-1, 1), (1, 2), (-2, 2), (127, 8),
                                         (-128, 8), (128, 9), (-129, 9)])
def test_signed_width(value, width):
    assert golden.signed_width(value) == width


def test_sub_model_runs_from_layer_inputs():
    model = example_model(1)
    x = np.random.default_rng(2).integers(0, 4, (5, 8, 8, 1))
    full = golden.run(model, x)
    tail = golden.run(model.sub(3), full.outputs[2])
    np.testing.assert_array_equal(tail.output, full.output)
