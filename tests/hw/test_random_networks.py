"""Random small networks (shapes, schemes, activations, folds, modes) against the golden
model: the corners a hand-picked list misses (1-bit codes, one channel, 1x1 maps, windows
larger than the map, ...); and their timing (latency, three inferences back to back)
against the manifest and the cycle models."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mulfree.gen.model.examples import random_conv2d, random_dense
from mulfree.gen.model.format import Flatten, MaxPool, Model
from mulfree.gen.plan.network import build_network, plan_network
from mulfree.hw.timing import _run
from netsim import golden_flat, run_network
from test_window import _output_cycles

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

SCHEMES = [("uniform", 2), ("pot", 2), ("apot", 3), ("binary", 1), ("ternary", 2),
           ("lut", 2), ("table", 1)]


def _divisor(draw, n):
    return draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0]))


@st.composite
def networks(draw):
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    in_bits = draw(st.integers(1, 3))
    layers = []
    if draw(st.booleans()):
        h, w, c = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 3))
        ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        kh = draw(st.integers(1, min(h + 2 * ph, 4)))
        kw = draw(st.integers(1, min(w + 2 * pw, 4)))
        scheme, wbits = draw(st.sampled_from(SCHEMES))
        act = "bipolar" if in_bits == 1 and draw(st.booleans()) else "uniform"
        conv = random_conv2d(rng, (h, w, c), draw(st.integers(1, 3)), (kh, kw),
                             (draw(st.integers(1, 3)), draw(st.integers(1, 3))), (ph, pw),
                             scheme=scheme, wbits=wbits, in_bits=in_bits,
                             out_bits=draw(st.integers(1, 2)), act=act, name="conv")
        layers.append(conv)
        model = Model(name="r", input_shape=(h, w, c), input_bits=in_bits, layers=(conv,))
        oh, ow, oc = model.io[0].out_shape
        pool_last = False
        if oh >= 2 and ow >= 2 and draw(st.booleans()):
            layers.append(MaxPool(name="pool", kernel=(2, 2), stride=(draw(st.integers(1, 2)),) * 2))
            oh, ow = (oh - 2) // layers[-1].stride[0] + 1, (ow - 2) // layers[-1].stride[1] + 1
            # a pool that ends the network streams whatever the fold (before a dense
            # layer it streams with double_buffer only)
            pool_last = draw(st.booleans())
        if pool_last:
            return _finish(draw, Model(name="r", input_shape=(h, w, c), input_bits=in_bits,
                                       layers=tuple(layers)), seed)
        layers.append(Flatten(name="flat"))
        n_in, bits = oh * ow * oc, conv.output.bits
        shape = (h, w, c)
    else:
        n_in, bits, shape = draw(st.integers(1, 6)), in_bits, None
    scheme, wbits = draw(st.sampled_from(SCHEMES))
    act = draw(st.sampled_from(["uniform", "learned"] + (["bipolar"] if bits == 1 else [])))
    output = draw(st.sampled_from(["thresholds", "acc", "argmax"]))
    layers.append(random_dense(rng, n_in, draw(st.integers(1, 4)), scheme=scheme, wbits=wbits,
                               in_bits=bits, out_bits=draw(st.integers(1, 2)), act=act,
                               output=output, name="fc"))
    model = Model(name="r", input_shape=shape or (n_in,), input_bits=in_bits,
                  layers=tuple(layers))
    return _finish(draw, model, seed)


def _finish(draw, model, seed):
    """A mode and a fold for ``model``."""
    mode = draw(st.sampled_from(["runtime", "runtime", "baked"]))
    fold = {"layers": {}, "pipeline": draw(st.booleans()), "double_buffer": draw(st.booleans())}
    if mode == "baked":
        # the adder graph solved for either family, registered every 1 or 2 levels or not
        fold["family"] = draw(st.sampled_from(["ice40", "ecp5"]))
        fold["latency_cutoff"] = draw(st.integers(0, 2))
    elif draw(st.booleans()):
        # registers inside the runtime adder trees, every 1 or 2 levels
        fold["latency_cutoff"] = draw(st.integers(1, 2))
    n_total = int(np.prod(model.input_shape))
    fold["input_values_per_beat"] = _divisor(draw, n_total)
    if mode == "runtime":
        for layer, io in zip(model.layers, model.io):
            if hasattr(layer, "weights"):
                out = layer.weights.codes.shape[0]
                taps = int(np.prod(layer.weights.codes.shape[1:]))
                entry = {"pe": _divisor(draw, out), "simd": _divisor(draw, taps)}
                if layer.output.kind.value == "thresholds":
                    # the threshold unit: parallel comparators, the pipelined search, or
                    # the sequential one (which needs taps / simd >= out_bits)
                    units = ["parallel", "search"]
                    if taps // entry["simd"] >= layer.output.bits:
                        units.append("sequential")
                    entry["thresholds"] = draw(st.sampled_from(units))
                    if entry["thresholds"] == "sequential" and draw(st.booleans()):
                        entry["threshold_memory"] = "spram"
                    elif entry["thresholds"] == "search" and layer.output.bits > 1:
                        entry["threshold_logic_levels"] = draw(st.integers(0, 1))
                # the weight ROM in SPRAM now and then (it needs more than one word)
                steps = (out // entry["pe"]) * (taps // entry["simd"])
                if steps > 1 and draw(st.integers(0, 3)) == 0:
                    entry["rom"] = "spram"
                fold["layers"][layer.name] = entry
    return model, mode, fold, seed


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(networks())
def test_random_network(case):
    model, mode, fold, seed = case
    net, manifest = build_network(model, mode, fold)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2**model.input_bits, (2, *model.input_shape))
    got, _ = run_network(net, manifest, x, seed=seed)
    np.testing.assert_array_equal(got, golden_flat(model, x))
    # without stalls, every inference's last output transfer of three back to back is on
    # the cycle the stages' handshake models say, and the manifest's latency is the
    # model's (the end of the simulation is no measure: a window scan still takes the
    # input rows no window reaches after the last output)
    stages, _ = plan_network(model, mode, fold)
    taken, done = _run(stages, 1)
    assert manifest["latency_cycles"] == done[0] - taken[0]
    taken, done = _run(stages, 3)
    x3 = rng.integers(0, 2**model.input_bits, (3, *model.input_shape))
    first, out = _output_cycles(net, manifest, x3)
    ob = manifest["output"]["beats"]
    assert [out[k * ob + ob - 1] - first for k in range(3)] == [d - taken[0] for d in done]
