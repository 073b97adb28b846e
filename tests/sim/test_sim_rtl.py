"""cocotb on the emitted Verilog (Icarus and Verilator) and Amaranth's simulator, against
the golden model, with random idle and back-pressure on both streams."""

import numpy as np
import pytest

from mulfree.sim.runner import simulate

from simhelpers import (SCHEMES, chain_model, digits_model, options, random_inputs,
                        scheme_model)


def _check(result):
    assert result.ok, result.mismatch.describe() if result.mismatch else "watchdog timeout"
    assert result.cycles > 0 and result.sim_wall_s > 0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_scheme_on_icarus(scheme):
    model = scheme_model(scheme, seed=SCHEMES.index(scheme))
    _check(simulate(model, random_inputs(model, 12), options("icarus", seed=3)))


@pytest.mark.parametrize("simulator", ["icarus", "verilator", "amaranth"])
def test_every_scheme_in_one_network(simulator):
    model = chain_model()
    res = simulate(model, random_inputs(model, 10, seed=1), options(simulator, seed=5))
    _check(res)
    assert res.latency_measured is not None and res.cycles_per_inference_measured


def test_digits_network_on_icarus():
    model = digits_model()
    res = simulate(model, random_inputs(model, 6, seed=2), options("icarus"))
    _check(res)


def test_digits_network_argmax_on_verilator():
    model = digits_model(seed=1, output="argmax")
    _check(simulate(model, random_inputs(model, 20, seed=4), options("verilator")))


@pytest.mark.parametrize("fold", ["serial", "parallel"])
def test_foldings_on_icarus(tmp_path, fold):
    model = scheme_model("pot", seed=7)
    path = tmp_path / "fold.json"
    path.write_text(f'{{"default": "{fold}"}}')
    _check(simulate(model, random_inputs(model, 8), options("icarus", fold=path)))


def test_baked_mode_on_icarus():
    model = scheme_model("apot", seed=8, output="argmax")
    _check(simulate(model, random_inputs(model, 8), options("icarus", mode="baked")))


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_baked_adder_graphs_registered_on_rtl(simulator):
    # both layers solved as shared adder graphs (CSE, not the pairwise trees) and
    # registered after every adder level: the step's control delayed with the graph,
    # under idle and back-pressure on both streams
    model = scheme_model("apot", seed=8, output="argmax")
    res = simulate(model, random_inputs(model, 8, seed=3),
                   options(simulator, mode="baked",
                           fold={"family": "ecp5", "latency_cutoff": 1}))
    _check(res)
    solvers = [r["solver"] for r in res.manifest["layers"] if "solver" in r]
    assert len(solvers) == 2
    assert all(s["method"].startswith("cse") and s["latency"] >= 1 for s in solvers)


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_runtime_adder_trees_registered_on_rtl(simulator):
    # runtime layers with registers inside their adder trees (APoT: its carry-ins delayed
    # with their terms), under idle and back-pressure on both streams
    model = scheme_model("apot", seed=8, output="argmax")
    res = simulate(model, random_inputs(model, 8, seed=3),
                   options(simulator, fold={"default": "parallel", "latency_cutoff": 1}))
    _check(res)


def test_one_layer_alone_gets_golden_inputs():
    model = chain_model(seed=3)
    res = simulate(model, random_inputs(model, 8), options("icarus", layer=3))
    _check(res)
    assert (res.layer, res.layer_name) == (3, "3_pot")


def test_per_cycle_cocotb_driver_and_monitor():
    model = scheme_model("ternary", seed=2)
    res = simulate(model, random_inputs(model, 6), options("icarus", per_cycle=True))
    _check(res)


@pytest.mark.parametrize("simulator", ["icarus", "verilator", "amaranth"])
def test_corrupted_expected_value_is_caught(simulator):
    model = chain_model()
    x = random_inputs(model, 10, seed=1)

    def corrupt(expected):
        expected[7, 2] += 1
        return expected

    res = simulate(model, x, options(simulator, seed=5), expected_hook=corrupt)
    assert not res.ok
    m = res.mismatch
    assert (m.sample, m.index, m.layer, m.total) == (7, (2,), 6, 1)
    assert m.got == m.expected - 1
    assert "sample 7, layer 6 '6_table', index [2]" in m.describe()


@pytest.mark.parametrize("simulator,suffix", [("icarus", ".vcd"), ("icarus", ".fst"),
                                              ("amaranth", ".vcd")])
def test_waveforms_written_when_asked(tmp_path, simulator, suffix):
    model = scheme_model("binary", seed=4)
    waves = tmp_path / f"run{suffix}"
    _check(simulate(model, random_inputs(model, 3), options(simulator, waves=waves)))
    assert waves.stat().st_size > 1000
    if suffix == ".vcd":
        assert "$enddefinitions" in waves.read_text()


def test_verilator_waveforms(tmp_path):
    model = scheme_model("binary", seed=4)
    waves = tmp_path / "run.vcd"
    _check(simulate(model, random_inputs(model, 3), options("verilator", waves=waves)))
    assert "$enddefinitions" in waves.read_text()


def test_stand_in_backend_still_works():
    """The machinery does not depend on the real generator (tests/sim/standin.py)."""
    import standin

    model = scheme_model("lut", seed=1)
    res = simulate(model, random_inputs(model, 4), options("amaranth"),
                   backend=standin.StandInBackend)
    _check(res)



def test_per_cycle_on_verilator():
    model = chain_model()
    res = simulate(model, random_inputs(model, 4, seed=1), options("verilator", per_cycle=True))
    _check(res)


@pytest.mark.parametrize("fold", ["serial", "auto"])
def test_manifest_timing_matches_the_simulation_without_stalls(fold):
    """The manifest's latency and cycles per inference are what the RTL does."""
    model = chain_model(seed=2)
    res = simulate(model, random_inputs(model, 6),
                   options("icarus", idle=0.0, backpressure=0.0, fold=fold))
    _check(res)
    assert res.latency_measured == res.latency_manifest
    assert res.cycles_per_inference_measured == res.cycles_per_inference_manifest
