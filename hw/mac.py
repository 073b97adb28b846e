"""One runtime-weight MAC lane: a product unit and its accumulator.

This is the unit the cost comparison synthesizes (uniform vs PoT vs APoT vs table, beside
a lane built on a plain ``*``). PoT and APoT lanes put the weight's sign into the
accumulator's add/subtract instead of negating the product.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .product import (ApotProduct, PotProduct, TableProduct, UniformProduct, _check_bool,
                      _check_width)

__all__ = ["MacLane", "SCHEMES", "pot_exp_bits", "apot_exp_bits"]

SCHEMES = ("multiply", "uniform", "pot", "apot", "table")


def pot_exp_bits(weight_bits: int) -> int:
    """Exponent width for a full PoT codebook of ``weight_bits``-bit codes (0, +-2**e:
    half the codes negative, so exponents up to ``2**(weight_bits-1) - 1``)."""
    return max(0, (2 ** (weight_bits - 1) - 1).bit_length())


def apot_exp_bits(weight_bits: int) -> int:
    """Exponent width for the ``2**(weight_bits-1) - 1`` smallest APoT magnitudes."""
    levels = sorted({2**a + 2**b for a in range(weight_bits + 1) for b in range(a)} |
                    {2**a for a in range(weight_bits + 1)})[: max(1, 2 ** (weight_bits - 1) - 1)]
    return max(0, (max(levels).bit_length() - 1).bit_length())


class MacLane(wiring.Component):
    """``acc <= (first ? 0 : acc) + P(weight, act)`` on every cycle with ``valid``.

    Parameters
    ----------
    scheme : str
        ``"multiply"`` (a plain ``*`` on a two's complement weight: the lane a user would
        write), ``"uniform"`` (:class:`UniformProduct`), ``"pot"``, ``"apot"`` or
        ``"table"`` (needs ``table``).
    weight_bits : int
        Width of the weight *code*; PoT and APoT lanes take their native encoding, which
        is wider (see :attr:`weight_width`).
    act_bits : int
        Width of the activation.
    acc_width : int
        Width of the two's complement accumulator.
    act_signed : bool
        Whether the activation is two's complement.
    table : list of list of int
        ``P[k][c]`` for the table scheme.

    Members
    -------
    weight : In(weight_width)
    act : In(act_bits)
    valid : In(1)
    first : In(1)
        Start a new sum (the accumulator is overwritten, not added to).
    acc : Out(signed(acc_width))

    Latency: 1 (``acc`` shows the product one clock after ``valid``).
    """

    latency = 1

    def __init__(self, *, scheme: str, weight_bits: int, act_bits: int, acc_width: int,
                 act_signed: bool = False, table=None) -> None:
        if not isinstance(scheme, str):
            raise TypeError(f"Scheme must be a string, not {scheme!r}")
        if scheme not in SCHEMES:
            raise ValueError(f"Scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")
        _check_width("Weight width", weight_bits)
        _check_width("Activation width", act_bits)
        _check_width("Accumulator width", acc_width)
        _check_bool("act_signed", act_signed)
        self._scheme = scheme
        if scheme in ("multiply", "uniform"):
            self.unit = UniformProduct(weight_bits=weight_bits, act_bits=act_bits,
                                       act_signed=act_signed)
        elif scheme == "pot":
            self.unit = PotProduct(exp_bits=pot_exp_bits(weight_bits), act_bits=act_bits,
                                   act_signed=act_signed)
        elif scheme == "apot":
            self.unit = ApotProduct(exp_bits=apot_exp_bits(weight_bits), act_bits=act_bits,
                                    act_signed=act_signed)
        else:
            if table is None:
                raise ValueError("The table scheme needs a table")
            self.unit = TableProduct(table=table)
            if self.unit.act_bits != act_bits:
                raise ValueError(f"Table has {len(table[0])} columns, which does not match "
                                 f"{act_bits}-bit activations")
        if scheme in ("multiply", "pot", "apot"):
            # Used as a description only (encoding, widths); its logic is built inline.
            self.unit._MustUse__used = True
        super().__init__({
            "weight": In(self.unit.weight_bits),
            "act": In(signed(act_bits) if act_signed else unsigned(act_bits)),
            "valid": In(1),
            "first": In(1),
            "acc": Out(signed(acc_width)),
        })

    @property
    def scheme(self) -> str:
        return self._scheme

    @property
    def weight_width(self) -> int:
        return self.unit.weight_bits

    def encode(self, value: int) -> int:
        return self.unit.encode(value)

    def elaborate(self, platform):
        m = Module()
        base = Mux(self.first, 0, self.acc)
        if self._scheme == "multiply":
            nxt = base + self.weight.as_signed() * self.act
        elif self._scheme in ("pot", "apot"):
            nxt = self._shift_add(m, base)
        else:
            m.submodules.unit = unit = self.unit
            m.d.comb += [unit.w.eq(self.weight), unit.a.eq(self.act)]
            nxt = base + unit.p
        with m.If(self.valid):
            m.d.sync += self.acc.eq(nxt)
        return m

    def _shift_add(self, m: Module, base):
        """``base +- shifted`` with the sign folded into the shifter: the activation is
        complemented and the shifter fills with the sign bit, which gives the one's
        complement of ``a << e``; the ``+1`` rides in as the adder's carry."""
        unit, w = self.unit, self.weight
        e = unit.exp_bits
        width = len(self.acc)
        if self._scheme == "pot":
            sign, zero = w[e], w[e + 1]
            terms = [(w[:e], ~zero)]
        else:
            sign = w[2 * e + 2]
            terms = [(w[:e], w[2 * e]), (w[e:2 * e], w[2 * e + 1])]
        total = 0
        carry = 0
        for exp, en in terms:
            x = self.act.as_unsigned() ^ sign.replicate(len(self.act))
            ext = Signal(signed(width), name="ones")
            m.d.comb += ext.eq(_fill_shift(m, x, exp, unit.max_exp, sign, unit.act_signed,
                                           width))
            if en is None:
                total, carry = total + ext, carry + sign
            else:
                total, carry = total + Mux(en, ext, 0), carry + (sign & en)
        return base + total + carry


def _fill_shift(m: Module, x, exp, max_exp: int, fill, x_signed: bool, width: int):
    """``x << exp`` where the bits shifted in are ``fill``, sign-extended (``x_signed``) or
    ``fill``-extended to ``width`` bits."""
    top = x[len(x) - 1] if x_signed else fill
    cur = Cat(x, top.replicate(max(0, width - len(x))))[:width]
    for bit in range(len(exp)):
        amount = 1 << bit
        if amount > max_exp:
            break
        shifted = Cat(fill.replicate(amount), cur[:width - amount])
        cur = Mux(exp[bit], shifted, cur)
    return cur
