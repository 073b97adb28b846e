"""Analytic resource estimates for the points of ``mulfree compare``.

An estimate counts the *structure* a design needs, from its parameters alone, in four
kinds of bit-level primitive, then prices each kind per target:

``adder``
    one bit of a two-operand adder or subtractor (a carry-chain bit);
``mux``
    one 2:1 multiplexer bit (a barrel-shifter stage, an add-or-subtract select);
``gate``
    one AND of two bits (zero gating, the accumulator's "first" clear);
``pp``
    one partial-product bit of a multiplier (``wbits * abits`` of them);
``rom``
    one output bit of a table over ``n`` index bits counts ``2**(n-4)`` (LUT4 leaves).

The prices (LUT4 per primitive on iCE40 and ECP5, two-input gates in the generic flow)
are round numbers read off a handful of measured reference designs, listed in
``PRICES``; they are not fitted to the sweep, so the error column in the report is an
honest test of the model. On ECP5, adders live in CCU2C carry cells which Yosys's stat
does not count as LUT4, so an adder bit costs almost nothing in ``lut`` there.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["PRICES", "primitives", "estimate_lut", "adder_tree_bits"]

PRICES: dict[str, dict[str, float]] = {
    # iCE40: an adder bit is one LUT4 beside its SB_CARRY; a mux bit one LUT4; two-input
    # gates mostly merge into neighbouring LUTs; Yosys's multiplier ~2.4 LUT4 per partial
    # product (measured: signed 8x4 76, 8x8 177, 4x4 37).
    "ice40": {"adder": 1.0, "mux": 1.0, "gate": 0.5, "pp": 2.4, "rom": 1.3},
    # ECP5: adders in CCU2C (not LUT4); muxes and multipliers as LUT4 plus PFUMX.
    "ecp5": {"adder": 0.15, "mux": 1.0, "gate": 0.5, "pp": 3.0, "rom": 1.3},
    # generic: a full adder is 2 XOR + 2 AND + 1 OR; a mux one MUX cell.
    "generic": {"adder": 5.0, "mux": 1.0, "gate": 1.0, "pp": 6.0, "rom": 6.0},
}


def _signed_width(lo: int, hi: int) -> int:
    w = 1
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w


def adder_tree_bits(bounds: list[tuple[int, int]]) -> int:
    """Adder bits of a balanced pairwise tree over terms with these bounds (each node
    exactly as wide as its sum's bounds), paired in order like the hardware does."""
    level = list(bounds)
    bits = 0
    while len(level) > 1:
        nxt = []
        for n in range(0, len(level) - 1, 2):
            (alo, ahi), (blo, bhi) = level[n], level[n + 1]
            lo, hi = alo + blo, ahi + bhi
            bits += _signed_width(lo, hi) - (1 if lo >= 0 else 0)
            nxt.append((lo, hi))
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return bits


def _shifter_mux_bits(abits: int, exp_bits: int) -> int:
    bits, width, max_exp = 0, abits, 2**exp_bits - 1
    for s in range(exp_bits):
        amount = 1 << s
        if amount > max_exp:
            break
        width += amount
        bits += width - amount        # the low `amount` bits are a gate, not a mux
    return bits


@lru_cache(maxsize=None)
def primitives(mode: str, scheme: str, wbits: int, abits: int) -> dict[str, float]:
    """The primitive counts of one design (see the module docstring)."""
    from .compare import ACC_TERMS, baked_weights, signed_terms  # noqa: PLC0415 (cycle)

    p = {"adder": 0.0, "mux": 0.0, "gate": 0.0, "pp": 0.0, "rom": 0.0}
    amax = 2**abits - 1
    if mode == "runtime":
        from mulfree.hw.mac import apot_exp_bits, pot_exp_bits

        if scheme == "uniform":
            lo, hi = -(2 ** (wbits - 1)) * amax, (2 ** (wbits - 1) - 1) * amax
            p["pp"] = wbits * abits
            sub = False
        elif scheme in ("pot", "binary", "ternary"):
            e = pot_exp_bits(wbits) if scheme == "pot" else 0
            big = amax << (2**e - 1)
            lo, hi = -big, big
            p["mux"] += _shifter_mux_bits(abits, e)
            p["gate"] += _signed_width(0, big) if scheme != "binary" else 0
            sub = True
        elif scheme == "apot":
            e = apot_exp_bits(wbits)
            big = amax * 2 * (2 ** (2**e - 1))
            lo, hi = -big, big
            p["mux"] += 2 * _shifter_mux_bits(abits, e)
            p["gate"] += 2 * _signed_width(0, big // 2)
            p["adder"] += _signed_width(0, big)
            sub = True
        elif scheme == "lut":
            from .compare import _codebook

            w = _codebook("lut", wbits)
            lo, hi = int(min(w.min() * amax, 0)), int(max(w.max() * amax, 0))
            p["rom"] = _signed_width(lo, hi) * 2.0 ** max(0, wbits + abits - 4)
            sub = False
        else:
            raise ValueError(f"no estimate for scheme {scheme!r}")
        acc = _signed_width(ACC_TERMS * min(lo, 0), ACC_TERMS * max(hi, 0))
        # base = first ? 0 : acc; then base + product (PoT/APoT: add or subtract, each an
        # adder, then a select).
        p["gate"] += acc
        p["adder"] += acc * (2 if sub else 1)
        p["mux"] += acc if sub else 0
        return p
    for terms in signed_terms(baked_weights(scheme, wbits)):
        pos = [(0, amax << sh) for _i, sg, sh in terms if sg > 0]
        neg = [(0, amax << sh) for _i, sg, sh in terms if sg < 0]
        p["adder"] += adder_tree_bits(pos) + adder_tree_bits(neg)
        plo, phi = 0, sum(h for _l, h in pos)
        nlo, nhi = 0, sum(h for _l, h in neg)
        if pos and neg:
            p["adder"] += _signed_width(plo - nhi, phi - nlo)
        elif neg:
            p["adder"] += _signed_width(-nhi, 0)
    return p


def estimate_lut(point) -> int | None:
    """Estimated ``lut`` of a point (LUT4 on iCE40/ECP5, gates on generic), or ``None``
    when the model has nothing to say."""
    try:
        prims = primitives(point.mode, point.scheme, point.wbits, point.abits)
    except (ValueError, ImportError):
        return None
    price = PRICES[point.target]
    return int(round(sum(price[k] * v for k, v in prims.items())))
