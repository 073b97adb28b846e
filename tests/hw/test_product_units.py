"""Product units and MAC lanes against the golden products, exhaustively at small widths."""

import itertools

import numpy as np
import pytest
from amaranth.sim import Simulator

from mulfree.gen.examples import scheme_codebook
from mulfree.hw.mac import MacLane, apot_exp_bits, pot_exp_bits
from mulfree.hw.product import ApotProduct, PotProduct, TableProduct, UniformProduct

# Components whose constructor raises are never elaborated, by design.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _products(unit, pairs):
    """Simulate ``unit`` on (native weight, activation) pairs; return the products."""
    got = []

    async def bench(ctx):
        for w, a in pairs:
            ctx.set(unit.w, w)
            ctx.set(unit.a, a)
            got.append(ctx.get(unit.p))

    sim = Simulator(unit)
    sim.add_testbench(bench)
    sim.run()
    return got


def _acts(bits, signed):
    return range(-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else range(2**bits)


@pytest.mark.parametrize("act_signed", [False, True])
@pytest.mark.parametrize("unit", [
    lambda s: UniformProduct(weight_bits=3, act_bits=3, act_signed=s),
    lambda s: PotProduct(exp_bits=2, act_bits=3, act_signed=s),
    lambda s: PotProduct(exp_bits=0, act_bits=2, act_signed=s),
    lambda s: ApotProduct(exp_bits=2, act_bits=3, act_signed=s),
])
def test_every_native_code(unit, act_signed):
    u = unit(act_signed)
    pairs = [(w, a) for w in range(2**u.weight_bits) for a in _acts(u.act_bits, act_signed)]
    got = _products(u, pairs)
    want = [u.value(w) * a for w, a in pairs]
    assert got == want
    assert min(want) >= u.bounds[0] and max(want) <= u.bounds[1]


@pytest.mark.parametrize("scheme,bits,make", [
    ("uniform", 4, lambda: UniformProduct(weight_bits=4, act_bits=2)),
    ("pot", 4, lambda: PotProduct(exp_bits=pot_exp_bits(4), act_bits=2)),
    ("apot", 4, lambda: ApotProduct(exp_bits=apot_exp_bits(4), act_bits=2)),
    ("binary", 1, lambda: PotProduct(exp_bits=0, act_bits=2)),
    ("ternary", 2, lambda: PotProduct(exp_bits=0, act_bits=2)),
])
def test_codebook_matches_golden(scheme, bits, make):
    u = make()
    cb = scheme_codebook(scheme, bits)
    pairs = [(u.encode(int(v)), c) for v in cb for c in range(4)]
    want = np.multiply.outer(cb, np.arange(4)).reshape(-1).tolist()
    assert _products(u, pairs) == want


def test_table_unit():
    rng = np.random.default_rng(1)
    table = rng.integers(-50, 51, (3, 4)).tolist()
    u = TableProduct(table=table)
    pairs = list(itertools.product(range(4), range(4)))
    want = [table[k][c] if k < 3 else 0 for k, c in pairs]
    assert _products(u, pairs) == want


def test_larger_widths_random():
    rng = np.random.default_rng(2)
    for u in [UniformProduct(weight_bits=8, act_bits=8), PotProduct(exp_bits=3, act_bits=8),
              ApotProduct(exp_bits=3, act_bits=8, act_signed=True)]:
        ws = rng.integers(0, 2**u.weight_bits, 300)
        lo, hi = (-128, 128) if u.act_signed else (0, 256)
        acts = rng.integers(lo, hi, 300)
        pairs = list(zip(ws.tolist(), acts.tolist()))
        assert _products(u, pairs) == [u.value(w) * a for w, a in pairs]


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(weight_bits=0, act_bits=2), ValueError, "Weight width must be a positive integer, not 0"),
    (dict(weight_bits="4", act_bits=2), TypeError, "Weight width must be an integer, not '4'"),
    (dict(weight_bits=4, act_bits=2, act_signed=1), TypeError, "act_signed must be a bool, not 1"),
])
def test_bad_parameters(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        UniformProduct(**kwargs)


def test_bad_parameters_other_units():
    with pytest.raises(ValueError, match="Exponent width must be an integer >= 0, not -1"):
        PotProduct(exp_bits=-1, act_bits=4)
    with pytest.raises(TypeError, match="Table entries must be integers"):
        TableProduct(table=[[1, "x"]])
    with pytest.raises(ValueError, match="same length"):
        TableProduct(table=[[1, 2], [3]])
    with pytest.raises(ValueError, match="not 0 or"):
        PotProduct(exp_bits=2, act_bits=4).encode(3)
    with pytest.raises(ValueError, match="Scheme must be one of"):
        MacLane(scheme="fp8", weight_bits=4, act_bits=8, acc_width=16)


@pytest.mark.parametrize("scheme", ["multiply", "uniform", "pot", "apot", "table"])
@pytest.mark.parametrize("act_signed", [False, True])
def test_mac_lane(scheme, act_signed):
    if scheme == "table" and act_signed:
        pytest.skip("table lanes take activation codes")
    rng = np.random.default_rng(3)
    table = rng.integers(-9, 10, (8, 8)).tolist()
    lane = MacLane(scheme=scheme, weight_bits=3, act_bits=3, acc_width=14,
                   act_signed=act_signed, table=table if scheme == "table" else None)
    if scheme in ("multiply", "uniform"):
        natives = list(range(8))
        value = lambda n: n - 8 if n >= 4 else n  # noqa: E731
    elif scheme == "table":
        natives = list(range(8))
        value = None
    else:
        natives = list(range(2**lane.weight_width))
        value = lane.unit.value
    steps = []
    for _ in range(300):
        steps.append((int(rng.choice(natives)), int(rng.choice(list(_acts(3, act_signed)))),
                      int(rng.random() < 0.8), int(rng.random() < 0.2)))
    expect, acc = [], 0
    for w, a, v, f in steps:
        if v:
            p = table[w][a] if value is None else value(w) * a
            acc = (0 if f else acc) + p
        expect.append(acc)
    got = []

    async def bench(ctx):
        for w, a, v, f in steps:
            ctx.set(lane.weight, w)
            ctx.set(lane.act, a)
            ctx.set(lane.valid, v)
            ctx.set(lane.first, f)
            await ctx.tick()
            got.append(ctx.get(lane.acc))

    sim = Simulator(lane)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == expect
