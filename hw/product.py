"""Product units: one weight code times one activation, four ways.

Every unit is a :class:`~amaranth.lib.wiring.Component` with the same three ports, so a
layer takes any of them:

``w``: ``In(weight_bits)``
    the weight in the unit's *native encoding* (see each class; :meth:`encode` maps an
    integer weight value, or for :class:`TableProduct` a weight code, to it);
``a``: ``In(act_shape)``
    the activation, unsigned (a code, ``A[c] = c``) or two's complement (a decoded level);
``p``: ``Out(signed(product_width))``
    the exact product, two's complement.

All four units are combinational: ``latency == 0``. ``bounds`` is the ``(min, max)`` of
``p`` over every input, which adder trees use to size their levels exactly.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ProductUnit", "UniformProduct", "PotProduct", "ApotProduct", "TableProduct",
           "signed_width", "shape_for", "apot_max_exps"]


def signed_width(value: int) -> int:
    """Bits of the smallest two's complement type holding ``value``."""
    value = int(value)
    return (value if value >= 0 else ~value).bit_length() + 1


def shape_for(lo: int, hi: int) -> Shape:
    """The narrowest shape holding every integer in ``[lo, hi]``."""
    lo, hi = int(lo), int(hi)
    if lo >= 0:
        return unsigned(max(1, hi.bit_length()))
    return signed(max(signed_width(lo), signed_width(hi)))


def _check_width(name: str, value, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {kind}, not {value}")
    return value


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {value!r}")
    return value


def _act_shape(act_bits: int, act_signed: bool) -> Shape:
    return signed(act_bits) if act_signed else unsigned(act_bits)


def _act_range(act_bits: int, act_signed: bool) -> tuple[int, int]:
    if act_signed:
        return -(2 ** (act_bits - 1)), 2 ** (act_bits - 1) - 1
    return 0, 2**act_bits - 1


class ProductUnit(wiring.Component):
    """Base class: the shared signature and attributes (not instantiated directly)."""

    latency = 0

    def __init__(self, weight_bits: int, act_bits: int, act_signed: bool,
                 bounds: tuple[int, int]) -> None:
        self._weight_bits = weight_bits
        self._act_bits = act_bits
        self._act_signed = act_signed
        lo, hi = bounds
        self._bounds = (int(lo), int(hi))
        width = max(signed_width(lo), signed_width(hi))
        super().__init__({
            "w": In(weight_bits),
            "a": In(_act_shape(act_bits, act_signed)),
            "p": Out(signed(width)),
        })

    @property
    def weight_bits(self) -> int:
        """Width of the native weight encoding."""
        return self._weight_bits

    @property
    def act_bits(self) -> int:
        return self._act_bits

    @property
    def act_signed(self) -> bool:
        return self._act_signed

    @property
    def bounds(self) -> tuple[int, int]:
        """``(min, max)`` of the product over all inputs."""
        return self._bounds

    @property
    def product_width(self) -> int:
        return len(self.p)

    def encode(self, value: int) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def value(self, native: int) -> int:  # pragma: no cover - overridden
        """The integer weight a native encoding stands for (inverse of :meth:`encode`)."""
        raise NotImplementedError


class UniformProduct(ProductUnit):
    """``p = w * a`` with a multiplier: the baseline a user would write.

    Parameters
    ----------
    weight_bits : int
        Width of the two's complement weight.
    act_bits : int
        Width of the activation.
    act_signed : bool
        Whether the activation is two's complement (a decoded level) or an unsigned code.

    Native encoding: the weight value in two's complement, ``weight_bits`` wide.
    """

    def __init__(self, *, weight_bits: int, act_bits: int, act_signed: bool = False) -> None:
        _check_width("Weight width", weight_bits)
        _check_width("Activation width", act_bits)
        _check_bool("act_signed", act_signed)
        wlo, whi = -(2 ** (weight_bits - 1)), 2 ** (weight_bits - 1) - 1
        alo, ahi = _act_range(act_bits, act_signed)
        corners = [wlo * alo, wlo * ahi, whi * alo, whi * ahi]
        super().__init__(weight_bits, act_bits, act_signed, (min(corners), max(corners)))

    def encode(self, value: int) -> int:
        value = int(value)
        if not -(2 ** (self.weight_bits - 1)) <= value < 2 ** (self.weight_bits - 1):
            raise ValueError(f"Weight {value} does not fit a {self.weight_bits}-bit "
                             f"two's complement value")
        return value & (2**self.weight_bits - 1)

    def value(self, native: int) -> int:
        n = self.weight_bits
        return native - 2**n if native >= 2 ** (n - 1) else native

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.p.eq(self.w.as_signed() * self.a)
        return m


def ones_complement_shift(m: Module, a, exp, enable, sign, max_exp: int, name: str):
    """``+-(a << exp)`` without a negator: returns ``(term, lo, hi)`` where ``term`` is
    ``a << exp`` when ``sign`` is 0 and its one's complement ``-(a << exp) - 1`` when it is
    1; the missing ``+1`` is the caller's to add (an adder's carry-in).

    ``exp`` must not exceed ``max_exp`` while ``enable`` is high. The activation is gated
    by ``enable`` before the first shift level, where the gate folds into the level's
    multiplexer; the complement folds into the last level."""
    n = len(a)
    a_signed = a.shape().signed
    width = n + max_exp + (0 if a_signed else 1)
    x = a.as_unsigned() & enable.replicate(n)
    top = x[n - 1] if a_signed else Const(0, 1)
    cur = Cat(x, top.replicate(width - n))
    for bit in range(len(exp)):
        amount = 1 << bit
        if amount > max_exp:
            break
        cur = Mux(exp[bit], Cat(Const(0, amount), cur[:width - amount]), cur)
    term = Signal(signed(width), name=name)
    m.d.comb += term.eq(cur ^ sign.replicate(width))
    amax = 2 ** (n - 1) if a_signed else 2**n - 1
    big = amax << max_exp
    return term, -big - 1, big


def _mux4(m: Module, s0, s1, d, name: str):
    """``d[s1 s0]`` as two chained 4-input functions, ``t = s1 ? s0 : (s0 ? d1 : d0)`` and
    ``s1 ? (t ? d3 : d2) : t``: two LUT4 where a mux tree of 2:1 muxes maps to three."""
    t = Signal(name=f"{name}_t")
    o = Signal(name=f"{name}_o")
    m.d.comb += [t.eq(Mux(s1, s0, Mux(s0, d[1], d[0]))),
                 o.eq(Mux(s1, Mux(t, d[3], d[2]), t))]
    return o


def shift_by(m: Module, value, exp, max_exp: int):
    """``value << exp`` as an explicit log-depth barrel shifter (no generic ``<<`` cell)."""
    cur = value
    for bit in range(len(exp)):
        amount = 1 << bit
        if amount > max_exp:
            break
        cur = Mux(exp[bit], cur << amount, cur)
    return cur


def pot_fields(max_exp: int) -> dict[str, tuple[int, int]]:
    """Bit ranges ``(start, stop)`` of the PoT native encoding."""
    e = (max_exp + 1).bit_length()
    return {"exp": (0, e), "sign": (e, e + 1)}


class PotProduct(ProductUnit):
    """``p = +-(a << e)`` or 0: a power-of-two weight is a shift, no multiplier.

    Parameters
    ----------
    max_exp : int
        The largest exponent the codebook uses (0 allows only +-1 and 0: binary and
        ternary weights). The product, and every accumulator sized from it, is exactly
        as wide as this exponent needs.
    act_bits : int
        Width of the activation.
    act_signed : bool
        Whether the activation is two's complement.

    Native encoding (``exp_bits + 1`` bits, LSB first, ``exp_bits`` the width of
    ``max_exp + 1``): the exponent ``e`` (``0 <= e <= max_exp``), then the sign (1 means
    negative). An exponent field above ``max_exp`` means the weight 0 (:meth:`encode` uses
    all ones), so a codebook ``0, +-2**0 .. +-2**(2**k - 2)`` needs ``k + 1`` bits, as
    many as its codes.
    """

    def __init__(self, *, max_exp: int, act_bits: int, act_signed: bool = False) -> None:
        _check_width("Maximum exponent", max_exp, minimum=0)
        _check_width("Activation width", act_bits)
        _check_bool("act_signed", act_signed)
        self._max_exp = max_exp
        self._exp_bits = (max_exp + 1).bit_length()
        alo, ahi = _act_range(act_bits, act_signed)
        big = max(abs(alo), abs(ahi)) << max_exp
        super().__init__(self._exp_bits + 1, act_bits, act_signed, (-big, big))

    @property
    def exp_bits(self) -> int:
        """Width of the exponent field."""
        return self._exp_bits

    @property
    def max_exp(self) -> int:
        return self._max_exp

    def encode(self, value: int) -> int:
        value = int(value)
        if value == 0:
            return 2**self._exp_bits - 1
        mag = abs(value)
        if mag & (mag - 1) or mag.bit_length() - 1 > self.max_exp:
            raise ValueError(f"Weight {value} is not 0 or +-2**e with e <= {self.max_exp}")
        return (mag.bit_length() - 1) | ((value < 0) << self._exp_bits)

    def value(self, native: int) -> int:
        e = native & (2**self._exp_bits - 1)
        if e > self.max_exp:
            return 0
        return -(1 << e) if native >> self._exp_bits & 1 else 1 << e

    def _fields(self):
        eb = self._exp_bits
        exp, sign = self.w[:eb], self.w[eb]
        return exp, sign, exp <= self.max_exp

    def terms(self, m: Module, name: str = "pot"):
        """``(term, lo, hi, carry)`` with ``p == term + carry``: the product as a one's
        complement term plus a carry-in bit, built in ``m`` from this unit's ``w`` and
        ``a`` (for adders that take the sign as their carry instead of negating)."""
        exp, sign, nonzero = self._fields()
        term, lo, hi = ones_complement_shift(m, self.a, exp, nonzero, sign, self.max_exp,
                                             name)
        # a zero weight with the sign set is -1 + 1: still exact for any native encoding
        return term, lo, hi, sign

    def elaborate(self, platform):
        m = Module()
        exp, sign, nonzero = self._fields()
        mag = Mux(nonzero, shift_by(m, self.a, exp, self.max_exp), 0)
        m.d.comb += self.p.eq(Mux(sign, -mag, mag))
        return m


def apot_fields(max_exp: int, lo_max_exp: int) -> dict[str, tuple[int, int]]:
    """Bit ranges ``(start, stop)`` of the APoT native encoding."""
    h = max_exp.bit_length()
    lo = lo_max_exp.bit_length()
    return {"hi": (0, h), "lo_en": (h, h + 1), "lo": (h + 1, h + 1 + lo),
            "sign": (h + 1 + lo, h + 2 + lo)}


def apot_max_exps(levels) -> tuple[int, int]:
    """``(max_exp, lo_max_exp)`` of :class:`ApotProduct` for weight
    magnitudes ``levels`` (each a power of two or a sum of two)."""
    hi, lo = 0, 0
    for v in levels:
        v = abs(int(v))
        bits = [i for i in range(v.bit_length()) if v >> i & 1]
        if not bits:
            continue
        if len(bits) > 2:
            raise ValueError(f"Level {v} is not a sum of at most two powers of two")
        hi = max(hi, bits[-1])
        if len(bits) == 2:
            lo = max(lo, bits[0])
    return hi, lo


class ApotProduct(ProductUnit):
    """``p = +-((a << h) + (a << l))``, either term optional: two shifts and an add.

    The two terms are not alike: the high term's exponent ``h`` runs over
    ``1 .. max_exp``, the low term's ``l`` over ``0 .. lo_max_exp``. Every magnitude
    ``2**e1 + 2**e2`` (``e1 > e2``) is ``h = e1, l = e2``; ``2**e`` is the high term
    alone, except 1, the low term alone. A codebook of the smallest additive
    powers of two needs a short low shifter: the 4-bit one (1, 2, 3, 4, 5, 6, 8) has
    ``max_exp = 3``, ``lo_max_exp = 1``.

    Parameters
    ----------
    max_exp : int or None
        The largest exponent of the codebook (of its high terms); 0 allows only +-1 and 0.
        ``None``: the largest of ``levels``.
    lo_max_exp : int or None
        The largest exponent of a low term (below ``max_exp``, or 0 when ``max_exp`` is
        0); ``None``: that of ``levels``, or without them ``max(0, max_exp - 1)``, every
        two-term sum.
    levels : list of int or None
        The codebook's magnitudes (positive, each a power of two or a sum of two). Given,
        the native encoding is an index into them instead of the exponent fields.
    act_bits : int
        Width of the activation.
    act_signed : bool
        Whether the activation is two's complement.

    Native encoding (LSB first), without ``levels`` (see :func:`apot_fields`): ``hi``
    (``h``, 0 meaning no high term; ``max_exp.bit_length()`` bits), ``lo_en``, ``lo``
    (``l``; ``lo_max_exp.bit_length()`` bits), sign (1 means negative); a high field
    above ``max_exp`` or a low one above ``lo_max_exp`` means no such term. With
    ``levels``: an index ``k`` (``len(levels).bit_length()`` bits; 0 is the weight 0, ``k``
    the ``k``-th smallest level, past the last 0), then the sign: as many bits as the
    quantizer's codes, decoded to the fields by a small table.
    """

    def __init__(self, *, max_exp: int | None = None, lo_max_exp: int | None = None,
                 levels=None, act_bits: int, act_signed: bool = False) -> None:
        if levels is not None:
            if isinstance(levels, (str, bytes)) or not hasattr(levels, "__iter__"):
                raise TypeError(f"Levels must be a list of integers, not {levels!r}")
            levels = list(levels)
            for v in levels:
                if isinstance(v, bool) or not isinstance(v, int):
                    raise TypeError(f"Levels must be integers, not {v!r}")
                if v <= 0:
                    raise ValueError(f"Levels must be positive, not {v}")
            if not levels:
                raise ValueError("Levels must not be empty")
            if len(set(levels)) != len(levels):
                raise ValueError(f"Levels must be distinct, not {levels!r}")
            need_hi, need_lo = apot_max_exps(levels)
            if max_exp is None:
                max_exp = need_hi
            if lo_max_exp is None:
                lo_max_exp = need_lo
        elif max_exp is None:
            raise TypeError("ApotProduct needs max_exp or levels")
        _check_width("Maximum exponent", max_exp, minimum=0)
        if lo_max_exp is None:
            lo_max_exp = max(0, max_exp - 1)
        _check_width("Maximum low exponent", lo_max_exp, minimum=0)
        if levels is not None and (need_hi > max_exp or need_lo > lo_max_exp):
            raise ValueError(f"Levels need exponents up to {need_hi} and {need_lo}, "
                             f"not {max_exp} and {lo_max_exp}")
        if lo_max_exp > max(0, max_exp - 1):
            raise ValueError(f"Maximum low exponent must be below the maximum exponent "
                             f"{max_exp} (or 0), not {lo_max_exp}")
        _check_width("Activation width", act_bits)
        _check_bool("act_signed", act_signed)
        self._max_exp = max_exp
        self._lo_max_exp = lo_max_exp
        self._fields_at = apot_fields(max_exp, lo_max_exp)
        self._levels = None
        if levels is not None:
            self._levels = tuple(sorted(levels))
            self._sign_at = len(levels).bit_length()
        else:
            self._sign_at = self._fields_at["sign"][0]
        alo, ahi = _act_range(act_bits, act_signed)
        big = max(abs(alo), abs(ahi)) * self.max_magnitude
        super().__init__(self._sign_at + 1, act_bits, act_signed, (-big, big))

    @property
    def levels(self) -> tuple[int, ...] | None:
        """The magnitudes an index encoding stands for (``None``: exponent fields)."""
        return self._levels

    @property
    def max_exp(self) -> int:
        return self._max_exp

    @property
    def lo_max_exp(self) -> int:
        return self._lo_max_exp

    @property
    def max_magnitude(self) -> int:
        """The largest weight magnitude the encoding can express."""
        if self._levels is not None:
            return max(self._levels)
        if self._max_exp == 0:
            return 1
        return 2**self._max_exp + 2**self._lo_max_exp

    def _field(self, native: int, key: str) -> int:
        start, stop = self._fields_at[key]
        return native >> start & (2 ** (stop - start) - 1)

    def _split(self, mag: int) -> tuple[int, int | None]:
        """``(h, l)`` of a magnitude: ``h`` 0 for no high term, ``l`` ``None`` for none."""
        bits = [i for i in range(mag.bit_length()) if mag >> i & 1]
        if len(bits) == 1:
            return (bits[0], None) if bits[0] > 0 else (0, 0)
        return (bits[1], bits[0]) if len(bits) == 2 else (0, None)

    def encode(self, value: int) -> int:
        value = int(value)
        mag = abs(value)
        if self._levels is not None:
            if mag and mag not in self._levels:
                raise ValueError(f"Weight {value} is not 0 or +-one of the levels "
                                 f"{list(self._levels)}")
            index = self._levels.index(mag) + 1 if mag else 0
            return index | ((value < 0) << self._sign_at)
        bits = [i for i in range(mag.bit_length()) if mag >> i & 1]
        if len(bits) == 1 and bits[0] > 0:
            h, low = bits[0], None
        elif len(bits) == 1:
            h, low = 0, 0
        elif len(bits) == 2:
            h, low = bits[1], bits[0]
        else:
            h, low = 0, None
        if len(bits) > 2 or h > self._max_exp or (low is not None and low > self._lo_max_exp):
            raise ValueError(f"Weight {value} is not 0, +-2**e or +-(2**e1 + 2**e2) with "
                             f"e1 <= {self._max_exp} and e2 <= {self._lo_max_exp}")
        f = self._fields_at
        native = h << f["hi"][0]
        if low is not None:
            native |= (1 << f["lo_en"][0]) | (low << f["lo"][0])
        return native | ((value < 0) << f["sign"][0])

    def value(self, native: int) -> int:
        if self._levels is not None:
            index = native & (2**self._sign_at - 1)
            mag = self._levels[index - 1] if 1 <= index <= len(self._levels) else 0
            return -mag if native >> self._sign_at & 1 else mag
        h = self._field(native, "hi")
        low = self._field(native, "lo")
        mag = (1 << h) if 1 <= h <= self._max_exp else 0
        if self._field(native, "lo_en") and low <= self._lo_max_exp:
            mag += 1 << low
        return -mag if self._field(native, "sign") else mag

    def _decode(self, m: Module, name: str):
        """``(h, lo_en, lo)``: the exponent fields, from the native weight."""
        f = self._fields_at
        w = self.w
        if self._levels is None:
            return w[f["hi"][0]:f["hi"][1]], w[f["lo_en"][0]], w[f["lo"][0]:f["lo"][1]]
        h = Signal(f["hi"][1] - f["hi"][0], name=f"{name}_h")
        lo_en = Signal(name=f"{name}_lo_en")
        lo = Signal(f["lo"][1] - f["lo"][0], name=f"{name}_lo")
        with m.Switch(w[:self._sign_at]):
            for k, v in enumerate(self._levels, 1):
                hk, lk = self._split(v)
                with m.Case(k):
                    m.d.comb += h.eq(hk)
                    if lk is not None:
                        m.d.comb += [lo_en.eq(1), lo.eq(lk)]
        return h, lo_en, lo

    def _pair(self, m: Module, name: str):
        """``(pair, lo, hi)``: ``(a << h) + (a << l)`` with absent terms 0, and its bounds."""
        a = self.a
        n = len(a)
        a_signed = self.act_signed
        alo, ahi = _act_range(self.act_bits, a_signed)
        top = a[n - 1] if a_signed else Const(0, 1)
        h, lo_en, lo_f = self._decode(m, name)
        th = Signal(shape_for(min(alo, 0) << self._max_exp, ahi << self._max_exp),
                    name=f"{name}_th")
        if len(h) == 0:
            m.d.comb += th.eq(0)
        elif len(h) <= 2:
            # each bit one 4:1 mux (two LUT4) over a[j-1], a[j-2], a[j-3]; code 0 picks 0
            def cand(j, v):
                if not 1 <= v <= self._max_exp or j - v < 0:
                    return Const(0, 1)
                return a[j - v] if j - v < n else top

            h1 = h[1] if len(h) > 1 else Const(0, 1)
            m.d.comb += th.eq(Cat(*(_mux4(m, h[0], h1, [cand(j, v) for v in range(4)],
                                          f"{name}_hi{j}")
                                    for j in range(len(th)))))
        else:
            en = h != 0
            if self._max_exp < 2 ** len(h) - 1:
                en = en & (h <= self._max_exp)
            x = Signal(a.shape(), name=f"{name}_hi_x")
            m.d.comb += x.eq(a & en.replicate(n))
            m.d.comb += th.eq(shift_by(m, x, h, self._max_exp))
        if self._lo_max_exp < 2 ** len(lo_f) - 1:
            lo_en = lo_en & (lo_f <= self._lo_max_exp)
        tl = Signal(shape_for(min(alo, 0) << self._lo_max_exp, ahi << self._lo_max_exp),
                    name=f"{name}_tl")
        x = Signal(a.shape(), name=f"{name}_lo_x")
        m.d.comb += x.eq(a & lo_en.replicate(n))
        m.d.comb += tl.eq(shift_by(m, x, lo_f, self._lo_max_exp) if len(lo_f) else x)
        mags = self.max_magnitude
        plo, phi = min(alo * mags, 0), max(ahi * mags, 0)
        pair = Signal(shape_for(plo, phi), name=f"{name}_pair")
        m.d.comb += pair.eq(th + tl)
        return pair, plo, phi

    def terms(self, m: Module, name: str = "apot"):
        """``(term, lo, hi, carry)`` with ``p == term + carry``; see
        :meth:`PotProduct.terms`. The two shifted terms are added as magnitudes and the
        sum complemented by the sign: on iCE40 that XOR lands on the free input of the
        pair adder's LUTs and costs nothing."""
        sign = self.w[self._sign_at]
        pair, plo, phi = self._pair(m, name)
        lo, hi = min(plo, -phi - 1), max(phi, -plo - 1)
        shape = shape_for(lo, hi)
        ext = Signal(shape, name=f"{name}_ext")
        term = Signal(shape, name=f"{name}_term")
        m.d.comb += [ext.eq(pair), term.eq(ext ^ sign.replicate(shape.width))]
        return term, lo, hi, sign

    def elaborate(self, platform):
        m = Module()
        sign = self.w[self._sign_at]
        pair, _, _ = self._pair(m, "apot")
        m.d.comb += self.p.eq(Mux(sign, -pair, pair))
        return m


class TableProduct(ProductUnit):
    """``p = P[w][a]`` from a constant table indexed by ``{w, a}``: the product need not
    be a product at all (table-based units). Small tables become LUT logic.

    Parameters
    ----------
    table : list of list of int
        ``P[k][c]``: one row per weight code, one column per activation code.

    Native encoding: the weight code itself, ``ceil(log2(rows))`` bits (at least 1). The
    activation is the unsigned code, ``ceil(log2(columns))`` bits (at least 1). Codes
    past the table's end read 0.
    """

    def __init__(self, *, table) -> None:
        if isinstance(table, (str, bytes)) or not hasattr(table, "__len__"):
            raise TypeError(f"Table must be a list of lists of integers, not {table!r}")
        rows = [list(r) for r in table]
        if not rows or not rows[0]:
            raise ValueError("Table must have at least one row and one column")
        if any(len(r) != len(rows[0]) for r in rows):
            raise ValueError("Table rows must all have the same length")
        for r in rows:
            for v in r:
                if isinstance(v, bool) or not isinstance(v, int):
                    try:
                        if int(v) != v:
                            raise TypeError
                    except (TypeError, ValueError):
                        raise TypeError(f"Table entries must be integers, not {v!r}") from None
        self._table = tuple(tuple(int(v) for v in r) for r in rows)
        n_w, n_a = len(rows), len(rows[0])
        wb = max(1, (n_w - 1).bit_length())
        ab = max(1, (n_a - 1).bit_length())
        flat = [v for r in self._table for v in r]
        lo, hi = min(flat), max(flat)
        if 2**wb > n_w or 2**ab > n_a:
            lo, hi = min(lo, 0), max(hi, 0)
        super().__init__(wb, ab, False, (lo, hi))

    @property
    def table(self) -> tuple[tuple[int, ...], ...]:
        return self._table

    def encode(self, value: int) -> int:
        """For a table unit the 'value' is the weight code (row index)."""
        value = int(value)
        if not 0 <= value < len(self._table):
            raise ValueError(f"Weight code {value} is outside the table's "
                             f"{len(self._table)} rows")
        return value

    def value(self, native: int) -> int:
        return native

    def elaborate(self, platform):
        m = Module()
        n_a = 2**self.act_bits
        entries = []
        for k in range(2**self.weight_bits):
            for c in range(n_a):
                ok = k < len(self._table) and c < len(self._table[0])
                entries.append(self._table[k][c] if ok else 0)
        width = len(self.p)
        # the most common entry is the switch's default, so every path assigns ``p``
        common = max(sorted(set(entries)), key=entries.count)
        with m.Switch(Cat(self.a, self.w)):
            for idx, v in enumerate(entries):
                if v != common:
                    with m.Case(idx):
                        m.d.comb += self.p.eq(Const(v, signed(width)))
            with m.Default():
                m.d.comb += self.p.eq(Const(common, signed(width)))
        return m
