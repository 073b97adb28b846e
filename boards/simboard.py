"""The harness and its network in Amaranth's simulator, with a bit-level UART on both lines.

:class:`SimulatedBoard` runs the same :class:`~mulfree.boards.harness.Harness` that a
bitstream contains. :meth:`SimulatedBoard.exchange` sends requests and collects the replies
stop-and-wait (the tests use it to check the whole path bit for bit against the golden
model); :meth:`SimulatedBoard.stream` sends frames back to back, as many in flight as a
window allows, and measures the rate and the receive FIFO's fill;
:meth:`SimulatedBoard.serve_pty` puts it behind a pseudo-terminal, so the host driver
(``mulfree run --port``) talks to it exactly as to a USB serial port.

The simulated clock is slow (by default 8 cycles per bit) to keep Python's per-cycle
cost down; the framing and the RTL are those of the real build.
"""

from __future__ import annotations

import os
import queue
import select
import threading
import time
import tty
from dataclasses import dataclass

from amaranth.sim import Simulator

from .framing import FRAME_OUT, LOST
from .harness import Harness

__all__ = ["SimulatedBoard", "StreamRun"]


@dataclass(frozen=True)
class StreamRun:
    """What :meth:`SimulatedBoard.stream` saw.

    ``replies``: the complete ``0x5A`` replies in order (start byte included); ``raw``: every
    byte the board sent; ``lost``: how many ``0xEE`` bytes; ``done_at``: the cycle each reply
    completed; ``max_fifo``: the receive FIFO's highest level; ``error_led``: the error LED
    at the end; ``bit_period``: cycles per bit."""

    replies: tuple[bytes, ...]
    raw: bytes
    lost: int
    done_at: tuple[int, ...]
    max_fifo: int
    error_led: bool
    bit_period: int

    def frames_per_bit(self) -> float:
        """Steady rate, replies per bit time, from the first reply's end to the last's."""
        if len(self.done_at) < 2:
            return float("nan")
        span = self.done_at[-1] - self.done_at[0]
        return (len(self.done_at) - 1) * self.bit_period / span


class SimulatedBoard:
    """A harness in simulation.

    Parameters
    ----------
    harness : Harness
        Built with the ``clk_freq`` and ``baud`` the simulation should use.
    """

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.period = harness.bit_period

    # -- request and reply, stop-and-wait ------------------------------------------------
    def exchange(self, requests: list[bytes], reply_lens: list[int], *,
                 max_cycles: int | None = None) -> list[bytes]:
        """Send each request on the RX line, wait for its reply of the given length on the
        TX line (as the host driver does), then send the next; return the replies.

        A reply shorter than expected (the board went quiet for ``max_cycles``) ends the
        exchange early; the missing replies are returned short or empty.
        """
        h, period = self.harness, self.period
        if len(requests) != len(reply_lens):
            raise ValueError("one reply length per request")
        replies = [bytearray() for _ in requests]
        if max_cycles is None:
            max_cycles = 40 * period + 20000
        sim = Simulator(h)
        sim.add_clock(1e-6)

        async def run(ctx):
            ctx.set(h.rx, 1)
            await ctx.tick().repeat(2 * period)
            for req, want, got in zip(requests, reply_lens, replies):
                for byte in req:
                    await _send_byte(ctx, h.rx, byte, period)
                while len(got) < want:
                    byte, _ = await _recv_byte(ctx, h.tx, period, limit=max_cycles)
                    if byte is None:
                        return
                    got.append(byte)

        sim.add_testbench(run)
        sim.run()
        return [bytes(r) for r in replies]

    # -- back to back ---------------------------------------------------------------------
    def stream(self, frames: list[bytes], reply_len: int, *, window: int | None = None,
               quiet_cycles: int | None = None) -> StreamRun:
        """Send ``frames`` on the RX line without gaps between bytes, keeping at most
        ``window`` frames in flight (sent, reply not yet complete; None: no limit), and read
        the TX line meanwhile; stop when every frame has its reply, or the TX line has been
        quiet for ``quiet_cycles`` after the last frame went out."""
        h, period = self.harness, self.period
        if quiet_cycles is None:
            quiet_cycles = 40 * period + 20000
        raw = bytearray()
        replies: list[bytes] = []
        done_at: list[int] = []
        state = {"now": 0, "max_fifo": 0, "sent_all": False, "blocked": False, "lost": 0,
                 "led": False}
        sim = Simulator(h)
        sim.add_clock(1e-6)

        async def watch(ctx):
            while True:
                await ctx.tick()
                state["now"] += 1
                level = ctx.get(h.rx_fifo.level)
                if level > state["max_fifo"]:
                    state["max_fifo"] = level
                state["led"] = bool(ctx.get(h.leds) & 0b100)

        async def send(ctx):
            ctx.set(h.rx, 1)
            await ctx.tick().repeat(2 * period)
            for i, frame in enumerate(frames):
                while window is not None and i - len(replies) >= window:
                    state["blocked"] = True
                    await ctx.tick()
                state["blocked"] = False
                for byte in frame:
                    await _send_byte(ctx, h.rx, byte, period)
            state["sent_all"] = True

        async def receive(ctx):
            current = bytearray()
            while len(replies) < len(frames):
                byte, _ = await _recv_byte(ctx, h.tx, period, limit=quiet_cycles)
                if byte is None:
                    if state["sent_all"] or state["blocked"]:
                        return            # the board went quiet: replies are missing
                    continue
                raw.append(byte)
                if not current:
                    if byte == LOST:
                        state["lost"] += 1
                        continue
                    if byte != FRAME_OUT:
                        continue          # not a reply (the tests look at ``raw``)
                current.append(byte)
                if len(current) == reply_len:
                    replies.append(bytes(current))
                    done_at.append(state["now"])
                    current.clear()

        sim.add_testbench(watch, background=True)
        sim.add_testbench(send, background=True)
        sim.add_testbench(receive)
        sim.run()
        return StreamRun(tuple(replies), bytes(raw), state["lost"], tuple(done_at),
                         state["max_fifo"], state["led"], period)

    # -- behind a pseudo-terminal -------------------------------------------------------
    def serve_pty(self) -> tuple[str, threading.Event, threading.Thread]:
        """Start the simulation in a thread behind a new pseudo-terminal.

        Returns ``(device path, stop event, thread)``; set the event to end the thread.
        """
        master, slave = os.openpty()
        tty.setraw(slave)
        path = os.ttyname(slave)
        stop = threading.Event()
        incoming: queue.SimpleQueue[int] = queue.SimpleQueue()

        def reader():
            while not stop.is_set():
                r, _, _ = select.select([master], [], [], 0.05)
                if r:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:
                        return
                    for b in chunk:
                        incoming.put(b)

        h, period = self.harness, self.period
        last_activity = [0.0]

        def simulate():
            sim = Simulator(h)
            sim.add_clock(1e-6)

            async def drive(ctx):
                ctx.set(h.rx, 1)
                while not stop.is_set():
                    try:
                        byte = incoming.get_nowait()
                    except queue.Empty:
                        # Idle: keep the clock going for the reply, then slow down.
                        if time.monotonic() - last_activity[0] > 0.5:
                            time.sleep(0.002)
                        await ctx.tick().repeat(period)
                        continue
                    last_activity[0] = time.monotonic()
                    await _send_byte(ctx, h.rx, byte, period)

            async def watch(ctx):
                while not stop.is_set():
                    byte, _ = await _recv_byte(ctx, h.tx, period, limit=50 * period,
                                               stop=stop)
                    if byte is not None:
                        last_activity[0] = time.monotonic()
                        os.write(master, bytes([byte]))

            sim.add_testbench(drive)
            sim.add_testbench(watch, background=True)
            sim.run()

        def main():
            t = threading.Thread(target=reader, daemon=True)
            t.start()
            try:
                simulate()
            finally:
                stop.set()
                t.join()
                os.close(master)
                os.close(slave)

        thread = threading.Thread(target=main, daemon=True, name="simulated-board")
        thread.start()
        return path, stop, thread


async def _send_byte(ctx, line, byte: int, period: int) -> None:
    for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
        ctx.set(line, bit)
        await ctx.tick().repeat(period)


async def _recv_byte(ctx, line, period: int, limit: int, stop=None):
    """Wait up to ``limit`` cycles for a start bit, then sample a byte in the bit middles.
    Returns ``(byte or None, cycles used)``."""
    n = 0
    while ctx.get(line):
        await ctx.tick()
        n += 1
        if n >= limit or (stop is not None and stop.is_set()):
            return None, n
    await ctx.tick().repeat(period // 2)
    n += period // 2
    value = 0
    for i in range(8):
        await ctx.tick().repeat(period)
        value |= ctx.get(line) << i
    await ctx.tick().repeat(period)
    n += 9 * period
    if not ctx.get(line):
        raise AssertionError("simulated board sent a byte with a low stop bit")
    return value, n
