"""A whole network of neuron tables, fully pipelined: one inference per input frame.

:class:`TablePipeline` takes a :class:`~.table_spec.TablesSpec`: every layer is
combinational logic (truth tables, or for wide neurons small lookups summed by balanced
adder trees and compared with thresholds), registers cut the chain after every
``register_every`` layers, and an optional argmax tree follows; an output register holds
the result. A valid bit travels with each inference. The whole pipeline advances every
cycle except while a result waits at the output (``o.valid`` and not ``o.ready``): then
every register holds and ``i.ready`` is low (``i.ready = o.ready | ~o.valid``, the
pipeline's one enable). Measured against a free-running pipeline with an output FIFO and
in-flight credits: the FIFO's write decoding was the critical path on iCE40 (56 MHz) and
cost its entries' flip-flops.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Elaboratable, EnableInserter, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
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
    safe (stream rules of :mod:`amaranth.lib.stream`: ``o.valid`` comes from a register;
    ``i.ready`` depends on ``o.ready``, so this stage is meant to be a network's last).
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
        """The argmax tree over ``values`` (signed): each level compares pairs, then selects
        the larger of each (the right one, with the higher indices, only when strictly
        larger: ties go to the lowest index). A register after every ``argmax_every`` of
        these half-levels, none after the last (the FIFO registers it). Returns (index,
        valid)."""
        every = self.spec.argmax_every
        ibits = counter_bits(len(values))
        items = [(v, Const(n, ibits)) for n, v in enumerate(values)]
        half = depth = 0

        def cut(signals, tag):
            """Register ``signals`` (data: no reset) and the valid bit."""
            nonlocal valid
            regs = []
            for k, sig in enumerate(signals):
                r = Signal.like(sig, name=f"am{depth}{tag}_r{k}", reset_less=True)
                m.d.sync += r.eq(sig)
                regs.append(r)
            nv = Signal(name=f"am{depth}{tag}_valid")
            m.d.sync += nv.eq(valid)
            valid = nv
            return regs

        while len(items) > 1:
            depth += 1
            pairs = []
            for n in range(0, len(items) - 1, 2):
                (a, ia), (b, ib) = items[n], items[n + 1]
                # b > a as the sign of a - b: one carry chain (a comparison cell mapped
                # through ABC took four LUT levels on iCE40)
                diff = Signal(signed(max(len(a), len(b)) + 1), name=f"am{depth}_{n // 2}_d")
                take_b = Signal(name=f"am{depth}_{n // 2}_b")
                m.d.comb += [diff.eq(a - b), take_b.eq(diff[-1])]
                pairs.append((a, ia, b, ib, take_b))
            odd = items[-1] if len(items) % 2 else None
            half += 1
            if half % every == 0:
                flat = [x for p in pairs for x in p] + (list(odd) if odd else [])
                regs = cut(flat, "c")
                pairs = [tuple(regs[5 * k:5 * k + 5]) for k in range(len(pairs))]
                odd = tuple(regs[5 * len(pairs):]) if odd else None
            items = []
            for k, (a, ia, b, ib, take_b) in enumerate(pairs):
                v = Signal.like(a, name=f"am{depth}_{k}_v")
                i = Signal(ibits, name=f"am{depth}_{k}_i")
                m.d.comb += [v.eq(Mux(take_b, b, a)), i.eq(Mux(take_b, ib, ia))]
                items.append((v, i))
            if odd:
                items.append(odd)
            half += 1
            if half % every == 0 and len(items) > 1:
                regs = cut([x for item in items for x in item], "s")
                items = [(regs[2 * k], regs[2 * k + 1]) for k in range(len(items))]
        return items[0][1], valid

    def elaborate(self, platform):
        m = Module()
        spec = self.spec
        # The whole pipeline advances together, or holds while a result waits: every
        # register of the core is enabled by ``advance`` (EnableInserter).
        advance = Signal(name="advance")
        m.d.comb += advance.eq(self.o.ready | ~self.o.valid)
        core = _Core(self, spec)
        m.submodules.core = EnableInserter(advance)(core)
        m.d.comb += [self.i.ready.eq(advance), core.take.eq(self.i.valid),
                     core.payload.eq(self.i.payload),
                     self.o.valid.eq(core.out_valid), self.o.payload.eq(core.out_data)]
        return m


class _Core(Elaboratable):
    """The registers and logic of :class:`TablePipeline`; every register moves on
    ``advance`` (the caller wraps this in an ``EnableInserter``)."""

    def __init__(self, top: TablePipeline, spec: TablesSpec):
        self.top, self.spec = top, spec
        self.take = Signal(name="take")
        self.payload = Signal(len(top.i.payload), name="in_payload")
        self.out_valid = Signal(name="out_valid")
        self.out_data = Signal(len(top.o.payload), name="out_data", reset_less=True)

    def elaborate(self, platform):
        m = Module()
        spec = self.spec
        b, n_in = spec.in_bits, spec.in_count

        # the input frame
        frame = Signal(n_in * b, name="frame", reset_less=True)
        frame_valid = Signal(name="frame_valid")
        beat_bits = spec.in_beat * b
        if spec.in_beats == 1:
            with m.If(self.take):
                m.d.sync += frame.eq(self.payload)
            m.d.sync += frame_valid.eq(self.take)
        else:
            beat = Signal(counter_bits(spec.in_beats), name="in_beat_cnt")
            last = Signal(name="frame_complete")
            m.d.comb += last.eq(self.take & (beat == spec.in_beats - 1))
            with m.If(self.take):
                m.d.sync += frame.word_select(beat, beat_bits).eq(self.payload)
                m.d.sync += beat.eq(Mux(beat == spec.in_beats - 1, 0, beat + 1))
            m.d.sync += frame_valid.eq(last)

        # the layers, a register after every register_every of them
        values = [frame.word_select(k, b) for k in range(n_in)]
        valid = frame_valid
        n_layers = len(spec.layers)
        for index, layer in enumerate(spec.layers):
            values = layer_logic(m, layer, values, style=spec.style, name=f"l{index}")
            valid = delay(m, valid, layer.latency, f"l{index}_valid", reset_less=False)
            ends_segment = (index + 1) % spec.register_every == 0 or index == n_layers - 1
            if ends_segment and (index < n_layers - 1 or spec.argmax_levels):
                regs = []
                for j, v in enumerate(values):
                    r = Signal.like(v, name=f"l{index}_r{j}", reset_less=True)
                    m.d.sync += r.eq(v)
                    regs.append(r)
                values = regs
                nv = Signal(name=f"l{index}_r_valid")
                m.d.sync += nv.eq(valid)
                valid = nv
        if spec.argmax:
            result, valid = self.top._argmax(m, values, valid)
        else:
            result = Cat(*values)
        # the output register: one beat per inference
        m.d.sync += [self.out_data.eq(result), self.out_valid.eq(valid)]
        return m
