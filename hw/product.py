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
           "signed_width", "shape_for"]


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

    The activation is gated by ``enable`` before the first shift level, where the gate
    folds into the level's multiplexer; the complement folds into the last level."""
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


def pot_fields(exp_bits: int) -> dict[str, tuple[int, int]]:
    """Bit ranges ``(start, stop)`` of the PoT native encoding."""
    return {"exp": (0, exp_bits), "sign": (exp_bits, exp_bits + 1),
            "zero": (exp_bits + 1, exp_bits + 2)}


def shift_by(m: Module, value, exp, max_exp: int):
    """``value << exp`` as an explicit log-depth barrel shifter (no generic ``<<`` cell)."""
    cur = value
    for bit in range(len(exp)):
        amount = 1 << bit
        if amount > max_exp:
            break
        cur = Mux(exp[bit], cur << amount, cur)
    return cur


class PotProduct(ProductUnit):
    """``p = +-(a << e)`` or 0: a power-of-two weight is a shift, no multiplier.

    Parameters
    ----------
    exp_bits : int
        Width of the exponent field (0 allows only +-1 and 0: binary and ternary weights).
    act_bits : int
        Width of the activation.
    act_signed : bool
        Whether the activation is two's complement.

    Native encoding (``exp_bits + 2`` bits, LSB first): exponent ``e``, sign (1 means
    negative), zero (1 means the weight is 0).
    """

    def __init__(self, *, exp_bits: int, act_bits: int, act_signed: bool = False) -> None:
        _check_width("Exponent width", exp_bits, minimum=0)
        _check_width("Activation width", act_bits)
        _check_bool("act_signed", act_signed)
        self._exp_bits = exp_bits
        alo, ahi = _act_range(act_bits, act_signed)
        big = max(abs(alo), abs(ahi)) << self.max_exp
        super().__init__(exp_bits + 2, act_bits, act_signed, (-big, big))

    @property
    def exp_bits(self) -> int:
        return self._exp_bits

    @property
    def max_exp(self) -> int:
        return 2**self._exp_bits - 1

    def encode(self, value: int) -> int:
        value = int(value)
        if value == 0:
            return 1 << (self._exp_bits + 1)
        mag = abs(value)
        if mag & (mag - 1) or mag.bit_length() - 1 > self.max_exp:
            raise ValueError(f"Weight {value} is not 0 or +-2**e with e <= {self.max_exp}")
        return (mag.bit_length() - 1) | ((value < 0) << self._exp_bits)

    def value(self, native: int) -> int:
        if native >> (self._exp_bits + 1) & 1:
            return 0
        e = native & (2**self._exp_bits - 1)
        return -(1 << e) if native >> self._exp_bits & 1 else 1 << e

    def magnitude(self, m: Module):
        """``(magnitude, negate)``: the shifted activation (zero-gated) and the sign bit;
        shared with :class:`~mulfree.hw.mac.MacLane`, which adds or subtracts instead of
        negating."""
        eb = self._exp_bits
        exp, sign, zero = self.w[:eb], self.w[eb], self.w[eb + 1]
        shifted = shift_by(m, self.a, exp, self.max_exp)
        mag = Mux(zero, 0, shifted)
        return mag, sign

    def terms(self, m: Module, name: str = "pot"):
        """``(term, lo, hi, carry)`` with ``p == term + carry``: the product as a one's
        complement term plus a carry-in bit, built in ``m`` from this unit's ``w`` and
        ``a`` (for adders that take the sign as their carry instead of negating)."""
        eb = self._exp_bits
        exp, sign, zero = self.w[:eb], self.w[eb], self.w[eb + 1]
        term, lo, hi = ones_complement_shift(m, self.a, exp, ~zero, sign, self.max_exp, name)
        # a zero weight with the sign set is -1 + 1: still exact for any native encoding
        return term, lo, hi, sign

    def elaborate(self, platform):
        m = Module()
        mag, neg = self.magnitude(m)
        m.d.comb += self.p.eq(Mux(neg, -mag, mag))
        return m


def apot_fields(exp_bits: int) -> dict[str, tuple[int, int]]:
    e = exp_bits
    return {"e1": (0, e), "e2": (e, 2 * e), "en1": (2 * e, 2 * e + 1),
            "en2": (2 * e + 1, 2 * e + 2), "sign": (2 * e + 2, 2 * e + 3)}


class ApotProduct(ProductUnit):
    """``p = +-((a << e1) + (a << e2))``, either term optional: two shifts and an add.

    Parameters
    ----------
    exp_bits : int
        Width of each exponent field.
    act_bits : int
        Width of the activation.
    act_signed : bool
        Whether the activation is two's complement.

    Native encoding (``2 * exp_bits + 3`` bits, LSB first): ``e1``, ``e2``, ``en1``,
    ``en2`` (term enables), sign (1 means negative). Zero is both enables clear.
    """

    def __init__(self, *, exp_bits: int, act_bits: int, act_signed: bool = False) -> None:
        _check_width("Exponent width", exp_bits, minimum=0)
        _check_width("Activation width", act_bits)
        _check_bool("act_signed", act_signed)
        self._exp_bits = exp_bits
        alo, ahi = _act_range(act_bits, act_signed)
        big = max(abs(alo), abs(ahi)) * 2 * (2**self.max_exp)
        super().__init__(2 * exp_bits + 3, act_bits, act_signed, (-big, big))

    @property
    def exp_bits(self) -> int:
        return self._exp_bits

    @property
    def max_exp(self) -> int:
        return 2**self._exp_bits - 1

    def encode(self, value: int) -> int:
        value = int(value)
        e = self._exp_bits
        if value == 0:
            return 0
        mag = abs(value)
        bits = [i for i in range(mag.bit_length()) if mag >> i & 1]
        if len(bits) > 2 or bits[-1] > self.max_exp:
            raise ValueError(f"Weight {value} is not 0, +-2**e1 or +-(2**e1 + 2**e2) with "
                             f"exponents <= {self.max_exp}")
        native = bits[0] | (1 << (2 * e))
        if len(bits) == 2:
            native |= (bits[1] << e) | (1 << (2 * e + 1))
        return native | ((value < 0) << (2 * e + 2))

    def value(self, native: int) -> int:
        e = self._exp_bits
        mask = 2**e - 1
        mag = ((native >> (2 * e) & 1) << (native & mask)) + \
              ((native >> (2 * e + 1) & 1) << (native >> e & mask))
        return -mag if native >> (2 * e + 2) & 1 else mag

    def magnitude(self, m: Module):
        """``(magnitude, negate)``; see :meth:`PotProduct.magnitude`."""
        e = self._exp_bits
        w = self.w
        t1 = Mux(w[2 * e], shift_by(m, self.a, w[:e], self.max_exp), 0)
        t2 = Mux(w[2 * e + 1], shift_by(m, self.a, w[e:2 * e], self.max_exp), 0)
        return t1 + t2, w[2 * e + 2]

    def terms(self, m: Module, name: str = "apot"):
        """``(term, lo, hi, carry)`` with ``p == term + carry``; see
        :meth:`PotProduct.terms`. The two shifted terms are one's complements when the
        sign is set; one ``+1`` rides into their adder, the other is returned."""
        e = self._exp_bits
        w = self.w
        sign = w[2 * e + 2]
        t1, lo1, hi1 = ones_complement_shift(m, self.a, w[:e], w[2 * e], sign, self.max_exp,
                                             f"{name}_t1")
        t2, lo2, hi2 = ones_complement_shift(m, self.a, w[e:2 * e], w[2 * e + 1], sign,
                                             self.max_exp, f"{name}_t2")
        lo, hi = lo1 + lo2, hi1 + hi2 + 1
        pair = Signal(shape_for(lo, hi), name=f"{name}_pair", attrs={"keep": 1})
        m.d.comb += pair.eq(t1 + t2 + sign)
        return pair, lo, hi, sign

    def elaborate(self, platform):
        m = Module()
        mag, neg = self.magnitude(m)
        m.d.comb += self.p.eq(Mux(neg, -mag, mag))
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
