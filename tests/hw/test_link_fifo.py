"""Link FIFOs (hw/link_fifo.py, gen/plan/links.py): the cycle model against Amaranth's
simulation of the FIFO, handshake by handshake; the sizing against the chain it sizes."""

import json

import numpy as np
import pytest
from amaranth.sim import Simulator

from mulfree.gen.model.cnv import CNV_SMALL, cnv_model
from mulfree.gen.plan.network import _fit_link_fifos, _within_fit, plan_network
from mulfree.hw.link_fifo import LinkFifo, LinkFifoSpec
from mulfree.hw.timing import LinkFifoModel, network_timing


def _simulate(spec, offers, readies):
    """Cycle by cycle: (i.ready, o.valid, transfer in, transfer out, o.payload sent)."""
    dut = LinkFifo(spec)
    trace = []

    async def bench(ctx):
        value = 1
        for offer, ready in zip(map(int, offers), map(int, readies)):
            ctx.set(dut.i.valid, offer)
            ctx.set(dut.i.payload, value)
            ctx.set(dut.o.ready, ready)
            i_ready, o_valid, payload = ctx.get(dut.i.ready), ctx.get(dut.o.valid), \
                ctx.get(dut.o.payload)
            took, sent = bool(offer and i_ready), bool(ready and o_valid)
            trace.append((bool(i_ready), bool(o_valid), took, sent, payload if sent else None))
            if took:
                value = value % (2 ** spec.width - 1) + 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return trace


def _model_trace(model, trace):
    """The model's (ready, valid) each cycle, fed the simulation's transfers."""
    out = []
    for t, (_, _, took, sent, _) in enumerate(trace):
        out.append((model.ready(), model.valid()))
        model.tick(t, took, sent)
    return out


class _OneCycleFifo(LinkFifoModel):
    """A wrong model: a beat valid one cycle after its write (SyncFIFO's timing)."""

    def __init__(self, s):
        super().__init__(s)
        self.level = 0

    def ready(self):
        return self.level < self.inner_depth + 1

    def valid(self):
        return self.level > 0

    def tick(self, t, took, sent):
        self.level += int(took) - int(sent)


@pytest.mark.parametrize("depth", [2, 3, 4, 7, 17])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_model_matches_the_fifo_cycle_by_cycle(depth, seed):
    rng = np.random.default_rng(seed)
    n = 400
    # bursts and pauses on both sides, so the FIFO fills and drains
    offers = (rng.random(n) < rng.choice([0.2, 0.6, 0.95], n)).astype(int)
    readies = (rng.random(n) < rng.choice([0.1, 0.5, 0.95], n)).astype(int)
    spec = LinkFifoSpec(width=5, depth=depth)
    trace = _simulate(spec, offers, readies)
    assert [t[:2] for t in trace] == _model_trace(LinkFifoModel(spec), trace)
    # beats come out in order and none is lost or made up
    sent = [t[4] for t in trace if t[3]]
    assert sent == [v % 31 + 1 for v in range(len(sent))] and len(sent) > n // 5


def test_a_wrong_model_fails_the_check():
    rng = np.random.default_rng(0)
    offers, readies = (rng.random(200) < 0.7).astype(int), (rng.random(200) < 0.5).astype(int)
    spec = LinkFifoSpec(width=5, depth=4)
    trace = _simulate(spec, offers, readies)
    assert [t[:2] for t in trace] != _model_trace(_OneCycleFifo(spec), trace)


def test_spec_checks():
    with pytest.raises(ValueError, match="depth of at least 2"):
        LinkFifoSpec(width=8, depth=1)


@pytest.fixture(scope="module")
def small_cnv():
    return cnv_model(CNV_SMALL, seed=0)


def test_sizing_brings_the_chain_to_its_slowest_stage(small_cnv):
    """The scaled-down CNV fitted to the 85F: without link FIFOs its chain runs well
    below its slowest stage's pace; with them at it, every FIFO as shallow as does it."""
    stages, manifest = plan_network(small_cnv, "runtime", "device:lfe5u-85f")
    plain, plain_manifest = plan_network(small_cnv, "runtime",
                                         {"device": "lfe5u-85f", "link_fifos": False})
    slowest = max(getattr(s, "period", 0) for s in plain)
    assert manifest["device_fit"]["cycles_per_inference"] == slowest
    assert plain_manifest["cycles_per_inference"] > 1.3 * slowest
    assert "link_fifos" not in plain_manifest
    assert manifest["cycles_per_inference"] == slowest
    fifos = [s for s in stages if isinstance(s, LinkFifoSpec)]
    assert fifos and len(manifest["link_fifos"]) == len(fifos)
    # none can be shallower (or go) without slowing the chain
    for n, s in enumerate(stages):
        if isinstance(s, LinkFifoSpec):
            fewer = stages[:n] + stages[n + 1:] if s.depth == 3 else \
                stages[:n] + [LinkFifoSpec(s.width, s.depth - 1, s.after)] + stages[n + 1:]
            assert network_timing(fewer)[1] > slowest
    # the estimate prices them
    names = [st["name"] for st in manifest["resources_estimate"]["stages"]]
    assert sum(name.endswith(".fifo") for name in names) == len(fifos)
    json.dumps(manifest)


def test_a_fit_at_its_budget_keeps_its_chain():
    spec = LinkFifoSpec(width=32, depth=200)
    fit = {"device": {"family": "ecp5"}, "estimate": {"cells": 100, "ffs": 100, "bram": 10},
           "budget": {"cells": 1000, "ffs": 1000, "bram": 10}}
    assert not _within_fit([spec], fit)          # its block RAM would be the 11th
    fit["budget"]["bram"] = 11
    assert _within_fit([spec], fit)


def test_a_chain_at_its_pace_gets_no_fifo():
    from mulfree.gen.model.examples import example_model
    stages, manifest = plan_network(example_model(0), "runtime", "serial")
    assert not any(isinstance(s, LinkFifoSpec) for s in stages)
    assert "link_fifos" not in manifest


@pytest.mark.parametrize("family, style", [("ecp5", "distributed"), ("ice40", "logic")])
def test_a_fit_without_block_ram_moves_the_fifos_out_of_it(family, style):
    plain = ["a", "b"]
    linked = ["a", LinkFifoSpec(width=8, depth=240, after=0), "b"]
    fit = {"device": {"family": family}, "estimate": {"cells": 100, "ffs": 100, "bram": 10},
           "budget": {"cells": 5000, "ffs": 5000, "bram": 10}}
    out = _fit_link_fifos(plain, linked, fit)
    assert [getattr(s, "style", s) for s in out] == ["a", style, "b"]
    # with room in block RAM the tool decides
    fit["budget"]["bram"] = 20
    assert _fit_link_fifos(plain, linked, fit) == linked
    # and with no room anywhere the chain stays as it was
    fit["budget"] = {"cells": 110, "ffs": 110, "bram": 10}
    assert _fit_link_fifos(plain, linked, fit) == plain


@pytest.mark.parametrize("style", ["block", "distributed", "logic"])
def test_the_memory_style_reaches_the_verilog(style):
    from amaranth.back import verilog
    text = verilog.convert(LinkFifo(LinkFifoSpec(width=8, depth=40, style=style)), name="f")
    assert f'ram_style = "{style}"' in text
    plain = verilog.convert(LinkFifo(LinkFifoSpec(width=8, depth=40)), name="f")
    assert "ram_style" not in plain
