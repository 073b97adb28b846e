"""A FIFO between two stages: slack where one stage's bursts meet another's pauses.

A streaming conv2d stage takes its input only while its window generator can move, and
a streaming max-pool sends a window only while the next stage takes it, so two such
stages in a row stall each other: the chain runs slower than its slowest stage alone
(FINN meets the same and sizes FIFOs between its layers by simulation). The planner
(:mod:`mulfree.gen.plan.links`) puts a :class:`LinkFifo` where the stages' cycle models
(:mod:`.timing`) show that one brings the chain to its slowest stage's period, as
shallow as does it.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .timing import LinkFifoModel

__all__ = ["LinkFifoSpec", "LinkFifo"]


@dataclass(frozen=True)
class LinkFifoSpec:
    """``depth`` beats of ``width`` bits, after the stage ``after`` (its index in the
    chain without link FIFOs; for the manifest)."""

    width: int
    depth: int
    after: int = 0

    def __post_init__(self):
        if self.width < 1 or self.depth < 2:
            raise ValueError(f"A link FIFO needs a width of at least 1 and a depth of at "
                             f"least 2, not {self.width} and {self.depth}")

    @property
    def memory_depth(self) -> int:
        """Entries in its memory (the last one is the output register)."""
        return self.depth - 1

    def cycle_model(self):
        """A fresh cycle model of this stage's handshakes (:mod:`.timing`)."""
        return LinkFifoModel(self)


class LinkFifo(wiring.Component):
    """Amaranth's :class:`~amaranth.lib.fifo.SyncFIFOBuffered` as a stream stage: its
    memory has a synchronous read port (block RAM or distributed RAM), ``ready`` and
    ``valid`` come from registers, and a beat written into an empty FIFO is valid at its
    output two cycles later."""

    def __init__(self, spec: LinkFifoSpec) -> None:
        self.spec = spec
        super().__init__({"i": In(stream.Signature(spec.width)),
                          "o": Out(stream.Signature(spec.width))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=self.spec.width,
                                                    depth=self.spec.depth)
        m.d.comb += [fifo.w_data.eq(self.i.payload), fifo.w_en.eq(self.i.valid),
                     self.i.ready.eq(fifo.w_rdy),
                     self.o.payload.eq(fifo.r_data), self.o.valid.eq(fifo.r_rdy),
                     fifo.r_en.eq(self.o.ready)]
        return m
