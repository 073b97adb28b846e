"""The constant-matrix solver and its adder graphs, against NumPy ``x @ W.T``."""

import numpy as np
import pytest

from mulfree.gen.model.examples import scheme_codebook
from mulfree.hw.adder_graph import (Adder, AdderGraph, Family, GraphError, Term, adder_cost,
                                    adder_facts, value_width)
from mulfree.hw.cmvm import METHODS, cse_graph, pair_count, pairwise_graph, solve
from mulfree.hw.compute import csd_digits


def _matrix(rng, scheme, wbits, shape):
    cb = scheme_codebook(scheme, wbits)
    return cb[rng.integers(0, cb.size, shape)]


def test_csd_exhaustive():
    for v in range(-600, 601):
        d = csd_digits(v)
        assert sum(g << s for g, s in d) == v
        shifts = [s for _, s in d]
        assert shifts == sorted(shifts)
        assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:]))   # non-adjacent
        assert len(d) <= (abs(v).bit_length() + 2) // 2 + 1


def test_value_width():
    assert [value_width(lo, hi) for lo, hi in
            [(0, 0), (0, 1), (0, 255), (0, 256), (-1, 0), (-128, 127), (-129, 0), (-1, 128)]] \
        == [0, 1, 8, 9, 1, 8, 9, 9]


MATRICES = [
    ("uniform", 4, (5, 7), (0, 255)),
    ("pot", 4, (6, 9), (0, 15)),
    ("pot", 3, (8, 16), (0, 3)),
    ("apot", 4, (4, 12), (0, 63)),
    ("uniform", 8, (3, 5), (-128, 127)),     # signed inputs
    ("lut", 3, (4, 6), (-3, 9)),              # arbitrary codebook, mixed-sign inputs
    ("binary", 1, (7, 10), (0, 1)),
]


@pytest.mark.parametrize("scheme,wbits,shape,bounds", MATRICES)
@pytest.mark.parametrize("method", ["pairwise", "cse-ice40", "cse-ecp5"])
def test_graph_computes_the_matrix(scheme, wbits, shape, bounds, method):
    rng = np.random.default_rng(hash((scheme, wbits, shape)) % 2**32)
    w = _matrix(rng, scheme, wbits, shape)
    w[0] = 0                      # a zero output
    w[:, 1] = 0                   # an unused input
    w[-1] = -np.abs(w[-1])        # an output with only negative weights
    in_bounds = [bounds] * shape[1]
    g = pairwise_graph(w, in_bounds) if method == "pairwise" else \
        cse_graph(w, in_bounds, method.split("-")[1])
    g.check_matrix(w)
    x = rng.integers(bounds[0], bounds[1] + 1, (200, shape[1]))
    x[0], x[1] = bounds[0], bounds[1]
    assert (g.evaluate(x) == x @ w.T).all()
    # every value's exact bounds are reached by some input corner and never exceeded
    for v, (lo, hi) in enumerate(g.bounds):
        c = g.coefficients[v]
        corner_lo = np.where(c > 0, bounds[0], bounds[1])
        corner_hi = np.where(c > 0, bounds[1], bounds[0])
        assert (c @ corner_lo, c @ corner_hi) == (lo, hi)


def test_check_matrix_fails_on_a_wrong_graph():
    w = np.array([[3, 5], [1, -2]])
    g = cse_graph(w, [(0, 7)] * 2, "ice40")
    g.check_matrix(w)
    wrong = AdderGraph(in_bounds=g.in_bounds, adders=g.adders,
                       outputs=(g.outputs[1], g.outputs[0]))
    with pytest.raises(GraphError, match=r"computes W\[0\]\[0\] = 1, not 3"):
        wrong.check_matrix(w)
    with pytest.raises(GraphError, match="shape"):
        g.check_matrix(w[:1])


def test_cse_shares_and_pairwise_does_not():
    # four outputs share B = x0 + x1 << 1 + x2 << 2 (2 adders), and the last two B + x3
    # (3 = 4 - 1: the last row is x3 << 2 - (B + x3)); CSE builds each once: 2 + 1 + 1 + 1
    # adders. The pairwise trees pair terms in input order and share only identical
    # adders (as Yosys would merge them): 7.
    w = np.array([[1, 2, 4, 0], [1, 2, 4, 1], [1, 2, 4, 8], [-1, -2, -4, 3]])
    b = [(0, 255)] * 4
    pw, cs = pairwise_graph(w, b), cse_graph(w, b, "ecp5")
    assert len(pw.adders) == 7
    assert len(cs.adders) == 5
    assert cs.cost("ecp5") < pw.cost("ecp5")


def test_cse_prices_subtraction_by_family():
    # x0 - x1 occurs in both outputs. Priced for ECP5 (a subtraction costs what an
    # addition does) sharing it saves an adder; priced for iCE40 its 8 inverters eat the
    # saving of the second use, so the pattern stays in the positive and negative trees.
    w = np.array([[1, -1, 4], [1, -1, -4]])
    b = [(0, 255)] * 3
    ice, ecp = cse_graph(w, b, "ice40"), cse_graph(w, b, "ecp5")
    assert Adder(Term(0), Term(1, neg=True)) in ecp.adders and len(ecp.adders) == 3
    assert Adder(Term(0), Term(1, neg=True)) not in ice.adders and len(ice.adders) == 4
    assert ecp.cost("ecp5") < ice.cost("ecp5")
    # ... but the final subtractions pay inverters too, so on iCE40 the shared one wins
    # here after all: solve() costs every candidate on the target
    assert ecp.cost("ice40") < ice.cost("ice40")
    assert solve(w, b, "ice40").method == "cse-ecp5"
    ice.check_matrix(w)
    ecp.check_matrix(w)


def test_solve_keeps_the_cheaper():
    rng = np.random.default_rng(3)
    w = _matrix(rng, "uniform", 4, (8, 8))
    b = [(0, 15)] * 8
    for fam in Family:
        sol = solve(w, b, fam)
        assert set(sol.costs) == set(METHODS)
        assert sol.cost == min(sol.costs.values()) == sol.graph.cost(fam)
        sol.graph.check_matrix(w)
    # a layer too large for CSE keeps to the pairwise trees, and says so
    sol = solve(w, b, "ecp5", max_pairs=10)
    assert sol.method == "pairwise" and set(sol.costs) == {"pairwise"}
    assert sol.skipped == {m: f"{pair_count(w)} digit pairs, more than 10"
                           for m in ("cse-ice40", "cse-ecp5")}
    # a single digit per output: nothing to share, both methods cost the same and the
    # first listed (pairwise) wins the tie
    eye = np.eye(4, dtype=np.int64) * 4
    sol = solve(eye, [(0, 15)] * 4, "ice40")
    assert sol.method == "pairwise" and sol.cost == 0


def test_cost_model_examples():
    # measured with Yosys 0.70 (bench/cmvm_vs_da4ml.py --calibrate): a 12-bit a + b is 12
    # LUT4 on iCE40 (13 result bits, the top one the bare carry-out), a - b 25 (12
    # inverters, and the signed top bit needs its LUT); on ECP5 both are 7 CCU2C
    u12 = (12, 0, False)
    assert adder_cost("ice40", (0, 8190), u12, u12) == 12
    assert adder_cost("ice40", (-4095, 4095), u12, (12, 0, True)) == 25
    assert adder_cost("ecp5", (0, 8190), u12, u12) == 14
    assert adder_cost("ecp5", (-4095, 4095), u12, (12, 0, True)) == 14
    # a + (b << 4): the 4 low bits are a's, wiring
    f = adder_facts((0, 4095 + (4095 << 4)), u12, (16, 4, False))
    assert (f.chain_lo, f.chain, f.inverted) == (4, 13, 0)
    # (a << 3) - b: the chain starts at b's bit 0, which is b's own bit (no LUT)
    f = adder_facts((-255, 2040), (11, 3, False), (8, 0, True))
    assert (f.chain_lo, f.chain, f.inverted, f.low_free) == (0, 12, 8, True)
    assert adder_cost("ice40", (-255, 2040), (11, 3, False), (8, 0, True)) == 19
    # ECP5 maps chains of up to 4 bits to LUT4s: 2 + 2 bits 3, 3 + 3 bits 10
    assert adder_cost("ecp5", (0, 6), (2, 0, False), (2, 0, False)) == 3
    assert adder_cost("ecp5", (0, 14), (3, 0, False), (3, 0, False)) == 10
    assert adder_cost("ecp5", (0, 30), (4, 0, False), (4, 0, False)) == 6


def test_graph_errors():
    with pytest.raises(GraphError, match="not computed before it"):
        AdderGraph(in_bounds=[(0, 1)], adders=[Adder(Term(0), Term(1))], outputs=[])
    with pytest.raises(GraphError, match="Adder 0 subtracts both operands"):
        AdderGraph(in_bounds=[(0, 1)] * 2, adders=[Adder(Term(0, neg=True), Term(1, neg=True))],
                   outputs=[])
    with pytest.raises(GraphError, match="Output 0: the source must be a non-negative "
                                         "integer, not -1"):
        AdderGraph(in_bounds=[(0, 1)], adders=[], outputs=[Term(-1)])
    with pytest.raises(GraphError, match="Output 0 must be a Term"):
        AdderGraph(in_bounds=[(0, 1)], adders=[], outputs=[(0, 0, False)])
    with pytest.raises(GraphError, match="minimum above the maximum"):
        AdderGraph(in_bounds=[(2, 1)], adders=[], outputs=[])
    with pytest.raises(ValueError, match="3 input bounds given for a matrix of 2 columns"):
        cse_graph(np.eye(2, dtype=int), [(0, 1)] * 3, "ice40")
    with pytest.raises(TypeError, match="integers"):
        pairwise_graph(np.eye(2) * 0.5, [(0, 1)] * 2)
    with pytest.raises(ValueError, match="Method must be one of"):
        solve(np.eye(2, dtype=int), [(0, 1)] * 2, "ice40", methods=("magic",))
    with pytest.raises(ValueError):
        solve(np.eye(2, dtype=int), [(0, 1)] * 2, "gowin")


def test_restarts_are_deterministic_and_never_worse():
    rng = np.random.default_rng(11)
    w = _matrix(rng, "pot", 3, (10, 16))
    b = [(0, 3)] * 16
    for fam in ("ice40", "ecp5"):
        greedy = solve(w, b, fam, restarts=0)
        best = solve(w, b, fam, restarts=6)
        again = solve(w, b, fam, restarts=6)
        assert best.cost <= greedy.cost
        assert best.graph.adders == again.graph.adders and best.seed == again.seed
        assert greedy.seed == 0
        best.graph.check_matrix(w)
