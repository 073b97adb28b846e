"""Harness + network in Amaranth's simulator behind a bit-level UART: bit-exact against
the golden model, for the generator's network (runtime and baked) and the stand-in."""

import numpy as np
import pytest

from mulfree.boards.framing import FRAME_OUT, IDENT, FrameFormat, StreamFormat, parse_ident
from mulfree.boards.harness import Harness
from mulfree.boards.network import frame_format, network_for
from mulfree.boards.simboard import SimulatedBoard
from mulfree.gen.model import golden
from mulfree.gen.model.examples import example_model, random_dense
from mulfree.gen.model.format import Model


def _mlp(seed, output, scheme1="pot", scheme2="apot"):
    rng = np.random.default_rng(seed)
    l1 = random_dense(rng, 12, 6, scheme=scheme1, in_bits=2, out_bits=2, name="fc1")
    l2 = random_dense(rng, 6, 4, scheme=scheme2, in_bits=2, output=output, name="fc2")
    return Model(name=f"mlp-{output}", input_shape=(12,), input_bits=2, layers=(l1, l2))


def _run(model, mode="runtime", fold=None, standin=False, samples=4, seed=0):
    net, manifest, source = network_for(model, mode=mode, fold=fold, standin=standin)
    frames = frame_format(model, net, manifest, {"mode": mode, "fold": fold})
    board = SimulatedBoard(Harness(net, frames, clk_freq=1e6, baud=125000))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2**model.input_bits, (samples,) + model.input_shape)
    n = 1 + frames.out.frame_bytes
    replies = board.exchange([frames.encode(s) for s in x] + [bytes([IDENT])],
                             [n] * samples + [13])
    for r in replies[:samples]:
        assert len(r) == n and r[0] == FRAME_OUT
    got = np.array([frames.decode(r[1:]) for r in replies[:samples]])
    want = golden.run(model, x).output.reshape(samples, -1)
    np.testing.assert_array_equal(got, want)
    assert parse_ident(replies[-1]) == (2, frames.inp.frame_bytes, frames.out.frame_bytes,
                                        frames.fingerprint, board.harness.rx_fifo.depth)
    return source


@pytest.mark.parametrize("output", ["thresholds", "argmax", "acc"])
@pytest.mark.parametrize("mode,fold", [("runtime", "serial"), ("runtime", "parallel"),
                                       ("baked", None)])
def test_generated_network_bit_exact_through_uart(output, mode, fold):
    _run(_mlp(1, output, "uniform" if mode == "baked" else "pot"), mode, fold)


def test_conv_example_network_bit_exact_through_uart():
    _run(example_model(0), "runtime", None, samples=2)


@pytest.mark.parametrize("output", ["thresholds", "acc"])
def test_standin_network_bit_exact_through_uart(output):
    assert _run(_mlp(2, output), standin=True) == "mulfree.boards.standin"


def test_stray_bytes_between_frames_are_ignored():
    model = _mlp(3, "argmax")
    net, manifest, _ = network_for(model, fold="serial")
    frames = frame_format(model, net, manifest, {})
    board = SimulatedBoard(Harness(net, frames, clk_freq=1e6, baud=250000))
    x = np.arange(12) % 4
    replies = board.exchange([b"\x00\x13\x5a" + frames.encode(x)], [1 + frames.out.frame_bytes])
    assert frames.decode(replies[0][1:]).tolist() == golden.run(model, x).output.reshape(-1).tolist()


def test_stream_format_packing_roundtrip():
    f = StreamFormat(beats=3, values_per_beat=3, value_bits=5, beat_bits=15, signed=True)
    vals = np.array([-16, 15, 0, 3, -1, 7, 2, -9])
    data = f.pack(vals)
    assert len(data) == f.frame_bytes == 6
    assert f.unpack(data, 8).tolist() == vals.tolist()
    u = StreamFormat(beats=2, values_per_beat=4, value_bits=2, beat_bits=8)
    assert u.pack([1, 2, 3, 0, 3]) == bytes([0b00111001, 0b00000011])
    with pytest.raises(ValueError, match="values must lie in"):
        u.pack([4])
    frames = FrameFormat(u, f, 5, 8, "acc", 0xDEADBEEF)
    assert FrameFormat.from_json(frames.to_json()) == frames
    assert parse_ident(frames.ident(64)) == (2, 2, 6, 0xDEADBEEF, 64)
    # a version-1 reply (a bitstream built before the receive FIFO) still parses
    assert parse_ident(b"MF\x01\x02\x00\x06\x00\xef\xbe\xad\xde") == (1, 2, 6, 0xDEADBEEF,
                                                                         None)
    with pytest.raises(ValueError, match="not a mulfree identify reply"):
        parse_ident(frames.ident(64)[:-1])
