"""The load/send plumbing shared by the frame stages (dense engine, frame max-pool).

A frame stage loads its whole input frame from its input stream while ``i.ready`` is high,
computes, then sends its output frame while ``o.valid`` is high, with ``o.payload`` a
slice selected by a counter that moves only on a transfer (the stream rules hold under any
back-pressure). See :mod:`.engine` for the stages that use it.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring

__all__ = ["FramedStage", "counter_bits"]


def counter_bits(n: int) -> int:
    """Counter width for values 0 .. n-1 (at least 1)."""
    return max(1, (n - 1).bit_length())


class FramedStage(wiring.Component):
    """Shared load/send plumbing: input frame buffer, output frame buffer, counters."""

    def _load(self, m: Module, buf, in_full, in_beats: int, in_beat_bits: int):
        m.d.comb += self.i.ready.eq(~in_full)
        if in_beats == 1:
            # one beat is the whole frame: no beat counter (Yosys cannot see that a
            # counter of one state stays 0, and would keep its multiplexers)
            with m.If(self.i.valid & ~in_full):
                m.d.sync += [buf.eq(self.i.payload), in_full.eq(1)]
            return
        cnt = Signal(counter_bits(in_beats), name="load_cnt")
        with m.If(self.i.valid & ~in_full):
            m.d.sync += buf.word_select(cnt, in_beat_bits).eq(self.i.payload)
            with m.If(cnt == in_beats - 1):
                m.d.sync += [cnt.eq(0), in_full.eq(1)]
            with m.Else():
                m.d.sync += cnt.eq(cnt + 1)

    def _send(self, m: Module, payload_of, out_full, out_beats: int):
        """``payload_of(cnt)`` gives the beat's payload; returns the 'last beat sent'
        condition (already acted on: ``out_full`` clears)."""
        if out_beats == 1:
            # one beat is the whole frame: the payload is the buffer itself, no counter
            # and no multiplexer (measured: a 288-bit beat cost 288 LUT4 through a
            # counter that never leaves 0)
            m.d.comb += [self.o.valid.eq(out_full), self.o.payload.eq(payload_of(0))]
            last = Signal(name="send_last")
            m.d.comb += last.eq(out_full & self.o.ready)
            with m.If(last):
                m.d.sync += out_full.eq(0)
            return last
        cnt = Signal(counter_bits(out_beats), name="send_cnt")
        m.d.comb += [self.o.valid.eq(out_full), self.o.payload.eq(payload_of(cnt))]
        last = Signal(name="send_last")
        m.d.comb += last.eq(out_full & self.o.ready & (cnt == out_beats - 1))
        with m.If(out_full & self.o.ready):
            with m.If(cnt == out_beats - 1):
                m.d.sync += [cnt.eq(0), out_full.eq(0)]
            with m.Else():
                m.d.sync += cnt.eq(cnt + 1)
        return last
