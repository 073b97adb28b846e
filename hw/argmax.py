"""Argmax over each group of signed values: the class index of a network's last layer."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .framed import counter_bits
from .timing import ArgMaxModel

__all__ = ["ArgMaxSpec", "ArgMaxUnit"]


@dataclass(frozen=True)
class ArgMaxSpec:
    """The argmax stage after a layer that outputs ``group`` values of ``width`` bits,
    ``in_beat`` per beat (see :class:`ArgMaxUnit`)."""

    width: int
    group: int
    in_beat: int

    def cycle_model(self):
        """A fresh cycle model of this stage's handshakes (:mod:`.timing`)."""
        return ArgMaxModel(self)


class ArgMaxUnit(wiring.Component):
    """Index of the largest of each ``group`` consecutive signed values (ties: the lowest
    index), one class index out per group.

    Parameters
    ----------
    width : int
        Width of the two's complement values.
    group : int
        Values per argmax (the output channel count).
    in_beat : int
        Values per input beat (divides ``group``).

    Members
    -------
    i : In(stream.Signature(unsigned(in_beat * width)))
    o : Out(stream.Signature(unsigned(index_bits)))

    Timing: the class is valid 1 cycle after the group's last beat is taken.
    """

    def __init__(self, *, width: int, group: int, in_beat: int) -> None:
        for name, v in [("Width", width), ("Group", group), ("Input beat", in_beat)]:
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an integer, not {v!r}")
            if v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v}")
        if group % in_beat:
            raise ValueError(f"Input beat must divide the group size {group}, not {in_beat}")
        self.width, self.group, self.in_beat = width, group, in_beat
        self.index_bits = counter_bits(group)
        super().__init__({
            "i": In(stream.Signature(unsigned(in_beat * width))),
            "o": Out(stream.Signature(unsigned(self.index_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        n_beats = self.group // self.in_beat
        best = Signal(signed(self.width), name="best")
        best_i = Signal(self.index_bits, name="best_i")
        cnt = Signal(counter_bits(n_beats), name="beat")
        out_valid = Signal(name="out_valid")
        m.d.comb += [self.i.ready.eq(~out_valid), self.o.valid.eq(out_valid),
                     self.o.payload.eq(best_i)]
        with m.If(self.o.ready & out_valid):
            m.d.sync += out_valid.eq(0)
        # fold the beat's values into the running best, left to right
        cur_v, cur_i = best, best_i
        for lane in range(self.in_beat):
            v = self.i.payload[lane * self.width:(lane + 1) * self.width].as_signed()
            idx = cnt * self.in_beat + lane if n_beats > 1 else Const(lane, self.index_bits)
            take = v > cur_v
            if lane == 0:
                take = take | (cnt == 0)
            cur_v = Mux(take, v, cur_v)
            cur_i = Mux(take, idx, cur_i)
        with m.If(self.i.valid & ~out_valid):
            m.d.sync += [best.eq(cur_v), best_i.eq(cur_i)]
            with m.If(cnt == n_beats - 1):
                m.d.sync += [cnt.eq(0), out_valid.eq(1)]
            with m.Else():
                m.d.sync += cnt.eq(cnt + 1)
        return m
