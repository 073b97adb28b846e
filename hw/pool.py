"""Max-pool: its spec, the streaming unit (a sliding window, then a max per channel) and
the frame unit (the whole map in registers).

:class:`StreamMaxPool` reuses the conv2d window generator
(:class:`~.window.SlidingWindow`, kernel and stride of the pool, no padding): the rows
above the current one sit in the generator's line memory, only the window in registers,
and each window's ``kh * kw`` taps go through one pairwise max tree per output lane.
The frame-based :class:`MaxPoolUnit` (the whole map in registers) remains for the planner
to choose where it is cheaper; see :func:`mulfree.gen.plan.stages.plan_stages`.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .framed import FramedStage
from .timing import MaxPoolFrameModel, StreamPoolModel, stage_timing
from .window import SlidingWindow, WindowSpec

__all__ = ["MaxPoolSpec", "StreamMaxPool", "MaxPoolUnit", "max_tree"]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class MaxPoolSpec:
    """One max-pool stage: max over ``kernel`` windows of an ``(H, W, C)`` code map, no
    padding, output size rounded down (:func:`mulfree.gen.model.golden.maxpool`).

    Parameters
    ----------
    in_bits : int
        Code width.
    in_shape : (int, int, int)
        ``(H, W, C)``.
    kernel, stride : (int, int)
    in_beat : int
        Codes per input beat; divides ``H * W * C``.
    out_beat : int
        Codes per output beat; divides the output count, and with ``streaming`` the
        channel count ``C`` (a beat is one channel slice of one position).
    double_buffer : bool
        Frame-based unit only: a second frame buffer, so loading and sending overlap.
    streaming : bool
        ``True``: :class:`StreamMaxPool` (line buffer); ``False``: the frame-based
        :class:`MaxPoolUnit`.
    """

    in_bits: int
    in_shape: tuple          # (H, W, C)
    kernel: tuple
    stride: tuple
    in_beat: int
    out_beat: int
    double_buffer: bool = False
    streaming: bool = True

    def __post_init__(self) -> None:
        if not _is_int(self.in_bits):
            raise TypeError(f"Code width must be an integer, not {self.in_bits!r}")
        if self.in_bits < 1:
            raise ValueError(f"Code width must be a positive integer, not {self.in_bits!r}")
        for name, value, n in (("Input shape", self.in_shape, 3), ("Kernel", self.kernel, 2),
                               ("Stride", self.stride, 2)):
            if not isinstance(value, tuple) or len(value) != n or \
                    not all(_is_int(v) for v in value):
                raise TypeError(f"{name} must be a tuple of {('two', 'three')[n - 2]} "
                                f"integers, not {value!r}")
            if any(v < 1 for v in value):
                raise ValueError(f"{name} must be positive integers, not {value!r}")
        for name, value in (("Double buffer", self.double_buffer),
                            ("Streaming", self.streaming)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, not {value!r}")
        h, w, c = self.in_shape
        if self.kernel[0] > h or self.kernel[1] > w:
            raise ValueError(f"Kernel {self.kernel!r} does not fit the {h}x{w} map")
        for name, whole, part in [("Input beat", self.in_count, self.in_beat),
                                  ("Output beat", self.out_count, self.out_beat)]:
            if not _is_int(part):
                raise TypeError(f"{name} must be an integer, not {part!r}")
            if part < 1 or whole % part:
                raise ValueError(f"{name} must be a positive divisor of {whole}, not {part}")
        if self.streaming:
            if c % self.out_beat:
                raise ValueError(f"Output beat of a streaming max-pool must divide its {c} "
                                 f"channels, not {self.out_beat}")
            if self.double_buffer:
                raise ValueError("Double buffer applies to the frame-based max-pool only")

    @property
    def out_shape(self) -> tuple:
        h, w, c = self.in_shape
        return ((h - self.kernel[0]) // self.stride[0] + 1,
                (w - self.kernel[1]) // self.stride[1] + 1, c)

    @property
    def in_count(self) -> int:
        h, w, c = self.in_shape
        return h * w * c

    @property
    def out_count(self) -> int:
        h, w, c = self.out_shape
        return h * w * c

    @property
    def in_beats(self) -> int:
        return self.in_count // self.in_beat

    @property
    def out_beats(self) -> int:
        return self.out_count // self.out_beat

    @property
    def slices(self) -> int:
        """Streaming: output beats per window (channel slices of ``out_beat``)."""
        return self.in_shape[2] // self.out_beat

    @property
    def window_spec(self) -> WindowSpec | None:
        """Streaming: the window generator's geometry, derived from the fields (so
        ``dataclasses.replace`` keeps it consistent); ``None`` for the frame unit."""
        if not self.streaming:
            return None
        return WindowSpec(shape=self.in_shape, kernel=self.kernel, stride=self.stride,
                          padding=(0, 0), code_bits=self.in_bits, in_beat=self.in_beat)

    @property
    def delay(self) -> int:
        """Frame unit: cycles from the last input beat taken to the first output beat
        valid. Streaming: from the last input beat taken to the last output beat sent,
        the stage alone, input always offered, output always ready (from
        :func:`mulfree.hw.timing.stage_timing`)."""
        if self.streaming:
            return stage_timing(self)[0]
        return 2 if self.double_buffer else 1

    @property
    def period(self) -> int:
        """Cycles between inference starts when this stage is the slowest."""
        if self.streaming:
            return stage_timing(self)[1]
        if self.double_buffer:
            return max(self.in_beats, self.out_beats) + 1
        return self.in_beats + self.out_beats

    def cycle_model(self):
        """A fresh cycle model of this stage's handshakes (:mod:`.timing`)."""
        return StreamPoolModel(self) if self.streaming else MaxPoolFrameModel(self)


def max_tree(values):
    """Largest of unsigned ``values``: a balanced tree of compare-and-select pairs."""
    values = list(values)
    while len(values) > 1:
        nxt = [Mux(values[n] > values[n + 1], values[n], values[n + 1])
               for n in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            nxt.append(values[-1])
        values = nxt
    return values[0]


class StreamMaxPool(wiring.Component):
    """Max-pool on a code stream, through a line buffer.

    Parameters
    ----------
    spec : MaxPoolSpec
        With ``streaming`` set.

    Members
    -------
    i : In(stream.Signature(unsigned(in_beat * in_bits)))
        Codes of one map after another, (row, column, channel) order, LSB-first.
    o : Out(stream.Signature(unsigned(out_beat * in_bits)))
        Per output position (row-major), ``C / out_beat`` beats of ``out_beat``
        channels' maxima, channel order.

    A :class:`~.window.SlidingWindow` (pool kernel and stride, no padding) delivers each
    window; the output beat is a max tree per lane over the window's ``kh * kw`` taps
    of the lane's channel, combinational from the generator's output register: ``o.valid``
    is that register's valid, the payload holds while it waits (the register and the
    slice counter move only on a transfer), ``i.ready`` is the generator's (registers
    only). Latency: a position's first beat is valid the cycle after the scan reaches the
    window's last piece; see :mod:`.timing` and :attr:`MaxPoolSpec.delay`.
    Storage: the generator's line memory (``kh - 1`` rows of ``W * C`` codes), its window
    and output registers (``2 * kh * kw * C`` codes) and two input beats.
    """

    def __init__(self, spec: MaxPoolSpec) -> None:
        if not isinstance(spec, MaxPoolSpec):
            raise TypeError(f"Spec must be a MaxPoolSpec, not {spec!r}")
        if not spec.streaming:
            raise ValueError("Spec must have streaming set (the frame-based pool is "
                             "mulfree.hw.pool.MaxPoolUnit)")
        self.spec = spec
        super().__init__({
            "i": In(stream.Signature(unsigned(spec.in_beat * spec.in_bits))),
            "o": Out(stream.Signature(unsigned(spec.out_beat * spec.in_bits))),
        })

    def elaborate(self, platform):
        s = self.spec
        m = Module()
        b, c, ob, n = s.in_bits, s.in_shape[2], s.out_beat, s.slices
        taps = s.kernel[0] * s.kernel[1]
        m.submodules.window = win = SlidingWindow(s.window_spec)
        wiring.connect(m, wiring.flipped(self.i), win.i)
        codes = win.o.payload.taps          # tap t, channel ch at bits (t * C + ch) * b

        if n > 1:
            # the channel slice being sent: moves on each transfer, so the payload holds
            sl = Signal(range(n), name="slice")
            last = sl == n - 1
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += sl.eq(Mux(last, 0, sl + 1))
            words = [codes[t * c * b:(t + 1) * c * b].word_select(sl, ob * b)
                     for t in range(taps)]
        else:
            last = 1
            words = [codes[t * c * b:(t + 1) * c * b] for t in range(taps)]
        lanes = [max_tree(word[lane * b:(lane + 1) * b] for word in words)
                 for lane in range(ob)]
        m.d.comb += [self.o.valid.eq(win.o.valid), self.o.payload.eq(Cat(*lanes)),
                     win.o.ready.eq(self.o.ready & last)]
        return m



class MaxPoolUnit(FramedStage):
    """Max over ``kernel`` windows of a code map (no padding, floor), one output beat per
    cycle once the frame is loaded: the frame-based max-pool (``spec.streaming`` off; the
    streaming one is :class:`~.pool.StreamMaxPool`, :class:`~.pool.MaxPoolSpec` is
    defined in :mod:`.pool` and re-exported here).

    Members
    -------
    i : In(stream.Signature(unsigned(in_beat * in_bits)))
    o : Out(stream.Signature(unsigned(out_beat * in_bits)))

    Timing: the first output beat is valid 1 cycle after the last input beat is taken (2
    with ``double_buffer``); see :attr:`MaxPoolSpec.delay` and :attr:`MaxPoolSpec.period`.
    """

    def __init__(self, spec: MaxPoolSpec) -> None:
        if not isinstance(spec, MaxPoolSpec):
            raise TypeError(f"Spec must be a MaxPoolSpec, not {spec!r}")
        if spec.streaming:
            raise ValueError("Spec must have streaming off (the streaming pool is "
                             "mulfree.hw.pool.StreamMaxPool)")
        self.spec = spec
        super().__init__({
            "i": In(stream.Signature(unsigned(spec.in_beat * spec.in_bits))),
            "o": Out(stream.Signature(unsigned(spec.out_beat * spec.in_bits))),
        })

    def elaborate(self, platform):
        s = self.spec
        m = Module()
        b = s.in_bits
        full = Signal(name="full")
        buf = Signal(s.in_count * b, name="buf")
        self._load(m, buf, full, s.in_count // s.in_beat, s.in_beat * b)
        if s.double_buffer:
            sending = Signal(name="sending")
            hold = Signal(s.in_count * b, name="hold")
            with m.If(full & ~sending):
                m.d.sync += [hold.eq(buf), full.eq(0), sending.eq(1)]
        else:
            sending, hold = full, buf
        h, w, c = s.in_shape
        oh, ow, _ = s.out_shape
        (kh, kw), (sh, sw) = s.kernel, s.stride

        def code(idx):
            return hold[idx * b:(idx + 1) * b]

        def payload_of(cnt):
            # select each lane's window codes by the beat counter first, then one max
            # tree per lane (not one per output value)
            n_beats = s.out_count // s.out_beat
            taps = kh * kw
            sel = [[Signal(b, name=f"win{lane}_{t}") for t in range(taps)]
                   for lane in range(s.out_beat)]
            with m.Switch(cnt):
                for bi in range(n_beats):
                    with m.Case(bi):
                        for lane in range(s.out_beat):
                            o = bi * s.out_beat + lane
                            oy, rest = divmod(o, ow * c)
                            ox, ch = divmod(rest, c)
                            for t in range(taps):
                                dy, dx = divmod(t, kw)
                                idx = ((oy * sh + dy) * w + ox * sw + dx) * c + ch
                                m.d.comb += sel[lane][t].eq(code(idx))
            return Cat(*(max_tree(win) for win in sel))

        self._send(m, payload_of, sending, s.out_count // s.out_beat)
        return m
