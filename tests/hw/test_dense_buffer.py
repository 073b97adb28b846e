"""The dense engine's input frame in a memory (``ComputeSpec.buffer_in_memory``): bit-exact
against the golden model for folds from serial to fully parallel, input beats that do
and do not line up with SIMD words, double buffering on and off, random idle and
back-pressure; the timing model exact cycle for cycle; and a corrupted memory word is
caught. The layers here are small, so the frame memory's size threshold is lowered to 0
for them (``small_frames_in_memory``); one test keeps it at its value."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from hypothesis import HealthCheck, given, settings

from mulfree.gen.model.examples import random_dense
from mulfree.gen.model.format import (Conv2d, Dense, Flatten, Model, Output, OutputKind,
                                      Scheme, Weights)
from mulfree.gen.plan.network import build_network, plan_network
from mulfree.hw import compute
from mulfree.hw.compute import ComputeSpec
from mulfree.hw.engine import LayerEngine
from mulfree.hw.timing import _run
from netsim import golden_flat, input_beats, pack, run_network, transfer_cycles
from test_random_networks import networks

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


@pytest.fixture
def small_frames_in_memory(monkeypatch):
    monkeypatch.setattr(compute, "FRAME_MEMORY_MIN_BITS", 0)
    monkeypatch.setattr(compute, "FRAME_MEMORY_MIN_FILL", 0)


def _model(n_in, n_out, *, in_bits=2, scheme="ternary", wbits=2, output="thresholds",
           act="uniform", seed=0, hidden=None):
    rng = np.random.default_rng(seed)
    if hidden is None:
        layers = (random_dense(rng, n_in, n_out, scheme=scheme, wbits=wbits, in_bits=in_bits,
                               out_bits=2, act=act, output=output, name="fc1"),)
    else:
        layers = (random_dense(rng, n_in, hidden, scheme=scheme, wbits=wbits,
                               in_bits=in_bits, out_bits=2, act=act, name="fc1"),
                  random_dense(rng, hidden, n_out, scheme=scheme, wbits=wbits, in_bits=2,
                               out_bits=2, output=output, name="fc2"))
    return Model(name="m", input_shape=(n_in,), input_bits=in_bits, layers=layers)


# (inputs, outputs, input beat, pe, simd): beats of several words, words of several
# beats, beats and words that do not divide each other, one word per beat, fully
# parallel (the frame is one word: registers)
FOLDS = [
    (12, 3, 4, 1, 1),      # serial, 4 steps per word
    (12, 3, 1, 1, 4),      # 4 beats assembled into a word
    (12, 3, 3, 3, 2),      # lcm 6: 2 beats per word, 3 steps per word
    (12, 3, 4, 1, 6),      # lcm 12: the frame is one word (registers)
    (12, 3, 2, 1, 2),      # one beat per word
    (12, 3, 12, 3, 12),    # fully parallel
    (20, 4, 5, 2, 4),      # lcm 20 = the frame: registers
    (30, 2, 6, 1, 5),      # lcm 30: registers
    (30, 2, 3, 2, 5),      # lcm 15: 2 words, 5 beats per word, 3 steps per word
]


def _fold(beat, pe, simd, db, pipeline=False):
    return {"layers": {"fc1": {"pe": pe, "simd": simd}}, "input_values_per_beat": beat,
            "double_buffer": db, "pipeline": pipeline}


@pytest.mark.parametrize("db", [False, True])
@pytest.mark.parametrize("n_in,n_out,beat,pe,simd", FOLDS)
def test_dense_frame_buffer_bit_exact(small_frames_in_memory, n_in, n_out, beat, pe, simd, db):
    model = _model(n_in, n_out, seed=n_in + simd)
    fold = _fold(beat, pe, simd, db)
    stages, _ = plan_network(model, "runtime", fold)
    spec = stages[0]
    assert spec.buffer_in_memory == (n_in // np.lcm(beat, simd) >= 2)
    net, manifest = build_network(model, "runtime", fold)
    x = np.random.default_rng(1).integers(0, 4, (5, n_in))
    for seed, idle, stall in [(0, 0.3, 0.3), (1, 0.0, 0.6), (2, 0.6, 0.0)]:
        got, _ = run_network(net, manifest, x, seed=seed, idle=idle, stall=stall)
        np.testing.assert_array_equal(got, golden_flat(model, x))


@pytest.mark.parametrize("fold", [
    _fold(4, 1, 1, False), _fold(4, 1, 1, True), _fold(3, 3, 2, True, pipeline=True),
    _fold(1, 1, 4, False, pipeline=True), _fold(12, 3, 12, True),
])
def test_dense_two_layers_every_output_and_timing(small_frames_in_memory, fold):
    """Two layers (the second's beats are the first's PE groups), outputs as accumulators,
    thresholds and argmax; latency and cycles per inference exact against simulation."""
    for output in ("acc", "argmax"):
        model = _model(12, 4, hidden=6, output=output, scheme="pot", wbits=3, seed=3)
        fold = dict(fold, layers=dict(fold["layers"], fc2={"pe": 2, "simd": 1}))
        stages, manifest = plan_network(model, "runtime", fold)
        assert stages[0].buffer_in_memory or fold["layers"]["fc1"]["simd"] == 12
        assert stages[1].buffer_in_memory       # words of fc1's PE codes
        net, _ = build_network(model, "runtime", fold)
        x = np.random.default_rng(2).integers(0, 4, (4, 12))
        got, _ = run_network(net, manifest, x, seed=5)
        np.testing.assert_array_equal(got, golden_flat(model, x))
        _, cycles = run_network(net, manifest, x[:1], idle=0, stall=0)
        assert cycles - 1 == manifest["latency_cycles"]
        first, done = _output_cycles(net, manifest, x)
        taken, model_done = _run(stages, len(x))
        assert done == [d - taken[0] for d in model_done]
        assert manifest["cycles_per_inference"] == max(b - a for a, b in zip(done, done[1:]))


def _output_cycles(net, manifest, x):
    """Back-to-back inferences, output always ready: cycles (from the first input
    transfer) of each inference's last output transfer."""
    ob = manifest["output"]["beats"]
    first, out = transfer_cycles(net, input_beats(manifest, x), ob * len(x))
    return first, [out[k * ob + ob - 1] - first for k in range(len(x))]


def test_corrupted_frame_word_is_caught(small_frames_in_memory):
    """The activations come from the memory: a word overwritten behind the engine's back
    while it computes gives outputs that differ from the golden model."""
    model = _model(12, 3, output="acc", scheme="uniform", wbits=3, seed=9)
    stages, _ = plan_network(model, "runtime", _fold(4, 1, 1, False))
    spec = stages[0]
    assert isinstance(spec, ComputeSpec) and spec.buffer_in_memory
    x = np.full((1, 12), 3)
    want = golden_flat(model, x)[0]

    def outputs(corrupt: bool):
        eng = LayerEngine(spec)
        beats = pack(x[0], 2, spec.in_beat)
        got = []

        async def bench(ctx):
            ctx.set(eng.o.ready, 1)
            for beat in beats:
                ctx.set(eng.i.valid, 1)
                ctx.set(eng.i.payload, beat)
                await ctx.tick().until(eng.i.ready)
            ctx.set(eng.i.valid, 0)
            if corrupt:
                await ctx.tick()
                ctx.set(mem.data[1], 0)        # codes 4 .. 7 read as 0 from now on
            while len(got) < spec.out_beats:
                payload, = await ctx.tick().sample(eng.o.payload).until(eng.o.valid)
                got.append(payload)

        sim = Simulator(eng)
        mem = eng._frame_mem          # set when the simulator elaborates the engine
        sim.add_clock(1e-6)
        sim.add_testbench(bench)
        sim.run()
        aw = spec.out_bits
        return [v - (1 << aw) if v >> (aw - 1) else v for v in got]

    assert outputs(False) == list(want)
    assert outputs(True) != list(want)



def test_threshold_keeps_small_frames_in_registers():
    """At their real values the thresholds put a 784 x 2-bit frame in memory and keep 64 x
    2-bit frames (TFC's hidden layers), one-word frames and frames that would fill their
    blocks poorly (4 words of 64 bits: 4 iCE40 blocks) in registers."""
    for n_in, bits, beat, simd, want in [
            (784, 2, 1, 1, True), (784, 1, 1, 16, True), (64, 2, 1, 1, False),
            (128, 2, 1, 1, True), (128, 2, 1, 128, False), (128, 2, 32, 1, False),
            (128, 2, 16, 1, True)]:
        model = _model(n_in, 2, in_bits=bits)
        stages, _ = plan_network(model, "runtime", _fold(beat, 1, simd, False))
        assert stages[0].buffer_in_memory is want, (n_in, bits, beat, simd)


def test_frame_in_memory_at_the_real_threshold():
    """A 128 x 2-bit frame (256 bits) in memory with the threshold at its value: serial,
    double buffered, odd beat against SIMD (beat 8, SIMD 4 then 16)."""
    model = _model(128, 3, seed=4, output="acc", scheme="uniform", wbits=3)
    x = np.random.default_rng(3).integers(0, 4, (3, 128))
    for fold in (_fold(8, 1, 1, True), _fold(8, 3, 16, False), _fold(1, 1, 4, True)):
        stages, _ = plan_network(model, "runtime", fold)
        assert stages[0].buffer_in_memory
        net, manifest = build_network(model, "runtime", fold)
        got, _ = run_network(net, manifest, x, seed=1)
        np.testing.assert_array_equal(got, golden_flat(model, x))
        _, cycles = run_network(net, manifest, x[:1], idle=0, stall=0)
        assert cycles - 1 == manifest["latency_cycles"]


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(networks())
def test_random_networks_with_frames_in_memory(case):
    """tests/hw/test_random_networks.py's networks with every dense frame of more than
    one word in memory (the threshold cannot be a fixture under hypothesis: set here)."""
    model, mode, fold, seed = case
    old = compute.FRAME_MEMORY_MIN_BITS, compute.FRAME_MEMORY_MIN_FILL
    compute.FRAME_MEMORY_MIN_BITS = compute.FRAME_MEMORY_MIN_FILL = 0
    try:
        net, manifest = build_network(model, mode, fold)
        rng = np.random.default_rng(seed)
        x = rng.integers(0, 2**model.input_bits, (2, *model.input_shape))
        got, _ = run_network(net, manifest, x, seed=seed)
        np.testing.assert_array_equal(got, golden_flat(model, x))
        # the last output transfers, not the end of the simulation: a conv's window scan
        # still takes the input rows no window reaches after the last output
        _check_latency(model, mode, fold, net, manifest)
    finally:
        compute.FRAME_MEMORY_MIN_BITS, compute.FRAME_MEMORY_MIN_FILL = old


def test_result_frame_in_memory_at_the_real_threshold():
    """A 64 x 4-bit result frame (256 bits) goes to a memory at the thresholds' real
    values, a 16 x 4-bit one stays in registers; both bit-exact under stalls, and the
    latency and cycles per inference of three back to back are the cycle model's."""
    rng = np.random.default_rng(5)
    l1 = random_dense(rng, 16, 64, scheme="pot", wbits=3, in_bits=2, out_bits=4, name="fc1")
    l2 = random_dense(rng, 64, 16, scheme="pot", wbits=3, in_bits=4, out_bits=4, name="fc2")
    l3 = random_dense(rng, 16, 5, scheme="pot", wbits=3, in_bits=4, output="argmax",
                      name="fc3")
    model = Model(name="m", input_shape=(16,), input_bits=2, layers=(l1, l2, l3))
    x = np.random.default_rng(6).integers(0, 4, (3, 16))
    for db in (False, True):
        fold = {"layers": {"fc1": {"pe": 1, "simd": 4, "thresholds": "sequential"},
                           "fc2": {"pe": 2, "simd": 8, "thresholds": "search"},
                           "fc3": {"pe": 1, "simd": 2}},
                "double_buffer": db, "input_values_per_beat": 4}
        stages, manifest = plan_network(model, "runtime", fold)
        assert stages[0].out_in_memory and not stages[1].out_in_memory
        assert manifest["layers"][0]["output_buffer"]["storage"] == "memory"
        net, manifest = build_network(model, "runtime", fold)
        got, _ = run_network(net, manifest, x, seed=2)
        np.testing.assert_array_equal(got, golden_flat(model, x))
        _, cycles = run_network(net, manifest, x[:1], idle=0, stall=0)
        assert cycles - 1 == manifest["latency_cycles"]
        first, done = _output_cycles(net, manifest, x)
        taken, model_done = _run(stages, len(x))
        assert done == [d - taken[0] for d in model_done]


def _check_latency(model, mode, fold, net, manifest):
    """The manifest's latency is the simulation's first input to last output transfer,
    and three back-to-back inferences end on the cycles the timing model says."""
    stages, _ = plan_network(model, mode, fold)
    taken, done = _run(stages, 3)
    x3 = np.random.default_rng(0).integers(0, 2**model.input_bits, (3, *model.input_shape))
    _, sim_done = _output_cycles(net, manifest, x3)
    assert sim_done == [d - taken[0] for d in done]
    assert manifest["latency_cycles"] == sim_done[0]


def _stride_skips_a_row():
    """A 1x1 conv, stride (2, 1), padding (0, 2), on a 2x2x3 map, then a 6 -> 1 dense
    layer (found by hypothesis): the conv's six windows all lie in scan row 0 (four of
    them all padding), so its last output leaves before it has taken input row 1."""
    cb = np.array([0, 1, -2, -1])
    conv = Conv2d(name="conv", weights=Weights(scheme=Scheme.UNIFORM, bits=2,
                                               codes=np.array([[[[3, 2, 2]]]]), codebook=cb,
                                               products=None),
                  bias=np.array([-4]), activation_codebook=np.array([0, 1, 2, 3]),
                  output=Output(kind=OutputKind.THRESHOLDS, bits=1,
                                thresholds=np.array([[-15]])),
                  stride=(2, 1), padding=(0, 2))
    fc = Dense(name="fc", weights=Weights(scheme=Scheme.UNIFORM, bits=2,
                                          codes=np.array([[0, 0, 0, 3, 2, 3]]), codebook=cb,
                                          products=None),
               bias=np.array([0]), activation_codebook=np.array([0, 1]),
               output=Output(kind=OutputKind.THRESHOLDS, bits=1, thresholds=np.array([[-2]])))
    return Model(name="r", input_shape=(2, 2, 3), input_bits=2,
                 layers=(conv, Flatten(name="flat"), fc))


# the dense layer's frame in registers (one word), baked and runtime, and in memory (two
# words of SIMD 3: the manifest says 27 cycles, the input's last beat is on cycle 28)
@pytest.mark.parametrize("mode,layers,in_memory", [
    ("runtime", {}, False), ("baked", {}, False),
    ("runtime", {"fc": {"pe": 1, "simd": 3}}, True)])
def test_latency_when_the_last_output_precedes_the_last_input(small_frames_in_memory, mode,
                                                              layers, in_memory):
    """Regression (hypothesis): the manifest's latency (26 cycles unfolded) is the
    simulation's last output transfer; the simulation's end (28 cycles, after the scan of
    input row 1, which no window reaches) is no latency measure."""
    model = _stride_skips_a_row()
    fold = {"layers": layers, "pipeline": False, "double_buffer": False,
            "input_values_per_beat": 1}
    stages, _ = plan_network(model, mode, fold)
    assert stages[1].buffer_in_memory is in_memory
    net, manifest = build_network(model, mode, fold)
    x = np.random.default_rng(0).integers(0, 4, (2, 2, 2, 3))
    got, _ = run_network(net, manifest, x, seed=0)
    np.testing.assert_array_equal(got, golden_flat(model, x))
    _check_latency(model, mode, fold, net, manifest)
    # the case this guards: the simulation ends after the last output (the old measure)
    _, cycles = run_network(net, manifest, x[:1], idle=0, stall=0)
    assert cycles - 1 > manifest["latency_cycles"]
