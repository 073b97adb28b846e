"""Back-to-back frames through the harness's receive FIFO (Amaranth simulator, bit-level
UART): the same outputs as one frame at a time, the link's full rate, the window that never
overruns, and what an overrun does (LOST byte, error LED, no silent corruption); the host
driver's recovery from a LOST byte."""

import numpy as np
import pytest

from mulfree.boards.framing import (FRAME_OUT, IDENT, LOST, FrameFormat, parse_ident,
                                    rx_fifo_depth, window)
from mulfree.boards.harness import Harness
from mulfree.boards.host import BoardLink, LinkError, link_ceiling
from mulfree.boards.network import frame_format, frames_for, network_for
from mulfree.boards.simboard import SimulatedBoard
from mulfree.gen.model import golden
from mulfree.gen.model.examples import example_model, random_dense
from mulfree.gen.model.format import Model


def _model(output="argmax", n_out=4, seed=1):
    rng = np.random.default_rng(seed)
    l1 = random_dense(rng, 12, 6, scheme="pot", in_bits=2, out_bits=2, name="fc1")
    l2 = random_dense(rng, 6, n_out, scheme="apot", in_bits=2, output=output, name="fc2")
    return Model(name=f"s-{output}-{n_out}", input_shape=(12,), input_bits=2, layers=(l1, l2))


def _board(model, fold="serial", depth=None):
    net, manifest, _ = network_for(model, fold=fold)
    frames = frame_format(model, net, manifest, {"fold": fold})
    return SimulatedBoard(Harness(net, frames, clk_freq=1e6, baud=125000,
                                  rx_fifo_depth=depth)), frames


def _inputs(model, n, seed=0):
    return np.random.default_rng(seed).integers(0, 2 ** model.input_bits,
                                                (n,) + model.input_shape)


@pytest.mark.parametrize("model,fold", [(_model("argmax"), "serial"),
                                        (_model("acc"), "parallel"),
                                        (example_model(0), None)],
                         ids=["argmax-serial", "acc-parallel", "conv-example"])
def test_back_to_back_equals_one_at_a_time(model, fold):
    board, frames = _board(model, fold)
    n = 8 if fold is not None else 3
    x = _inputs(model, n)
    reply = 1 + frames.out.frame_bytes
    w = window(frames.inp.frame_bytes, board.harness.rx_fifo.depth)
    assert w >= 3
    streamed = board.stream([frames.encode(s) for s in x], reply, window=w)
    one_by_one = board.exchange([frames.encode(s) for s in x], [reply] * n)
    assert streamed.replies == tuple(one_by_one)          # bit for bit
    assert streamed.lost == 0 and not streamed.error_led
    got = np.array([frames.decode(r[1:]) for r in streamed.replies])
    np.testing.assert_array_equal(got, golden.run(model, x).output.reshape(n, -1))
    # back to back the link runs at its ceiling (the busier direction never pauses)
    ceiling = link_ceiling(frames, 1, streaming=True)       # frames per bit time
    assert streamed.frames_per_bit() >= 0.97 * ceiling
    assert streamed.max_fifo <= board.harness.rx_fifo.depth


def test_the_window_never_overruns_a_board_that_answers_slower_than_it_is_fed():
    """16 accumulators out (about 33 bytes) per 4 bytes in: the board falls behind the input.
    With the protocol's window nothing is lost; without a window the FIFO overflows."""
    model = _model("acc", n_out=16)
    board, frames = _board(model, depth=16)
    x = _inputs(model, 12)
    reply = 1 + frames.out.frame_bytes
    assert frames.out.frame_bytes > 4 * frames.inp.frame_bytes
    w = window(frames.inp.frame_bytes, 16)
    ok = board.stream([frames.encode(s) for s in x], reply, window=w)
    assert ok.lost == 0 and not ok.error_led and len(ok.replies) == len(x)
    got = np.array([frames.decode(r[1:]) for r in ok.replies])
    np.testing.assert_array_equal(got, golden.run(model, x).output.reshape(len(x), -1))
    assert ok.frames_per_bit() >= 0.97 * link_ceiling(frames, 1)
    over = board.stream([frames.encode(s) for s in x], reply, window=None)
    assert over.lost >= 1 and over.error_led


def test_an_overrun_is_reported_not_silently_corrupted():
    """The host ignores the window; every reply before the first LOST that is not directly
    followed by it is right, and a LOST comes before anything wrong."""
    model = _model("acc", n_out=8)
    board, frames = _board(model, depth=2)
    x = _inputs(model, 30)
    reply = 1 + frames.out.frame_bytes
    run = board.stream([frames.encode(s) for s in x], reply, window=None)
    assert run.lost >= 1 and run.error_led
    want = golden.run(model, x).output.reshape(len(x), -1)
    raw, i, k = run.raw, 0, 0
    while raw[i] != LOST:
        assert raw[i] == FRAME_OUT
        if raw[i + reply] != LOST:          # a reply followed by LOST is void anyway
            np.testing.assert_array_equal(frames.decode(raw[i + 1:i + reply]), want[k])
        i, k = i + reply, k + 1
    assert 0 < k < len(x)
    # the checker can fail: a shifted expectation does not match
    with pytest.raises(AssertionError):
        np.testing.assert_array_equal(frames.decode(raw[1:reply]), want[1])


def test_fifo_depth_rule():
    assert rx_fifo_depth(3) == 16 and rx_fifo_depth(33) == 128 and rx_fifo_depth(64) == 256
    assert rx_fifo_depth(255) == 512 and rx_fifo_depth(400) == 512      # one iCE40 block
    assert rx_fifo_depth(400, block_bytes=2048) == 1024
    assert window(33, 128) == 4 and window(400, 512) == 2 and window(600, 512) == 1
    assert window(33, None) == 1                                        # version-1 board
    frames = frames_for(_model(), "runtime", "serial")
    with pytest.raises(ValueError, match="Receive FIFO depth must be an integer from 2 to "
                                         "65535, not 1"):
        Harness(None, frames, clk_freq=1e6, baud=125000, rx_fifo_depth=1)


class ScriptedBoard:
    """A serial port with a board behind it in Python (the golden model), which loses the
    byte number ``lose_at`` of what the host sends (once) and then behaves as the harness
    does: LOST after the reply in progress, garbage until the host resynchronizes."""

    def __init__(self, model, frames: FrameFormat, lose_at: int):
        self.model, self.frames, self.lose_at = model, frames, lose_at
        self.timeout = 1.0
        self.rx = bytearray()        # everything the host wrote
        self.out = bytearray()       # what the board will answer
        self.broken = False
        self.consumed = 0
        self.writes = 0

    def write(self, data):
        for b in data:
            self.writes += 1
            if self.writes == self.lose_at:
                self.broken = True
                self.out.append(LOST)
                continue
            self.rx.append(b)
        self._serve()
        return len(data)

    def _serve(self):
        f = self.frames
        n = 1 + f.inp.frame_bytes
        while True:
            buf = self.rx[self.consumed:]
            if buf[:1] == bytes([IDENT]):
                self.out += f.ident(64)
                self.consumed += 1
            elif buf[:1] == bytes([0xA5]) and len(buf) >= n:
                if self.broken:       # misaligned after the loss: answer garbage
                    self.out += bytes([FRAME_OUT]) + bytes(f.out.frame_bytes)
                else:
                    x = f.inp.unpack(bytes(buf[1:n]), f.in_values)
                    y = golden.run(self.model, x.reshape(self.model.input_shape)).output
                    self.out += bytes([FRAME_OUT]) + f.out.pack(y.reshape(-1))
                self.consumed += n
            elif buf[:1] and buf[0] not in (0xA5, IDENT):
                self.consumed += 1    # ignored between frames
            else:
                return

    def flush(self):
        pass

    def read(self, n):
        data, self.out[:] = bytes(self.out[:n]), self.out[n:]
        return data

    def reset_input_buffer(self):
        # the host's resync: its zeros finished the partial frame; the board realigns
        self.out.clear()
        self.rx.clear()
        self.consumed = 0
        self.broken = False


@pytest.mark.parametrize("lose_at", [3, 40, 77])
def test_host_recovers_from_a_lost_byte(lose_at, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    model = _model("acc")
    frames = frames_for(model, "runtime", "serial")
    port = ScriptedBoard(model, frames, lose_at)
    x = _inputs(model, 20)
    with BoardLink(port, frames, timeout=0.2) as link:
        assert parse_ident(frames.ident(64))[-1] == 64
        link.identify()
        assert link.window == window(frames.inp.frame_bytes, 64) > 1
        y = link.infer(x)
    assert link.recoveries == 1
    np.testing.assert_array_equal(y, golden.run(model, x).output.reshape(len(x), -1))


def test_host_gives_up_after_repeated_losses(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    model = _model("acc")
    frames = frames_for(model, "runtime", "serial")

    class AlwaysLosing(ScriptedBoard):
        def reset_input_buffer(self):
            super().reset_input_buffer()
            self.writes = 0              # loses again after every resync

    port = AlwaysLosing(model, frames, lose_at=10)
    with BoardLink(port, frames, timeout=0.2) as link:
        link.identify()
        with pytest.raises(LinkError, match=r"no valid reply from the board after 2 "
                                            r"resynchronizations \(the board lost a "
                                            r"received byte; \d+ of 20 answered\)"):
            link.infer(_inputs(model, 20))
