"""Analytic resource estimates for the points of ``mulfree compare``.

An estimate counts the *structure* a design needs, from its parameters alone, in four
kinds of bit-level primitive, then prices each kind per target:

``adder``
    one bit of a two-operand adder or subtractor (a carry-chain bit);
``mux``
    one 2:1 multiplexer bit (a barrel-shifter stage; the accumulator's "first" clear);
``xor``
    one XOR bit (a one's complement by the weight's sign);
``gate``
    one AND of two bits (zero gating);
``pp``
    one partial-product bit of a multiplier (``wbits * abits`` of them);
``rom``
    one output bit of a table over ``n`` index bits counts ``2**(n-4)`` (LUT4 leaves).

The prices (LUT4 per primitive on iCE40 and ECP5, two-input gates in the generic flow)
are round numbers set by hand from a few measured designs (the 8 x 4-bit product unit,
the 16-term adder tree, the 4-bit uniform lane) and then kept fixed; they are not
least-squares fitted to a sweep, so the error column in the report tests the model. On
ECP5 the estimate is of ``logic`` = LUT4 + 2 x CCU2C (adders live in CCU2C carry cells,
which Yosys's stat does not count as LUT4).
"""

from __future__ import annotations

from functools import lru_cache

from mulfree.hw.compute import csd_digits
from mulfree.hw.mac import apot_levels, apot_max_exps, pot_max_exp

from .designs import ACC_TERMS, codebook, baked_weights, signed_terms

__all__ = ["PRICES", "primitives", "estimate_lut", "adder_tree_bits"]

PRICES: dict[str, dict[str, float]] = {
    # iCE40: an adder bit is one LUT4 beside its SB_CARRY; a mux or xor bit one LUT4; a
    # two-input gate mostly merges into a neighbouring LUT; Yosys's multiplier about 2.2
    # LUT4 per partial product (measured: 8 x 4-bit product unit 70, 8 x 8 177).
    "ice40": {"adder": 1.0, "mux": 1.0, "xor": 1.0, "gate": 0.25, "pp": 2.2, "rom": 1.3},
    # ECP5 (``logic`` = LUT4 + 2 x CCU2C): an adder bit is half a CCU2C; muxes and
    # multipliers as LUT4 (Yosys's ECP5 multiplier mapping is larger than iCE40's).
    "ecp5": {"adder": 1.0, "mux": 1.0, "xor": 1.0, "gate": 0.25, "pp": 3.0, "rom": 1.3},
    # generic: a ripple adder bit is about 4 gates (XOR, XNOR/MUX mixes); a mux one MUX
    # cell; a partial-product bit an AND plus its share of the adder array.
    "generic": {"adder": 4.3, "mux": 1.0, "xor": 1.0, "gate": 1.0, "pp": 6.0, "rom": 6.0},
}


def _signed_width(lo: int, hi: int) -> int:
    w = 1
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w


def adder_tree_bits(bounds: list[tuple[int, ...]]) -> int:
    """Adder bits of a balanced pairwise tree over unsigned terms ``(lo, hi)`` or
    ``(lo, hi, tz)`` (``tz``: bits known to be zero at the bottom, as in a shifted
    activation), each node exactly as wide as its sum's bounds, paired in order like the
    hardware does. Bits below the higher of the two operands' zero bits are wiring."""
    level = [(b[0], b[1], b[2] if len(b) > 2 else 0) for b in bounds]
    bits = 0
    while len(level) > 1:
        nxt = []
        for n in range(0, len(level) - 1, 2):
            (alo, ahi, at), (blo, bhi, bt) = level[n], level[n + 1]
            lo, hi = alo + blo, ahi + bhi
            width = _signed_width(lo, hi) - (1 if lo >= 0 else 0)
            bits += max(0, width - max(at, bt))
            nxt.append((lo, hi, min(at, bt)))
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return bits


def _shifter_mux_bits(abits: int, max_exp: int) -> int:
    """2:1 multiplexer bits of a log-depth shifter of ``abits`` bits by 0 .. ``max_exp``."""
    bits, width = 0, abits
    for s in range(max(1, max_exp.bit_length())):
        amount = 1 << s
        if amount > max_exp:
            break
        width += amount
        bits += width - amount        # the low `amount` bits are a gate, not a mux
    return bits


@lru_cache(maxsize=None)
def primitives(mode: str, scheme: str, wbits: int, abits: int) -> dict[str, float]:
    """The primitive counts of one design (see the module docstring)."""
    p = {"adder": 0.0, "mux": 0.0, "xor": 0.0, "gate": 0.0, "pp": 0.0, "rom": 0.0}
    amax = 2**abits - 1
    if mode == "tables":
        raise ValueError("no estimate for truth tables (Yosys and ABC minimize them)")
    if mode == "runtime":
        if scheme == "uniform":
            lo, hi = -(2 ** (wbits - 1)) * amax, (2 ** (wbits - 1) - 1) * amax
            p["pp"] = wbits * abits
        elif scheme in ("pot", "binary", "ternary"):
            # Zero gate, barrel shifter over the codebook's exponents, one's complement by
            # the sign (the +1 is the accumulator adder's carry-in).
            e = pot_max_exp(wbits) if scheme == "pot" else 0
            big = amax << e
            lo, hi = -big, big
            p["mux"] += _shifter_mux_bits(abits, e)
            p["gate"] += abits if scheme != "binary" else 0
            p["xor"] += _signed_width(-big, big)
        elif scheme == "apot":
            # High and low shifters (1 .. e1 and 0 .. e2), their sum; the sign's XOR sits
            # on the free input of the sum's adder LUTs (free).
            levels = apot_levels(wbits)
            e1, e2 = apot_max_exps(levels)
            big = amax * max(levels)
            lo, hi = -big, big
            p["mux"] += _shifter_mux_bits(abits, e1) + _shifter_mux_bits(abits, e2)
            p["gate"] += 2 * abits
            p["adder"] += _signed_width(0, amax * ((2 << e1) if e1 else 1))
        elif scheme == "lut":
            w = codebook("lut", wbits)
            lo, hi = int(min(w.min() * amax, 0)), int(max(w.max() * amax, 0))
            width = _signed_width(lo, hi)
            # Whichever is cheaper: a plain table over wbits + abits index bits, or (what
            # logic synthesis finds for P = W[k] * c) one constant multiplier per weight
            # code and a 2**wbits:1 multiplexer per product bit.
            rom = width * 2.0 ** max(0, wbits + abits - 4) * 4 / 3
            const = sum(max(0, len(csd_digits(int(v))) - 1) for v in w) * (abits + wbits + 2)
            muxes = width * (2**wbits - 1)
            if rom <= const + muxes:
                p["rom"] = width * 2.0 ** max(0, wbits + abits - 4)
            else:
                p["adder"] += const
                p["mux"] += muxes
        else:
            raise ValueError(f"no estimate for scheme {scheme!r}")
        acc = _signed_width(ACC_TERMS * min(lo, 0), ACC_TERMS * max(hi, 0))
        # The lane's control (compare.LANE_CONTROL, "last"): the running sum restarts by a
        # flip-flop's synchronous reset, so the accumulator is its adder alone.
        p["adder"] += acc
        return p
    for terms in signed_terms(baked_weights(scheme, wbits)):
        pos = [(0, amax << sh, sh) for _i, sg, sh in terms if sg > 0]
        neg = [(0, amax << sh, sh) for _i, sg, sh in terms if sg < 0]
        p["adder"] += adder_tree_bits(pos) + adder_tree_bits(neg)
        phi = sum(t[1] for t in pos)
        nhi = sum(t[1] for t in neg)
        ntz = min((t[2] for t in neg), default=0)
        if pos and neg:        # pos - neg: below neg's zero bits, pos passes through
            p["adder"] += max(0, _signed_width(-nhi, phi) - ntz)
        elif neg:
            p["adder"] += max(0, _signed_width(-nhi, 0) - ntz)
    return p


def estimate_lut(point) -> int | None:
    """Estimated ``logic`` of a point (LUT4 on iCE40, LUT4 + 2 x CCU2C on ECP5, gates on
    generic), or ``None``
    when the model has nothing to say."""
    try:
        prims = primitives(point.mode, point.scheme, point.wbits, point.abits)
    except (ValueError, ImportError):
        return None
    price = PRICES[point.target]
    return int(round(sum(price[k] * v for k, v in prims.items())))
