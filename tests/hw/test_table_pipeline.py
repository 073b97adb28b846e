"""Truth tables and the table pipeline in Amaranth's simulator: every table entry in
every style, random networks of table and sum neurons against a plain reference with
random stalls, the cycle model (latency and cycles per inference) against the simulation,
and the parameter checks."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from mulfree.hw.network import Network
from mulfree.hw.table_layer import TableLayer
from mulfree.hw.table_spec import SumNeuron, TableLayerSpec, TableNeuron, TablesSpec
from mulfree.hw.timing import network_timing
from mulfree.hw.truth_table import STYLES, TruthTable
from netsim import pack, transfer_cycles

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


# -- one truth table ----------------------------------------------------------------------

def _read_all(tt):
    got = []

    async def bench(ctx):
        for idx in range(len(tt.table)):
            ctx.set(tt.index, idx)
            await ctx.delay(1e-9)
            got.append(ctx.get(tt.value))

    sim = Simulator(tt)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("bits,lo,hi", [(1, 0, 1), (3, -5, 5), (6, 0, 3), (8, -100, 40)])
def test_every_entry(style, bits, lo, hi):
    rng = np.random.default_rng(bits)
    table = [int(v) for v in rng.integers(lo, hi + 1, 2**bits)]
    tt = TruthTable(table=table, style=style)
    assert tt.in_bits == bits and tt.bounds == (min(table), max(table))
    assert _read_all(tt) == table


def test_checker_sees_a_wrong_entry():
    tt = TruthTable(table=[0, 1, 2, 3], style="bits")
    assert _read_all(tt) != [0, 1, 2, 2]


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"table": [1, 2, 3]}, ValueError, "power-of-two number of entries, at least 2, not 3"),
    ({"table": [1]}, ValueError, "not 1"),
    ({"table": [1, 2], "style": "lut"}, ValueError, "Style must be one of bdd, bits, case, rom"),
    ({"table": [1, 2.5]}, TypeError, "Table entries must be integers, not 2.5"),
    ({"table": "ab"}, TypeError, "Table must be a list of integers"),
])
def test_truth_table_parameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        TruthTable(**kwargs)


# -- the pipeline --------------------------------------------------------------------------

def _random_layer(rng, in_bits, in_count, n_out, *, last=False, sums=0.5, fan=3,
                  acc=False, every=0):
    neurons = []
    out_bits = 2
    for j in range(n_out):
        f = int(rng.integers(0, min(fan, in_count) + 1))
        inputs = tuple(int(i) for i in rng.choice(in_count, f, replace=False))
        if rng.random() < sums or acc:
            terms = tuple(tuple(int(v) for v in rng.integers(-4, 5, 2**in_bits)) for _ in inputs)
            bias = int(rng.integers(-3, 4))
            thr = None
            if not acc:
                lo = bias + sum(min(t) for t in terms)
                hi = bias + sum(max(t) for t in terms)
                thr = tuple(sorted(int(v) for v in rng.integers(lo, hi + 2, 2**out_bits - 1)))
            if acc and rng.random() < 0.5:
                # an accumulator table neuron: a sum's values written out
                idx = np.arange(2 ** (f * in_bits))
                val = np.full(idx.size, bias)
                for k, t in enumerate(terms):
                    val = val + np.asarray(t)[(idx >> (k * in_bits)) & (2**in_bits - 1)]
                neurons.append(TableNeuron(inputs=inputs, table=tuple(int(v) for v in val)))
                continue
            neurons.append(SumNeuron(inputs=inputs, terms=terms, bias=bias, thresholds=thr))
        else:
            table = tuple(int(v) for v in rng.integers(0, 2**out_bits, 2 ** (f * in_bits)))
            neurons.append(TableNeuron(inputs=inputs, table=table))
    if acc:
        lo = min(min(n.bounds[0] for n in neurons), -1)
        hi = max(n.bounds[1] for n in neurons)
        width = max((lo if lo >= 0 else ~lo).bit_length(), hi.bit_length()) + 1
        return TableLayerSpec(in_bits=in_bits, in_count=in_count, neurons=neurons,
                              out_width=width, out_signed=True, sum_pipeline_every=every)
    return TableLayerSpec(in_bits=in_bits, in_count=in_count, neurons=neurons,
                          out_width=out_bits, sum_pipeline_every=every)


def _reference(spec, x):
    """The spec evaluated in plain Python, one sample at a time."""
    out = []
    for sample in x:
        v = [int(c) for c in sample]
        for layer in spec.layers:
            b = layer.in_bits
            nxt = []
            for n in layer.neurons:
                if isinstance(n, TableNeuron):
                    idx = sum(v[i] << (k * b) for k, i in enumerate(n.inputs))
                    nxt.append(n.table[idx])
                else:
                    acc = n.bias + sum(t[v[i]] for i, t in zip(n.inputs, n.terms))
                    nxt.append(acc if n.thresholds is None
                               else sum(acc >= t for t in n.thresholds))
            v = nxt
        if spec.argmax:
            out.append([int(np.argmax(v))])
        else:
            out.append(v)
    return np.array(out, np.int64)


def _spec(seed, *, argmax=True, in_beat=None, register_every=1, argmax_every=2, every=0,
          style="bits", widths=(10, 7, 5)):
    rng = np.random.default_rng(seed)
    layers = []
    in_bits, in_count = 2, widths[0]
    for n, w in enumerate(widths[1:]):
        last = n == len(widths) - 2
        layer = _random_layer(rng, in_bits, in_count, w, acc=last and argmax, every=every)
        layers.append(layer)
        in_bits, in_count = layer.out_width, w
    return TablesSpec(in_beat=in_beat or widths[0], layers=tuple(layers), argmax=argmax,
                      style=style, register_every=register_every, argmax_every=argmax_every)


def _manifest(spec):
    return {"input": {"value_bits": spec.in_bits, "values_per_beat": spec.in_beat},
            "output": {"beats": 1, "value_bits": spec.out_bits,
                       "values_per_beat": spec.out_count, "signed": bool(spec.out_shape.signed)}}


def _run(spec, x, **kw):
    from netsim import run_network
    net = Network(stages=[spec])
    got, _ = run_network(net, _manifest(spec), x, **kw)
    return got


@pytest.mark.parametrize("seed,kw", [
    (0, {}),
    (1, {"argmax": False}),
    (2, {"in_beat": 2}),
    (3, {"register_every": 2}),
    (4, {"argmax_every": 1, "every": 1}),
    (5, {"every": 2, "style": "case"}),
    (6, {"style": "rom", "widths": (6, 9, 3)}),
    (9, {"style": "bits"}),
    (7, {"widths": (5, 4)}),
    (8, {"widths": (4, 1)}),
])
def test_random_networks_bit_exact_under_stalls(seed, kw):
    spec = _spec(seed, **kw)
    rng = np.random.default_rng(seed + 100)
    x = rng.integers(0, 2**spec.in_bits, (24, spec.in_count))
    got = _run(spec, x, seed=seed, idle=0.3, stall=0.3)
    want = _reference(spec, x)
    np.testing.assert_array_equal(got, want)


def test_checker_sees_a_wrong_neuron():
    spec = _spec(0, argmax=False)
    rng = np.random.default_rng(9)
    x = rng.integers(0, 4, (16, spec.in_count))
    got = _run(spec, x, idle=0.0, stall=0.0)
    layer = spec.layers[-1]
    bad = [n if j or not isinstance(n, TableNeuron) else
           TableNeuron(n.inputs, tuple((v + 1) % 4 for v in n.table))
           for j, n in enumerate(layer.neurons)]
    if not isinstance(layer.neurons[0], TableNeuron):
        bad[0] = SumNeuron(layer.neurons[0].inputs, layer.neurons[0].terms,
                           layer.neurons[0].bias + 100, layer.neurons[0].thresholds)
    wrong = TablesSpec(in_beat=spec.in_beat, layers=spec.layers[:-1] + (
        TableLayerSpec(layer.in_bits, layer.in_count, tuple(bad), layer.out_width),), argmax=False)
    assert not np.array_equal(got, _reference(wrong, x))


@pytest.mark.parametrize("seed,kw", [
    (0, {}),
    (2, {"in_beat": 2}),
    (2, {"in_beat": 5}),
    (3, {"register_every": 2, "argmax": False}),
    (4, {"argmax_every": 1, "every": 1}),
    (5, {"every": 2}),
    (8, {"widths": (4, 1)}),
])
def test_cycle_model_matches_the_simulation(seed, kw):
    """Input always offered, output always ready: the first output's transfer is
    ``latency`` cycles after the first input's, then one every ``in_beats`` cycles."""
    spec = _spec(seed, **kw)
    n = 3 * spec.depth
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, (n, spec.in_count))
    beats = []
    for sample in x:
        beats += pack(sample, spec.in_bits, spec.in_beat)
    net = Network(stages=[spec])
    first, outs = transfer_cycles(net, beats, n)
    latency, period = network_timing([spec], 2 * spec.depth + 2)
    assert latency == spec.latency == outs[0] - first
    assert period == spec.in_beats
    assert all(b - a == spec.in_beats for a, b in zip(outs, outs[1:]))


@pytest.mark.parametrize("make,exc,match", [
    (lambda: TablesSpec(in_beat=3, layers=(TableLayerSpec(2, 4, (TableNeuron((0,), (0, 1, 2, 3)),),
                                                          out_width=2),)),
     ValueError, "Input beat must divide the 4 input codes, not 3"),
    (lambda: TablesSpec(in_beat=4, layers=(TableLayerSpec(2, 4, (TableNeuron((0, 1), (0, 1, 2, 3)),),
                                                          out_width=2),)),
     ValueError, "A table over 2 inputs of 2 bits needs 16 entries, not 4"),
    (lambda: TablesSpec(in_beat=4, layers=(TableLayerSpec(2, 4, (TableNeuron((0, 0), (0,) * 16),),
                                                          out_width=2),)),
     ValueError, "Neuron inputs must be distinct"),
    (lambda: TablesSpec(in_beat=4, layers=(TableLayerSpec(2, 4, (TableNeuron((7,), (0,) * 4),),
                                                          out_width=2),)),
     ValueError, "Neuron input 7 is outside the layer's 4 inputs"),
    (lambda: TablesSpec(in_beat=4, layers=(TableLayerSpec(2, 4, (TableNeuron((0,), (0, 1, 2, 9)),),
                                                          out_width=2),)),
     ValueError, r"Outputs in \[0, 9\] do not fit unsigned\(2\)"),
    (lambda: TablesSpec(in_beat=4, layers=(TableLayerSpec(2, 4, (SumNeuron((0,), ((0, 1, 2),), 0),),
                                                          out_width=4, out_signed=True),)),
     ValueError, "Each term lists one value per 2-bit code"),
    (lambda: SumNeuron((0,), ((0, 1, 2, 3),), 0, thresholds=(3, 1)), ValueError,
     "Thresholds must be non-decreasing"),
    (lambda: TablesSpec(in_beat=4, register_every=0, layers=(TableLayerSpec(
        2, 4, (TableNeuron((0,), (0, 1, 2, 3)),), out_width=2),)),
     ValueError, "Register interval must be a positive integer, not 0"),
])
def test_spec_checks(make, exc, match):
    with pytest.raises(exc, match=match):
        make().check()


def test_table_layer_alone():
    """The layer as its own component computes what the reference says, every input."""
    spec = _spec(3, argmax=False, widths=(4, 6))
    layer = spec.layers[0]
    dut = TableLayer(layer)
    xs = [[(e >> (2 * k)) & 3 for k in range(4)] for e in range(256)]
    got = []

    async def bench(ctx):
        for x in xs:
            ctx.set(dut.x, sum(v << (2 * k) for k, v in enumerate(x)))
            await ctx.delay(1e-9)
            y = ctx.get(dut.y)
            got.append([(y >> (2 * j)) & 3 for j in range(len(layer.neurons))])

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    np.testing.assert_array_equal(np.array(got), _reference(spec, np.array(xs)))
