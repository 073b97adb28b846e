"""A sliding-window (line-buffer) generator: a code map streamed in, conv2d windows out.

The input is a stream of codes in (row, column, channel) order, ``in_beat`` codes per
beat, LSB-first (the stream contract of every mulfree stage). The output is one stream
beat per output position, in row-major order: the window's taps in (dy, dx, channel)
order (tap ``t = (dy * kw + dx) * C + c`` at bits ``[t*b, (t+1)*b)`` of ``taps``) and a
pad mask (bit ``t`` of ``pad`` set where the tap lies in the zero padding; such a tap's
code is 0).

How it works: the generator scans the padded map (``scan_rows x scan_cols`` pixels,
padding included) one *piece* of ``g = gcd(in_beat, C)`` channels per cycle. A real
piece comes from the input (a two-beat buffer splits beats into pieces); a padding
piece is a zero made on the spot. The last ``kh - 1`` rows live in a
:class:`~amaranth.lib.memory.Memory` of ``scan_cols * C / g`` words of ``(kh - 1) * g``
codes (one word per column piece: the column's codes of the rows above), read one cycle
ahead and written back shifted by one row, so synthesis can put it in block RAM. Only
the window itself is in registers: ``kh`` rows of ``kw * C`` codes, shifted by one piece
per cycle, and the output register it is copied to when the scan completes a window.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["WindowSpec", "SlidingWindow", "window_layout"]


def _check_pair(name: str, value, minimum: int) -> tuple:
    if not isinstance(value, tuple) or len(value) != 2 or \
            any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise TypeError(f"{name} must be a tuple of two integers, not {value!r}")
    if any(v < minimum for v in value):
        what = "positive" if minimum else "non-negative"
        raise ValueError(f"{name} must be {what} integers, not {value!r}")
    return value


def _check_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return value


@dataclass(frozen=True)
class WindowSpec:
    """The geometry of a :class:`SlidingWindow`.

    Parameters
    ----------
    shape : (int, int, int)
        Input map ``(H, W, C)``.
    kernel : (int, int)
        Window ``(kh, kw)``.
    stride : (int, int)
        ``(sh, sw)``.
    padding : (int, int)
        Zero rows above and below, zero columns left and right: ``(ph, pw)``.
    code_bits : int
        Width of one code.
    in_beat : int
        Codes per input beat; divides ``H * W * C``.

    The output map is ``((H + 2 ph - kh) // sh + 1, (W + 2 pw - kw) // sw + 1)``
    positions; it must not be empty.
    """

    shape: tuple = (8, 8, 1)
    kernel: tuple = (3, 3)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    code_bits: int = 2
    in_beat: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.shape, tuple) or len(self.shape) != 3 or \
                any(isinstance(v, bool) or not isinstance(v, int) for v in self.shape):
            raise TypeError(f"Shape must be a tuple of three integers, not {self.shape!r}")
        if any(v < 1 for v in self.shape):
            raise ValueError(f"Shape must be positive integers, not {self.shape!r}")
        _check_pair("Kernel", self.kernel, 1)
        _check_pair("Stride", self.stride, 1)
        _check_pair("Padding", self.padding, 0)
        _check_int("Code width", self.code_bits)
        _check_int("Input beat", self.in_beat)
        h, w, c = self.shape
        if (h * w * c) % self.in_beat:
            raise ValueError(f"Input beat must divide the {h * w * c} codes of the map, "
                             f"not {self.in_beat}")
        (kh, kw), (ph, pw) = self.kernel, self.padding
        if kh > h + 2 * ph or kw > w + 2 * pw:
            raise ValueError(f"Kernel {self.kernel!r} does not fit the {h}x{w} map with "
                             f"padding {self.padding!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "WindowSpec":
        """The inverse of :meth:`to_dict` (JSON gives lists; the spec takes tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    # -- derived geometry ------------------------------------------------------------
    @property
    def out_shape(self) -> tuple:
        """``(OH, OW)``."""
        h, w, _ = self.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1

    @property
    def positions(self) -> int:
        oh, ow = self.out_shape
        return oh * ow

    @property
    def taps(self) -> int:
        return self.kernel[0] * self.kernel[1] * self.shape[2]

    @property
    def in_beats(self) -> int:
        h, w, c = self.shape
        return h * w * c // self.in_beat

    @property
    def piece(self) -> int:
        """Codes handled per scan cycle: ``gcd(in_beat, C)``."""
        return math.gcd(self.in_beat, self.shape[2])

    @property
    def pieces_per_pixel(self) -> int:
        return self.shape[2] // self.piece

    @property
    def pieces_per_beat(self) -> int:
        return self.in_beat // self.piece

    @property
    def scan_rows(self) -> int:
        """Rows of the padded map the scan visits: every input row and every row a
        window covers."""
        oh, _ = self.out_shape
        return max(self.padding[0] + self.shape[0], (oh - 1) * self.stride[0] + self.kernel[0])

    @property
    def scan_cols(self) -> int:
        _, ow = self.out_shape
        return max(self.padding[1] + self.shape[1], (ow - 1) * self.stride[1] + self.kernel[1])

    @property
    def scan_pieces(self) -> int:
        """Scan cycles of one frame (the generator's minimum period)."""
        return self.scan_rows * self.scan_cols * self.pieces_per_pixel

    @property
    def line_rows(self) -> int:
        """Rows held in the line memory (``kh - 1``)."""
        return self.kernel[0] - 1

    @property
    def memory_depth(self) -> int:
        return self.scan_cols * self.pieces_per_pixel if self.line_rows else 0

    @property
    def memory_width(self) -> int:
        return self.line_rows * self.piece * self.code_bits

    @property
    def memory_bits(self) -> int:
        return self.memory_depth * self.memory_width

    @property
    def window_bits(self) -> int:
        """Bits of one window's codes (one register copy)."""
        return self.taps * self.code_bits

    @property
    def has_padding(self) -> bool:
        return self.padding != (0, 0)

    # -- what the scan does at a pixel (also used by the timing model) ---------------
    def is_real(self, y: int, x: int) -> bool:
        """Scan pixel ``(y, x)`` of the padded map comes from the input."""
        (ph, pw), (h, w, _) = self.padding, self.shape
        return ph <= y < ph + h and pw <= x < pw + w

    def is_corner(self, y: int, x: int) -> bool:
        """Scan pixel ``(y, x)`` completes a window (its bottom-right tap)."""
        (kh, kw), (sh, sw) = self.kernel, self.stride
        oh, ow = self.out_shape
        ty, tx = y - kh + 1, x - kw + 1
        return (ty >= 0 and ty % sh == 0 and ty // sh < oh and
                tx >= 0 and tx % sw == 0 and tx // sw < ow)


def window_layout(spec: WindowSpec) -> data.StructLayout:
    """The output payload: ``taps`` (codes, ``taps * code_bits``) and ``pad`` (a bit per
    tap)."""
    return data.StructLayout({"taps": unsigned(spec.taps * spec.code_bits),
                              "pad": unsigned(spec.taps)})


class _Phase:
    """A countdown that marks every ``step``-th index starting at ``first``, at most
    ``count`` times: ``hit`` is the mark at the current index."""

    def __init__(self, m: Module, name: str, first: int, step: int, count: int):
        self.first, self.step, self.count = first, step, count
        self.phase = Signal(range(max(first, step - 1) + 1), init=first, name=f"{name}_phase")
        self.done = Signal(range(count + 1), name=f"{name}_done")
        self.hit = Signal(name=f"{name}_hit")
        m.d.comb += self.hit.eq((self.phase == 0) & (self.done != count))

    def advance(self, m: Module):
        with m.If(self.phase == 0):
            m.d.sync += self.phase.eq(self.step - 1)
            with m.If(self.done != self.count):
                m.d.sync += self.done.eq(self.done + 1)
        with m.Else():
            m.d.sync += self.phase.eq(self.phase - 1)

    def reset(self, m: Module):
        m.d.sync += [self.phase.eq(self.first), self.done.eq(0)]


class SlidingWindow(wiring.Component):
    """Conv2d windows from a stream of codes, through a line buffer.

    Parameters
    ----------
    spec : WindowSpec

    Members
    -------
    i : In(stream.Signature(unsigned(in_beat * code_bits)))
        Codes of one map after another, (row, column, channel) order, LSB-first.
    o : Out(stream.Signature(window_layout(spec)))
        One window per output position, row-major; ``taps`` in (dy, dx, channel) order,
        ``pad`` marks the taps in the padding (their codes are 0).

    Both streams follow :mod:`amaranth.lib.stream`: ``o.valid`` is a register, ``i.ready``
    depends on registers only, the payload holds while ``o.valid`` waits. Any idle on
    ``i`` and any back-pressure on ``o`` are safe; maps follow each other back to back.

    Timing: one scan step (``piece`` channels of one pixel of the padded map) per cycle
    while its input piece is there and, at a window's last piece, the output register is
    free or being taken; a window is valid the cycle after its last piece. A frame takes
    at least :attr:`WindowSpec.scan_pieces` cycles. Storage: a ``memory_depth x
    memory_width`` memory (``kh - 1`` rows of the padded width), two window registers and
    two input beats.
    """

    def __init__(self, spec: WindowSpec) -> None:
        if not isinstance(spec, WindowSpec):
            raise TypeError(f"Spec must be a WindowSpec, not {spec!r}")
        self.spec = spec
        super().__init__({
            "i": In(stream.Signature(unsigned(spec.in_beat * spec.code_bits))),
            "o": Out(stream.Signature(window_layout(spec))),
        })

    def elaborate(self, platform):
        s = self.spec
        m = Module()
        b = s.code_bits
        h, w, c = s.shape
        (kh, kw), (sh, sw), (ph, pw) = s.kernel, s.stride, s.padding
        oh, ow = s.out_shape
        g, n, nb = s.piece, s.pieces_per_pixel, s.pieces_per_beat
        rows, cols = s.scan_rows, s.scan_cols
        gb = g * b

        # -- input: two beats, split into pieces --------------------------------------
        cur = Signal(s.in_beat * b, name="cur")
        cur_valid = Signal(name="cur_valid")
        cur_idx = Signal(range(max(2, nb)), name="cur_idx")
        nxt = Signal(s.in_beat * b, name="nxt")
        nxt_valid = Signal(name="nxt_valid")
        m.d.comb += self.i.ready.eq(~nxt_valid)
        piece_in = cur.word_select(cur_idx, gb) if nb > 1 else cur

        # -- scan position ------------------------------------------------------------
        y = Signal(range(max(2, rows)), name="scan_y")
        x = Signal(range(max(2, cols)), name="scan_x")
        q = Signal(range(max(2, n)), name="scan_q")

        def inside(v, lo, hi, limit):
            """``lo <= v < hi`` for ``v`` in ``[0, limit)``, without constant compares."""
            terms = ([v >= lo] if lo > 0 else []) + ([v < hi] if hi < limit else [])
            if not terms:
                return Const(1)
            return terms[0] if len(terms) == 1 else terms[0] & terms[1]

        real = Signal(name="real")
        m.d.comb += real.eq(inside(y, ph, ph + h, rows) & inside(x, pw, pw + w, cols))
        ry = _Phase(m, "ry", kh - 1, sh, oh)
        rx = _Phase(m, "rx", kw - 1, sw, ow)
        last_q = q == n - 1
        last_x = x == cols - 1
        last_y = y == rows - 1
        corner = Signal(name="corner")
        m.d.comb += corner.eq(ry.hit & rx.hit & last_q)

        o_valid = Signal(name="o_valid")
        move = Signal(name="move")
        m.d.comb += [
            move.eq((~real | cur_valid) & (~corner | ~o_valid | self.o.ready)),
            self.o.valid.eq(o_valid),
        ]
        take = move & real

        # gearbox update
        cur_done = take & (cur_idx == nb - 1)
        cur_free = ~cur_valid | cur_done
        with m.If(cur_free):
            with m.If(nxt_valid):
                m.d.sync += [cur.eq(nxt), cur_valid.eq(1), cur_idx.eq(0), nxt_valid.eq(0)]
            with m.Elif(self.i.valid):
                m.d.sync += [cur.eq(self.i.payload), cur_valid.eq(1), cur_idx.eq(0)]
            with m.Else():
                m.d.sync += cur_valid.eq(0)
        with m.Else():
            with m.If(take):
                m.d.sync += cur_idx.eq(cur_idx + 1)
            with m.If(self.i.valid & ~nxt_valid):
                m.d.sync += [nxt.eq(self.i.payload), nxt_valid.eq(1)]

        with m.If(move):
            with m.If(~last_q):
                m.d.sync += q.eq(q + 1)
            with m.Else():
                m.d.sync += q.eq(0)
                with m.If(~last_x):
                    m.d.sync += x.eq(x + 1)
                    rx.advance(m)
                with m.Else():
                    m.d.sync += x.eq(0)
                    rx.reset(m)
                    with m.If(~last_y):
                        m.d.sync += y.eq(y + 1)
                        ry.advance(m)
                    with m.Else():
                        m.d.sync += y.eq(0)
                        ry.reset(m)

        new = Signal(gb, name="piece")
        m.d.comb += new.eq(Mux(real, piece_in, 0))

        # -- line memory: per column piece, the rows above (oldest first) -------------
        column = []
        if kh > 1:
            depth = cols * n
            lines = memory.Memory(shape=unsigned((kh - 1) * gb), depth=depth, init=[])
            m.submodules.lines = lines
            wp = lines.write_port()
            # read and write address meet only when the memory has one word
            rp = lines.read_port(transparent_for=(wp,) if depth == 1 else ())
            addr = Signal(range(depth), name="line_addr")
            addr_next = Mux(addr == depth - 1, 0, addr + 1) if depth > 1 else Const(0)
            with m.If(move):
                m.d.sync += addr.eq(addr_next)
            m.d.comb += rp.addr.eq(Mux(move, addr_next, addr))
            column = [rp.data[r * gb:(r + 1) * gb] for r in range(kh - 1)]
            m.d.comb += [wp.addr.eq(addr), wp.en.eq(move),
                         wp.data.eq(Cat(*column[1:], new))]
        column.append(new)

        # -- the window: kh rows of kw * C codes, one piece shifted in per step --------
        row_bits = kw * c * b
        win = Signal(kh * row_bits, name="shift")
        win_next = Cat(*(Cat(win[r * row_bits + gb:(r + 1) * row_bits], column[r])
                         if row_bits > gb else column[r] for r in range(kh)))
        with m.If(move):
            m.d.sync += win.eq(win_next)

        # -- the output register ------------------------------------------------------
        o_taps = Signal(s.taps * b, name="o_taps")
        o_pad = Signal(s.taps, name="o_pad")
        m.d.comb += [self.o.payload.taps.eq(o_taps), self.o.payload.pad.eq(o_pad)]
        pad_bits = []
        if s.has_padding:
            # tap row dy of the window completed at scan row y is padded row
            # y - (kh - 1) + dy; outside [ph, ph + H) it is padding (likewise columns)
            def outside(v, limit, k, pad, size, d):
                lo, hi = pad + k - 1 - d, pad + size + k - 1 - d
                terms = ([v < lo] if lo > 0 else []) + ([v >= hi] if hi < limit else [])
                if not terms:
                    return Const(0)
                return terms[0] if len(terms) == 1 else terms[0] | terms[1]
            row_pad = [outside(y, rows, kh, ph, h, dy) for dy in range(kh)]
            col_pad = [outside(x, cols, kw, pw, w, dx) for dx in range(kw)]
            for dy in range(kh):
                for dx in range(kw):
                    pad_bits += [row_pad[dy] | col_pad[dx]] * c
        with m.If(move & corner):
            m.d.sync += [o_taps.eq(win_next), o_valid.eq(1)]
            if pad_bits:
                m.d.sync += o_pad.eq(Cat(*pad_bits))
        with m.Elif(self.o.ready):
            m.d.sync += o_valid.eq(0)
        return m
