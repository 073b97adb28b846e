"""One runtime-weight MAC lane: a product unit and its accumulator.

This is the unit the cost comparison synthesizes (uniform vs PoT vs APoT vs table, beside
a lane built on a plain ``*``). PoT and APoT lanes put the weight's sign into the
accumulator's add/subtract instead of negating the product: a one's complement term and
the sign as the adder's carry-in.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, ResetSignal, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .product import (ApotProduct, PotProduct, TableProduct, UniformProduct, _check_bool,
    _check_width, apot_max_exps)

__all__ = ["MacLane", "SCHEMES", "CONTROLS", "pot_max_exp", "apot_levels", "apot_max_exps"]

SCHEMES = ("multiply", "uniform", "pot", "apot", "table")
CONTROLS = ("first", "clear", "last")


def pot_max_exp(weight_bits: int) -> int:
    """Largest exponent of the full PoT codebook of ``weight_bits``-bit codes (0,
    +-2**0 .. +-2**(2**(weight_bits-1) - 2): the quantizer's, ``gen.quant.weight_levels``)."""
    _check_width("Weight width", weight_bits)
    return max(0, 2 ** (weight_bits - 1) - 2)


def apot_levels(weight_bits: int) -> list[int]:
    """The positive levels of the full APoT codebook of ``weight_bits``-bit codes: the
    ``2**(weight_bits-1) - 1`` smallest sums of at most two powers of two (the quantizer's,
    ``gen.quant.weight_levels``)."""
    _check_width("Weight width", weight_bits)
    n = max(1, 2 ** (weight_bits - 1) - 1)
    sums = {(1 << a) + (1 << b) for a in range(64) for b in range(a)}
    return sorted(sums | {1 << e for e in range(64)})[:n]


class MacLane(wiring.Component):
    """A product unit and its accumulator: one product per cycle with ``valid``.

    Parameters
    ----------
    scheme : str
        ``"multiply"`` (a plain ``*`` on a two's complement weight: the lane a user would
        write), ``"uniform"`` (:class:`UniformProduct`), ``"pot"``, ``"apot"`` or
        ``"table"`` (needs ``table``).
    weight_bits : int
        Width of the weight *code*. PoT and APoT lanes take their unit's native encoding
        (see :attr:`weight_width`) for the full codebook of this width
        (:func:`pot_max_exp`, :func:`apot_levels`) unless ``max_exp`` is given.
    act_bits : int
        Width of the activation.
    acc_width : int
        Width of the two's complement accumulator.
    act_signed : bool
        Whether the activation is two's complement.
    table : list of list of int
        ``P[k][c]`` for the table scheme.
    control : str
        How a sum starts and ends (every control takes one product per cycle):

        ``"first"`` (default): ``valid`` with ``first`` starts a new sum with this
        product, ``acc <= (first ? 0 : acc) + P``; ``acc`` is the running sum. A
        multiplexer bit per accumulator bit in front of the adder (for a two's complement
        product it moves behind the adder, onto the adder LUT's free input: free).
        ``"clear"``: ``clear`` sets ``acc <= 0`` (it wins over ``valid``), ``valid`` adds:
        a synchronous reset, free in FPGA flip-flops, but a cycle between sums.
        ``"last"``: ``valid`` with ``last`` ends the sum: the sum including this product
        goes to ``acc`` and the running sum (a register of its own) restarts at 0 by a
        synchronous reset. No gap between sums, no multiplexer; ``acc_width`` more
        flip-flops.
    max_exp, lo_max_exp : int or None
        The PoT / APoT unit's exponents (:class:`PotProduct`, :class:`ApotProduct`).
    levels : list of int or None
        APoT only: the codebook's magnitudes, for the unit's index encoding.

    Members
    -------
    weight : In(weight_width)
    act : In(act_bits)
    valid : In(1)
    first : In(1)
        With ``control="clear"`` this port is ``clear``, with ``control="last"`` ``last``.
    acc : Out(signed(acc_width))

    Latency: 1 (``acc`` shows the product, or with ``"last"`` the finished sum, one clock
    after ``valid``).
    """

    latency = 1

    def __init__(self, *, scheme: str, weight_bits: int, act_bits: int, acc_width: int,
                 act_signed: bool = False, table=None, control: str = "first",
                 max_exp: int | None = None, lo_max_exp: int | None = None,
                 levels=None) -> None:
        if not isinstance(scheme, str):
            raise TypeError(f"Scheme must be a string, not {scheme!r}")
        if scheme not in SCHEMES:
            raise ValueError(f"Scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")
        _check_width("Weight width", weight_bits)
        _check_width("Activation width", act_bits)
        _check_width("Accumulator width", acc_width)
        _check_bool("act_signed", act_signed)
        if not isinstance(control, str):
            raise TypeError(f"Control must be a string, not {control!r}")
        if control not in CONTROLS:
            raise ValueError(f"Control must be one of {', '.join(map(repr, CONTROLS))}, "
                             f"not {control!r}")
        if (max_exp is not None or lo_max_exp is not None) and scheme not in ("pot", "apot"):
            raise ValueError(f"Exponents are for the pot and apot schemes, not {scheme!r}")
        if levels is not None and scheme != "apot":
            raise ValueError(f"Levels are for the apot scheme, not {scheme!r}")
        self._control = control
        self._scheme = scheme
        if scheme in ("multiply", "uniform"):
            self.unit = UniformProduct(weight_bits=weight_bits, act_bits=act_bits,
                                       act_signed=act_signed)
        elif scheme == "pot":
            if lo_max_exp is not None:
                raise ValueError("The pot scheme has no low exponent")
            self.unit = PotProduct(
                max_exp=pot_max_exp(weight_bits) if max_exp is None else max_exp,
                act_bits=act_bits, act_signed=act_signed)
        elif scheme == "apot":
            if max_exp is None and levels is None:
                max_exp, default_lo = apot_max_exps(apot_levels(weight_bits))
                lo_max_exp = default_lo if lo_max_exp is None else lo_max_exp
            self.unit = ApotProduct(max_exp=max_exp, lo_max_exp=lo_max_exp, levels=levels,
                                    act_bits=act_bits, act_signed=act_signed)
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
        port = {"first": "first", "clear": "clear", "last": "last"}[control]
        super().__init__({
            "weight": In(self.unit.weight_bits),
            "act": In(signed(act_bits) if act_signed else unsigned(act_bits)),
            "valid": In(1),
            port: In(1),
            "acc": Out(signed(acc_width)),
        })

    @property
    def scheme(self) -> str:
        return self._scheme

    @property
    def control(self) -> str:
        return self._control

    @property
    def weight_width(self) -> int:
        """Width of the native weight encoding (ROM bits per weight)."""
        return self.unit.weight_bits

    def encode(self, value: int) -> int:
        return self.unit.encode(value)

    def elaborate(self, platform):
        m = Module()
        # (value, carry): the product is value + carry; carry is 0 or the weight's sign
        if self._scheme == "multiply":
            prod, carry = self.weight.as_signed() * self.act, None
        elif self._scheme in ("pot", "apot"):
            unit = self.unit
            m.d.comb += [unit.w.eq(self.weight), unit.a.eq(self.act)]
            prod, _, _, carry = unit.terms(m, name="term")
        else:
            m.submodules.unit = unit = self.unit
            m.d.comb += [unit.w.eq(self.weight), unit.a.eq(self.act)]
            prod, carry = unit.p, None

        def plus(base):
            return base + prod if carry is None else base + prod + carry

        if self._control == "first":
            if carry is None:
                # first ? P : acc + P: the multiplexer sits behind the adder
                nxt = Mux(self.first, prod, plus(self.acc))
            else:
                nxt = plus(Mux(self.first, 0, self.acc))
            with m.If(self.valid):
                m.d.sync += self.acc.eq(nxt)
        elif self._control == "clear":
            with m.If(self.clear):
                m.d.sync += self.acc.eq(0)
            with m.Elif(self.valid):
                m.d.sync += self.acc.eq(plus(self.acc))
        else:
            # The running sum: enable valid | rst, synchronous reset last | rst (one
            # flip-flop with enable and reset per bit; the domain reset written out so it
            # does not take the flip-flop's reset away from ``last``).
            run = Signal(signed(len(self.acc)), name="run", reset_less=True)
            nxt = Signal(signed(len(self.acc)), name="nxt")
            rst = ResetSignal()
            m.d.comb += nxt.eq(plus(run))
            with m.If(self.valid | rst):
                m.d.sync += run.eq(Mux(self.last | rst, 0, nxt))
            with m.If(self.valid & self.last):
                m.d.sync += self.acc.eq(nxt)
        return m
