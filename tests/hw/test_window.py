"""The sliding-window generator alone against a naive reference, conv2d networks through
it against the golden model, the timing model against the simulator, and lint."""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mulfree.gen.model.examples import random_conv2d, random_dense
from mulfree.gen.model.format import Flatten, MaxPool, Model
from mulfree.gen.plan.network import build_network, plan_network
from mulfree.hw.window import SlidingWindow, WindowSpec
from netsim import golden_flat, input_beats, pack, run_network, stream_through, \
    transfer_cycles

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


# -- the reference: one loop per tap, nothing clever ----------------------------------

def reference_windows(spec: WindowSpec, frame: np.ndarray) -> list[tuple[tuple, tuple]]:
    """``[(codes, pads)]`` per output position, row-major; taps in (dy, dx, c) order."""
    h, w, c = spec.shape
    (kh, kw), (sh, sw), (ph, pw) = spec.kernel, spec.stride, spec.padding
    oh, ow = spec.out_shape
    out = []
    for oy in range(oh):
        for ox in range(ow):
            codes, pads = [], []
            for dy in range(kh):
                for dx in range(kw):
                    y, x = oy * sh + dy - ph, ox * sw + dx - pw
                    for ch in range(c):
                        inside = 0 <= y < h and 0 <= x < w
                        codes.append(int(frame[y, x, ch]) if inside else 0)
                        pads.append(0 if inside else 1)
            out.append((tuple(codes), tuple(pads)))
    return out


def simulate_windows(spec: WindowSpec, frames, *, seed=0, idle=0.3, stall=0.3):
    """Drive ``frames`` into a :class:`SlidingWindow` with random idle and back-pressure;
    returns the windows as ``(codes, pads)`` and checks the stream rules on the output
    every cycle (valid stays and the payload holds until a transfer)."""
    dut = SlidingWindow(spec)
    rng = np.random.default_rng(seed)
    b, taps = spec.code_bits, spec.taps
    beats = []
    for f in frames:
        beats += pack(np.asarray(f).reshape(-1), b, spec.in_beat)
    got = stream_through(dut, beats, spec.positions * len(frames), rng=rng, idle=idle,
                         stall=stall, fields=(dut.o.payload.taps, dut.o.payload.pad))
    mask = 2**b - 1
    return [(tuple((t >> (k * b)) & mask for k in range(taps)),
             tuple((p >> k) & 1 for k in range(taps))) for t, p in got]


def check_windows(spec, frames, got):
    want = [w for f in frames for w in reference_windows(spec, f)]
    assert len(got) == len(want)
    for n, (g, e) in enumerate(zip(got, want)):
        assert g == e, f"window {n} (frame {n // spec.positions}): got {g}, want {e}"


def _frames(spec, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 2**spec.code_bits, spec.shape) for _ in range(n)]


# -- parameters -------------------------------------------------------------------------

def test_spec_checks():
    with pytest.raises(TypeError, match=r"^Spec must be a WindowSpec, not 3$"):
        SlidingWindow(3)
    with pytest.raises(TypeError, match=r"^Shape must be a tuple of three integers, not \[4, 4, 1\]$"):
        WindowSpec(shape=[4, 4, 1])
    with pytest.raises(ValueError, match=r"^Shape must be positive integers, not \(4, 0, 1\)$"):
        WindowSpec(shape=(4, 0, 1))
    with pytest.raises(TypeError, match=r"^Kernel must be a tuple of two integers, not 3$"):
        WindowSpec(kernel=3)
    with pytest.raises(ValueError, match=r"^Stride must be positive integers, not \(0, 1\)$"):
        WindowSpec(stride=(0, 1))
    with pytest.raises(ValueError, match=r"^Padding must be non-negative integers, not \(-1, 0\)$"):
        WindowSpec(padding=(-1, 0))
    with pytest.raises(TypeError, match=r"^Code width must be an integer, not True$"):
        WindowSpec(code_bits=True)
    with pytest.raises(ValueError, match=r"^Input beat must be a positive integer, not 0$"):
        WindowSpec(in_beat=0)
    with pytest.raises(ValueError, match=r"^Input beat must divide the 64 codes of the map, not 5$"):
        WindowSpec(in_beat=5)
    with pytest.raises(ValueError, match=r"^Kernel \(4, 1\) does not fit the 2x2 map with "
                                         r"padding \(0, 1\)$"):
        WindowSpec(shape=(2, 2, 1), kernel=(4, 1), padding=(0, 1))


def test_spec_geometry_and_json():
    s = WindowSpec(shape=(28, 28, 3), kernel=(3, 3), padding=(1, 1), code_bits=2, in_beat=12)
    assert s.out_shape == (28, 28) and s.positions == 784 and s.taps == 27
    assert (s.piece, s.pieces_per_pixel, s.pieces_per_beat) == (3, 1, 4)
    assert (s.scan_rows, s.scan_cols, s.scan_pieces) == (30, 30, 900)
    # two rows of the padded width, all channels: grows with kh * W * C, not H * W * C
    assert (s.memory_depth, s.memory_width, s.memory_bits) == (30, 2 * 3 * 2, 30 * 12)
    assert WindowSpec.from_dict(s.to_dict()) == s
    t = WindowSpec(shape=(5, 7, 1), kernel=(2, 2), stride=(2, 3))
    # rows and columns no window reaches are still scanned (their codes must be taken)
    assert t.out_shape == (2, 2) and (t.scan_rows, t.scan_cols) == (5, 7)
    assert WindowSpec(kernel=(1, 3)).memory_bits == 0


# -- the generator alone ----------------------------------------------------------------

GEOMETRIES = [
    # shape, kernel, stride, padding, code bits, in_beat
    ((8, 8, 1), (3, 3), (1, 1), (1, 1), 2, 16),
    ((5, 7, 2), (3, 2), (1, 2), (1, 0), 2, 7),       # non-square, beats straddle rows
    ((7, 5, 3), (5, 5), (1, 1), (2, 2), 1, 1),       # 5x5, pad 2
    ((6, 6, 4), (2, 2), (2, 2), (0, 0), 3, 8),       # two pixels per beat
    ((5, 5, 4), (3, 3), (3, 3), (2, 1), 2, 2),       # stride 3, half a pixel per beat
    ((9, 4, 3), (1, 1), (2, 1), (0, 0), 2, 9),       # 1x1, beats of three pixels
    ((3, 3, 2), (5, 4), (1, 1), (2, 2), 2, 3),       # window larger than the map
    ((4, 6, 3), (3, 1), (1, 3), (2, 0), 2, 4),       # in_beat and C share no factor
    ((1, 9, 1), (1, 3), (1, 2), (0, 1), 4, 9),       # one row
    ((9, 1, 2), (4, 1), (3, 1), (1, 0), 1, 6),       # one column, one-word line memory
    ((5, 5, 1), (2, 5), (2, 1), (1, 2), 2, 25),      # the whole map in one beat
    ((6, 5, 2), (4, 3), (3, 2), (2, 2), 2, 10),      # windows partly past the far edge
]


@pytest.mark.parametrize("shape,kernel,stride,padding,bits,beat", GEOMETRIES)
def test_windows_match_reference(shape, kernel, stride, padding, bits, beat):
    spec = WindowSpec(shape=shape, kernel=kernel, stride=stride, padding=padding,
                      code_bits=bits, in_beat=beat)
    frames = _frames(spec)
    check_windows(spec, frames, simulate_windows(spec, frames, seed=sum(shape)))


def test_windows_without_stalls():
    spec = WindowSpec(shape=(6, 5, 2), kernel=(3, 3), padding=(1, 1), in_beat=2)
    frames = _frames(spec)
    check_windows(spec, frames, simulate_windows(spec, frames, idle=0, stall=0))


@st.composite
def geometries(draw):
    h, w, c = draw(st.integers(1, 7)), draw(st.integers(1, 7)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    kh = draw(st.integers(1, min(5, h + 2 * ph)))
    kw = draw(st.integers(1, min(5, w + 2 * pw)))
    n = h * w * c
    beat = draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0]))
    return WindowSpec(shape=(h, w, c), kernel=(kh, kw),
                      stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                      padding=(ph, pw), code_bits=draw(st.integers(1, 3)), in_beat=beat)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(geometries(), st.integers(0, 2**16), st.floats(0, 0.7), st.floats(0, 0.7))
def test_windows_random_geometry(spec, seed, idle, stall):
    frames = _frames(spec, n=2, seed=seed)
    check_windows(spec, frames, simulate_windows(spec, frames, seed=seed, idle=idle,
                                                 stall=stall))


def test_checker_catches_a_wrong_window():
    """A corrupted expected value (or a wrong window) must fail the comparison."""
    spec = WindowSpec(shape=(4, 4, 1), kernel=(3, 3), padding=(1, 1))
    frames = _frames(spec, n=1)
    got = simulate_windows(spec, frames)
    check_windows(spec, frames, got)
    bad = list(got)
    codes, pads = bad[5]
    bad[5] = ((codes[0] ^ 1,) + codes[1:], pads)
    with pytest.raises(AssertionError, match="window 5"):
        check_windows(spec, frames, bad)
    bad = list(got)
    bad[0] = (got[0][0], (0,) * spec.taps)        # the padding marks matter too
    with pytest.raises(AssertionError, match="window 0"):
        check_windows(spec, frames, bad)


# -- conv2d networks through the window generator ---------------------------------------

def _check_net(model, mode="runtime", fold=None, n=3, seed=1, **kw):
    net, manifest = build_network(model, mode, fold)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2**model.input_bits, (n, *model.input_shape))
    got, _ = run_network(net, manifest, x, seed=seed, **kw)
    np.testing.assert_array_equal(got, golden_flat(model, x))
    return manifest


def _conv(shape, oc, kernel, stride, padding, seed=0, **kw):
    rng = np.random.default_rng(seed)
    conv = random_conv2d(rng, shape, oc, kernel, stride, padding, name="conv", **kw)
    return Model(name="conv", input_shape=shape, input_bits=kw.get("in_bits", 2),
                 layers=(conv,))


UNITS = [("uniform", 3, "uniform"), ("pot", 3, "uniform"), ("apot", 4, "uniform"),
         ("lut", 3, "uniform"), ("binary", 1, "uniform"), ("ternary", 2, "uniform"),
         ("table", 2, "uniform"), ("uniform", 3, "learned"), ("uniform", 8, "learned")]


@pytest.mark.parametrize("scheme,wbits,act", UNITS)
@pytest.mark.parametrize("mode", ["runtime", "baked"])
def test_conv_every_unit(scheme, wbits, act, mode):
    # padding: non-identity activations and tables must give 0 for padded taps
    model = _conv((5, 4, 2), 4, (3, 2), (1, 1), (1, 1), scheme=scheme, wbits=wbits,
                  act=act, in_bits=2, output="acc")
    fold = {"layers": {"conv": {"pe": 2, "simd": 3}}} if mode == "runtime" else None
    _check_net(model, mode, fold)


@pytest.mark.parametrize("fold", [
    "serial", "auto", "parallel",
    {"layers": {"conv": {"pe": 3, "simd": 4}}, "input_values_per_beat": 6},
    {"layers": {"conv": {"pe": 1, "simd": 24}}, "pipeline": True},
    {"layers": {"conv": {"pe": 6, "simd": 2}}, "double_buffer": True, "pipeline": True},
])
def test_conv_folds(fold):
    model = _conv((6, 5, 3), 6, (2, 4), (2, 1), (2, 1), scheme="pot", wbits=3,
                  output="thresholds")
    _check_net(model, "runtime", fold, n=2)


def test_conv_chain_pool_and_argmax():
    """conv -> conv -> max-pool -> conv with argmax per position: streaming stages
    back-pressure each other."""
    rng = np.random.default_rng(3)
    c1 = random_conv2d(rng, (7, 6, 1), 4, (3, 3), (1, 1), (1, 1), scheme="apot", wbits=3,
                       name="c1")
    c2 = random_conv2d(rng, (7, 6, 4), 4, (2, 2), (1, 1), (0, 0), scheme="ternary", wbits=2,
                       name="c2")
    c3 = random_conv2d(rng, (3, 2, 4), 5, (1, 2), (1, 1), (1, 0), scheme="table", wbits=2,
                       output="argmax", name="c3")
    model = Model(name="chain", input_shape=(7, 6, 1), input_bits=2,
                  layers=(c1, c2, MaxPool(name="p", kernel=(2, 2)), c3))
    _check_net(model, "runtime", {"layers": {"c1": {"pe": 2, "simd": 9},
                                             "c2": "serial", "c3": "auto"}}, n=3)


def test_conv_28x28_back_to_back():
    model = _conv((28, 28, 1), 8, (3, 3), (1, 1), (1, 1), scheme="pot", wbits=3)
    _check_net(model, "runtime", {"layers": {"conv": {"pe": 8, "simd": 9}}}, n=2,
               idle=0.1, stall=0.1)


# -- timing: the cycle model against the simulator ---------------------------------------

def _output_cycles(net, manifest, x):
    """Cycle of every output transfer, input always offered, output always ready."""
    return transfer_cycles(net, input_beats(manifest, x), manifest["output"]["beats"] * len(x))


TIMING_CASES = [
    ("conv-pool-fc", "serial"), ("conv-pool-fc", "auto"),
    ("conv-pool-fc", {"default": "auto", "pipeline": True, "double_buffer": True}),
    ("chain", "auto"), ("chain", "serial"), ("wide", "auto"), ("wide", "parallel"),
]


def _timing_model(name):
    rng = np.random.default_rng(7)
    if name == "conv-pool-fc":
        c = random_conv2d(rng, (6, 6, 2), 4, (3, 3), (1, 1), (1, 1), scheme="pot", wbits=3,
                          name="c")
        fc = random_dense(rng, 36, 5, scheme="uniform", wbits=3, output="acc", name="fc")
        return Model(name="a", input_shape=(6, 6, 2), input_bits=2,
                     layers=(c, MaxPool(name="p", kernel=(2, 2)), Flatten(name="f"), fc))
    if name == "chain":
        c1 = random_conv2d(rng, (5, 6, 1), 2, (2, 3), (1, 2), (1, 1), scheme="apot", wbits=3,
                           name="c1")
        c2 = random_conv2d(rng, (6, 3, 2), 3, (3, 1), (2, 1), (0, 0), scheme="pot", wbits=3,
                           output="argmax", name="c2")
        return Model(name="b", input_shape=(5, 6, 1), input_bits=2, layers=(c1, c2))
    c = random_conv2d(rng, (4, 9, 3), 6, (1, 3), (1, 2), (0, 2), scheme="uniform", wbits=2,
                      output="acc", name="c")
    return Model(name="c", input_shape=(4, 9, 3), input_bits=2, layers=(c,))


@pytest.mark.parametrize("name,fold", TIMING_CASES)
def test_timing_model_is_exact(name, fold):
    """Every output transfer of four back-to-back inferences on the cycle the model says;
    the manifest's latency and cycles per inference come from that model."""
    from mulfree.hw.timing import _run

    model = _timing_model(name)
    stages, manifest = plan_network(model, "runtime", fold)
    net, _ = build_network(model, "runtime", fold)
    x = np.random.default_rng(0).integers(0, 4, (4, *model.input_shape))
    first, out = _output_cycles(net, manifest, x)
    taken, done = _run(stages, 4)
    ob = manifest["output"]["beats"]
    sim_done = [out[k * ob + ob - 1] - first for k in range(4)]
    assert sim_done == [d - taken[0] for d in done]
    assert manifest["latency_cycles"] == sim_done[0]
    assert manifest["cycles_per_inference"] == max(b - a for a, b in zip(sim_done, sim_done[1:]))


def test_compute_spec_checks_the_window():
    import dataclasses

    stages, _ = plan_network(_conv((5, 5, 2), 4, (3, 3), (1, 1), (1, 1), scheme="pot",
                                   wbits=3), "runtime", {"layers": {"conv": {"pe": 2,
                                                                             "simd": 6}}})
    spec = stages[0]
    with pytest.raises(ValueError, match=r"^Output beat of a conv2d layer must be its PE "
                                         r"count 2, not 4$"):
        dataclasses.replace(spec, out_beat=4).check()
    with pytest.raises(ValueError, match=r"does not match the layer"):
        dataclasses.replace(spec, window=dataclasses.replace(spec.window,
                                                             kernel=(2, 3))).check()
    with pytest.raises(TypeError, match=r"^Window must be a WindowSpec or None, not 3$"):
        dataclasses.replace(spec, window=3).check()


def test_window_storage_in_the_manifest():
    model = _conv((28, 28, 1), 8, (3, 3), (1, 1), (1, 1), scheme="pot", wbits=3)
    _, manifest = plan_network(model, "runtime", "auto")
    w = manifest["layers"][0]["window"]
    assert (w["line_rows"], w["line_cols"], w["channels"]) == (2, 30, 1)
    assert w["memory_bits"] == 2 * 30 * 2 and w["window_bits"] == 9 * 2
    assert re.match(r"line buffer 2 rows x 30 columns x 1 channels in memory", w["storage"])


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_stream_rule_check_catches_a_payload_that_changes_while_waiting():
    """``netsim.stream_through``'s rule check must fail on a source whose payload moves
    while valid waits for ready."""
    import gc

    from amaranth.hdl import Module
    from amaranth.lib import stream, wiring
    from amaranth.lib.wiring import In, Out

    class Restless(wiring.Component):
        i: In(stream.Signature(8))
        o: Out(stream.Signature(8))

        def elaborate(self, platform):
            m = Module()
            m.d.comb += [self.i.ready.eq(1), self.o.valid.eq(1)]
            m.d.sync += self.o.payload.eq(self.o.payload + 1)   # moves every cycle
            return m

    with pytest.raises(AssertionError, match="payload changed while valid waited"):
        stream_through(Restless(), [1, 2, 3], 8, rng=np.random.default_rng(0), idle=0.0,
                       stall=0.5)
    gc.collect()    # the aborted simulation's driver coroutine, here under the filter
