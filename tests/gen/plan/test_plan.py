"""The elaboration plan: folds, widths, units, timing formulas, errors."""

import json

import numpy as np
import pytest

from mulfree.gen.errors import InputError
from mulfree.gen.model.examples import example_model, random_conv2d, random_dense
from mulfree.gen.model.golden import accumulator_bounds
from mulfree.gen.model.format import Model
from mulfree.gen.plan.folds import load_fold
from mulfree.gen.plan.network import plan_network
from mulfree.gen.plan.stages import relaxed_bounds


def _model(scheme="pot", act="uniform", wbits=3):
    rng = np.random.default_rng(0)
    l1 = random_dense(rng, 12, 6, scheme=scheme, wbits=wbits, in_bits=2, act=act, name="fc1")
    l2 = random_dense(rng, 6, 4, scheme="uniform", wbits=3, in_bits=2, output="acc", name="fc2")
    return Model(name="m", input_shape=(12,), input_bits=2, layers=(l1, l2))


@pytest.mark.parametrize("fold,expect", [
    ("serial", [(1, 1), (1, 1)]),
    ("parallel", [(6, 12), (4, 6)]),
    ("auto", [(3, 12), (4, 6)]),
    ({"layers": {"fc1": {"pe": 2, "simd": 4}}, "default": "serial"}, [(2, 4), (1, 1)]),
])
def test_folds(fold, expect):
    stages, manifest = plan_network(_model(), "runtime", fold)
    assert [(r["pe"], r["simd"]) for r in manifest["layers"]] == expect
    assert [s.steps for s in stages] == [r["cycles"] for r in manifest["layers"]]


def test_fold_file(tmp_path):
    p = tmp_path / "f.json"
    p.write_text(json.dumps({"input_values_per_beat": 3, "layers": {"fc2": "parallel"}}))
    _, manifest = plan_network(_model(), "runtime", str(p))
    assert manifest["input"]["values_per_beat"] == 3 and manifest["input"]["beats"] == 4
    p.write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_fold(str(p))
    with pytest.raises(InputError, match="unknown field 'pe'"):
        load_fold({"pe": 1})


@pytest.mark.parametrize("fold,message", [
    ({"family": "xc7"}, "'family' must be one of ice40, ecp5, got 'xc7'"),
    ({"latency_cutoff": -1}, "'latency_cutoff' must be an integer >= 0"),
    ({"latency_cutoff": True}, "'latency_cutoff' must be an integer >= 0"),
    ({"latency_cutoff": 1.5}, "'latency_cutoff' must be an integer >= 0"),
])
def test_baked_fold_keys_refuse_nonsense(fold, message):
    with pytest.raises(InputError, match=message):
        load_fold(fold)
    # and the good ones pass through to the plan
    _, manifest = plan_network(_model(), "baked", {"family": "ecp5", "latency_cutoff": 1})
    assert manifest["layers"][0]["solver"]["family"] == "ecp5"


def test_runtime_latency_cutoff_in_the_manifest():
    fold = {"layers": {"fc1": {"pe": 1, "simd": 4}}}
    _, plain = plan_network(_model(), "runtime", fold)
    _, cut = plan_network(_model(), "runtime", {**fold, "latency_cutoff": 1})
    assert plain["layers"][0]["adder_tree"] == {"levels": 2, "latency_cutoff": 0, "latency": 0}
    assert cut["layers"][0]["adder_tree"] == {"levels": 2, "latency_cutoff": 1, "latency": 2}
    assert cut["latency_cycles"] > plain["latency_cycles"]


@pytest.mark.parametrize("scheme,unit", [("pot", "pot"), ("binary", "pot"), ("ternary", "pot"),
                                         ("apot", "apot"), ("uniform", "uniform"),
                                         ("lut", "uniform"), ("table", "table")])
def test_unit_choice(scheme, unit):
    wbits = {"binary": 1, "ternary": 2}.get(scheme, 3)
    _, manifest = plan_network(_model(scheme, wbits=wbits), "runtime")
    assert manifest["layers"][0]["unit"] == unit


def test_non_identity_activations_use_tables_when_small():
    _, manifest = plan_network(_model("pot", act="learned"), "runtime")
    assert manifest["layers"][0]["unit"] == "table"
    _, manifest = plan_network(_model("uniform", act="learned", wbits=8), "runtime")
    assert manifest["layers"][0]["unit"] == "uniform"  # with an activation decode


def test_accumulator_widths_hold_every_partial_sum():
    model = example_model(0)
    for layer, io in zip(model.layers, model.io):
        if not hasattr(layer, "weights"):
            continue
        lo, hi = relaxed_bounds(layer, io.in_shape)
        exact = accumulator_bounds(layer, io.in_shape)
        assert lo <= exact.min <= exact.max <= hi
        assert lo <= min(0, int(layer.bias.min())) and hi >= max(0, int(layer.bias.max()))


def test_conv_stage_geometry():
    rng = np.random.default_rng(1)
    conv = random_conv2d(rng, (4, 5, 2), 3, (3, 2), (1, 2), (1, 0), scheme="pot", name="c")
    model = Model(name="c", input_shape=(4, 5, 2), input_bits=2, layers=(conv,))
    stages, manifest = plan_network(model, "runtime", "serial")
    s = stages[0]
    assert s.positions == 4 * 2 and s.taps == 3 * 2 * 2
    w = s.window
    assert (w.shape, w.kernel, w.stride, w.padding) == ((4, 5, 2), (3, 2), (1, 2), (1, 0))
    assert w.out_shape == (4, 2) and w.positions == s.positions and w.taps == s.taps
    assert w.has_padding and w.scan_rows == 6 and w.scan_cols == 5
    row = manifest["layers"][0]["window"]
    # two rows of the (unpadded) width 5 with 2 channels, one code (2 bits) per channel
    assert (row["line_rows"], row["line_cols"], row["channels"]) == (2, 5, 2)
    assert row["memory_bits"] == 2 * 5 * 2 * 2 and row["window_bits"] == 3 * 2 * 2 * 2
    assert manifest["output"]["shape"] == [4, 2, 3]


def test_baked_is_parallel():
    stages, manifest = plan_network(_model(), "baked")
    assert [(r["pe"], r["simd"]) for r in manifest["layers"]] == [(6, 12), (4, 6)]
    assert manifest["mode"] == "baked"
    with pytest.raises(InputError, match="baked mode is fully parallel"):
        plan_network(_model(), "baked", {"layers": {"fc1": "serial"}})
