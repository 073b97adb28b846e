"""The network top: stages (layer engines, max-pool, argmax) chained by streams."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .argmax import ArgMaxSpec, ArgMaxUnit
from .compute import ComputeSpec
from .engine import LayerEngine, chain_loads
from .link_fifo import LinkFifo, LinkFifoSpec
from .pool import MaxPoolSpec, MaxPoolUnit, StreamMaxPool
from .spram import LOAD_WORD_BITS
from .table_pipeline import TablePipeline
from .table_spec import TablesSpec

__all__ = ["Network", "build_stage"]

def build_stage(spec):
    """The component for a stage spec."""
    if isinstance(spec, ComputeSpec):
        return LayerEngine(spec)
    if isinstance(spec, MaxPoolSpec):
        return StreamMaxPool(spec) if spec.streaming else MaxPoolUnit(spec)
    if isinstance(spec, ArgMaxSpec):
        return ArgMaxUnit(width=spec.width, group=spec.group, in_beat=spec.in_beat)
    if isinstance(spec, TablesSpec):
        return TablePipeline(spec)
    if isinstance(spec, LinkFifoSpec):
        return LinkFifo(spec)
    raise TypeError(f"Stage spec must be a ComputeSpec, MaxPoolSpec, ArgMaxSpec, TablesSpec or "
                    f"LinkFifoSpec, not {spec!r}")


class Network(wiring.Component):
    """A whole network: input codes in, output codes / accumulators / class out.

    Parameters
    ----------
    stages : list of stage specs
        :class:`~mulfree.hw.compute.ComputeSpec`, :class:`~mulfree.hw.pool.MaxPoolSpec`,
        :class:`~mulfree.hw.argmax.ArgMaxSpec`, :class:`~mulfree.hw.table_spec.TablesSpec`
        (a whole network of neuron tables) or :class:`~mulfree.hw.link_fifo.LinkFifoSpec`
        (slack between two stages), in order; each stage's output beat must have
        the width of the next stage's input beat.

    Members
    -------
    i : In(stream.Signature(unsigned(IN_BEAT_BITS)))
        Input codes of one inference, ``values_per_beat`` per beat, LSB-first, in the
        flattened (row, column, channel) order of the model input.
    o : Out(stream.Signature(unsigned(OUT_BEAT_BITS)))
        Output values, ``values_per_beat`` per beat, LSB-first.
    load : In(stream.Signature(16))
        Only when a stage keeps memories in SPRAM (iCE40 UltraPlus): the words of
        :meth:`load_image`, once after reset; ``i.ready`` stays low until the last one is
        taken.

    Both streams follow the rules of :mod:`amaranth.lib.stream`; any back-pressure on
    ``o`` and any idle on ``i`` are safe. The clock and reset are the ``sync`` domain's.
    """

    def __init__(self, *, stages) -> None:
        stages = list(stages)
        if not stages:
            raise ValueError("A network needs at least one stage")
        self.stages = stages
        self.parts = [build_stage(s) for s in stages]
        for n, (a, b) in enumerate(zip(self.parts, self.parts[1:])):
            wa, wb = len(a.o.payload), len(b.i.payload)
            if wa != wb:
                raise ValueError(f"Stage {n} sends {wa}-bit beats but stage {n + 1} takes "
                                 f"{wb}-bit beats")
        first, last = self.parts[0], self.parts[-1]
        ports = {
            "i": In(stream.Signature(len(first.i.payload))),
            "o": Out(stream.Signature(len(last.o.payload))),
        }
        self.loading = [p for p in self.parts if "load" in p.signature.members]
        if self.loading:
            ports["load"] = In(stream.Signature(LOAD_WORD_BITS))
        super().__init__(ports)

    @property
    def load_words(self) -> int:
        """Words of :meth:`load_image` (0: the network has no ``load`` port)."""
        return sum(getattr(s, "load_words", 0) for s in self.stages)

    def load_image(self) -> list[int]:
        """The 16-bit words the ``load`` port takes after reset (SPRAM contents, stage by
        stage in order; :meth:`~mulfree.hw.compute.ComputeSpec.load_image`)."""
        out = []
        for s in self.stages:
            if getattr(s, "load_words", 0):
                out += s.load_image()
        return out

    def elaborate(self, platform):
        m = Module()
        for n, part in enumerate(self.parts):
            m.submodules[f"stage{n}"] = part
        for a, b in zip(self.parts, self.parts[1:]):
            wiring.connect(m, a.o, b.i)
        first = self.parts[0]
        if self.loading:
            # the load image first: no input is taken until every SPRAM memory is loaded
            done = Signal(name="loaded")
            chain_loads(m, self.load, done, self.loading)
            m.d.comb += [first.i.payload.eq(self.i.payload),
                         first.i.valid.eq(self.i.valid & done),
                         self.i.ready.eq(first.i.ready & done)]
        else:
            wiring.connect(m, wiring.flipped(self.i), first.i)
        wiring.connect(m, self.parts[-1].o, wiring.flipped(self.o))
        return m
