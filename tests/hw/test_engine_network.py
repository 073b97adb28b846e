"""Whole networks in Amaranth's simulator, bit-exact against gen.golden.run, with random
idle on the input stream and random back-pressure on the output stream."""

from dataclasses import replace

import numpy as np
import pytest

from mulfree.gen.errors import InputError
from mulfree.gen.model.examples import example_model, random_conv2d, random_dense
from mulfree.gen.model.format import MaxPool, Flatten, Model
from mulfree.gen.plan.network import build_network, plan_network
from netsim import golden_flat, run_network


def _mlp(scheme, *, wbits=3, act="uniform", in_bits=2, output="acc", seed=0):
    rng = np.random.default_rng(seed)
    if act == "bipolar":
        in_bits = 1
    l1 = random_dense(rng, 6, 4, scheme=scheme, wbits=wbits, in_bits=in_bits, out_bits=2,
                      act=act, name="fc1")
    l2 = random_dense(rng, 4, 3, scheme=scheme, wbits=wbits, in_bits=2, output=output,
                      name="fc2")
    return Model(name=f"mlp-{scheme}", input_shape=(6,), input_bits=in_bits, layers=(l1, l2))


def _check(model, mode="runtime", fold=None, n=4, seed=1, **kw):
    net, manifest = build_network(model, mode, fold)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2**model.input_bits, (n, *model.input_shape))
    got, _ = run_network(net, manifest, x, seed=seed, **kw)
    want = golden_flat(model, x)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    return manifest


SCHEMES = [("uniform", 3), ("pot", 3), ("apot", 4), ("lut", 3), ("binary", 1),
           ("ternary", 2), ("table", 2)]


@pytest.mark.parametrize("scheme,wbits", SCHEMES)
def test_mlp_every_scheme_runtime(scheme, wbits):
    _check(_mlp(scheme, wbits=wbits))


@pytest.mark.parametrize("scheme,wbits", SCHEMES)
def test_mlp_every_scheme_baked(scheme, wbits):
    _check(_mlp(scheme, wbits=wbits), mode="baked")


@pytest.mark.parametrize("fold", ["serial", "auto", "parallel",
                                  {"input_values_per_beat": 2,
                                   "layers": {"fc1": {"pe": 2, "simd": 3},
                                              "fc2": {"pe": 3, "simd": 2}}}])
@pytest.mark.parametrize("output", ["thresholds", "acc", "argmax"])
def test_mlp_foldings_and_outputs(fold, output):
    manifest = _check(_mlp("pot", output=output), fold=fold)
    assert manifest["output"]["kind"] == {"thresholds": "codes"}.get(output, output)


@pytest.mark.parametrize("act,wbits", [("bipolar", 3), ("learned", 3), ("learned", 8)])
@pytest.mark.parametrize("mode", ["runtime", "baked"])
def test_non_identity_activations(act, wbits, mode):
    # learned with 8-bit uniform weights is past the table limit: activation decode
    model = _mlp("uniform", wbits=wbits, act=act)
    _check(model, mode=mode)


def _cnn(seed=0, output="acc", padding=(1, 1), stride=(1, 1), scheme="pot", wbits=3):
    rng = np.random.default_rng(seed)
    conv = random_conv2d(rng, (5, 5, 2), 3, (3, 3), stride, padding, scheme=scheme, wbits=wbits,
                         in_bits=2, out_bits=2, name="conv")
    shape = (5 + 2 * padding[0] - 3) // stride[0] + 1
    layers = [conv]
    if shape >= 2:
        layers.append(MaxPool(name="pool", kernel=(2, 2)))
        shape //= 2
    layers.append(Flatten(name="flat"))
    layers.append(random_dense(rng, shape * shape * 3, 4, scheme="uniform", wbits=3,
                               in_bits=2, output=output, name="fc"))
    return Model(name="cnn", input_shape=(5, 5, 2), input_bits=2, layers=tuple(layers))


@pytest.mark.parametrize("mode,fold", [("runtime", "serial"), ("runtime", "auto"),
                                       ("runtime", "parallel"), ("baked", None),
                                       ("runtime", {"pipeline": True}),
                                       ("baked", {"pipeline": True}),
                                       ("runtime", {"double_buffer": True}),
                                       ("baked", {"double_buffer": True, "pipeline": True})])
def test_cnn(mode, fold):
    _check(_cnn(), mode=mode, fold=fold, n=2)


@pytest.mark.parametrize("scheme,wbits", SCHEMES)
@pytest.mark.parametrize("cutoff", [1, 2])
def test_runtime_tree_registers(scheme, wbits, cutoff):
    """``latency_cutoff`` in runtime mode: registers inside every adder tree (PoT and
    APoT carry-ins delayed with their terms; a fully parallel table layer's channels
    delayed to one latency), with idle input and back-pressure, and the manifest's
    latency the simulated one."""
    fold = {"default": "parallel", "latency_cutoff": cutoff}
    _check(_cnn(scheme=scheme, wbits=wbits), fold=fold, n=2)
    _check(_mlp(scheme, wbits=wbits, output="thresholds"), fold=fold)
    model = _cnn(scheme=scheme, wbits=wbits, output="thresholds")
    net, manifest = build_network(model, "runtime", fold)
    x = np.random.default_rng(0).integers(0, 4, (1, 5, 5, 2))
    _, cycles = run_network(net, manifest, x, idle=0, stall=0)
    assert cycles - 1 == manifest["latency_cycles"]
    # the registers are there: they add latency
    plain = build_network(model, "runtime", {"default": "parallel"})[1]
    assert manifest["latency_cycles"] > plain["latency_cycles"]


def test_runtime_tree_registers_uneven_table_channels():
    """A fully parallel table layer sums only the nonzero lookups of each channel, so its
    channels' trees differ in depth: each sum is delayed to the layer's latency (a conv
    layer: its window moves on, so a sum out of step takes another position's)."""
    rng = np.random.default_rng(0)
    conv = random_conv2d(rng, (5, 5, 2), 3, (3, 3), (1, 1), (1, 1), scheme="table",
                         wbits=2, in_bits=2, output="acc", name="conv")
    products = np.array(conv.weights.products)
    products[0] = 0                            # weight code 0: no product at all
    codes = np.array(conv.weights.codes)
    flat = codes.reshape(codes.shape[0], -1)
    flat[0] = 0
    flat[0, 4] = 2                             # channel 0: one lookup (the centre tap)
    flat[1:] = np.where(flat[1:] == 0, 1, flat[1:])      # the others: 18
    weights = replace(conv.weights, products=products, codes=flat.reshape(codes.shape))
    model = Model(name="uneven", input_shape=(5, 5, 2), input_bits=2,
                  layers=(replace(conv, weights=weights),))
    _check(model, fold={"default": "parallel", "latency_cutoff": 1}, n=2)


@pytest.mark.parametrize("padding,stride", [((0, 0), (1, 1)), ((1, 0), (2, 1))])
def test_conv_geometry(padding, stride):
    _check(_cnn(padding=padding, stride=stride, scheme="table"), fold="auto", n=2)


def test_conv_argmax_per_position():
    rng = np.random.default_rng(4)
    conv = random_conv2d(rng, (4, 4, 1), 3, (2, 2), (1, 1), (0, 0), scheme="apot", wbits=3,
                         in_bits=2, output="argmax", name="conv")
    model = Model(name="convarg", input_shape=(4, 4, 1), input_bits=2, layers=(conv,))
    _check(model, fold={"layers": {"conv": {"pe": 1, "simd": 2}}}, n=3)


@pytest.mark.parametrize("mode,fold", [("runtime", "auto"), ("baked", None)])
def test_example_network(mode, fold):
    _check(example_model(0), mode=mode, fold=fold, n=3)


def test_example_network_serial():
    _check(example_model(1), fold="serial", n=1, idle=0.1, stall=0.1)


@pytest.mark.parametrize("fold", ["serial", "auto", "parallel",
                                  {"default": "auto", "pipeline": True},
                                  {"default": "auto", "double_buffer": True},
                                  {"default": "parallel", "double_buffer": True,
                                   "pipeline": True}])
def test_latency_and_interval_match_manifest(fold):
    model = _cnn(output="thresholds")
    net, manifest = build_network(model, "runtime", fold)
    x = np.random.default_rng(0).integers(0, 4, (1, 5, 5, 2))
    _, cycles = run_network(net, manifest, x, idle=0, stall=0)
    # the testbench's first transfer is on cycle 1 and it stops one cycle after the last
    assert cycles - 1 == manifest["latency_cycles"]
    xs = np.random.default_rng(0).integers(0, 4, (4, 5, 5, 2))
    _, cycles4 = run_network(net, manifest, xs, idle=0, stall=0)
    per = (cycles4 - cycles) / 3
    assert per <= manifest["cycles_per_inference"]


def test_bad_folds():
    model = _mlp("pot")
    with pytest.raises(InputError, match=r"pe must divide its 4 output channels \(one of \[1, 2, 4\]\), got 3"):
        build_network(model, "runtime", {"layers": {"fc1": {"pe": 3, "simd": 1}}})
    with pytest.raises(InputError, match="no layer named 'nope'"):
        build_network(model, "runtime", {"layers": {"nope": "serial"}})
    with pytest.raises(InputError, match="baked mode is fully parallel"):
        build_network(model, "baked", "serial")
    with pytest.raises(InputError, match="input_values_per_beat must divide the 6 input codes"):
        build_network(model, "runtime", {"input_values_per_beat": 4})
    with pytest.raises(InputError, match="mode must be one of runtime, baked"):
        build_network(model, "fast")


@pytest.mark.parametrize("double_buffer", [False, True])
def test_flatten_and_pool_first(double_buffer):
    rng = np.random.default_rng(5)
    fc = random_dense(rng, 8, 3, scheme="pot", wbits=3, in_bits=2, output="argmax", name="fc")
    fold = {"double_buffer": double_buffer}
    _check(Model(name="a", input_shape=(2, 2, 2), input_bits=2,
                 layers=(Flatten(name="f"), fc)), fold=fold)
    _check(Model(name="b", input_shape=(4, 2, 4), input_bits=2,
                 layers=(MaxPool(name="p", kernel=(2, 2)), Flatten(name="f"), fc)), fold=fold)
    _check(Model(name="c", input_shape=(4, 4, 1), input_bits=2,
                 layers=(MaxPool(name="p", kernel=(2, 2)),)), fold=fold)


def test_flatten_only_is_an_error():
    from mulfree.gen.errors import ModelError

    with pytest.raises(ModelError, match="no layer that needs hardware"):
        build_network(Model(name="d", input_shape=(4,), input_bits=2,
                            layers=(Flatten(name="f"),)))


def _wide_mlp(output, seed=2):
    # wide enough that shared subexpressions beat the pairwise trees
    rng = np.random.default_rng(seed)
    l1 = random_dense(rng, 24, 8, scheme="uniform", wbits=4, in_bits=3, out_bits=2,
                      name="fc1")
    l2 = random_dense(rng, 8, 5, scheme="apot", wbits=4, in_bits=2, output=output, name="fc2")
    return Model(name="wide", input_shape=(24,), input_bits=3, layers=(l1, l2))


@pytest.mark.parametrize("family", ["ice40", "ecp5"])
@pytest.mark.parametrize("cutoff,output", [(0, "thresholds"), (1, "acc"), (3, "argmax")])
def test_baked_adder_graph(family, cutoff, output):
    fold = {"family": family, "latency_cutoff": cutoff}
    manifest = _check(_wide_mlp(output), mode="baked", fold=fold, n=4)
    solver = manifest["layers"][0]["solver"]
    assert solver["family"] == family and solver["method"].startswith("cse")
    assert solver["adders"] < solver["candidates"]["pairwise"]  # cheaper than the trees
    assert solver["latency"] == (0 if cutoff == 0 else (solver["depth"] - 1) // cutoff)
    plain = plan_network(_wide_mlp(output), "baked", {"family": family})[1]
    extra = sum(r["solver"]["latency"] for r in manifest["layers"] if "solver" in r)
    assert manifest["latency_cycles"] == plain["latency_cycles"] + extra


@pytest.mark.parametrize("fold", [{"latency_cutoff": 1}, {"family": "ecp5",
                                                          "latency_cutoff": 2,
                                                          "pipeline": True}])
def test_baked_cnn_latency_cutoff(fold):
    manifest = _check(_cnn(scheme="uniform"), mode="baked", fold=fold, n=2)
    assert manifest["layers"][0]["solver"]["latency"] >= 1


def test_baked_thresholds_take_the_bias():
    # the bias moves into the thresholds: biases far beyond the sum's range both ways (every
    # threshold always or never reached) and near it (codes vary)
    import dataclasses

    from mulfree.gen.model.format import Output
    rng = np.random.default_rng(7)
    layer = random_dense(rng, 12, 6, scheme="uniform", wbits=4, in_bits=3, out_bits=2,
                         name="fc")
    bias = np.array([10**4, -10**4, 0, 37, -52, 5])
    t = np.sort(rng.integers(-120, 120, (6, 3)), axis=1)
    layer = dataclasses.replace(layer, bias=bias,
                                output=Output("thresholds", bits=2, thresholds=t))
    model = Model(name="bias", input_shape=(12,), input_bits=3, layers=(layer,))
    _check(model, mode="baked", n=8)
    # the cases the test is for: channel 0 always reaches every threshold, channel 1 none
    x = np.random.default_rng(1).integers(0, 8, (8, 12))
    codes = golden_flat(model, x).reshape(8, 6)
    assert (codes[:, 0] == 3).all() and (codes[:, 1] == 0).all()
