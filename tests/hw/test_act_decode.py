"""Activation codebooks that are wiring (signed codes in two's complement or offset order,
shifted levels) keep the scheme's product unit with no decode table; the planner picks a
product table only where the resource model prices it lower; every case bit-exact."""

import dataclasses

import numpy as np
import pytest

from mulfree.gen.model.examples import random_dense
from mulfree.gen.model.format import Model
from mulfree.gen.plan.cost import stage_features
from mulfree.gen.plan.network import build_network, plan_network
from mulfree.hw.compute import decode_wiring
from netsim import golden_flat, run_network

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _levels(form, bits, shift=0):
    n, half = 1 << bits, 1 << (bits - 1)
    base = {"unsigned": list(range(n)),
            "signed": [c - n if c >= half else c for c in range(n)],
            "offset": [c - half for c in range(n)]}[form]
    return [v << shift for v in base]


def test_decode_wiring_forms():
    assert decode_wiring(_levels("signed", 4), 4) == ("signed", 0)
    assert decode_wiring(_levels("offset", 4), 4) == ("offset", 0)
    assert decode_wiring(_levels("offset", 8, 2), 8) == ("offset", 2)
    assert decode_wiring(_levels("unsigned", 3, 1), 3) == ("unsigned", 1)
    assert decode_wiring(None, 4) is None
    # not affine in the code: a lookup
    assert decode_wiring([0, 1, 3, 7], 2) is None
    assert decode_wiring([-1, 1], 1) is None
    # a negated codebook is not wiring here either
    assert decode_wiring([-v for v in _levels("offset", 4)], 4) is None


def _model(form, bits, scheme, wbits, shift=0, seed=0):
    rng = np.random.default_rng(seed)
    l1 = random_dense(rng, 16, 8, scheme=scheme, wbits=wbits, in_bits=bits, out_bits=2,
                      name="fc1")
    l1 = dataclasses.replace(l1, activation_codebook=np.array(_levels(form, bits, shift)))
    # thresholds drawn for the identity codebook may sit outside the new range: redraw
    from mulfree.gen.model.examples import random_thresholds
    from mulfree.gen.model.format import Output, OutputKind
    from mulfree.gen.model.golden import accumulator_bounds
    acc = dataclasses.replace(l1, output=Output(OutputKind.ACC))
    t = random_thresholds(rng, accumulator_bounds(acc, (16,)), 2)
    l1 = dataclasses.replace(l1, output=Output(OutputKind.THRESHOLDS, 2, t))
    l2 = random_dense(rng, 8, 3, scheme=scheme, wbits=wbits, in_bits=2, output="acc",
                      name="fc2")
    return Model(name="m", input_shape=(16,), input_bits=bits, layers=(l1, l2))


@pytest.mark.parametrize("form,bits,scheme,wbits,shift", [
    ("signed", 4, "pot", 4, 0), ("offset", 4, "pot", 4, 0), ("offset", 8, "uniform", 3, 0),
    ("signed", 6, "apot", 4, 1), ("unsigned", 3, "ternary", 2, 2), ("offset", 2, "pot", 3, 0)])
def test_wiring_decodes_keep_the_scheme_unit(form, bits, scheme, wbits, shift):
    model = _model(form, bits, scheme, wbits, shift, seed=bits)
    fold = {"layers": {"fc1": {"pe": 2, "simd": 4}}}
    stages, manifest = plan_network(model, "runtime", fold)
    spec = stages[0]
    want_kind = {"pot": "pot", "uniform": "uniform", "apot": "apot", "ternary": "pot"}[scheme]
    assert spec.unit_kind == want_kind, spec.unit_kind
    assert stage_features(spec)["decode"] == 0          # no decode table
    net, manifest = build_network(model, "runtime", fold)
    x = np.random.default_rng(3).integers(0, 2**bits, (4, 16))
    x[0] = 0
    x[1] = 2**bits - 1
    got, _ = run_network(net, manifest, x, seed=2)
    np.testing.assert_array_equal(got, golden_flat(model, x))


def test_table_only_where_cheaper():
    """A learned 2-bit codebook with 2-bit weights (16 products, 4 index bits: one LUT4
    per output bit) is a table; learned 4-bit activations with 4-bit PoT weights (256
    products) keep the PoT shifter behind a 16-entry decode."""
    rng = np.random.default_rng(0)
    small = random_dense(rng, 8, 4, scheme="uniform", wbits=2, in_bits=2, act="learned",
                         output="acc", name="fc")
    big = random_dense(rng, 8, 4, scheme="pot", wbits=4, in_bits=4, act="learned",
                       output="acc", name="fc")
    kinds = []
    for layer, bits in ((small, 2), (big, 4)):
        model = Model(name="m", input_shape=(8,), input_bits=bits, layers=(layer,))
        stages, _ = plan_network(model, "runtime", {"layers": {"fc": {"pe": 1, "simd": 2}}})
        kinds.append(stages[0].unit_kind)
        net, manifest = build_network(model, "runtime", {"layers": {"fc": {"pe": 1, "simd": 2}}})
        x = np.random.default_rng(1).integers(0, 2**bits, (3, 8))
        got, _ = run_network(net, manifest, x, seed=1)
        np.testing.assert_array_equal(got, golden_flat(model, x))
    assert kinds == ["table", "pot"]
