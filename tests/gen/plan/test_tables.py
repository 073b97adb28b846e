"""The tables mode: sparse models as fully pipelined networks of neuron truth tables.

Every table comes from the golden model; these tests check it three ways: each neuron's
table against the arithmetic neuron (bias + products + thresholds) on every input of small
layers, in Python and as hardware (the table pipeline with every neuron a table against
the same with every neuron a sum); whole networks of every scheme and output kind in
Amaranth's simulator against the golden model under random stalls; the manifest's latency
and cycles per inference against the simulation."""

import numpy as np
import pytest

from mulfree.gen.errors import InputError
from mulfree.gen.model.examples import example_model, random_dense, random_thresholds
from mulfree.gen.model.format import Dense, Flatten, Model, Output, OutputKind, Weights
from mulfree.gen.model.golden import accumulator_bounds, product_table
from mulfree.gen.model.golden import run as golden_run
from mulfree.gen.plan.network import build_network, plan_network
from mulfree.gen.plan.tables import neuron_inputs, neuron_table, plan_tables, table_options
from mulfree.gen.plan.folds import load_fold
from mulfree.hw.network import Network
from mulfree.hw.table_spec import SumNeuron, TableNeuron
from netsim import golden_flat, input_beats, run_network, transfer_cycles

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def sparse_dense(rng, n_in, n_out, fan, *, scheme="pot", wbits=3, in_bits=2, out_bits=2,
                 act="uniform", output="thresholds", name="fc"):
    """A random dense layer whose neurons read ``fan`` inputs each: the others get the
    codebook's zero (the table scheme: a code whose product row is constant)."""
    base = random_dense(rng, n_in, n_out, scheme=scheme, wbits=wbits, in_bits=in_bits,
                        out_bits=out_bits, act=act, output="acc", name=name)
    w = base.weights
    codes = np.array(w.codes)
    mask = np.zeros(codes.shape, bool)
    for j in range(n_out):
        mask[j, rng.choice(n_in, min(fan, n_in), replace=False)] = True
    if w.products is not None:
        products = np.array(w.products)
        products[0] = 7                                  # constant: joins the offset
        codes = np.where(mask, np.maximum(codes, 1), 0)
        weights = Weights(w.scheme, w.bits, codes, products=products)
    else:
        cb = np.array(w.codebook)
        if not (cb == 0).any() and not mask.all():      # a LUT-Q codebook without a zero
            cb[np.argmin(np.abs(cb))] = 0
        zero = int(np.flatnonzero(cb == 0)[0]) if not mask.all() else 0
        codes = np.where(mask, codes, zero)
        weights = Weights(w.scheme, w.bits, codes, codebook=cb)
    acc = Dense(name=name, weights=weights, bias=base.bias, output=Output(OutputKind.ACC),
                activation_codebook=base.activation_codebook)
    if output != "thresholds":
        return Dense(name=name, weights=weights, bias=base.bias, output=Output(output),
                     activation_codebook=base.activation_codebook)
    t = random_thresholds(rng, accumulator_bounds(acc), out_bits)
    return Dense(name=name, weights=weights, bias=base.bias,
                 output=Output(OutputKind.THRESHOLDS, out_bits, t),
                 activation_codebook=base.activation_codebook)


def mlp(seed=0, *, scheme="pot", wbits=3, output="argmax", widths=(12, 8, 5), fan=3,
        in_bits=2, act="uniform", flatten=False):
    rng = np.random.default_rng(seed)
    layers = []
    bits = in_bits
    for n, (a, b) in enumerate(zip(widths, widths[1:])):
        last = n == len(widths) - 2
        layers.append(sparse_dense(rng, a, b, fan, scheme=scheme, wbits=wbits, in_bits=bits,
                                   out_bits=2, act=act if n == 0 else "uniform",
                                   output=output if last else "thresholds", name=f"fc{n}"))
        bits = 2
    shape = (widths[0],)
    if flatten:
        layers.insert(0, Flatten(name="flat"))
        shape = (widths[0] // 2, 2, 1)
    return Model(name=f"t-{scheme}-{seed}", input_shape=shape, input_bits=in_bits,
                 layers=tuple(layers))


# -- each neuron's table against the arithmetic neuron, exhaustively ------------------------

def _arith(layer, j, x, p):
    """The neuron in plain arithmetic: bias + sum of products ``p[weight code, input
    code]``, then thresholds."""
    acc = int(layer.bias[j]) + sum(int(p[k, c]) for k, c in zip(layer.weights.codes[j], x))
    if layer.output.kind is OutputKind.THRESHOLDS:
        return sum(acc >= int(t) for t in layer.output.thresholds[j])
    return acc


def _all_inputs(n, bits):
    e = np.arange(2 ** (n * bits))
    return np.stack([(e >> (k * bits)) & (2**bits - 1) for k in range(n)], axis=1)


@pytest.mark.parametrize("scheme,wbits,act,output", [
    ("pot", 3, "uniform", "thresholds"), ("uniform", 3, "uniform", "acc"),
    ("apot", 4, "learned", "thresholds"), ("lut", 3, "uniform", "thresholds"),
    ("ternary", 2, "uniform", "acc"), ("table", 2, "uniform", "thresholds"),
])
def test_each_neuron_table_is_the_arithmetic_neuron(scheme, wbits, act, output):
    rng = np.random.default_rng(wbits)
    layer = sparse_dense(rng, 4, 5, 3, scheme=scheme, wbits=wbits, act=act, output=output)
    xs = _all_inputs(4, 2)                   # every input of the layer: 256 vectors
    p = product_table(layer)
    for j in range(5):
        inputs = neuron_inputs(layer, j, 4)
        assert len(inputs) <= 3
        table = neuron_table(layer, j, inputs, 2)
        for x in xs:
            idx = sum(int(x[i]) << (2 * k) for k, i in enumerate(inputs))
            assert table[idx] == _arith(layer, j, x, p)


@pytest.mark.parametrize("output", ["thresholds", "acc"])
def test_table_neurons_equal_sum_neurons_in_hardware(output):
    """The same layers as truth tables (limit 12) and as sums (limit 1: every neuron
    that reads an input), on every input."""
    model = mlp(3, widths=(4, 6, 3), fan=3, output=output)
    x = _all_inputs(4, 2)
    outs = {}
    for limit in (12, 1):
        fold = {"tables": {"limit": limit}}
        stages, manifest = plan_network(model, "tables", fold)
        kinds = {type(n) for l in stages[0].layers for n in l.neurons if n.inputs}
        assert kinds == ({TableNeuron} if limit == 12 else {SumNeuron})
        net, manifest = build_network(model, "tables", fold)
        outs[limit], _ = run_network(net, manifest, x, idle=0.1, stall=0.1)
    np.testing.assert_array_equal(outs[12], outs[1])
    np.testing.assert_array_equal(outs[12], golden_flat(model, x))


# -- whole networks against the golden model --------------------------------------------------

@pytest.mark.parametrize("scheme,wbits,act", [
    ("uniform", 3, "uniform"), ("pot", 3, "uniform"), ("apot", 4, "uniform"),
    ("lut", 3, "uniform"), ("ternary", 2, "bipolar"), ("table", 2, "uniform"),
    ("pot", 3, "learned"), ("binary", 1, "uniform"),
])
@pytest.mark.parametrize("output", ["thresholds", "acc", "argmax"])
def test_networks_bit_exact(scheme, wbits, act, output):
    in_bits = 1 if act == "bipolar" else 2
    model = mlp(wbits, scheme=scheme, wbits=wbits, act=act, output=output, in_bits=in_bits,
                fan=3 if scheme != "binary" else 99)
    net, manifest = build_network(model, "tables", None)
    assert manifest["mode"] == "tables"
    assert manifest["output"]["kind"] == {"thresholds": "codes"}.get(output, output)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2**in_bits, (20, *model.input_shape))
    got, _ = run_network(net, manifest, x, seed=2, idle=0.3, stall=0.3)
    np.testing.assert_array_equal(got, golden_flat(model, x))


def test_checker_fails_on_a_wrong_table():
    model = mlp(0)
    stages, _ = plan_network(model, "tables", None)
    spec = stages[0]
    layer = spec.layers[0]
    bad = TableNeuron(layer.neurons[0].inputs, tuple(3 - v for v in layer.neurons[0].table))
    from dataclasses import replace
    spec = replace(spec, layers=(replace(layer, neurons=(bad,) + layer.neurons[1:]),)
                   + spec.layers[1:])
    net = Network(stages=[spec])
    _, manifest = plan_network(model, "tables", None)
    x = np.random.default_rng(0).integers(0, 4, (40, 12))
    got, _ = run_network(net, manifest, x, idle=0, stall=0)
    assert not np.array_equal(got, golden_flat(model, x))


@pytest.mark.parametrize("fold", [
    None,
    {"input_values_per_beat": 3},
    {"tables": {"register_every": 2, "argmax_every": 1}},
    {"tables": {"limit": 4, "sum_pipeline_every": 1}},
    {"tables": {"style": "rom"}},
    {"tables": {"style": "case", "limit": 2}},
])
def test_options_bit_exact_and_latency(fold):
    model = mlp(5, flatten=True)
    net, manifest = build_network(model, "tables", fold)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, (16, *model.input_shape))
    got, _ = run_network(net, manifest, x, idle=0.3, stall=0.3)
    np.testing.assert_array_equal(got, golden_flat(model, x))
    spec = plan_network(model, "tables", fold)[0][0]
    beats = input_beats(manifest, x)
    first, outs = transfer_cycles(net, beats, len(x))
    assert outs[0] - first == manifest["latency_cycles"] == spec.latency
    assert manifest["cycles_per_inference"] == spec.in_beats
    assert all(b - a == spec.in_beats for a, b in zip(outs, outs[1:]))


def test_limit_splits_neurons_and_rows():
    model = mlp(1, fan=4)
    stages, manifest = plan_network(model, "tables", {"tables": {"limit": 6}})
    rows = [r for r in manifest["layers"] if r["type"] == "dense"]
    for layer, row in zip(stages[0].layers, rows):
        for n in layer.neurons:
            assert (len(n.inputs) * layer.in_bits <= 6) == isinstance(n, TableNeuron)
        assert row["table_neurons"] + row["sum_neurons"] == len(layer.neurons)
        assert row["fan_in"]["max"] <= 4
    assert manifest["tables"]["registers"] == stages[0].registers


def test_tables_match_the_golden_model_on_random_inputs():
    """The planned tables are the golden model: a pure-Python walk through them equals
    golden.run on random inputs (no hardware)."""
    model = mlp(7, widths=(16, 10, 6, 4), fan=4)
    spec = plan_network(model, "tables", {"tables": {"limit": 12}})[0][0]
    x = np.random.default_rng(0).integers(0, 4, (200, 16))
    want = golden_run(model, x).output.reshape(200, -1)
    for sample, w in zip(x, want):
        v = list(sample)
        for layer in spec.layers:
            v = [n.table[sum(int(v[i]) << (k * layer.in_bits) for k, i in enumerate(n.inputs))]
                 for n in layer.neurons]
        assert int(np.argmax(v)) == int(w[0])


@pytest.mark.parametrize("model,fold,match", [
    (example_model(0), None, "layer 'conv1' is conv2d: the tables mode lowers dense layers"),
    (mlp(0), {"tables": {"limit": 0}}, "tables.limit must be 1 to 20, got 0"),
    (mlp(0), {"tables": {"style": "lut"}}, "tables.style must be one of bdd, bits, case, rom"),
    (mlp(0), {"tables": {"depth": 2}}, "unknown field 'tables.depth'"),
    (mlp(0), {"tables": 3}, "'tables' must be an object"),
    (mlp(0), {"input_values_per_beat": 5}, "must divide the 12 input codes"),
    (mlp(0), "device:ice40up5k", "tables mode has no fold to fit"),
])
def test_errors(model, fold, match):
    with pytest.raises(InputError, match=match):
        build_network(model, "tables", fold)


def test_cli_verilog_tables(tmp_path, capsys):
    import json

    from mulfree.cli.main import main
    from mulfree.gen.model.format import save

    save(mlp(2), tmp_path / "n.mf")
    save(example_model(0), tmp_path / "cnn.mf")
    code = main(["verilog", str(tmp_path / "n.mf"), "--mode", "tables", "-o",
                 str(tmp_path / "v")])
    out = capsys.readouterr().out
    assert code == 0
    assert "one inference every 1 cycles" in out and "table neurons" in out
    manifest = json.loads((tmp_path / "v" / "manifest.json").read_text())
    assert manifest["mode"] == "tables" and manifest["cycles_per_inference"] == 1
    assert manifest["input"]["beats"] == 1
    code = main(["verilog", str(tmp_path / "cnn.mf"), "--mode", "tables", "-o",
                 str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "conv2d" in err
    assert not (tmp_path / "w").exists()
