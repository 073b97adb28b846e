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

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .timing import LinkFifoModel

__all__ = ["LinkFifoSpec", "LinkFifo", "STYLES"]

# Where the FIFO's memory goes (a Yosys ``ram_style`` hint): None lets Yosys choose
# (block RAM, or on ECP5 distributed RAM when shallow), or "block", "distributed"
# (ECP5 TRELLIS_DPR16X4), "logic" (flip-flops).
STYLES = (None, "block", "distributed", "logic")


@dataclass(frozen=True)
class LinkFifoSpec:
    """``depth`` beats of ``width`` bits, after the stage ``after`` (its index in the
    chain without link FIFOs; for the manifest)."""

    width: int
    depth: int
    after: int = 0
    style: str | None = None

    def __post_init__(self):
        if self.width < 1 or self.depth < 2:
            raise ValueError(f"A link FIFO needs a width of at least 1 and a depth of at "
                             f"least 2, not {self.width} and {self.depth}")
        if self.style not in STYLES:
            raise ValueError(f"A link FIFO's style must be one of "
                             f"{', '.join(map(str, STYLES))}, not {self.style!r}")

    @property
    def memory_depth(self) -> int:
        """Entries in its memory (the last one is the output register)."""
        return self.depth - 1

    def cycle_model(self):
        """A fresh cycle model of this stage's handshakes (:mod:`.timing`)."""
        return LinkFifoModel(self)


class LinkFifo(wiring.Component):
    """A FIFO as a stream stage, the design of Amaranth's
    :class:`~amaranth.lib.fifo.SyncFIFOBuffered` (a memory of ``depth - 1`` beats with a
    synchronous read port, and an output register filled from it) with the memory's
    place as a synthesis hint (``spec.style``). ``ready`` and ``valid`` come from
    registers, and a beat written into an empty FIFO is valid at its output two cycles
    later."""

    def __init__(self, spec: LinkFifoSpec) -> None:
        self.spec = spec
        super().__init__({"i": In(stream.Signature(spec.width)),
                          "o": Out(stream.Signature(spec.width))})

    def elaborate(self, platform):
        m = Module()
        s = self.spec
        inner = s.memory_depth
        attrs = {} if s.style is None else {"ram_style": s.style}
        m.submodules.memory = mem = memory.Memory(shape=unsigned(s.width), depth=inner,
                                                  init=[], attrs=attrs)
        w_port, r_port = mem.write_port(), mem.read_port(domain="sync")
        level = Signal(range(inner + 1), name="level")       # beats in the memory
        produce = Signal(range(inner), name="produce")
        consume = Signal(range(inner), name="consume")
        out_full = Signal(name="out_full")                   # the output register
        do_write = self.i.valid & self.i.ready
        do_read = (level != 0) & (~out_full | self.o.ready)  # memory to output register
        m.d.comb += [self.i.ready.eq(level != inner),
                     self.o.valid.eq(out_full), self.o.payload.eq(r_port.data),
                     w_port.addr.eq(produce), w_port.data.eq(self.i.payload),
                     w_port.en.eq(do_write),
                     r_port.addr.eq(consume), r_port.en.eq(do_read)]
        with m.If(do_write):
            m.d.sync += produce.eq(Mux(produce == inner - 1, 0, produce + 1))
        with m.If(do_read):
            m.d.sync += consume.eq(Mux(consume == inner - 1, 0, consume + 1))
        m.d.sync += level.eq(level + do_write - do_read)
        with m.If(do_read):
            m.d.sync += out_full.eq(1)
        with m.Elif(self.o.ready):
            m.d.sync += out_full.eq(0)
        return m
