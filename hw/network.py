"""The network top: stages (layer engines, max-pool, argmax) chained by streams."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .argmax import ArgMaxSpec, ArgMaxUnit
from .compute import ComputeSpec
from .engine import LayerEngine
from .pool import MaxPoolSpec, MaxPoolUnit, StreamMaxPool
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
    raise TypeError(f"Stage spec must be a ComputeSpec, MaxPoolSpec, ArgMaxSpec or TablesSpec, "
                    f"not {spec!r}")


class Network(wiring.Component):
    """A whole network: input codes in, output codes / accumulators / class out.

    Parameters
    ----------
    stages : list of stage specs
        :class:`~mulfree.hw.compute.ComputeSpec`, :class:`~mulfree.hw.pool.MaxPoolSpec`,
        :class:`~mulfree.hw.argmax.ArgMaxSpec` or :class:`~mulfree.hw.table_spec.TablesSpec`
        (a whole network of neuron tables), in order; each stage's output beat must have
        the width of the next stage's input beat.

    Members
    -------
    i : In(stream.Signature(unsigned(IN_BEAT_BITS)))
        Input codes of one inference, ``values_per_beat`` per beat, LSB-first, in the
        flattened (row, column, channel) order of the model input.
    o : Out(stream.Signature(unsigned(OUT_BEAT_BITS)))
        Output values, ``values_per_beat`` per beat, LSB-first.

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
        super().__init__({
            "i": In(stream.Signature(len(first.i.payload))),
            "o": Out(stream.Signature(len(last.o.payload))),
        })

    def elaborate(self, platform):
        m = Module()
        for n, part in enumerate(self.parts):
            m.submodules[f"stage{n}"] = part
        for a, b in zip(self.parts, self.parts[1:]):
            wiring.connect(m, a.o, b.i)
        wiring.connect(m, wiring.flipped(self.i), self.parts[0].i)
        wiring.connect(m, self.parts[-1].o, wiring.flipped(self.o))
        return m
