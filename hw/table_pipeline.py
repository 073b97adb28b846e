"""A whole network of neuron tables, fully pipelined: one inference per input frame.

:class:`TablePipeline` takes a :class:`~.table_spec.TablesSpec`: every layer is
combinational logic (truth tables, or for wide neurons small lookups summed by balanced
adder trees and compared with thresholds), registers cut the chain after every
``register_every`` layers, and an optional argmax tree follows; an output register holds
the result. A valid bit travels with each inference. The whole pipeline moves together on
one enable, ``advance``, itself a register (so it reaches every flip-flop through a
global buffer straight from a flip-flop): when the output blocks, a one-entry skid buffer
takes the result leaving the pipeline in that cycle and the pipeline holds from the next
cycle until the skid is empty; ``i.ready`` is ``advance``. Measured on the UP5K (the
128-64-10 sparse network of docs/tables.md): a free-running pipeline with an output FIFO
and in-flight credits ran at 56 MHz (the FIFO's write decoding was the critical path); an
enable computed from ``o.ready`` at 80 MHz (its LUT before the global buffer was).
"""

from __future__ import annotations

from amaranth.hdl import (Cat, Const, Elaboratable, EnableInserter, Module, Mux, Signal, signed,
                          unsigned)
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .framed import counter_bits
from .table_layer import delay, layer_logic
from .table_spec import TablesSpec

__all__ = ["TablePipeline", "argmax_tree", "argmax_shape"]


def argmax_shape(shape):
    """The two's complement shape the argmax tree keeps values of ``shape`` in."""
    return signed(shape.width + (0 if shape.signed else 1))


def argmax_tree(m: Module, values: list, valid, every: int, *, inverted: bool = False):
    """The argmax tree over ``values``: each level compares pairs, then selects the
    larger of each (the right one, with the higher indices, only when strictly larger:
    ties go to the lowest index). A register after every ``every`` of these half-levels,
    none after the last. Returns (index, valid).

    The left value of each pair is kept complemented (``~a = -a - 1``), so ``b > a`` is
    the sign of ``b + ~a`` (``b - a - 1 >= 0``): a plain add, whose carry chain takes both
    operands as they are (a subtraction costs an inverter LUT per bit on iCE40, in front
    of the chain: the critical path). The selections write their results complemented
    where the next level needs them so (a LUT inverts for free). ``inverted``: the
    values come in :func:`argmax_shape`, those at even positions complemented."""
    ibits = counter_bits(len(values))
    shape = argmax_shape(values[0].shape())
    width = shape.width
    # (value, complemented, index); even positions (left of a pair) complemented
    items = []
    for n, v in enumerate(values):
        if inverted:
            items.append((v, n % 2 == 0, Const(n, ibits)))
            continue
        w = Signal(shape, name=f"am0_{n}")
        m.d.comb += w.eq(v)
        if n % 2 == 0:
            c = Signal(shape, name=f"am0_{n}_n")
            m.d.comb += c.eq(~w)
            w = c
        items.append((w, n % 2 == 0, Const(n, ibits)))
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

    def as_(item, complemented: bool, name: str):
        """The item's value, complemented or not as asked (a LUT when it must flip)."""
        v, inv, _ = item
        if inv == complemented:
            return v
        f = Signal(shape, name=name)
        m.d.comb += f.eq(~v)
        return f

    while len(items) > 1:
        depth += 1
        pairs = []
        for n in range(0, len(items) - 1, 2):
            a_n = as_(items[n], True, f"am{depth}_{n}_an")
            b = as_(items[n + 1], False, f"am{depth}_{n}_bp")
            s = Signal(signed(width + 1), name=f"am{depth}_{n // 2}_s")
            take_b = Signal(name=f"am{depth}_{n // 2}_b")
            m.d.comb += [s.eq(b + a_n), take_b.eq(~s[-1])]
            pairs.append((a_n, items[n][2], b, items[n + 1][2], take_b))
        odd = items[-1] if len(items) % 2 else None
        half += 1
        if half % every == 0:
            flat = [x for p in pairs for x in p] + ([odd[0], odd[2]] if odd else [])
            regs = cut(flat, "c")
            pairs = [tuple(regs[5 * k:5 * k + 5]) for k in range(len(pairs))]
            odd = (regs[5 * len(pairs)], odd[1], regs[5 * len(pairs) + 1]) if odd else None
        items = []
        for k, (a_n, ia, b, ib, take_b) in enumerate(pairs):
            comp = k % 2 == 0 and len(pairs) + (odd is not None) > 1
            v = Signal(shape, name=f"am{depth}_{k}_v")
            i = Signal(ibits, name=f"am{depth}_{k}_i")
            pick = Mux(take_b, b, ~a_n)
            m.d.comb += [v.eq(~pick if comp else pick), i.eq(Mux(take_b, ib, ia))]
            items.append((v, comp, i))
        if odd:
            items.append(odd)
        half += 1
        if half % every == 0 and len(items) > 1:
            regs = cut([x for item in items for x in (item[0], item[2])], "s")
            items = [(regs[2 * k], items[k][1], regs[2 * k + 1]) for k in range(len(items))]
    return items[0][2], valid


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
    safe (stream rules of :mod:`amaranth.lib.stream`; ``o.valid`` and ``i.ready`` come
    from registers).
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

    def elaborate(self, platform):
        m = Module()
        spec = self.spec
        # Every register of the core moves on ``advance``, itself a register: a one-entry
        # skid buffer takes the result that leaves the pipeline in the cycle the output
        # blocks, and the pipeline holds from the next cycle until the skid is empty.
        advance = Signal(init=1, name="advance")
        core = _Core(spec)
        m.submodules.core = EnableInserter(advance)(core)
        m.d.comb += [self.i.ready.eq(advance), core.take.eq(self.i.valid),
                     core.payload.eq(self.i.payload)]
        width = len(self.o.payload)
        out_valid = Signal(name="out_valid")
        out_data = Signal(width, name="out_data", reset_less=True)
        skid_valid = Signal(name="skid_valid")
        skid_data = Signal(width, name="skid_data", reset_less=True)
        incoming = Signal(name="incoming")           # a result leaves the pipeline now
        # (advance is ~skid_valid; written with skid_valid the skid's next state is one
        # LUT4 of out_valid, o.ready, skid_valid and the result's valid bit)
        m.d.comb += incoming.eq(~skid_valid & core.result_valid)
        skid_next = Signal(name="skid_next")
        out_free = ~out_valid | self.o.ready
        with m.If(out_free):
            with m.If(skid_valid):
                m.d.sync += [out_data.eq(skid_data), out_valid.eq(1)]
            with m.Else():
                m.d.sync += [out_data.eq(core.result), out_valid.eq(incoming)]
            m.d.comb += skid_next.eq(0)
        with m.Else():
            m.d.comb += skid_next.eq(skid_valid | incoming)
        # the skid takes every result while it is empty (its enable is then ~skid_valid,
        # a register), and keeps the one it holds
        with m.If(~skid_valid):
            m.d.sync += skid_data.eq(core.result)
        m.d.sync += [skid_valid.eq(skid_next), advance.eq(~skid_next)]
        m.d.comb += [self.o.valid.eq(out_valid), self.o.payload.eq(out_data)]
        return m


class _Core(Elaboratable):
    """The registers and logic of :class:`TablePipeline` up to its result (combinational
    from the last register stage); every register moves on ``advance`` (the caller wraps
    this in an ``EnableInserter``)."""

    def __init__(self, spec: TablesSpec):
        self.spec = spec
        self.take = Signal(name="take")
        self.payload = Signal(spec.in_beat * spec.in_bits, name="in_payload")
        self.result_valid = Signal(name="result_valid")
        self.result = Signal(spec.out_count * spec.out_bits, name="result")

    def elaborate(self, platform):
        m = Module()
        spec = self.spec
        b, n_in = spec.in_bits, spec.in_count

        # the input frame (one beat: loaded whenever the pipeline moves, so its registers'
        # enable is the pipeline's; the valid bit says whether it was a transfer)
        frame = Signal(n_in * b, name="frame", reset_less=True)
        frame_valid = Signal(name="frame_valid")
        beat_bits = spec.in_beat * b
        if spec.in_beats == 1:
            m.d.sync += [frame.eq(self.payload), frame_valid.eq(self.take)]
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
                # before the argmax, every value in its shape, the even ones complemented
                # (argmax_tree); the table logic in front absorbs the inversion
                to_argmax = index == n_layers - 1
                regs = []
                for j, v in enumerate(values):
                    if to_argmax:
                        ext = Signal(argmax_shape(v.shape()), name=f"l{index}_x{j}")
                        m.d.comb += ext.eq(v)
                        v = ~ext if j % 2 == 0 else ext
                        r = Signal(ext.shape(), name=f"l{index}_r{j}", reset_less=True)
                    else:
                        r = Signal.like(v, name=f"l{index}_r{j}", reset_less=True)
                    m.d.sync += r.eq(v)
                    regs.append(r)
                values = regs
                nv = Signal(name=f"l{index}_r_valid")
                m.d.sync += nv.eq(valid)
                valid = nv
        if spec.argmax:
            result, valid = argmax_tree(m, values, valid, spec.argmax_every,
                                        inverted=bool(spec.argmax_levels))
        else:
            result = Cat(*values)
        m.d.comb += [self.result.eq(result), self.result_valid.eq(valid)]
        return m
