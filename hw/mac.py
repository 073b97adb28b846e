"""One runtime-weight MAC lane: a product unit and its accumulator.

This is the unit the cost comparison synthesizes (uniform vs PoT vs APoT vs table, beside
a lane built on a plain ``*``). PoT and APoT lanes put the weight's sign into the
accumulator's add/subtract instead of negating the product.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, signed, unsigned
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
    """``acc <= (first ? 0 : acc) + P(weight, act)`` on every cycle with ``valid``
    (or, with ``control="clear"``, ``acc <= 0`` on ``clear`` and ``acc += P`` on ``valid``).

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
    control : str
        ``"first"`` (default): ``valid`` with ``first`` starts a new sum with this product,
        ``acc <= (first ? 0 : acc) + P``. ``"clear"``: a ``clear`` port instead of
        ``first``; ``clear`` sets ``acc <= 0`` (it wins over ``valid``), ``valid`` adds.
        The clear lane needs one more cycle per sum but no multiplexer in front of the
        accumulator (a synchronous reset is free in FPGA flip-flops).

    Members
    -------
    weight : In(weight_width)
    act : In(act_bits)
    valid : In(1)
    first : In(1)
        Start a new sum (the accumulator is overwritten, not added to); with
        ``control="clear"`` this port is ``clear`` instead.
    acc : Out(signed(acc_width))

    Latency: 1 (``acc`` shows the product one clock after ``valid``).
    """

    latency = 1

    def __init__(self, *, scheme: str, weight_bits: int, act_bits: int, acc_width: int,
                 act_signed: bool = False, table=None, control: str = "first") -> None:
        if not isinstance(scheme, str):
            raise TypeError(f"Scheme must be a string, not {scheme!r}")
        if scheme not in SCHEMES:
            raise ValueError(f"Scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")
        _check_width("Weight width", weight_bits)
        _check_width("Activation width", act_bits)
        _check_width("Accumulator width", acc_width)
        _check_bool("act_signed", act_signed)
        if control not in ("first", "clear"):
            raise ValueError(f"Control must be 'first' or 'clear', not {control!r}")
        self._control = control
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
            ("first" if control == "first" else "clear"): In(1),
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
        if self._control == "first":
            base = Mux(self.first, 0, self.acc)
        else:
            base = self.acc
        if self._scheme == "multiply":
            nxt = base + self.weight.as_signed() * self.act
        elif self._scheme in ("pot", "apot"):
            nxt = self._shift_add(m, base)
        else:
            m.submodules.unit = unit = self.unit
            m.d.comb += [unit.w.eq(self.weight), unit.a.eq(self.act)]
            nxt = base + unit.p
        if self._control == "first":
            with m.If(self.valid):
                m.d.sync += self.acc.eq(nxt)
        else:
            with m.If(self.clear):
                m.d.sync += self.acc.eq(0)
            with m.Elif(self.valid):
                m.d.sync += self.acc.eq(nxt)
        return m

    def _shift_add(self, m: Module, base):
        """``base +- (a << e)`` (PoT) or ``base +- ((a << e1) + (a << e2))`` (APoT) with no
        negator: one's complement terms plus the sign as carry-in."""
        unit = self.unit
        m.d.comb += [unit.w.eq(self.weight), unit.a.eq(self.act)]
        term, _, _, carry = unit.terms(m, name="term")
        return base + term + carry
