"""Shift-add graphs for constant matrix-vector products, and what they cost on an FPGA.

An :class:`AdderGraph` computes ``y = W @ x`` for a constant integer matrix ``W`` and
integer inputs ``x`` of known bounds with two-input adders only. Values are numbered:
``0 .. n_in - 1`` are the inputs, ``n_in + k`` is the result of adder ``k``. An adder adds
two :class:`Term` s, each ``+-(value << shift)``; an output is one term (or zero).

Everything a hardware emitter needs is exact and derived here, not guessed: each value's
linear form over the inputs (:attr:`AdderGraph.coefficients`, which also proves the graph
computes ``W``), its bounds over the input box (tight: the inputs are independent, so a
linear form's extremes are the sums of its terms' extremes), its constant-zero low bits
and its adder depth.

:func:`adder_cost` prices one adder on a target family from those facts; the numbers come
from Yosys 0.70 (``bench/cmvm_vs_da4ml.py --calibrate`` measures them):

``ice40`` (``synth_ice40``)
    A ripple adder is one LUT4 per result bit of its carry chain plus an ``SB_CARRY``;
    the chain starts above the low bits that only one operand has (those are wires); a
    top bit that is the bare carry-out of two non-negative operands costs no LUT. The
    carry chain takes its operands raw, so a subtrahend costs an inverter LUT per bit on
    top (``a - b`` on 12 bits: 25 LUT4, ``a + b``: 12).
``ecp5`` (``synth_ecp5 -nodsp``)
    Two chain bits per ``CCU2C`` (counted as two LUT4, as nextpnr's ``TRELLIS_COMB``
    does), subtraction included; an odd chain wastes half a ``CCU2C``; chains of up to 4
    bits become LUT4s.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from typing import NamedTuple

import numpy as np

__all__ = ["Family", "Term", "Adder", "AdderGraph", "AdderFacts", "adder_cost", "adder_facts",
           "value_width", "GraphError"]


class GraphError(ValueError):
    """An adder graph that is not well formed (a bad index, a cycle, a bad shape)."""


class Family(str, Enum):
    """The FPGA family whose adder costs guide the solver."""

    ICE40 = "ice40"
    ECP5 = "ecp5"


class Term(NamedTuple):
    """``-(value << shift)`` if ``neg`` else ``value << shift`` (checked where a graph is
    made: :class:`AdderGraph`)."""

    src: int
    shift: int = 0
    neg: bool = False


class Adder(NamedTuple):
    """``a + b`` (at most one of the two terms negated: a subtraction)."""

    a: Term
    b: Term


def _check_term(t, where: str) -> None:
    if not isinstance(t, Term):
        raise GraphError(f"{where} must be a Term, not {t!r}")
    for name, v in (("source", t.src), ("shift", t.shift)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise GraphError(f"{where}: the {name} must be a non-negative integer, not {v!r}")
    if not isinstance(t.neg, bool):
        raise GraphError(f"{where}: neg must be a bool, not {t.neg!r}")


def value_width(lo: int, hi: int) -> int:
    """Bits of the narrowest two's complement (``lo < 0``) or unsigned type holding
    ``[lo, hi]`` (0 for the constant 0)."""
    lo, hi = int(lo), int(hi)
    if lo >= 0:
        return hi.bit_length()
    return max((~lo).bit_length(), hi.bit_length() if hi >= 0 else (~hi).bit_length()) + 1


def _tz(c: np.ndarray) -> int:
    """Trailing zero bits common to every coefficient (a large number for all zero)."""
    nz = [abs(int(v)) for v in c if v]
    if not nz:
        return 1 << 20
    g = 0
    for v in nz:
        g |= v
    return (g & -g).bit_length() - 1


@dataclass(frozen=True, eq=False)
class AdderGraph:
    """Adders over integer inputs of known bounds; see the module docstring.

    Parameters
    ----------
    in_bounds : tuple of (int, int)
        ``(lo, hi)`` of each input.
    adders : tuple of Adder
        In topological order: adder ``k`` reads only inputs and adders before it.
    outputs : tuple of (Term or None)
        ``None``: the output is the constant 0.
    """

    in_bounds: tuple
    adders: tuple
    outputs: tuple

    def __post_init__(self) -> None:
        bounds = tuple((int(lo), int(hi)) for lo, hi in self.in_bounds)
        for lo, hi in bounds:
            if lo > hi:
                raise GraphError(f"Input bounds ({lo}, {hi}) have the minimum above the maximum")
        object.__setattr__(self, "in_bounds", bounds)
        object.__setattr__(self, "adders", tuple(self.adders))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        n = len(bounds)
        for k, add in enumerate(self.adders):
            if not isinstance(add, Adder):
                raise GraphError(f"Adder {k} must be an Adder, not {add!r}")
            _check_term(add.a, f"Adder {k}'s first operand")
            _check_term(add.b, f"Adder {k}'s second operand")
            if add.a.neg and add.b.neg:
                raise GraphError(f"Adder {k} subtracts both operands; an adder subtracts at "
                                 f"most one")
            for t in (add.a, add.b):
                if t.src >= n + k:
                    raise GraphError(f"Adder {k} reads value {t.src}, which is not computed "
                                     f"before it (inputs 0..{n - 1}, adders from {n})")
        for j, t in enumerate(self.outputs):
            if t is not None:
                _check_term(t, f"Output {j}")
            if t is not None and t.src >= n + len(self.adders):
                raise GraphError(f"Output {j} must be None or a Term of an existing value, "
                                 f"not {t!r}")

    # -- sizes ------------------------------------------------------------------------
    @property
    def n_in(self) -> int:
        return len(self.in_bounds)

    @property
    def n_out(self) -> int:
        return len(self.outputs)

    @property
    def n_values(self) -> int:
        return self.n_in + len(self.adders)

    # -- exact facts ------------------------------------------------------------------
    @cached_property
    def coefficients(self) -> np.ndarray:
        """``[n_values, n_in]`` int64: each value as a linear form of the inputs."""
        c = np.zeros((self.n_values, self.n_in), dtype=np.int64)
        c[np.arange(self.n_in), np.arange(self.n_in)] = 1
        for k, add in enumerate(self.adders):
            c[self.n_in + k] = self._term_coef(c, add.a) + self._term_coef(c, add.b)
        return c

    @staticmethod
    def _term_coef(c: np.ndarray, t: Term) -> np.ndarray:
        v = c[t.src] << t.shift
        return -v if t.neg else v

    @cached_property
    def matrix(self) -> np.ndarray:
        """``[n_out, n_in]``: the matrix the graph computes (``y = matrix @ x``)."""
        c = self.coefficients
        out = np.zeros((self.n_out, self.n_in), dtype=np.int64)
        for j, t in enumerate(self.outputs):
            if t is not None:
                out[j] = self._term_coef(c, t)
        return out

    def _bounds_of(self, coef: np.ndarray) -> tuple[int, int]:
        lo = hi = 0
        for ci, (a, b) in zip(coef.tolist(), self.in_bounds):
            if ci:
                p, q = ci * a, ci * b
                lo += min(p, q)
                hi += max(p, q)
        return lo, hi

    @cached_property
    def bounds(self) -> tuple:
        """``(lo, hi)`` of every value over the input box (exact)."""
        return tuple(self._bounds_of(row) for row in self.coefficients)

    @cached_property
    def low_zeros(self) -> tuple:
        """Low bits of every value that are 0 whatever the inputs (from the
        coefficients: a value whose every coefficient is a multiple of ``2**t``)."""
        tz_in = [_tz(np.array([lo, hi])) if lo == hi else 0 for lo, hi in self.in_bounds]
        out = []
        for v, row in enumerate(self.coefficients):
            lo, hi = self.bounds[v]
            if lo == hi == 0:
                out.append(0)
                continue
            out.append(min(_tz(np.array([ci])) + tz_in[i] for i, ci in enumerate(row) if ci))
        return tuple(out)

    @cached_property
    def depth(self) -> tuple:
        """Adders on the longest path from an input to each value (inputs: 0)."""
        d = [0] * self.n_in
        for add in self.adders:
            d.append(1 + max(d[add.a.src], d[add.b.src]))
        return tuple(d)

    @property
    def max_depth(self) -> int:
        ds = [self.depth[t.src] for t in self.outputs if t is not None]
        return max(ds, default=0)

    def term_bounds(self, t: Term) -> tuple[int, int]:
        lo, hi = self.bounds[t.src]
        lo, hi = lo << t.shift, hi << t.shift
        return (-hi, -lo) if t.neg else (lo, hi)

    def output_bounds(self, j: int) -> tuple[int, int]:
        t = self.outputs[j]
        return (0, 0) if t is None else self.term_bounds(t)

    def value_width(self, v: int) -> int:
        return value_width(*self.bounds[v])

    # -- checks and evaluation --------------------------------------------------------
    def check_matrix(self, w) -> None:
        """Raise :class:`GraphError` unless the graph computes ``w`` exactly."""
        w = np.asarray(w, dtype=np.int64)
        if w.shape != (self.n_out, self.n_in):
            raise GraphError(f"Matrix shape {w.shape} is not the graph's "
                             f"({self.n_out}, {self.n_in})")
        bad = np.argwhere(self.matrix != w)
        if bad.size:
            j, i = (int(v) for v in bad[0])
            raise GraphError(f"The graph computes W[{j}][{i}] = {int(self.matrix[j, i])}, "
                             f"not {int(w[j, i])}")

    def evaluate(self, x) -> np.ndarray:
        """``[N, n_out]`` outputs for inputs ``x`` of shape ``[N, n_in]`` (int64), adder by
        adder (an independent check of :attr:`matrix`)."""
        x = np.asarray(x, dtype=np.int64)
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise GraphError(f"Inputs must have shape [N, {self.n_in}], not {list(x.shape)}")
        vals = [x[:, i] for i in range(self.n_in)]

        def term(t):
            v = vals[t.src] << t.shift
            return -v if t.neg else v

        for add in self.adders:
            vals.append(term(add.a) + term(add.b))
        zero = np.zeros(x.shape[0], dtype=np.int64)
        return np.stack([zero if t is None else term(t) for t in self.outputs], axis=1) \
            if self.outputs else np.zeros((x.shape[0], 0), dtype=np.int64)

    # -- cost -------------------------------------------------------------------------
    def operands(self, k: int) -> tuple[tuple[int, int, bool], tuple[int, int, bool]]:
        """Adder ``k``'s operands as ``(width, low_zeros, neg)``, shifts included (the
        width is the un-negated value's)."""
        add = self.adders[k]
        return tuple((self.value_width(t.src) + t.shift, self.low_zeros[t.src] + t.shift,
                      t.neg) for t in (add.a, add.b))

    def adder_facts(self, k: int) -> "AdderFacts":
        return adder_facts(self.bounds[self.n_in + k], *self.operands(k))

    def adder_costs(self, family: Family | str) -> list[int]:
        family = Family(family)
        return [adder_cost(family, self.bounds[self.n_in + k], *self.operands(k))
                for k in range(len(self.adders))]

    def output_negation_cost(self, family: Family | str) -> int:
        """Outputs that are a negated value need a negation each (``0 - v``)."""
        family = Family(family)
        total = 0
        for j, t in enumerate(self.outputs):
            if t is not None and t.neg:
                v = (self.value_width(t.src) + t.shift, self.low_zeros[t.src] + t.shift, True)
                total += adder_cost(family, self.output_bounds(j), _ZERO, v)
        return total

    def cost(self, family: Family | str) -> int:
        """Estimated LUT4 (iCE40) or LUT4 + 2 x CCU2C (ECP5) of the whole graph."""
        return sum(self.adder_costs(family)) + self.output_negation_cost(family)

    def summary(self) -> dict:
        subs = sum(1 for a in self.adders if a.a.neg or a.b.neg)
        return {"adders": len(self.adders), "subtractions": subs,
                "depth": self.max_depth,
                "cost_ice40": self.cost(Family.ICE40), "cost_ecp5": self.cost(Family.ECP5)}


_ZERO = (0, 1 << 20, False)      # the constant 0 as an operand


class AdderFacts(NamedTuple):
    """What one adder costs is made of (see :func:`adder_facts`)."""

    width: int          # result bits
    chain_lo: int       # lowest result bit the carry chain computes (below: wiring)
    chain: int          # result bits the carry chain computes
    inverted: int       # subtrahend bits an inverter must feed the chain (iCE40)
    top_free: bool      # the top result bit is the bare carry-out (iCE40: no LUT)
    low_free: bool      # the chain's lowest bit is the subtrahend's own bit (no LUT)
    narrow: int         # bits of the narrower operand inside the chain


def adder_facts(result, a, b) -> AdderFacts:
    """The facts of an adder with result bounds ``result = (lo, hi)`` and operands
    ``a``, ``b`` given as ``(width, low_zeros, neg)``, shifts included (the width is the
    un-negated value's). The operand with the fewer low zeros passes its low bits
    through unless it is the subtrahend; the chain runs from the first bit both operands
    may have (or the subtrahend's first) to the result's top."""
    lo, hi = result
    width = value_width(lo, hi)
    (wa, za, na), (wb, zb, nb) = a, b
    lower_neg = na if za <= zb else nb
    chain_lo = min(za, zb) if lower_neg else max(za, zb)
    chain = max(0, width - chain_lo)
    inverted = 0
    inside = []
    for w, z, neg in (a, b):
        n = max(0, min(w, width) - max(z, chain_lo))
        inside.append(n)
        if neg:
            inverted = n
    top_free = lo >= 0 and not (na or nb) and width > max(wa, wb)
    low_free = bool(lower_neg) and za != zb and chain > 0
    return AdderFacts(width, chain_lo, chain, inverted, top_free, low_free, min(inside))


def adder_cost(family: Family | str, result, a, b) -> int:
    """LUT4 (iCE40) or LUT4-equivalents (ECP5: 2 per ``CCU2C``) of one adder (arguments
    as :func:`adder_facts`). Measured with Yosys 0.70 on isolated adders of random
    shapes (``bench/cmvm_vs_da4ml.py --calibrate``):

    * iCE40: a LUT4 per chain bit, plus one per inverted subtrahend bit; none for a top
      bit that is the bare carry-out of two non-negative operands, none for a lowest bit
      that is the subtrahend's own (``0 - b`` there is ``b``).
    * ECP5: a ``CCU2C`` per two chain bits; a chain of up to 4 bits is mapped to LUT4s
      instead (as many as chain bits up to 3; 4 bits: 10 when both operands have 3 bits
      in it, else 6).
    """
    family = Family(family)
    f = adder_facts(result, a, b)
    if f.chain <= 0:
        return 0
    if family is Family.ICE40:
        return max(0, f.chain + f.inverted - f.top_free - f.low_free)
    if f.chain <= 3:
        return f.chain
    if f.chain == 4:
        return 10 if f.narrow >= 3 else 6
    return 2 * ((f.chain + 1) // 2)
