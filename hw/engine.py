"""The layer engine: a folded dense or conv2d layer, runtime or baked weights.

Every stage is a stream-to-stream :class:`~amaranth.lib.wiring.Component` with the
same shape of interface::

    i: In(stream.Signature(unsigned(in_beat * in_bits)))    codes, LSB-first
    o: Out(stream.Signature(unsigned(out_beat * out_bits))) values, LSB-first

and drives ``i.ready`` and ``o.valid`` from registers only, which keeps it safe under
any back-pressure and idle (and lets :mod:`.timing` model the handshakes exactly).

A dense layer, argmax (:mod:`.argmax`) and the frame-based max-pool
(:class:`~.pool.MaxPoolUnit`) are *frame* stages (:mod:`.framed`):

1. *load*: while its input buffer is not full, ``i.ready`` is high and each beat is
   written into the buffer (one frame: the layer's whole input, in (row, column,
   channel) order);
2. *compute*: once the buffer is full and the output buffer empty, the engine steps
   through its folded schedule without ever stalling, writing results into the output
   buffer; the input buffer is then free to load the next frame;
3. *send*: ``o.valid`` is high while the output buffer is full; ``o.payload`` is a
   slice of registers selected by a counter that only moves on a transfer, so it holds
   while valid waits, and valid never looks at ready.

A conv2d layer *streams*: a :class:`~.window.SlidingWindow` (a line buffer in memory)
turns the input codes into one window per output position, the engine computes each
window as it arrives and its results leave through a small FIFO, in (row, column,
channel) order, one beat per group of ``pe`` output channels.
So does a streaming max-pool, :class:`~.pool.StreamMaxPool` (the same window
generator, then a max tree per channel).

The compute schedule of a :class:`LayerEngine` is three stages: (A) issue step
``(nf, sf)`` of the current frame (dense) or window (conv2d): weight ROM address and the
``simd`` activations; (B) the ROM word and the registered activations meet in
``pe * simd`` product units, one adder tree per PE, and the accumulators add (or start
from the bias); (C) after a PE group's last step, thresholds (or the raw accumulators)
are the group's ``pe`` results.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .adder_graph_unit import adder_graph_values
from .adder_tree import delay_value, sum_tree, sum_tree_carries
from .cmvm import pairwise_graph
from .compute import ComputeSpec, decode_wiring, make_unit
from .framed import FramedStage, counter_bits
from .product import shape_for, signed_width
from .spram import LOAD_WORD_BITS, SpramMemory
from .threshold import ThresholdSearch, ThresholdSequential, threshold_code
from .window import SlidingWindow

__all__ = ["LayerEngine", "chain_loads"]


def chain_loads(m, src, loaded, sinks) -> None:
    """Pass the load stream ``src`` to the ``sinks`` (each with a ``load`` stream and a
    ``loaded`` flag) one after the other: the first not yet loaded takes the words.
    ``loaded`` is high once every sink is. With no sinks, ``loaded`` is high and ``src``
    always ready (and ignored)."""
    if not sinks:
        m.d.comb += [loaded.eq(1), src.ready.eq(1)]
        return
    before = Const(1, 1)
    ready = Const(0, 1)
    for sink in sinks:
        mine = before & ~sink.loaded
        m.d.comb += [sink.load.payload.eq(src.payload), sink.load.valid.eq(src.valid & mine)]
        ready = ready | (mine & sink.load.ready)
        before = before & sink.loaded
    m.d.comb += [src.ready.eq(ready), loaded.eq(before)]


class LayerEngine(FramedStage):
    """A folded dense or conv2d layer: ``pe`` output channels times ``simd`` inputs per
    cycle, weights in a ROM (runtime mode) or in the logic (baked mode).

    Parameters
    ----------
    spec : ComputeSpec
        ``spec.window`` set: a conv2d layer fed by a :class:`~.window.SlidingWindow`
        (line buffer, no input frame buffer; results through a ``fifo_depth``-entry FIFO,
        ``out_beat == pe``); ``None``: a dense layer (input and output frame buffers; the
        input frame in a memory when :attr:`ComputeSpec.buffer_in_memory`, else in
        registers: the memory's synchronous read takes the place of the activation
        register, so the timing below holds either way).

    Members
    -------
    i : In(stream.Signature(unsigned(in_beat * in_bits)))
    o : Out(stream.Signature(unsigned(out_beat * out_bits)))

    Timing (no stalls), dense: the first output beat is valid ``steps + 4`` cycles after
    the last input beat is taken (``+ 1`` with ``pipeline``, ``+ 1`` with
    ``double_buffer``), ``steps = (OC / pe) * (taps / simd)``. Conv2d: a window's first
    step is issued the cycle after the window is valid, its steps follow one per cycle,
    and a group's results are valid at the output ``3 + pipeline`` cycles after the
    group's last step; see :mod:`.timing`, :attr:`ComputeSpec.delay` and
    :attr:`ComputeSpec.period`.
    """

    def __init__(self, spec: ComputeSpec) -> None:
        if not isinstance(spec, ComputeSpec):
            raise TypeError(f"Spec must be a ComputeSpec, not {spec!r}")
        spec.check()
        if spec.mode == "baked" and (spec.pe != spec.out_channels or spec.simd != spec.taps):
            raise ValueError("A baked layer is fully parallel: PE must be the output "
                             "channel count and SIMD the tap count")
        self.spec = spec
        ports = {
            "i": In(stream.Signature(unsigned(spec.in_beat * spec.in_bits))),
            "o": Out(stream.Signature(unsigned(spec.out_beat * spec.out_bits))),
        }
        if spec.load_words:
            # SPRAM memories, written after reset from this stream (hw/spram.py)
            ports["load"] = In(stream.Signature(LOAD_WORD_BITS))
            ports["loaded"] = Out(1)
        super().__init__(ports)

    # -- the datapath of stage B: per PE, the partial sum of SIMD products ----------
    def _runtime_partials(self, m, rom_data, acts, pads):
        s = self.spec
        decode = s.act_decode
        if s.unit_kind == "table":
            act_bits, act_signed = s.in_bits, False
        elif decode is None:
            act_bits, act_signed = s.in_bits, False
        else:
            sh = shape_for(min(decode), max(decode))
            act_bits, act_signed = sh.width, sh.signed
        values = []
        wiring_form = None if s.unit_kind == "table" else decode_wiring(decode, s.in_bits)
        for lane, code in enumerate(acts):
            if decode is None or s.unit_kind == "table":
                values.append(code)
                continue
            v = Signal(signed(act_bits) if act_signed else unsigned(act_bits),
                       name=f"act_val{lane}")
            if wiring_form is not None:
                # an affine decode is wiring: the code (its top bit inverted for offset
                # binary) read as unsigned or two's complement, shifted
                form, k = wiring_form
                raw = code if form != "offset" else \
                    Cat(code[:s.in_bits - 1], ~code[s.in_bits - 1])
                raw = raw.as_signed() if form != "unsigned" else raw
                m.d.comb += v.eq(raw << k)
            else:
                with m.Switch(code):
                    for c, level in enumerate(decode):
                        with m.Case(c):
                            m.d.comb += v.eq(level)
            values.append(v)
        partials, carries = [], []
        signed_terms = s.unit_kind in ("pot", "apot")
        for pe in range(s.pe):
            terms, cins = [], []
            for lane in range(s.simd):
                unit = make_unit(s.unit_kind, s.unit_params, act_bits, act_signed)
                nw = unit.weight_bits
                off = (pe * s.simd + lane) * nw
                m.d.comb += [unit.w.eq(rom_data[off:off + nw]), unit.a.eq(values[lane])]
                if signed_terms:
                    # no negator: a one's complement term, the sign as an adder's carry-in
                    unit._MustUse__used = True
                    p, lo, hi, c = unit.terms(m, name=f"p{pe}_{lane}")
                else:
                    m.submodules[f"p{pe}_{lane}"] = unit
                    p, (lo, hi), c = unit.p, unit.bounds, None
                if pads is not None:
                    p = Mux(pads[lane], 0, p)
                    lo, hi = min(lo, 0), max(hi, 0)
                    if c is not None:
                        c = c & ~pads[lane]
                terms.append((p, lo, hi))
                if c is not None:
                    cins.append(c)
            value, lo, hi, latency, left = sum_tree_carries(
                m, terms, name=f"tree{pe}", carries=cins, pipeline_every=s.latency_cutoff)
            assert latency == s.tree_latency
            partials.append(value)
            carries.append(left)
        return partials, carries

    def _baked_partials(self, m, acts, pads):
        """Constant weights. Shift-add constants (``spec.values``): the layer's sums are
        the outputs of its adder graph (:mod:`.cmvm`; without one in the spec, mulfree's
        pairwise trees), ``spec.graph_latency`` cycles later. Otherwise (non-identity
        activations, or a product table) a product is a lookup on the activation code
        alone and each channel's lookups go through a pairwise tree."""
        s = self.spec
        n_a = 2**s.in_bits
        if s.values is not None:
            graph = s.adder_graph
            if graph is None:       # a spec without a solved graph: the pairwise trees
                w = np.array([[s.values[k] for k in row] for row in s.codes], np.int64)
                graph = pairwise_graph(w, [(0, n_a - 1)] * s.taps)
            # a pad reads code 0, which contributes 0 (identity activations)
            outs, latency = adder_graph_values(m, graph, acts, name="cmvm",
                                               latency_cutoff=s.latency_cutoff)
            assert latency == s.graph_latency
            return [Const(0, 1) if o is None else o for o in outs]
        lookups = {}
        partials = []
        for j in range(s.out_channels):
            terms = []
            for t in range(s.taps):
                k = s.codes[j][t]
                code = acts[t]
                row = tuple(s.products[k][:n_a]) + (0,) * (n_a - len(s.products[k]))
                if not any(row):
                    continue
                key = (row, t)
                if key not in lookups:
                    lo, hi = min(min(row), 0), max(max(row), 0)
                    v = Signal(shape_for(lo, hi), name=f"lut{t}_{len(lookups)}")
                    common = max(sorted(set(row)), key=row.count)
                    with m.Switch(code):
                        for c, level in enumerate(row):
                            if level != common:
                                with m.Case(c):
                                    m.d.comb += v.eq(level)
                        with m.Default():
                            m.d.comb += v.eq(common)
                    if pads is not None:
                        g = Signal(shape_for(lo, hi), name=f"lutg{t}_{len(lookups)}")
                        m.d.comb += g.eq(Mux(pads[t], 0, v))
                        v = g
                    lookups[key] = (v, lo, hi)
                terms.append(lookups[key])
            if not terms:
                partials.append(Const(0, 1))
                continue
            # a runtime layer's register stages (``latency_cutoff``): a channel with fewer
            # terms than the taps has fewer, so its sum is delayed to the layer's latency
            value, _, _, latency = sum_tree(m, terms, name=f"pos{j}",
                                            pipeline_every=s.latency_cutoff)
            partials.append(delay_value(m, value, s.tree_latency - latency, "sync",
                                     f"pos{j}_late"))
        return partials

    def elaborate(self, platform):
        self._sprams = []
        m = self._elaborate_frame() if self.spec.window is None else self._elaborate_stream()
        if self.spec.load_words:
            chain_loads(m, self.load, self.loaded, self._sprams)
        return m

    def _elaborate_frame(self):
        """Dense: load the whole input vector, compute, send from a result buffer."""
        s = self.spec
        m = Module()
        b = s.in_bits
        nf, sf = s.nf, s.sf

        in_full = Signal(name="in_full")
        out_full = Signal(name="out_full")
        busy = Signal(name="busy")
        run = Signal(name="run")
        vb = s.out_bits
        db = s.double_buffer
        pending = Signal(name="pending")
        # double buffering: the results are copied into a send buffer when compute ends
        # (or, in a result memory, the two halves swap) and the next frame loads while this
        # one computes (into the other half of the frame memory, or into a second register
        # buffer), so loading, computing and sending overlap
        if s.out_in_memory:
            write_result = self._result_memory(m, out_full, pending, busy)
        else:
            outbuf = Signal(s.out_count * vb, name="out_buf")
            sendbuf = Signal(s.out_count * vb, name="send_buf") if db else outbuf
            self._send(m, lambda cnt: sendbuf.word_select(cnt, s.out_beat * vb), out_full,
                       s.out_beats)
            if db:
                with m.If(pending & ~out_full):
                    m.d.sync += [sendbuf.eq(outbuf), out_full.eq(1), pending.eq(0),
                                 busy.eq(0)]

            def write_result(group, value):
                m.d.sync += outbuf.word_select(group, s.pe * vb).eq(value)

        # -- stage A: counters and issue ----------------------------------------------
        sf_c = Signal(counter_bits(sf), name="sf")
        nf_c = Signal(counter_bits(nf), name="nf")
        waddr = Signal(counter_bits(nf * sf), name="waddr")   # nf * SF + sf
        last_sf = sf_c == sf - 1
        last_nf = nf_c == nf - 1

        start = in_full & ~busy if db else in_full & ~busy & ~out_full
        with m.If(start):
            m.d.sync += [busy.eq(1), run.eq(1), sf_c.eq(0), nf_c.eq(0), waddr.eq(0)]
        with m.If(run):
            self._advance(m, sf_c, nf_c, waddr)
            with m.If(last_sf & last_nf):
                m.d.sync += run.eq(0)

        if s.buffer_in_memory:
            acts_a, acts_b = None, self._frame_memory(m, in_full, start, run, last_sf)
        else:
            buf = Signal(s.in_count * b, name="in_buf")
            work = Signal(s.in_count * b, name="work_buf") if db else buf
            self._load(m, buf, in_full, s.in_beats, s.in_beat * b)
            with m.If(start):
                if db:
                    m.d.sync += [work.eq(buf), in_full.eq(0)]
            word = work.word_select(sf_c, s.simd * b) if sf > 1 else work[:s.simd * b]
            acts_a = [word[lane * b:(lane + 1) * b] for lane in range(s.simd)]
            # one step per frame (every baked layer): no ROM read to wait for, and the
            # frame holds until its results are written, so stage B reads it directly
            # (no activation register: one frame of flip-flops less)
            acts_b = acts_a if nf * sf == 1 else None
        v_c, results = self._compute(m, run, sf_c, nf_c, waddr, acts_a, None, acts_b=acts_b)

        # one group (every baked layer): no group counter, the results fill the buffer
        group = Signal(counter_bits(nf), name="group") if nf > 1 else 0
        with m.If(v_c):
            write_result(group, Cat(*results))
            with m.If(group == nf - 1):
                if db:
                    m.d.sync += [pending.eq(1)]
                else:
                    m.d.sync += [busy.eq(0), in_full.eq(0), out_full.eq(1)]
                if nf > 1:
                    m.d.sync += group.eq(0)
            if nf > 1:
                with m.Else():
                    m.d.sync += group.eq(group + 1)
        return m

    def _result_memory(self, m, out_full, pending, busy):
        """The result frame in a memory of ``nf`` words of ``pe`` codes (two halves with
        ``double_buffer``: the results being computed and the results being sent), one
        word per output beat. The read address is the beat the send counter moves to (on
        a transfer, the next one), so the synchronous read's data is the beat on the
        cycle it is offered and holds while valid waits. Returns ``write(group, value)``.

        Word 0 of a frame is always written at least one cycle before the frame is
        complete (``nf >= 2``), so the read of word 0 on the completing cycle sees it."""
        s = self.spec
        nf, db = s.nf, s.double_buffer
        mem = memory.Memory(shape=unsigned(s.pe * s.out_bits), depth=nf * (1 + db), init=[],
                            attrs={"no_rw_check": 1})
        m.submodules.results = mem
        wp = mem.write_port()
        rp = mem.read_port(domain="sync")
        cnt = Signal(counter_bits(nf), name="send_cnt")
        sent = out_full & self.o.ready
        last = cnt == nf - 1
        nxt = Mux(sent, Mux(last, 0, cnt + 1), cnt)
        m.d.comb += [self.o.valid.eq(out_full), self.o.payload.eq(rp.data)]
        with m.If(sent):
            m.d.sync += cnt.eq(Mux(last, 0, cnt + 1))
            with m.If(last):
                m.d.sync += out_full.eq(0)
        if db:
            # wh: the half being computed into; sh: the half being sent
            wh = Signal(name="result_half")
            sh = Signal(name="send_half")
            swap = pending & ~out_full
            with m.If(swap):
                m.d.sync += [out_full.eq(1), pending.eq(0), busy.eq(0), sh.eq(wh),
                             wh.eq(~wh)]
            m.d.comb += rp.addr.eq(Mux(swap, Mux(wh, nf, 0), Mux(sh, nf, 0) + nxt))
        else:
            wh = None
            m.d.comb += rp.addr.eq(nxt)

        def write(group, value):
            m.d.comb += [wp.en.eq(1), wp.data.eq(value),
                         wp.addr.eq(group if wh is None else Mux(wh, nf, 0) + group)]
        return write

    def _frame_memory(self, m, in_full, start, run, last_sf):
        """The input frame in a memory of ``buffer_depth`` words of ``buffer_word`` codes
        (twice the words with ``double_buffer``: the frame being loaded and the frame
        being computed are its two halves). Beats are assembled into a word in a shift
        register; stage A addresses the word holding the step's ``simd`` codes, and the
        synchronous read port's data, sliced by the registered position in the word, are
        stage B's activations: the read takes the cycle the activation register took
        before, so the engine's timing is unchanged. Returns stage B's activations."""
        s = self.spec
        b = s.in_bits
        db = s.double_buffer
        depth = s.buffer_depth
        per_word = s.buffer_word // s.in_beat          # beats per word
        per_read = s.buffer_word // s.simd             # steps per word
        beat_bits = s.in_beat * b
        # no_rw_check: a read of the word being written never reaches stage B (loading
        # and computing use different halves, or different times without double_buffer;
        # the idle read address may meet the load, its data then unused), so Yosys need not
        # emulate read-before-write around the block RAM (measured: 64 flip-flops and 32
        # LUT4 on a 32-bit wide frame)
        mem = memory.Memory(shape=unsigned(s.buffer_word * b), depth=depth * (1 + db),
                            init=[], attrs={"no_rw_check": 1})
        m.submodules.frame = mem
        self._frame_mem = mem           # for tests that reach into the frame
        wp = mem.write_port()
        rp = mem.read_port(domain="sync")

        # -- load: one beat per cycle while the frame is not full ---------------------
        # the write address runs over both halves with double_buffer (0 .. 2 * depth - 1)
        wa = Signal(range(depth * (1 + db)), name="load_addr")
        take = self.i.valid & ~in_full
        m.d.comb += self.i.ready.eq(~in_full)
        if per_word > 1:
            asm = Signal(beat_bits * (per_word - 1), name="load_asm")
            bc = Signal(range(per_word), name="load_beat")
            word_done = take & (bc == per_word - 1)
            with m.If(take):
                # beat 0 ends at the low end of the word
                m.d.sync += asm.eq(Cat(asm[beat_bits:], self.i.payload))
                m.d.sync += bc.eq(Mux(bc == per_word - 1, 0, bc + 1))
            m.d.comb += wp.data.eq(Cat(asm, self.i.payload))
        else:
            word_done = take
            m.d.comb += wp.data.eq(self.i.payload)
        m.d.comb += [wp.addr.eq(wa), wp.en.eq(word_done)]
        frame_done = (wa == depth - 1) | (wa == 2 * depth - 1) if db else wa == depth - 1
        with m.If(word_done):
            m.d.sync += wa.eq(Mux(wa == depth * (1 + db) - 1, 0, wa + 1))
            with m.If(frame_done):
                m.d.sync += in_full.eq(1)

        # -- read: stage A addresses the word, stage B slices it ----------------------
        ra = Signal(range(depth * (1 + db)), name="frame_addr")
        base = Signal(range(depth * (1 + db)), name="frame_base") if db else Const(0)
        with m.If(start):
            if db:
                # the full frame is the half the load address has just left
                m.d.sync += [in_full.eq(0), base.eq(Mux(wa == 0, depth, 0)),
                             ra.eq(Mux(wa == 0, depth, 0))]
            else:
                m.d.sync += ra.eq(0)
        if per_read > 1:
            # the step's slice of the word; the word address moves after its last slice
            sub = Signal(range(per_read), name="frame_sub")
            with m.If(start):
                m.d.sync += sub.eq(0)
            with m.If(run):
                with m.If(last_sf):
                    m.d.sync += [ra.eq(base), sub.eq(0)]
                with m.Elif(sub == per_read - 1):
                    m.d.sync += [ra.eq(ra + 1), sub.eq(0)]
                with m.Else():
                    m.d.sync += sub.eq(sub + 1)
        else:
            with m.If(run):
                m.d.sync += ra.eq(Mux(last_sf, base, ra + 1))
        m.d.comb += rp.addr.eq(ra)
        word = rp.data
        if per_read > 1:
            sub_b = Signal(range(per_read), name="frame_sub_b")
            m.d.sync += sub_b.eq(sub)
            word = word.word_select(sub_b, s.simd * b)
        return [word[lane * b:(lane + 1) * b] for lane in range(s.simd)]

    def _elaborate_stream(self):
        """Conv2d: windows from a :class:`~mulfree.hw.window.SlidingWindow`, results
        through a small FIFO, one beat (``pe`` values) per output channel group."""
        s = self.spec
        m = Module()
        b = s.in_bits
        nf, sf = s.nf, s.sf
        m.submodules.window = win = SlidingWindow(s.window)
        wiring.connect(m, wiring.flipped(self.i), win.i)

        # -- stage A: a step of the window at the head of the window stream ----------
        sf_c = Signal(counter_bits(sf), name="sf")
        nf_c = Signal(counter_bits(nf), name="nf")
        waddr = Signal(counter_bits(nf * sf), name="waddr")
        last_sf = sf_c == sf - 1
        last_nf = nf_c == nf - 1
        depth = s.fifo_depth
        credits = Signal(range(depth + 1), init=depth, name="credits")
        issue = Signal(name="issue")
        # only a group's last step needs a credit (a FIFO entry for its results)
        m.d.comb += [issue.eq(win.o.valid & ((credits != 0) | ~last_sf)),
                     win.o.ready.eq(issue & last_sf & last_nf)]
        with m.If(issue):
            self._advance(m, sf_c, nf_c, waddr)
        taps, pads = win.o.payload.taps, win.o.payload.pad
        word = taps.word_select(sf_c, s.simd * b) if sf > 1 else taps
        acts_a = [word[lane * b:(lane + 1) * b] for lane in range(s.simd)]
        pads_a = None
        if s.window.has_padding:
            pword = pads.word_select(sf_c, s.simd) if sf > 1 else pads
            pads_a = [pword[lane] for lane in range(s.simd)]
        v_c, results = self._compute(m, issue, sf_c, nf_c, waddr, acts_a, pads_a)

        # -- stage C's results into the FIFO; a credit per group in flight -----------
        m.submodules.fifo = fifo = SyncFIFO(width=s.pe * s.out_bits, depth=depth)
        m.d.comb += [fifo.w_en.eq(v_c), fifo.w_data.eq(Cat(*results)),
                     self.o.valid.eq(fifo.r_rdy), self.o.payload.eq(fifo.r_data),
                     fifo.r_en.eq(self.o.ready)]
        sent = self.o.valid & self.o.ready
        m.d.sync += credits.eq(credits - (issue & last_sf) + sent)
        return m

    def _advance(self, m, sf_c, nf_c, waddr):
        """One step of the ``(nf, sf)`` schedule (the weight address follows)."""
        s = self.spec
        with m.If(sf_c != s.sf - 1):
            m.d.sync += [sf_c.eq(sf_c + 1), waddr.eq(waddr + 1)]
        with m.Else():
            m.d.sync += sf_c.eq(0)
            with m.If(nf_c != s.nf - 1):
                m.d.sync += [nf_c.eq(nf_c + 1), waddr.eq(waddr + 1)]
            with m.Else():
                m.d.sync += [nf_c.eq(0), waddr.eq(0)]

    def _compute(self, m, v_a, sf_c, nf_c, waddr, acts_a, pads_a, acts_b=None):
        """Stages B and C for a step issued in stage A (``v_a`` high, the step's
        activations ``acts_a``, pad marks ``pads_a`` or ``None``, the weight address
        ``waddr`` of the ROM word). ``acts_b`` given: the step's activations are already
        stage B values (a synchronous memory read issued in stage A) and ``acts_a`` is not
        used. Returns ``(v_c, results)``: ``v_c`` is high for one cycle per output channel
        group with its ``pe`` results."""
        s = self.spec
        b, vb = s.in_bits, s.out_bits
        nf, sf = s.nf, s.sf
        baked = s.mode == "baked"
        # codes at padding taps are 0; a product with code 0 is 0 unless the activation
        # codebook is not the identity or the product is a table
        identity = s.values is not None or (
            s.unit_kind != "table" and s.act_decode is None and not baked)
        if identity:
            pads_a = None

        # -- stage B ------------------------------------------------------------------
        v_b = Signal(name="v_b")
        first_b = Signal(name="first_b")
        last_b = Signal(name="last_b")
        nf_b = Signal(counter_bits(nf), name="nf_b")
        m.d.sync += [v_b.eq(v_a), first_b.eq(sf_c == 0), last_b.eq(sf_c == sf - 1),
                     nf_b.eq(nf_c)]
        if acts_b is None:
            acts_b = [Signal(b, name=f"act_b{lane}") for lane in range(s.simd)]
            m.d.sync += [acts_b[lane].eq(acts_a[lane]) for lane in range(s.simd)]
        pads_b = None
        if pads_a is not None:
            pads_b = [Signal(name=f"pad_b{lane}") for lane in range(s.simd)]
            m.d.sync += [pads_b[lane].eq(pads_a[lane]) for lane in range(s.simd)]
        if baked:
            partials = self._baked_partials(m, acts_b, pads_b)
            carries = [[] for _ in partials]
        else:
            width = s.weight_bits
            words = s.rom_words()
            if s.rom_style == "spram":
                rom = SpramMemory(depth=nf * sf, width=s.pe * s.simd * width)
                m.submodules.rom = rom
                self._sprams.append(rom)
                m.d.comb += rom.addr.eq(waddr)
                data = rom.data
            elif len(words) == 1 and s.unit_kind == "table":
                # Fully parallel table products: the weights are constants, so each
                # product is a lookup on the activation code alone.
                data = None
            elif len(words) == 1:
                # One word (fully parallel): a constant, not a memory with no address.
                data = Const(words[0], unsigned(s.pe * s.simd * width))
            else:
                attrs = {} if s.rom_style is None else {"rom_style": s.rom_style}
                rom = memory.Memory(shape=unsigned(s.pe * s.simd * width), depth=nf * sf,
                                    init=words, attrs=attrs)
                m.submodules.rom = rom
                rp = rom.read_port(domain="sync")
                m.d.comb += rp.addr.eq(waddr)
                data = rp.data
            if data is None:
                partials = self._baked_partials(m, acts_b, pads_b)
                carries = [[] for _ in partials]
            else:
                partials, carries = self._runtime_partials(m, data, acts_b, pads_b)

        for n in range(s.graph_latency + s.tree_latency):
            # the adder graph's or trees' register stages: the step's controls follow
            # their sums
            d = [Signal(name=f"v_g{n}"), Signal(name=f"first_g{n}"), Signal(name=f"last_g{n}"),
                 Signal(counter_bits(nf), name=f"nf_g{n}")]
            m.d.sync += [r.eq(v) for r, v in zip(d, (v_b, first_b, last_b, nf_b))]
            v_b, first_b, last_b, nf_b = d

        if s.pipeline:
            # one more register stage between the adder trees and the accumulators
            part_r = []
            for pe, part in enumerate(partials):
                r = Signal(part.shape() if hasattr(part, "shape") else signed(1),
                           name=f"part_r{pe}")
                m.d.sync += r.eq(part)
                part_r.append(r)
            carry_r = []
            for pe, cs in enumerate(carries):
                regs = [Signal(name=f"carry_r{pe}_{n}") for n in range(len(cs))]
                m.d.sync += [r.eq(c) for r, c in zip(regs, cs)]
                carry_r.append(regs)
            v_x, first_x, last_x = Signal(name="v_x"), Signal(name="first_x"), Signal(name="last_x")
            nf_x = Signal(counter_bits(nf), name="nf_x")
            m.d.sync += [v_x.eq(v_b), first_x.eq(first_b), last_x.eq(last_b), nf_x.eq(nf_b)]
            partials, carries = part_r, carry_r
            v_b, first_b, last_b, nf_b = v_x, first_x, last_x, nf_x

        aw = s.acc_width
        # one step per group with thresholds out (baked layers): the bias moves into the
        # thresholds (acc + bias >= T is acc >= T - bias) and the accumulator holds the
        # bare sum, so no adder adds a constant per channel
        fold_bias = baked and sf == 1 and s.thresholds is not None and not any(carries)
        if fold_bias:
            accs = [Signal(Value.cast(p).shape(), name=f"acc{pe}")
                    for pe, p in enumerate(partials)]
        else:
            accs = [Signal(signed(aw), name=f"acc{pe}") for pe in range(s.pe)]
        for pe in range(s.pe):
            biases = [0 if s.fold_bias else s.bias[n_ * s.pe + pe] for n_ in range(nf)]
            bias = Const(biases[0], signed(aw)) if len(set(biases)) == 1 else \
                Array(Const(v, signed(aw)) for v in biases)[nf_b]
            if fold_bias:
                total = partials[pe]
            else:
                # a baked layer's one step per output group (sf = 1) starts from the bias.
                # Not a runtime layer's: without the accumulator's multiplexer Yosys and
                # ABC map its adder tree to wide LUT multiplexers (CNV's conv3 alone,
                # synth_ecp5: 11,942 LUT4 and 7,215 PFUMX/L6MUX21 against 4,827 and 548)
                start = bias if sf == 1 and baked else Mux(first_b, bias, accs[pe])
                total = start + partials[pe]
            for c in carries[pe]:   # at most one: the tree has an adder per other carry
                total = total + c
            with m.If(v_b):
                m.d.sync += accs[pe].eq(total)

        # -- stage C ------------------------------------------------------------------
        v_c = Signal(name="v_c")
        nf_c2 = Signal(counter_bits(nf), name="nf_c")
        m.d.sync += [v_c.eq(v_b & last_b), nf_c2.eq(nf_b)]
        results = []
        if s.thresholds is not None and s.threshold_unit != "parallel":
            return self._threshold_memories(m, v_c, nf_c2, accs)
        for pe in range(s.pe):
            if s.thresholds is None:
                results.append(accs[pe].as_unsigned())
                continue
            if fold_bias:
                sh = accs[pe].shape()
                lo = -(1 << (sh.width - 1)) if sh.signed else 0
                hi = (1 << (sh.width - int(sh.signed))) - 1
                offsets = [s.bias[n_ * s.pe + pe] for n_ in range(nf)]
            else:
                lo, hi = s.acc_bounds
                offsets = [0] * nf
            tw = max(aw, signed_width(lo), signed_width(hi + 1))
            ts = []
            for t in range(len(s.thresholds[0])):
                col = [min(max(s.thresholds[n_ * s.pe + pe][t] - offsets[n_], lo), hi + 1)
                       for n_ in range(nf)]
                ts.append(Const(col[0], signed(tw)) if nf == 1 else
                          Array(Const(v, signed(tw)) for v in col)[nf_c2])
            code = Signal(vb, name=f"code{pe}")
            m.d.comb += code.eq(threshold_code(accs[pe], ts))
            results.append(code)
        return v_c, results

    def _threshold_memories(self, m, v_c, group, accs):
        """Stage C with a memory threshold unit per PE (:class:`~.threshold.ThresholdSearch`
        or :class:`~.threshold.ThresholdSequential`): lane ``pe`` holds the thresholds of
        channels ``n * pe_count + pe``, minus the bias (folded: the accumulators started
        from 0), clamped into the accumulator's range, and padded to ``2**out_bits - 1``
        with thresholds no accumulator reaches. Returns ``(valid, results)``, valid
        ``out_bits`` cycles after ``v_c``."""
        s = self.spec
        aw = s.acc_width
        tw = s.threshold_width
        bits = s.out_bits
        cls = ThresholdSearch if s.threshold_unit == "search" else ThresholdSequential
        spram = s.threshold_style == "spram"
        results, valid = [], None
        extra = {"logic_levels": s.threshold_logic_levels} if cls is ThresholdSearch else {}
        for pe in range(s.pe):
            unit = cls(acc_width=aw, threshold_width=tw, bits=bits,
                       thresholds=s.threshold_rows(pe),
                       style="external" if spram else s.threshold_style, **extra)
            m.submodules[f"thr{pe}"] = unit
            m.d.comb += [unit.valid.eq(v_c), unit.acc.eq(accs[pe]), unit.group.eq(group)]
            if spram:
                mem = SpramMemory(depth=s.nf << bits, width=tw)
                m.submodules[f"thr_mem{pe}"] = mem
                self._sprams.append(mem)
                m.d.comb += [mem.addr.eq(unit.mem_addr),
                             unit.mem_data.eq(mem.data.as_signed())]
            results.append(unit.code)
            valid = unit.code_valid
        return valid, results
