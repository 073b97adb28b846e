"""Thresholds by binary search over the monotone chain, against the obviously correct
reference: enumerate every accumulator value of a small range and push it through the
chain and QONNX's quantizer definition."""

import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mulfree.gen.importers.thresholds import (Affine, Clip, OutQuant, Relu, chain_direction,
                                              chain_value, search_thresholds)
from mulfree.gen.model.encoding import ROUNDING_MODES


def _quant(draw, channels):
    kind = draw(st.sampled_from(["int", "bipolar", "thresholds"]))
    if kind == "int":
        bits = draw(st.integers(1, 6))
        return OutQuant("int", scale=np.array(draw(st.lists(st.floats(0.05, 2.0), min_size=channels,
                                                               max_size=channels))),
                        zero_point=np.zeros(channels), bits=bits, signed=draw(st.booleans()),
                        narrow=draw(st.booleans()) and bits > 1,
                        rounding=draw(st.sampled_from(ROUNDING_MODES)))
    if kind == "bipolar":
        return OutQuant("bipolar", scale=np.ones(channels))
    steps = draw(st.integers(1, 7))
    t = np.sort(np.array(draw(st.lists(st.floats(-20, 20), min_size=channels * steps,
                                       max_size=channels * steps))).reshape(channels, steps), 1)
    return OutQuant("thresholds", thresholds=t)


@st.composite
def _case(draw):
    c = draw(st.integers(1, 4))
    ops = [Affine(np.array(draw(st.lists(st.floats(0.01, 3.0), min_size=c, max_size=c))),
                  np.array(draw(st.lists(st.floats(-5, 5), min_size=c, max_size=c))))]
    if draw(st.booleans()):
        ops.append(Relu())
    if draw(st.booleans()):
        ops.append(Clip(draw(st.floats(-3, 0)), draw(st.floats(0.5, 6))))
    if draw(st.booleans()):
        ops.append(Affine(np.array(draw(st.lists(st.floats(0.1, 2.0), min_size=c, max_size=c))),
                          np.zeros(c)))
    lo = np.array(draw(st.lists(st.integers(-60, 0), min_size=c, max_size=c)))
    hi = lo + np.array(draw(st.lists(st.integers(0, 80), min_size=c, max_size=c)))
    return ops, _quant(draw, c), lo, hi


@settings(max_examples=300, deadline=None)
@given(_case())
def test_search_equals_enumeration(case):
    ops, q, lo, hi = case
    n = q.n_codes
    bits = max(1, (n - 1).bit_length())
    t = search_thresholds(lambda a: q.codes(chain_value(ops, a)), lo, hi, n, 2**bits - 1)
    for j in range(lo.size):
        acc = np.arange(lo[j], hi[j] + 1)
        want = _channel(q, j).codes(chain_value([_row(op, j) for op in ops], acc[None, :]))[0]
        got = (acc[:, None] >= t[j][None, :]).sum(1)
        np.testing.assert_array_equal(got, want)


def _row(op, j):
    """Channel j's part of a chain op."""
    if isinstance(op, Affine):
        return Affine(np.asarray(op.scale)[j:j + 1], np.asarray(op.bias)[j:j + 1])
    return op


def _channel(q, j):
    """Channel j's quantizer."""
    from dataclasses import replace

    if q.kind == "thresholds":
        return replace(q, thresholds=q.thresholds[j:j + 1])
    return replace(q, scale=np.asarray(q.scale)[j:j + 1],
                   zero_point=np.asarray(q.zero_point)[j:j + 1])


def test_chain_direction_counts_negative_scales():
    ops = [Affine(np.array([1.0, -1.0, -2.0]), np.zeros(3)), Relu(),
           Affine(np.array([1.0, 1.0, -0.5]), np.zeros(3))]
    assert chain_direction(ops, 3).tolist() == [1, -1, 1]


@pytest.mark.parametrize("span_bits", [24, 40])
def test_wide_ranges_take_a_few_dozen_steps(span_bits):
    """An 8-bit output over an accumulator range of 2**24 or 2**40 values (16-bit inputs):
    about span_bits evaluations per threshold, not 2**span_bits."""
    calls = []
    q = OutQuant("int", scale=np.full(64, 0.01), zero_point=np.zeros(64), bits=8,
                 signed=False)
    ops = [Affine(np.full(64, 1e-6 * 2.0**(24 - span_bits)), np.linspace(-1, 1, 64))]

    def code_at(a):
        calls.append(a.size)
        return q.codes(chain_value(ops, a))

    t0 = time.perf_counter()
    lo = np.full(64, -(2**(span_bits - 1)))
    t = search_thresholds(code_at, lo, -lo, 256, 255)
    elapsed = time.perf_counter() - t0
    assert len(calls) <= span_bits + 2
    assert np.all(np.diff(t, axis=1) >= 0)
    print(f"2**{span_bits} accumulator values, 64 channels x 255 thresholds: "
          f"{len(calls)} steps, {elapsed:.3f} s")
