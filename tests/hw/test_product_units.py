"""Product units and MAC lanes against the golden products, exhaustively at small widths."""

import itertools

import numpy as np
import pytest
from amaranth.sim import Simulator

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from mulfree.gen.model.examples import scheme_codebook
from mulfree.gen.train.quant import weight_levels
from mulfree.hw.mac import MacLane, apot_levels, pot_max_exp
from mulfree.hw.product import ApotProduct, PotProduct, TableProduct, UniformProduct, apot_max_exps
from netsim import run_lane

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


UNITS = [
    lambda s: UniformProduct(weight_bits=3, act_bits=3, act_signed=s),
    lambda s: PotProduct(max_exp=2, act_bits=3, act_signed=s),
    lambda s: PotProduct(max_exp=0, act_bits=2, act_signed=s),
    lambda s: PotProduct(max_exp=3, act_bits=3, act_signed=s),     # no spare field: 3 bits
    lambda s: PotProduct(max_exp=4, act_bits=3, act_signed=s),     # fields 5, 6, 7 are 0
    lambda s: PotProduct(max_exp=6, act_bits=3, act_signed=s),     # the 4-bit codebook's
    lambda s: ApotProduct(max_exp=0, act_bits=3, act_signed=s),
    lambda s: ApotProduct(max_exp=1, act_bits=3, act_signed=s),
    lambda s: ApotProduct(max_exp=2, lo_max_exp=0, act_bits=3, act_signed=s),
    lambda s: ApotProduct(max_exp=3, lo_max_exp=1, act_bits=3, act_signed=s),  # 4-bit
    lambda s: ApotProduct(max_exp=4, lo_max_exp=3, act_bits=2, act_signed=s),  # 5-bit
    lambda s: ApotProduct(max_exp=5, lo_max_exp=2, act_bits=2, act_signed=s),
    lambda s: ApotProduct(levels=[1, 2, 3, 4, 5, 6, 8], act_bits=3, act_signed=s),  # index
    lambda s: ApotProduct(levels=[3, 12, 16, 2], act_bits=3, act_signed=s),
    lambda s: ApotProduct(levels=[1], act_bits=3, act_signed=s),
    lambda s: ApotProduct(levels=[2, 4], max_exp=3, lo_max_exp=2, act_bits=2, act_signed=s),
]


@pytest.mark.parametrize("act_signed", [False, True])
@pytest.mark.parametrize("unit", UNITS)
def test_every_native_code(unit, act_signed):
    u = unit(act_signed)
    pairs = [(w, a) for w in range(2**u.weight_bits) for a in _acts(u.act_bits, act_signed)]
    got = _products(u, pairs)
    want = [u.value(w) * a for w, a in pairs]
    assert got == want
    assert min(want) >= u.bounds[0] and max(want) <= u.bounds[1]


class _Terms(wiring.Component):
    """A unit's ``terms()`` (one's complement term and carry), as the lanes add them."""

    def __init__(self, unit):
        self._unit = unit
        probe = Module()
        probe._MustUse__silence = True
        term, self.lo, self.hi, _ = unit.terms(probe)
        super().__init__({"w": In(unit.weight_bits), "a": In(unit.a.shape()),
                          "t": Out(term.shape()), "c": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = u = self._unit
        m.d.comb += [u.w.eq(self.w), u.a.eq(self.a)]
        term, _, _, carry = u.terms(m, name="term")
        m.d.comb += [self.t.eq(term), self.c.eq(carry)]
        return m


@pytest.mark.parametrize("act_signed", [False, True])
@pytest.mark.parametrize("unit", UNITS[1:])
def test_every_native_code_as_terms(unit, act_signed):
    """``term + carry`` (the form the MAC lane and the layer engine add) is the product."""
    u = unit(act_signed)
    dut = _Terms(u)
    pairs = [(w, a) for w in range(2**u.weight_bits) for a in _acts(u.act_bits, act_signed)]
    got = []

    async def bench(ctx):
        for w, a in pairs:
            ctx.set(dut.w, w)
            ctx.set(dut.a, a)
            t = ctx.get(dut.t)
            assert dut.lo <= t <= dut.hi
            got.append(t + ctx.get(dut.c))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert got == [u.value(w) * a for w, a in pairs]


@pytest.mark.parametrize("bits", range(2, 9))
def test_codebook_exponents_match_the_quantizer(bits):
    levels = weight_levels("apot", bits)
    assert apot_levels(bits) == [int(v) for v in levels if v > 0]
    u = ApotProduct(max_exp=apot_max_exps(apot_levels(bits))[0],
                    lo_max_exp=apot_max_exps(apot_levels(bits))[1], act_bits=2)
    u._MustUse__silence = True
    assert [u.value(u.encode(int(v))) for v in levels] == levels.tolist()
    u = ApotProduct(levels=apot_levels(bits), act_bits=2)
    u._MustUse__silence = True
    assert [u.value(u.encode(int(v))) for v in levels] == levels.tolist()
    assert u.weight_bits == bits and u.bounds == (-3 * max(levels), 3 * max(levels))
    if bits <= 6:
        levels = weight_levels("pot", bits)
        assert max(abs(levels)) == 2 ** pot_max_exp(bits)
        u = PotProduct(max_exp=pot_max_exp(bits), act_bits=2)
        u._MustUse__silence = True
        assert [u.value(u.encode(int(v))) for v in levels] == levels.tolist()
        # one native bit per code bit: the sign and an exponent field whose spare value is 0
        assert u.weight_bits == bits


def test_four_bit_exponents():
    assert pot_max_exp(4) == 6
    assert apot_max_exps(apot_levels(4)) == (3, 1)
    assert apot_max_exps([0, 1, -2, 12]) == (3, 2)
    with pytest.raises(ValueError, match="Level 7 is not a sum of at most two powers of two"):
        apot_max_exps([7])


@pytest.mark.parametrize("scheme,bits,make", [
    ("uniform", 4, lambda: UniformProduct(weight_bits=4, act_bits=2)),
    ("pot", 4, lambda: PotProduct(max_exp=pot_max_exp(4), act_bits=2)),
    ("apot", 4, lambda: ApotProduct(max_exp=3, lo_max_exp=1, act_bits=2)),
    ("apot", 5, lambda: ApotProduct(max_exp=4, lo_max_exp=3, act_bits=2)),
    ("binary", 1, lambda: PotProduct(max_exp=0, act_bits=2)),
    ("ternary", 2, lambda: PotProduct(max_exp=0, act_bits=2)),
])
def test_codebook_matches_golden(scheme, bits, make):
    u = make()
    cb = weight_levels(scheme, bits)
    pairs = [(u.encode(int(v)), c) for v in cb for c in range(4)]
    want = np.multiply.outer(cb, np.arange(4)).reshape(-1).tolist()
    assert _products(u, pairs) == want


def test_example_codebooks_fit_their_exponents():
    """``gen.examples`` PoT codebooks reach -2**(2**(b-1) - 1): one exponent more."""
    cb = scheme_codebook("pot", 4)
    u = PotProduct(max_exp=7, act_bits=2)
    pairs = [(u.encode(int(v)), c) for v in cb for c in range(4)]
    assert _products(u, pairs) == np.multiply.outer(cb, np.arange(4)).reshape(-1).tolist()


def test_table_unit():
    rng = np.random.default_rng(1)
    table = rng.integers(-50, 51, (3, 4)).tolist()
    u = TableProduct(table=table)
    pairs = list(itertools.product(range(4), range(4)))
    want = [table[k][c] if k < 3 else 0 for k, c in pairs]
    assert _products(u, pairs) == want


def test_larger_widths_random():
    rng = np.random.default_rng(2)
    for u in [UniformProduct(weight_bits=8, act_bits=8), PotProduct(max_exp=14, act_bits=8),
              ApotProduct(max_exp=15, lo_max_exp=13, act_bits=8, act_signed=True),
              ApotProduct(max_exp=7, lo_max_exp=5, act_bits=8)]:
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


@pytest.mark.parametrize("make,exc,msg", [
    (lambda: PotProduct(max_exp=-1, act_bits=4), ValueError,
     r"Maximum exponent must be an integer >= 0, not -1"),
    (lambda: PotProduct(max_exp=2.0, act_bits=4), TypeError,
     r"Maximum exponent must be an integer, not 2\.0"),
    (lambda: PotProduct(max_exp=True, act_bits=4), TypeError,
     r"Maximum exponent must be an integer, not True"),
    (lambda: PotProduct(max_exp=3, act_bits=0), ValueError,
     r"Activation width must be a positive integer, not 0"),
    (lambda: ApotProduct(max_exp="3", act_bits=4), TypeError,
     r"Maximum exponent must be an integer, not '3'"),
    (lambda: ApotProduct(max_exp=-2, act_bits=4), ValueError,
     r"Maximum exponent must be an integer >= 0, not -2"),
    (lambda: ApotProduct(max_exp=3, lo_max_exp=1.5, act_bits=4), TypeError,
     r"Maximum low exponent must be an integer, not 1\.5"),
    (lambda: ApotProduct(max_exp=3, lo_max_exp=-1, act_bits=4), ValueError,
     r"Maximum low exponent must be an integer >= 0, not -1"),
    (lambda: ApotProduct(max_exp=3, lo_max_exp=3, act_bits=4), ValueError,
     r"Maximum low exponent must be below the maximum exponent 3 \(or 0\), not 3"),
    (lambda: ApotProduct(max_exp=0, lo_max_exp=1, act_bits=4), ValueError,
     r"Maximum low exponent must be below the maximum exponent 0 \(or 0\), not 1"),
    (lambda: ApotProduct(act_bits=4), TypeError, r"ApotProduct needs max_exp or levels"),
    (lambda: ApotProduct(levels=3, act_bits=4), TypeError,
     r"Levels must be a list of integers, not 3"),
    (lambda: ApotProduct(levels=[1, 2.0], act_bits=4), TypeError,
     r"Levels must be integers, not 2\.0"),
    (lambda: ApotProduct(levels=[1, 0], act_bits=4), ValueError,
     r"Levels must be positive, not 0"),
    (lambda: ApotProduct(levels=[], act_bits=4), ValueError, r"Levels must not be empty"),
    (lambda: ApotProduct(levels=[1, 2, 1], act_bits=4), ValueError,
     r"Levels must be distinct, not \[1, 2, 1\]"),
    (lambda: ApotProduct(levels=[1, 7], act_bits=4), ValueError,
     r"Level 7 is not a sum of at most two powers of two"),
    (lambda: ApotProduct(levels=[12], max_exp=2, act_bits=4), ValueError,
     r"Levels need exponents up to 3 and 2, not 2 and 2"),
])
def test_bad_exponents(make, exc, msg):
    with pytest.raises(exc, match=msg):
        make()


def test_bad_parameters_other_units():
    with pytest.raises(TypeError, match="Table entries must be integers"):
        TableProduct(table=[[1, "x"]])
    with pytest.raises(ValueError, match="same length"):
        TableProduct(table=[[1, 2], [3]])
    u = PotProduct(max_exp=2, act_bits=4)
    with pytest.raises(ValueError, match=r"Weight 3 is not 0 or \+-2\*\*e with e <= 2"):
        u.encode(3)
    with pytest.raises(ValueError, match=r"Weight -8 is not 0 or \+-2\*\*e with e <= 2"):
        u.encode(-8)
    a = ApotProduct(max_exp=3, lo_max_exp=1, act_bits=4)
    for bad in (7, 12, -16):        # three bits; a low term 4 > 2**1; past 2**3
        with pytest.raises(ValueError, match=rf"Weight {bad} is not 0, \+-2\*\*e or"):
            a.encode(bad)
    with pytest.raises(ValueError,
                       match=r"Weight -7 is not 0 or \+-one of the levels \[1, 2, 3\]"):
        ApotProduct(levels=[3, 1, 2], act_bits=4).encode(-7)
    with pytest.raises(ValueError, match="Scheme must be one of"):
        MacLane(scheme="fp8", weight_bits=4, act_bits=8, acc_width=16)
    with pytest.raises(ValueError, match="Levels are for the apot scheme, not 'pot'"):
        MacLane(scheme="pot", weight_bits=4, act_bits=8, acc_width=16, levels=[1, 2])
    with pytest.raises(TypeError, match="Control must be a string, not 1"):
        MacLane(scheme="pot", weight_bits=4, act_bits=8, acc_width=16, control=1)
    with pytest.raises(ValueError, match="Control must be one of 'first', 'clear', 'last', "
                                         "not 'reset'"):
        MacLane(scheme="pot", weight_bits=4, act_bits=8, acc_width=16, control="reset")
    with pytest.raises(ValueError, match="Exponents are for the pot and apot schemes, not "
                                         "'uniform'"):
        MacLane(scheme="uniform", weight_bits=4, act_bits=8, acc_width=16, max_exp=3)
    with pytest.raises(ValueError, match="The pot scheme has no low exponent"):
        MacLane(scheme="pot", weight_bits=4, act_bits=8, acc_width=16, lo_max_exp=1)


def _golden_lane(steps, product, control):
    """What ``acc`` shows after each step ``(weight, act, valid, ctl)``."""
    expect, acc, run = [], 0, 0
    for w, a, v, c in steps:
        if control == "first":
            if v:
                acc = (0 if c else acc) + product(w, a)
        elif control == "clear":
            if c:
                acc = 0
            elif v:
                acc += product(w, a)
        elif v:
            run += product(w, a)
            if c:
                acc, run = run, 0
        expect.append(acc)
    return expect


@pytest.mark.parametrize("control", ["first", "clear", "last"])
@pytest.mark.parametrize("scheme,kwargs", [
    ("multiply", {}), ("uniform", {}), ("table", {}),
    ("pot", {}),                                        # max_exp 2 (3-bit codebook)
    ("pot", {"max_exp": 6}),                            # 4-bit native, field 7 = zero
    ("apot", {}),                                       # 1, 2, 3: max_exp 1, lo 0
    ("apot", {"max_exp": 3, "lo_max_exp": 1}),          # the 4-bit codebook's unit
    ("apot", {"max_exp": 4}),
    ("apot", {"levels": [1, 2, 3, 4, 5, 6, 8]}),      # index encoding
])
@pytest.mark.parametrize("act_signed", [False, True])
def test_mac_lane(scheme, kwargs, control, act_signed):
    if scheme == "table" and act_signed:
        pytest.skip("table lanes take activation codes")
    rng = np.random.default_rng(3)
    table = rng.integers(-9, 10, (8, 8)).tolist()
    lane = MacLane(scheme=scheme, weight_bits=3, act_bits=3, acc_width=16,
                   act_signed=act_signed, table=table if scheme == "table" else None,
                   control=control, **kwargs)
    if scheme in ("multiply", "uniform"):
        natives = list(range(8))
        product = lambda n, a: (n - 8 if n >= 4 else n) * a  # noqa: E731
    elif scheme == "table":
        natives = list(range(8))
        product = lambda n, a: table[n][a]  # noqa: E731
    else:
        natives = list(range(2**lane.weight_width))
        product = lambda n, a: lane.unit.value(n) * a  # noqa: E731
    acts = list(_acts(3, act_signed))
    steps = [(w, a, int(v), int(c)) for w, a in itertools.product(natives, acts)
             for v, c in [(rng.random() < 0.85, rng.random() < 0.2)]]
    rng.shuffle(steps)
    expect = _golden_lane(steps, product, control)
    port = {"first": lane.first if control == "first" else None,
            "clear": getattr(lane, "clear", None), "last": getattr(lane, "last", None)}[control]
    assert run_lane(lane, port, steps) == expect


def test_mac_lane_last_restarts_after_reset():
    """A domain reset in the middle of a sum restarts the running sum at 0."""
    lane = MacLane(scheme="pot", weight_bits=4, act_bits=8, acc_width=21, control="last")
    e = lane.encode
    steps = [(e(4), 10, 1, 0, 0), (e(4), 10, 1, 0, 1), (e(-2), 3, 1, 0, 0),
             (e(64), 255, 1, 1, 0), (e(0), 9, 1, 1, 0), (e(1), 1, 0, 1, 0)]
    from amaranth.hdl import ClockDomain
    top = Module()
    top.domains.sync = cd = ClockDomain("sync")
    top.submodules.lane = lane
    got = run_lane(lane, lane.last, steps, top=top, reset=cd.rst)
    assert got == [0, 0, 0, -6 + 64 * 255, 0, 0]
