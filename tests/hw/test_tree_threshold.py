"""Adder trees and threshold units against plain Python sums and the golden thresholds."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from mulfree.gen.model.golden import apply_thresholds
from amaranth.hdl import Elaboratable, Module, Signal, signed

from mulfree.hw.adder_tree import AdderTree, sum_tree_carries
from mulfree.hw.mac import MacLane
from mulfree.hw.threshold import ThresholdUnit
from netsim import run_lane

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


@pytest.mark.parametrize("pipeline_every", [0, 1, 2])
def test_adder_tree(pipeline_every):
    bounds = [(0, 255), (-8, 7), (0, 1), (-100, 3), (5, 9)]
    tree = AdderTree(bounds=bounds, pipeline_every=pipeline_every)
    lo, hi = tree.sum_bounds
    assert tree.sum.shape().width == max((lo if lo < 0 else hi).bit_length(), hi.bit_length()) + 1
    rng = np.random.default_rng(0)
    vectors = [[int(rng.integers(a, b + 1)) for a, b in bounds] for _ in range(60)]
    vectors += [[a for a, _ in bounds], [b for _, b in bounds]]
    got = []

    async def bench(ctx):
        for v in vectors:
            for n, x in enumerate(v):
                ctx.set(tree.terms[f"t{n}"], x)
            for _ in range(tree.latency):
                await ctx.tick()
            got.append(ctx.get(tree.sum))

    sim = Simulator(tree)
    if tree.latency:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == [sum(v) for v in vectors]
    assert tree.latency == {0: 0, 1: 3, 2: 1}[pipeline_every]


class _CarryTree(Elaboratable):
    """Terms and carry-ins into :func:`sum_tree_carries`; the sum plus the leftovers."""

    def __init__(self, bounds, n_carries, pipeline_every):
        self.bounds, self.every = bounds, pipeline_every
        self.terms = [Signal(signed(10), name=f"t{n}") for n in range(len(bounds))]
        self.carries = [Signal(name=f"c{n}") for n in range(n_carries)]
        self.total = Signal(signed(14))
        self.latency = None

    def elaborate(self, platform):
        m = Module()
        terms = [(t, lo, hi) for t, (lo, hi) in zip(self.terms, self.bounds)]
        value, _, _, self.latency, left = sum_tree_carries(
            m, terms, carries=self.carries, pipeline_every=self.every)
        total = value
        for c in left:
            total = total + c
        m.d.comb += self.total.eq(total)
        return m


@pytest.mark.parametrize("pipeline_every", [0, 1, 2])
@pytest.mark.parametrize("n_carries", [3, 7])
def test_adder_tree_carries_pipelined(pipeline_every, n_carries):
    """A new vector every cycle: each carry-in must meet its own terms, however many
    register levels lie before its adder (7 carries: 6 adders, one carry left over)."""
    bounds = [(-50, 50), (0, 7), (-3, 3), (-100, 100), (0, 1), (-8, 7), (2, 9)]
    dut = _CarryTree(bounds, n_carries, pipeline_every)
    sim = Simulator(dut)              # elaborates it: the latency is known from here
    assert dut.latency == {0: 0, 1: 3, 2: 1}[pipeline_every]
    rng = np.random.default_rng(n_carries)
    vectors = [([int(rng.integers(a, b + 1)) for a, b in bounds],
                [int(rng.integers(0, 2)) for _ in range(n_carries)]) for _ in range(40)]
    got = []

    async def bench(ctx):
        for k in range(len(vectors) + dut.latency):
            if k < len(vectors):
                terms, carries = vectors[k]
                for sig, x in zip(dut.terms + dut.carries, terms + carries):
                    ctx.set(sig, x)
            if k >= dut.latency:
                got.append(ctx.get(dut.total))
            await (ctx.tick() if dut.latency else ctx.delay(1e-6))

    if dut.latency:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == [sum(t) + sum(c) for t, c in vectors]


def test_adder_tree_parameters():
    with pytest.raises(ValueError, match="minimum above its maximum"):
        AdderTree(bounds=[(3, 1)])
    with pytest.raises(TypeError, match="pair of integers"):
        AdderTree(bounds=[(0, 1.5)])
    with pytest.raises(ValueError, match="at least one term"):
        AdderTree(bounds=[])


def test_threshold_unit_exhaustive():
    t = [-5, -5, 0, 3, 3, 3, 9]
    unit = ThresholdUnit(acc_width=5, threshold_width=5, count=len(t))
    accs = list(range(-16, 16))
    got = []

    async def bench(ctx):
        for n, v in enumerate(t):
            ctx.set(unit.thresholds[n], v)
        for a in accs:
            ctx.set(unit.acc, a)
            got.append(ctx.get(unit.code))

    sim = Simulator(unit)
    sim.add_testbench(bench)
    sim.run()
    want = apply_thresholds(np.array(accs)[:, None], np.array([t]))[:, 0].tolist()
    assert got == want


def test_mac_lane_clear_control():
    lane = MacLane(scheme="pot", weight_bits=3, act_bits=3, acc_width=12, control="clear",
                   max_exp=3)
    steps = [(lane.encode(4), 5, 1, 0), (lane.encode(-2), 3, 1, 0), (0, 0, 0, 1),
             (lane.encode(1), 7, 1, 0), (lane.encode(0), 7, 1, 0), (lane.encode(-8), 1, 1, 1)]
    got = run_lane(lane, lane.clear, steps)
    assert got == [20, 14, 0, 7, 7, 0]
    with pytest.raises(ValueError, match="Control must be one of 'first', 'clear', 'last', "
                                         "not 'reset'"):
        MacLane(scheme="pot", weight_bits=3, act_bits=3, acc_width=12, control="reset")


@pytest.mark.parametrize("count", [1, 3, 7, 15])
def test_sequential_threshold_unit(count):
    from mulfree.hw.threshold import SequentialThresholdUnit

    rng = np.random.default_rng(count)
    t = np.sort(rng.integers(-20, 20, count)).tolist()
    unit = SequentialThresholdUnit(acc_width=7, threshold_width=6, count=count)
    accs = list(range(-25, 25))
    got = []

    async def bench(ctx):
        for n, v in enumerate(t):
            ctx.set(unit.thresholds[n], v)
        for a in accs:
            ctx.set(unit.acc, a)
            ctx.set(unit.start, 1)
            await ctx.tick()
            ctx.set(unit.start, 0)
            ctx.set(unit.acc, 0)
            for _ in range(unit.latency):
                assert not ctx.get(unit.done)
                await ctx.tick()
            assert ctx.get(unit.done)
            got.append(ctx.get(unit.code))

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == apply_thresholds(np.array(accs)[:, None], np.array([t]))[:, 0].tolist()
    with pytest.raises(ValueError, match="Threshold count must be 2\\*\\*bits - 1, not 4"):
        SequentialThresholdUnit(acc_width=7, threshold_width=6, count=4)


def _memory_unit_run(unit, inputs, every, external_words=None):
    """Feed ``(acc, group)`` pairs every ``every`` cycles; return the codes in order and
    the cycle distance between each input and its code."""
    got, lags = [], []

    async def bench(ctx):
        pending = []
        cycle = 0
        queue = list(inputs)
        mem_data = 0
        while queue or pending:
            if queue and cycle % every == 0:
                a, g = queue.pop(0)
                ctx.set(unit.valid, 1)
                ctx.set(unit.acc, a)
                ctx.set(unit.group, g)
                pending.append(cycle)
            else:
                ctx.set(unit.valid, 0)
                ctx.set(unit.acc, 0)
            if external_words is not None:
                ctx.set(unit.mem_data, mem_data)
                mem_data = external_words[ctx.get(unit.mem_addr)]
            if ctx.get(unit.code_valid):
                got.append(ctx.get(unit.code))
                lags.append(cycle - pending.pop(0))
            await ctx.tick()
            cycle += 1
            assert cycle < 100 * (len(inputs) + 4)

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got, lags


def _random_table(rng, groups, bits, lo, hi):
    return [sorted(int(v) for v in rng.integers(lo, hi + 1, (1 << bits) - 1))
            for _ in range(groups)]


@pytest.mark.parametrize("kind", ["search", "sequential", "external"])
@pytest.mark.parametrize("groups,bits", [(1, 1), (1, 3), (3, 2), (4, 1), (5, 3), (2, 4)])
def test_memory_threshold_units_exhaustive(kind, groups, bits):
    """Every accumulator value of a 5-bit accumulator against every group's thresholds
    (duplicates and the extremes included), one input per cycle (pipelined search) or
    one every ``bits`` cycles (sequential), each code ``bits`` cycles after its input."""
    from mulfree.hw.threshold import ThresholdSearch, ThresholdSequential

    rng = np.random.default_rng(groups * 10 + bits)
    table = _random_table(rng, groups, bits, -16, 15)
    table[0][0] = -16          # reached by every accumulator
    table[-1][-1] = 15
    if kind == "search":
        unit = ThresholdSearch(acc_width=5, threshold_width=5, bits=bits, thresholds=table)
        every = 1
    else:
        style = "external" if kind == "external" else None
        unit = ThresholdSequential(acc_width=5, threshold_width=6, bits=bits,
                                   thresholds=table, style=style)
        every = bits
    inputs = [(a, g) for g in range(groups) for a in range(-16, 16)]
    rng.shuffle(inputs)
    words = unit.words if kind == "external" else None
    got, lags = _memory_unit_run(unit, [tuple(map(int, x)) for x in inputs], every, words)
    want = [int(apply_thresholds(np.array([[a]]), np.array([table[g]]))[0, 0])
            for a, g in inputs]
    assert got == want
    assert set(lags) == {bits} and unit.latency == bits


def test_memory_threshold_unit_checks():
    from mulfree.hw.threshold import ThresholdSearch, ThresholdSequential

    with pytest.raises(ValueError, match=r"Threshold row 0 must have 2\*\*bits - 1 = 3 "
                                         r"entries, not 2"):
        ThresholdSearch(acc_width=4, threshold_width=4, bits=2, thresholds=[[0, 1]])
    with pytest.raises(ValueError, match="Threshold row 1 must be non-decreasing"):
        ThresholdSearch(acc_width=4, threshold_width=4, bits=2,
                        thresholds=[[0, 1, 2], [3, 2, 4]])
    with pytest.raises(ValueError, match="Threshold 8 in row 0 is not a 4-bit"):
        ThresholdSequential(acc_width=4, threshold_width=4, bits=1, thresholds=[[8]])
    with pytest.raises(ValueError, match="Threshold width must be at least the accumulator "
                                         "width 6, not 5"):
        ThresholdSequential(acc_width=6, threshold_width=5, bits=1, thresholds=[[0]])
    with pytest.raises(ValueError, match="Style must be None, 'block' or 'logic', not "
                                         "'external'"):
        ThresholdSearch(acc_width=4, threshold_width=4, bits=1, thresholds=[[0]],
                        style="external")
    with pytest.raises(TypeError, match="Thresholds must be a non-empty sequence"):
        ThresholdSequential(acc_width=4, threshold_width=4, bits=1, thresholds=[])
