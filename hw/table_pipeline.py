"""A whole network of neuron tables, fully pipelined: one inference per input frame.

:class:`TablePipeline` takes a :class:`~.table_spec.TablesSpec`: every layer is
combinational logic (truth tables, or for wide neurons small lookups summed by balanced
adder trees and compared with thresholds), registers cut the chain after every
``register_every`` layers, and an optional argmax tree follows. The registers run freely
(no enables): a valid bit travels with each inference, and the result is written into an
output FIFO. The input is taken while fewer than ``fifo_depth`` inferences are in flight,
so a result always finds room and ``i.ready`` comes from a register.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .framed import counter_bits
from .table_layer import delay, layer_logic
from .table_spec import TablesSpec

__all__ = ["TablePipeline"]


class TablePipeline(wiring.Component):
    """A network of truth-table (and sum) neurons with stream ports.

    Parameters
    ----------
    spec : TablesSpec

    Members
    -------
    i : In(stream.Signature(unsigned(in_beat * in_bits)))
        Input codes, ``in_beat`` per beat, LSB-first, in the first layer's input order;
        ``in_beats`` beats make one inference.
    o : Out(stream.Signature(unsigned(out_count * out_bits)))
        One beat per inference: the last layer's outputs (LSB-first, ``out_bits`` each,
        two's complement for accumulators), or the argmax index.

    Timing: with the output ready, one inference every ``in_beats`` cycles; the result's
    beat is transferred ``spec.latency`` cycles after the first input beat's
    (``in_beats - 1 + registers + 2``). Any back-pressure on ``o`` and idle on ``i`` are
    safe (stream rules of :mod:`amaranth.lib.stream`).
    """

    def __init__(self, spec: TablesSpec) -> None:
        if not isinstance(spec, TablesSpec):
            raise TypeError(f"Spec must be a TablesSpec, not {spec!r}")
        spec.check()
        self.spec = spec
        super().__init__({
            "i": In(stream.Signature(unsigned(spec.in_beat * spec.in_bits))),
            "o": Out(stream.Signature(unsigned(spec.out_count * spec.out_bits))),
        })

    def _argmax(self, m: Module, values: list, valid):
        """The argmax tree over ``values`` (signed), registered every ``argmax_every``
        levels except after the last: returns (index, valid)."""
        spec = self.spec
        ibits = counter_bits(len(values))
        level = [(v, Const(n, ibits)) for n, v in enumerate(values)]
        depth = 0
        while len(level) > 1:
            depth += 1
            nxt = []
            for n in range(0, len(level) - 1, 2):
                (a, ia), (b, ib) = level[n], level[n + 1]
                # the right half has the higher indices: it wins only when strictly larger
                take_b = Signal(name=f"am{depth}_{n // 2}_b")
                m.d.comb += take_b.eq(b > a)
                v = Signal.like(a, name=f"am{depth}_{n // 2}_v")
                i = Signal(ibits, name=f"am{depth}_{n // 2}_i")
                m.d.comb += [v.eq(Mux(take_b, b, a)), i.eq(Mux(take_b, ib, ia))]
                nxt.append((v, i))
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
            if depth % spec.argmax_every == 0 and len(level) > 1:
                regs = []
                for k, (v, i) in enumerate(level):
                    rv = Signal.like(v, name=f"am{depth}_r{k}_v")
                    ri = Signal(ibits, name=f"am{depth}_r{k}_i")
                    m.d.sync += [rv.eq(v), ri.eq(i)]
                    regs.append((rv, ri))
                level = regs
                nv = Signal(name=f"am{depth}_valid")
                m.d.sync += nv.eq(valid)
                valid = nv
        return level[0][1], valid

    def elaborate(self, platform):
        m = Module()
        spec = self.spec
        b, n_in = spec.in_bits, spec.in_count
        depth = spec.fifo_depth

        # the input frame and the count of inferences in flight
        frame = Signal(n_in * b, name="frame")
        frame_valid = Signal(name="frame_valid")
        in_flight = Signal(range(depth + 1), name="in_flight")
        m.d.comb += self.i.ready.eq(in_flight < depth)
        take = Signal(name="take")
        m.d.comb += take.eq(self.i.valid & self.i.ready)
        beat_bits = spec.in_beat * b
        if spec.in_beats == 1:
            with m.If(take):
                m.d.sync += frame.eq(self.i.payload)
            m.d.sync += frame_valid.eq(take)
            complete = take
        else:
            beat = Signal(counter_bits(spec.in_beats), name="in_beat_cnt")
            complete = Signal(name="frame_complete")
            m.d.comb += complete.eq(take & (beat == spec.in_beats - 1))
            with m.If(take):
                m.d.sync += frame.word_select(beat, beat_bits).eq(self.i.payload)
                m.d.sync += beat.eq(Mux(beat == spec.in_beats - 1, 0, beat + 1))
            m.d.sync += frame_valid.eq(complete)

        # the layers, a register after every register_every of them
        values = [frame.word_select(k, b) for k in range(n_in)]
        valid = frame_valid
        n_layers = len(spec.layers)
        for index, layer in enumerate(spec.layers):
            values = layer_logic(m, layer, values, style=spec.style, name=f"l{index}")
            valid = delay(m, valid, layer.latency, f"l{index}_valid")
            ends_segment = (index + 1) % spec.register_every == 0 or index == n_layers - 1
            if ends_segment and (index < n_layers - 1 or spec.argmax_levels):
                regs = []
                for j, v in enumerate(values):
                    r = Signal.like(v, name=f"l{index}_r{j}")
                    m.d.sync += r.eq(v)
                    regs.append(r)
                values = regs
                nv = Signal(name=f"l{index}_r_valid")
                m.d.sync += nv.eq(valid)
                valid = nv
        if spec.argmax:
            result, valid = self._argmax(m, values, valid)
        else:
            result = Cat(*values)

        # the output FIFO: one beat per inference
        m.submodules.out_fifo = out_fifo = fifo.SyncFIFO(width=len(self.o.payload), depth=depth)
        m.d.comb += [out_fifo.w_en.eq(valid), out_fifo.w_data.eq(result),
                     self.o.valid.eq(out_fifo.r_rdy), self.o.payload.eq(out_fifo.r_data),
                     out_fifo.r_en.eq(self.o.ready)]
        sent = self.o.valid & self.o.ready
        m.d.sync += in_flight.eq(in_flight + complete - sent)
        return m
