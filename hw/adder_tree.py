"""Balanced pairwise adder trees, each sum exactly as wide as its bounds need.

Yosys's own mapping of a many-operand sum was measured at about 1.8 to 2 times the LUTs
of an explicit pairwise ripple tree, so every multi-operand sum in mulfree goes through
:func:`sum_tree`.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .product import _check_width, shape_for

__all__ = ["sum_tree", "sum_tree_carries", "delay_value", "AdderTree"]

# Keeps each partial sum a wire of its own in synthesis: without it, Yosys (alumacc)
# merges the whole tree into one multi-operand $macc, which maps to about twice the LUTs.
_KEEP = {"keep": 1}


def sum_tree(m: Module, terms, *, pipeline_every: int = 0, domain: str = "sync",
             name: str = "sum", carries=()):
    """Add ``terms`` (a list of ``(value, lo, hi)``) pairwise, level by level.

    Each partial sum is a signal of the narrowest shape holding ``[lo1 + lo2, hi1 + hi2]``.
    With ``pipeline_every = N > 0`` every N-th level is registered in ``domain``.
    ``carries`` (1-bit values) are added as the carry-ins of the tree's adders, one per
    adder, each delayed by the register levels before its adder; :func:`sum_tree_carries`
    returns those left over, delayed by the whole latency.

    Returns ``(value, lo, hi, latency)``.
    """
    value, lo, hi, latency, left = sum_tree_carries(
        m, terms, pipeline_every=pipeline_every, domain=domain, name=name, carries=carries)
    if left:
        raise ValueError(f"{len(left)} carries do not fit the tree's adders")
    return value, lo, hi, latency


def sum_tree_carries(m: Module, terms, *, pipeline_every: int = 0, domain: str = "sync",
                     name: str = "sum", carries=()):
    """:func:`sum_tree` that also returns the carries it had no adder for."""
    if not terms:
        raise ValueError("An adder tree needs at least one term")
    carries = list(carries)
    level = list(terms)
    depth = 0
    latency = 0
    while len(level) > 1:
        depth += 1
        reg = pipeline_every > 0 and depth % pipeline_every == 0
        nxt = []
        for n in range(0, len(level) - 1, 2):
            (a, alo, ahi), (b, blo, bhi) = level[n], level[n + 1]
            lo, hi = alo + blo, ahi + bhi
            total = a + b
            if carries:
                # a carry belongs to the terms' cycle: delay it as far as they came
                total = total + delay_value(m, carries.pop(0), latency, domain,
                                         f"{name}_c{depth}_{n // 2}")
                hi += 1
            s = Signal(shape_for(lo, hi), name=f"{name}_l{depth}_{n // 2}", attrs=_KEEP)
            (m.d[domain] if reg else m.d.comb).__iadd__(s.eq(total))
            nxt.append((s, lo, hi))
        if len(level) % 2:
            a, lo, hi = level[-1]
            if reg:
                s = Signal(shape_for(lo, hi), name=f"{name}_l{depth}_{len(level) // 2}")
                m.d[domain] += s.eq(a)
                a = s
            nxt.append((a, lo, hi))
        latency += reg
        level = nxt
    value, lo, hi = level[0]
    left = [delay_value(m, c, latency, domain, f"{name}_cl{k}")
            for k, c in enumerate(carries)]
    return value, lo, hi, latency, left


def delay_value(m: Module, value, cycles: int, domain: str, name: str):
    """``value`` through ``cycles`` registers in ``domain`` (itself for 0)."""
    for k in range(cycles):
        r = Signal(Value.cast(value).shape(), name=f"{name}_d{k}")
        m.d[domain] += r.eq(value)
        value = r
    return value


class AdderTree(wiring.Component):
    """A balanced pairwise adder tree over terms of individually known bounds.

    Parameters
    ----------
    bounds : list of (int, int)
        ``(min, max)`` of each term; term ``n`` is the field ``t<n>`` of ``terms``, of the
        narrowest shape holding its range.
    pipeline_every : int
        Register every this many levels (0: purely combinational).

    Members
    -------
    terms : In(StructLayout)
    sum : Out(shape)
        Exactly as wide as the sum's bounds need.

    Latency: ``latency`` cycles (the number of registered levels).
    """

    def __init__(self, *, bounds, pipeline_every: int = 0) -> None:
        if isinstance(bounds, (str, bytes)) or not hasattr(bounds, "__iter__"):
            raise TypeError(f"Bounds must be a list of (min, max) pairs, not {bounds!r}")
        bounds = [tuple(b) for b in bounds]
        if not bounds:
            raise ValueError("Bounds must name at least one term")
        for b in bounds:
            if len(b) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in b):
                raise TypeError(f"Each bound must be a pair of integers, not {b!r}")
            if b[0] > b[1]:
                raise ValueError(f"Bound {b!r} has its minimum above its maximum")
        _check_width("Pipeline interval", pipeline_every, minimum=0)
        self._bounds = tuple(bounds)
        self._pipeline_every = pipeline_every
        lo, hi = sum(b[0] for b in bounds), sum(b[1] for b in bounds)
        self._sum_bounds = (lo, hi)
        depth = max(0, (len(bounds) - 1).bit_length())
        self.latency = depth // pipeline_every if pipeline_every else 0
        layout = data.StructLayout({f"t{n}": shape_for(*b) for n, b in enumerate(bounds)})
        super().__init__({"terms": In(layout), "sum": Out(shape_for(lo, hi))})

    @property
    def bounds(self):
        return self._bounds

    @property
    def sum_bounds(self) -> tuple[int, int]:
        return self._sum_bounds

    def elaborate(self, platform):
        m = Module()
        terms = [(self.terms[f"t{n}"], lo, hi) for n, (lo, hi) in enumerate(self._bounds)]
        value, _, _, latency = sum_tree(m, terms, pipeline_every=self._pipeline_every)
        assert latency == self.latency
        m.d.comb += self.sum.eq(value)
        return m
