"""Constant matrix-vector products as adder graphs: the baked layer's solver.

``y = W @ x`` for an integer matrix ``W`` and integer inputs of known bounds, built from
two-input adders (:class:`~.adder_graph.AdderGraph`). Three candidates, priced by the
target's cost model (:meth:`~.adder_graph.AdderGraph.cost`), the cheapest wins
(:func:`solve`):

``pairwise``
    mulfree's original baked sum: per output, the canonical signed digits (CSD) of each
    weight become shifted copies of the input; the positive ones go through one balanced
    pairwise tree, the negative ones through another, and one subtraction joins them.
``cse-ice40``, ``cse-ecp5``
    Common subexpressions across the outputs, on the CSD digits (the method of da4ml's
    second stage, after Hartley's two-term CSE, 1996): repeatedly the
    two-term pattern ``a +- (b << s)`` that saves the most is built once as an adder and
    substituted wherever it occurs, in every output; what is left of each output is summed
    narrowest terms first (positive and negative apart, one subtraction at the end). The
    saving is priced in LUTs (:func:`~.adder_graph.adder_cost`) of one family, not in
    adders: priced for iCE40, a pattern that subtracts pays an inverter per subtrahend
    bit, so it is taken only where it is shared widely enough to pay for them; priced for
    ECP5, subtraction is free. Both are candidates on either target: sharing a
    subtraction can also save the inverters of the final subtractions it makes
    unnecessary, which the greedy pricing does not see. The greedy order is also
    restarted a few times with every pattern's score perturbed (deterministically), and
    the cheapest graph kept.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from .adder_graph import (Adder, AdderGraph, Family, Term, adder_cost, adder_facts,
                          value_width)
from .compute import csd_digits

__all__ = ["pairwise_graph", "cse_graph", "solve", "Solution", "METHODS", "MAX_PAIRS",
           "RESTARTS", "RESTART_PAIRS", "pair_count"]

# candidate constructions: the pairwise trees, and CSE with patterns priced by each
# family's cost model (every candidate is then costed on the target)
METHODS = ("pairwise", "cse-ice40", "cse-ecp5")


def _tz(v: int) -> int:
    return (v & -v).bit_length() - 1 if v else 1 << 20


class _Builder:
    """Grows an adder graph value by value, with each value's exact facts at hand."""

    def __init__(self, in_bounds):
        self.in_bounds = [(int(a), int(b)) for a, b in in_bounds]
        n = len(self.in_bounds)
        self.n_in = n
        self._lo = np.array([a for a, _ in self.in_bounds], dtype=np.int64)
        self._hi = np.array([b for _, b in self.in_bounds], dtype=np.int64)
        self.coef = [np.eye(n, dtype=np.int64)[i] for i in range(n)]
        self.bounds = list(self.in_bounds)
        self.tz = [0 if a != b else _tz(a | b) for a, b in self.in_bounds]
        self.width = [value_width(a, b) for a, b in self.in_bounds]
        self.depth = [0] * n
        self.adders: list[Adder] = []
        self._seen: dict[Adder, int] = {}

    def bounds_of(self, c: np.ndarray) -> tuple[int, int]:
        p, q = c * self._lo, c * self._hi
        return int(np.minimum(p, q).sum()), int(np.maximum(p, q).sum())

    def coef_of(self, t: Term) -> np.ndarray:
        c = self.coef[t.src] << t.shift
        return -c if t.neg else c

    def op(self, t: Term) -> tuple[int, int, bool]:
        """``(width, low_zeros, neg)`` of a term, shift included."""
        return self.width[t.src] + t.shift, self.tz[t.src] + t.shift, t.neg

    def sum_bounds(self, a: Term, b: Term) -> tuple[int, int]:
        """Bounds of ``a + b`` from the two terms' bounds (interval arithmetic: exact for
        terms over disjoint inputs, else a little wide; fast, for pricing)."""
        lo = hi = 0
        for t in (a, b):
            x, y = self.bounds[t.src]
            x, y = x << t.shift, y << t.shift
            lo, hi = (lo - y, hi - x) if t.neg else (lo + x, hi + y)
        return lo, hi

    def cost(self, a: Term, b: Term, family: Family) -> int:
        """What the adder ``a + b`` costs on ``family`` (the model, on interval bounds)."""
        return adder_cost(family, self.sum_bounds(a, b), self.op(a), self.op(b))

    def saving(self, a: Term, b: Term, family: Family) -> int:
        """What one use of the pattern ``a + b`` saves in an output's sum: about one adder
        of the output's tree as wide as the pattern's chain. The sum keeps its signs apart
        (no inverters there) and its partial sums carry out into a free top bit (iCE40)."""
        res = self.sum_bounds(a, b)
        if family is Family.ICE40:
            return max(0, adder_facts(res, self.op(a), self.op(b)).chain - 1)
        return adder_cost(family, res, self.op(Term(a.src, a.shift)),
                          self.op(Term(b.src, b.shift)))

    def add(self, a: Term, b: Term) -> int:
        """The value ``a + b`` (an existing adder if the same one was built before)."""
        add = Adder(a, b)
        if add in self._seen:
            return self._seen[add]
        c = self.coef_of(a) + self.coef_of(b)
        lo, hi = self.bounds_of(c)
        v = len(self.coef)
        self.coef.append(c)
        self.bounds.append((lo, hi))
        nz = c[c != 0]
        self.tz.append(min((_tz(int(abs(x))) for x in nz), default=1 << 20))
        self.width.append(value_width(lo, hi))
        self.depth.append(1 + max(self.depth[a.src], self.depth[b.src]))
        self.adders.append(add)
        self._seen[add] = v
        return v

    def graph(self, outputs) -> AdderGraph:
        return AdderGraph(in_bounds=tuple(self.in_bounds), adders=tuple(self.adders),
                          outputs=tuple(outputs))


def _sub_output(b: _Builder, p: Term | None, n: Term | None) -> Term | None:
    """``p - n`` (either may be absent) as one output term."""
    if n is None:
        return p
    if p is None:
        return Term(n.src, n.shift, True)
    m = min(p.shift, n.shift)
    v = b.add(Term(p.src, p.shift - m), Term(n.src, n.shift - m, True))
    return Term(v, m)


def _balanced(b: _Builder, terms: list[Term]) -> Term | None:
    """mulfree's original tree: pairs in order, level by level (odd one carried up)."""
    level = list(terms)
    if not level:
        return None
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            x, y = level[i], level[i + 1]
            m = min(x.shift, y.shift)
            nxt.append(Term(b.add(Term(x.src, x.shift - m), Term(y.src, y.shift - m)), m))
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def _narrowest_first(b: _Builder, terms: list[Term], family: Family,
                     window: int = 4) -> Term | None:
    """Sum same-signed terms: the narrowest term (lowest top bit) with the partner among
    the next ``window`` narrowest that makes the cheapest adder, until one is left."""
    if not terms:
        return None
    heap = []
    seq = 0
    for t in terms:
        heap.append((b.width[t.src] + t.shift, seq, t))
        seq += 1
    heapq.heapify(heap)
    while len(heap) > 1:
        _, _, x = heapq.heappop(heap)
        cands = [heapq.heappop(heap) for _ in range(min(window, len(heap)))]
        best = None
        for i, (_, _, y) in enumerate(cands):
            m = min(x.shift, y.shift)
            cost = b.cost(Term(x.src, x.shift - m), Term(y.src, y.shift - m), family)
            if best is None or cost < best[0]:
                best = (cost, i)
        _, i = best
        y = cands.pop(i)[2]
        for c in cands:
            heapq.heappush(heap, c)
        m = min(x.shift, y.shift)
        v = b.add(Term(x.src, x.shift - m), Term(y.src, y.shift - m))
        heapq.heappush(heap, (b.width[v] + m, seq, Term(v, m)))
        seq += 1
    return heap[0][2]


def _digits(w: np.ndarray) -> list[list[tuple[int, int, int]]]:
    """Per output, its CSD digits ``(input, shift, sign)`` in input order."""
    return [[(i, s, g) for i, v in enumerate(row) for g, s in csd_digits(int(v))] for row in w]


def _check(w, in_bounds) -> tuple[np.ndarray, list]:
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"The matrix must be two-dimensional, not of shape {list(w.shape)}")
    if w.dtype.kind not in "iu":
        raise TypeError(f"The matrix must hold integers, not {w.dtype}")
    in_bounds = [tuple(int(v) for v in b) for b in in_bounds]
    if len(in_bounds) != w.shape[1]:
        raise ValueError(f"{len(in_bounds)} input bounds given for a matrix of "
                         f"{w.shape[1]} columns")
    return w.astype(np.int64), in_bounds


def pairwise_graph(w, in_bounds) -> AdderGraph:
    """mulfree's original baked sum (see the module docstring)."""
    w, in_bounds = _check(w, in_bounds)
    b = _Builder(in_bounds)
    outs = []
    for digits in _digits(w):
        pos = [Term(i, s) for i, s, g in digits if g > 0]
        neg = [Term(i, s) for i, s, g in digits if g < 0]
        outs.append(_sub_output(b, _balanced(b, pos), _balanced(b, neg)))
    return b.graph(outs)


# -- common subexpression elimination ----------------------------------------------------

def _key(t1, t2):
    """The pattern of two terms ``(src, shift, sign)`` of one output, and its ordered
    pair (first, second) such that the pattern is ``first.src +- second.src << d``."""
    if (t1[0], t1[1]) > (t2[0], t2[1]):
        t1, t2 = t2, t1
    return (t1[0], t2[0], t2[1] - t1[1], t1[2] * t2[2])


class _Cse:
    def __init__(self, w: np.ndarray, in_bounds, price: Family, max_depth: int | None,
                 seed: int = 0):
        self.family = price
        self.max_depth = max_depth
        self.seed = seed
        self.b = _Builder(in_bounds)
        # per output: {(src, shift): sign}
        self.exprs = [{(i, s): g for i, s, g in row} for row in _digits(w)]
        self.count: dict[tuple, int] = {}
        self.info: dict[tuple, tuple | None] = {}
        self.heap: list = []
        for e in self.exprs:
            items = list(e.items())
            for x in range(len(items)):
                (p, s1), g1 = items[x]
                for y in range(x + 1, len(items)):
                    (q, s2), g2 = items[y]
                    k = _key((p, s1, g1), (q, s2, g2))
                    self.count[k] = self.count.get(k, 0) + 1
        for k, n in self.count.items():
            if n >= 2:
                self._push(k, n)

    def _node(self, k):
        """``(terms (a, b) of the node, flip, cost, saving per use)`` for pattern ``k``:
        the node is ``a + b``; a use of the pattern is ``(-1 if flip else 1) * node``."""
        if k in self.info:
            return self.info[k]
        p, q, d, g = k
        a, bsh = max(0, -d), max(0, d)
        ta, tb = Term(p, a), Term(q, bsh, g < 0)
        flip = False
        if g < 0:
            # subtract the narrower operand (fewer inverters on iCE40)
            alt = (Term(q, bsh), Term(p, a, True))
            if self.b.cost(*alt, self.family) < self.b.cost(ta, tb, self.family):
                ta, tb = alt
                flip = True
        depth = 1 + max(self.b.depth[p], self.b.depth[q])
        if self.max_depth is not None and depth > self.max_depth:
            info = None
        else:
            info = ((ta, tb), flip, self.b.cost(ta, tb, self.family),
                    self.b.saving(ta, tb, self.family))
        self.info[k] = info
        return info

    def _score(self, k, n):
        info = self._node(k)
        if info is None:
            return None
        _, _, cost, saving = info
        # each use removes one term from an output's sum; the node is built once
        score = n * saving - cost
        if self.seed and score > 0:
            # a restart: every pattern's score scaled by up to 30 %, a fixed pseudo-random
            # factor per (seed, pattern) (integer tuples hash the same in every run)
            score *= 1 + 0.3 * ((hash((self.seed, k)) & 0xFFFF) / 0x10000)
        return score

    def _push(self, k, n):
        s = self._score(k, n)
        if s is not None and s > 0:
            heapq.heappush(self.heap, (-s, k, n))

    def _bump(self, k, delta):
        n = self.count.get(k, 0) + delta
        if n:
            self.count[k] = n
        else:
            self.count.pop(k, None)
        if delta > 0 and n >= 2:
            self._push(k, n)      # a fall in count is seen when the stale entry pops

    def run(self) -> None:
        while self.heap:
            neg_s, k, n = heapq.heappop(self.heap)
            now = self.count.get(k, 0)
            if now != n:
                if now >= 2 and now < n:
                    self._push(k, now)        # fallen since pushed: back at its new score
                continue
            self._substitute(k)

    def _substitute(self, k) -> None:
        (ta, tb), flip, _cost, _plain = self._node(k)
        p, q, d, g = k
        node = None
        for e in self.exprs:
            hits = []
            used = set()
            for (src, s1), g1 in sorted(e.items(), key=lambda it: it[0][1]):
                if src != p or (src, s1) in used:
                    continue
                other = (q, s1 + d)
                if other in used or other not in e or other == (src, s1):
                    continue
                if e[other] * g1 != g:
                    continue
                used.add((src, s1))
                used.add(other)
                hits.append(((src, s1), other, g1))
            if not hits:
                continue
            if node is None:
                node = self.b.add(ta, tb)
            removed = []
            added = []
            for t1, t2, g1 in hits:
                removed.append((t1[0], t1[1], e[t1]))
                removed.append((t2[0], t2[1], e[t2]))
                m = min(t1[1], t2[1])
                added.append((node, m, -g1 if flip else g1))
            self._update(e, removed, added)

    def _update(self, e, removed, added) -> None:
        rset = {(r[0], r[1]) for r in removed}
        rest = [(src, s, g) for (src, s), g in e.items() if (src, s) not in rset]
        for r in removed:
            for o in rest:
                self._bump(_key(r, o), -1)
        for x in range(len(removed)):
            for y in range(x + 1, len(removed)):
                self._bump(_key(removed[x], removed[y]), -1)
        for src, s, _g in removed:
            del e[(src, s)]
        for a in added:
            for o in rest:
                self._bump(_key(a, o), +1)
        for x in range(len(added)):
            for y in range(x + 1, len(added)):
                self._bump(_key(added[x], added[y]), +1)
        for src, s, g in added:
            e[(src, s)] = g

    def graph(self, family: Family, window: int = 4) -> AdderGraph:
        outs = []
        for e in self.exprs:
            pos = [Term(src, s) for (src, s), g in e.items() if g > 0]
            neg = [Term(src, s) for (src, s), g in e.items() if g < 0]
            outs.append(_sub_output(self.b, _narrowest_first(self.b, pos, family, window),
                                    _narrowest_first(self.b, neg, family, window)))
        return self.b.graph(outs)


def cse_graph(w, in_bounds, family: Family | str, *, price: Family | str | None = None,
              max_depth: int | None = None, window: int = 4, seed: int = 0) -> AdderGraph:
    """Shared subexpressions across the outputs (see the module docstring) for
    ``family``: the patterns priced by ``price``'s cost model (default: ``family``'s), the
    final sums by ``family``'s. ``max_depth`` bounds the depth of a shared node (``None``:
    no bound); ``window`` is how many of the narrowest terms the final sums consider as
    the partner of the narrowest; ``seed > 0`` is a restart: the greedy order perturbed
    (every pattern's score scaled by a fixed pseudo-random factor up to 1.3)."""
    w, in_bounds = _check(w, in_bounds)
    family = Family(family)
    cse = _Cse(w, in_bounds, family if price is None else Family(price), max_depth, seed)
    cse.run()
    return cse.graph(family, window)


# CSE counts every pair of terms of every output; past this many pairs (a few seconds of
# pure Python each; 64 x 32 uniform 4-bit weights are 146k) the solver keeps to the
# pairwise trees
MAX_PAIRS = 1_000_000


def pair_count(w) -> int:
    """Pairs of signed digits within the outputs: the size of CSE's pattern count."""
    w = np.asarray(w)
    n = np.array([sum(len(csd_digits(int(v))) for v in row) for row in w], dtype=np.int64)
    return int((n * (n - 1) // 2).sum())


@dataclass(frozen=True)
class Solution:
    """The graph :func:`solve` chose, how (``method``, and for CSE the restart ``seed``,
    0 for the plain greedy order), its estimated cost on ``family``, the best cost of
    every method tried, and the methods not tried (with why)."""

    graph: AdderGraph
    method: str
    seed: int
    family: Family
    cost: int
    costs: dict          # method -> best estimated cost over its restarts
    skipped: dict        # method -> why it was not tried


# CSE restarts: as many as fit this many digit pairs in all (the greedy's work), at most
# RESTARTS: a few seconds per layer of the sizes a small FPGA holds
RESTART_PAIRS = 300_000
RESTARTS = 8


def solve(w, in_bounds, family: Family | str, *, methods=METHODS,
          max_pairs: int = MAX_PAIRS, restarts: int | None = None) -> Solution:
    """The cheapest of ``methods`` on ``family`` (ties: the earlier method, the lower
    seed); the CSE methods only when the matrix has at most ``max_pairs`` digit pairs
    (:func:`pair_count`), each run in the greedy order, and the one priced for ``family``
    also ``restarts`` times perturbed (``None``: as many as :data:`RESTART_PAIRS`
    allows, at most :data:`RESTARTS`)."""
    family = Family(family)
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"Method must be one of {', '.join(METHODS)}, not {method!r}")
    best = None
    costs, skipped = {}, {}
    pairs = None
    for method in methods:
        if method == "pairwise":
            runs = [(0, pairwise_graph(w, in_bounds))]
        else:
            pairs = pair_count(w) if pairs is None else pairs
            if pairs > max_pairs:
                skipped[method] = f"{pairs} digit pairs, more than {max_pairs}"
                continue
            n = restarts if restarts is not None else \
                min(RESTARTS, RESTART_PAIRS // max(pairs, 1))
            if method[4:] != family.value:
                n = 0           # the other family's pricing: the greedy order only
            runs = ((seed, cse_graph(w, in_bounds, family, price=method[4:], seed=seed))
                    for seed in range(1 + n))
        for seed, g in runs:
            c = g.cost(family)
            costs[method] = min(c, costs.get(method, c))
            if best is None or c < best[0]:
                best = (c, method, seed, g)
    if best is None:
        g = pairwise_graph(w, in_bounds)
        best = (g.cost(family), "pairwise", 0, g)
        costs["pairwise"] = best[0]
    c, method, seed, g = best
    return Solution(graph=g, method=method, seed=seed, family=family, cost=c, costs=costs,
                    skipped=skipped)
