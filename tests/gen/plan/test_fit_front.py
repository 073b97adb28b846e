"""The device fit's Pareto front: the n log n filter equals the plain quadratic one, and
a front too large for the search is thinned, keeping the cheapest per step."""

import random

from mulfree.gen.plan.fit import FRONT_CAP, _pareto, _thin


def _naive(front):
    front = sorted(front, key=lambda s: (s[0], s[1], s[2], s[3]))
    out = []
    for s in front:
        if any(o[0] <= s[0] and o[1] <= s[1] and o[2] <= s[2] and o[3] <= s[3] for o in out):
            continue
        out.append(s)
    return out


def test_pareto_equals_the_quadratic_filter():
    r = random.Random(0)
    for t in range(1500):
        n = r.randint(0, 60)
        front = [(r.randint(0, 4), r.randint(0, 2), r.randint(0, 20), r.randint(0, 20),
                  (("pick", i),), 1.0) for i in range(n)]
        assert _pareto(front) == _naive(front), t


def test_pareto_check_can_fail():
    # a filter that ignores flip-flops keeps fewer states than the true front
    front = [(0, 0, 1, 5, "a", 1.0), (0, 0, 2, 1, "b", 1.0)]
    assert _pareto(front) == front
    assert _naive([(s[0], s[1], s[2], 0, s[4], s[5]) for s in front]) != front


def test_thin_keeps_small_fronts_and_shrinks_large_ones():
    small = [(0, 0, c, 100 - c, None, 1.0) for c in range(FRONT_CAP)]
    assert _thin(small, (1, 1, 1)) == small
    big = _pareto([(b, 0, 1000 * b + c, 5000 - c, None, 1.0)
                   for b in range(10) for c in range(0, 1000, 1)][::-1])
    assert len(big) > FRONT_CAP
    thin = _thin(big, (1, 4, 4))
    assert len(thin) <= FRONT_CAP
    assert set(thin) <= set(big)
    # the cheapest state in cells survives to within a step or two of the grain
    assert min(s[2] for s in thin) - min(s[2] for s in big) <= 16
    assert min(s[0] for s in thin) == 0
