"""Table-based units: product tables at a chosen precision, table size as a knob."""

import numpy as np
import pytest

from mulfree.gen.errors import InputError
from mulfree.gen.model.golden import run
from mulfree.gen.model.format import Dense, Model, Output, OutputKind
from mulfree.gen.train.tbn import levels_for_entries, product_table, table_weights


@pytest.mark.parametrize("entries,act_codes,k", [(40, 4, 10), (40, 8, 5), (320, 8, 40),
                                                 (320, 4, 80), (320, 16, 20)])
def test_paper_table_sizes_reachable(entries, act_codes, k):
    assert levels_for_entries(entries, act_codes) == k
    d = np.linspace(-1, 1, k)
    a = np.linspace(0, 1, act_codes)
    p, s = product_table(d, a, 8)
    assert p.shape == (k, act_codes) and p.size <= entries
    assert np.abs(p).max() == 127
    assert np.allclose(p * s, np.multiply.outer(d, a), atol=s / 2 + 1e-12)
    w = table_weights(np.zeros((3, 5), np.int64), p)
    assert w.bits == max(1, (k - 1).bit_length())


@pytest.mark.parametrize("precision", [2, 4, 8, 12])
def test_precision_bounds_entries(precision):
    rng = np.random.default_rng(precision)
    p, s = product_table(rng.normal(size=7), rng.uniform(0, 2, 4), precision)
    assert np.abs(p).max() <= 2 ** (precision - 1) - 1


def test_table_layer_runs_in_golden_model():
    rng = np.random.default_rng(0)
    p, _ = product_table(rng.normal(size=10), np.array([0.0, 0.5, 1.0, 2.0]), 8)
    codes = rng.integers(0, 10, (3, 6))
    layer = Dense("t", table_weights(codes, p), np.zeros(3, np.int64), Output(OutputKind.ACC))
    x = rng.integers(0, 4, (20, 6))
    acc = run(Model("m", (6,), 2, (layer,)), x).output
    want = np.array([[sum(p[codes[j, i], x[n, i]] for i in range(6)) for j in range(3)]
                     for n in range(20)])
    assert np.array_equal(acc, want)


def test_table_errors():
    with pytest.raises(InputError, match="more than the 16 representable"):
        levels_for_entries(320, 4, wbits=4)
    with pytest.raises(InputError, match="at least 2"):
        levels_for_entries(7, 4)
    with pytest.raises(InputError, match="positive"):
        levels_for_entries(0, 4)
    with pytest.raises(InputError, match="NaN"):
        product_table([np.nan, 1.0], [0.0, 1.0])
    with pytest.raises(InputError, match="precision"):
        product_table([1.0], [1.0], precision=40)
    with pytest.raises(InputError, match="empty"):
        product_table([], [1.0])
