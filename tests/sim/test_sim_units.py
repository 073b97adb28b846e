"""Pieces of the simulation flow that need no simulator: packing, scoring, discovery."""

from pathlib import Path

import numpy as np
import pytest

from mulfree.sim.contract import Contract, ContractError, Ports, StreamGeometry
from mulfree.sim.scoreboard import compare
from mulfree.sim import tbgen
from mulfree.sim.tools import SimulatorNotFound, find_simulator


def test_pack_unpack_round_trip_with_padding():
    geo = StreamGeometry(beats=3, values_per_beat=4, value_bits=3)
    x = np.random.default_rng(0).integers(0, 8, (5, 10))
    words = geo.pack(x)
    assert len(words) == 15
    assert words[0] == sum(int(v) << (3 * k) for k, v in enumerate(x[0, :4]))
    assert (geo.unpack(words, 10).astype(np.int64) == x).all()


def test_unpack_signed_and_undefined():
    geo = StreamGeometry(beats=1, values_per_beat=2, value_bits=4, signed=True)
    got = geo.unpack([0x8F, None], 2)
    assert got.tolist() == [[-1, -8], [None, None]]


def test_ports_from_list_and_dict():
    names = ["clk", "rst", "i__payload", "i__valid", "i__ready", "o__payload", "o__valid",
             "o__ready"]
    assert Ports.from_manifest(names).o_ready == "o__ready"
    assert Ports.from_manifest({"i_payload": "din"}).i_payload == "din"


def test_contract_rejects_bad_geometry():
    with pytest.raises(ContractError, match="beats must be a positive integer"):
        Contract.from_manifest({"top": "t", "input": {"beats": 0, "value_bits": 2},
                                "output": {"beats": 1, "value_bits": 2}})


def test_compare_reports_first_mismatch_then_counts_all():
    exp = np.arange(24).reshape(2, 3, 4)
    got = exp.astype(object).copy()
    got[1, 2, 1] = 99
    got[1, 2, 3] = None
    m = compare(exp, got, layer=4, layer_name="fc2")
    assert (m.sample, m.index, m.expected, m.got, m.total) == (1, (2, 1), 21, 99, 2)
    assert "sample 1, layer 4 'fc2', index [2, 1]: expected 21, got 99" in m.describe()
    assert compare(exp, exp.astype(object), layer=0, layer_name="x") is None


def test_compare_reports_missing_outputs():
    exp = np.zeros((3, 2), np.int64)
    m = compare(exp, exp[:1].astype(object), layer=0, layer_name="fc")
    assert (m.sample, m.reason, m.total) == (1, "missing", 4)


def test_testbench_names_the_ports_and_depth():
    c = Contract.from_manifest({"top": "net", "ports": {"i_payload": "din"},
                                "input": {"beats": 2, "values_per_beat": 3, "value_bits": 2},
                                "output": {"beats": 1, "value_bits": 9, "signed": True}})
    text = tbgen.testbench_verilog(c, tbgen.memory_depth(5000))
    assert "net dut (" in text and ".din(dut_i_payload)" in text
    assert "localparam DEPTH = 8192;" in text and "localparam IW = 6;" in text


def test_missing_simulator_says_what_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SimulatorNotFound, match="apt-get install iverilog"):
        find_simulator("icarus")


def test_verilator_without_compiler_says_what_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SimulatorNotFound, match="build-essential"):
        find_simulator("verilator")


def test_cli_reports_missing_simulator_with_exit_2(monkeypatch, capsys):
    from mulfree.cli.main import main

    monkeypatch.setenv("PATH", "/nonexistent")
    model = str(Path(__file__).resolve().parents[2] / "examples" / "example.mf")
    assert main(["sim", model, "--simulator", "icarus", "--random", "1"]) == 2
    assert "apt-get install iverilog" in capsys.readouterr().err


def test_contract_checks_payload_width_against_port_details():
    doc = {"top": "t", "input": {"beats": 2, "values_per_beat": 4, "value_bits": 2},
           "output": {"beats": 1, "value_bits": 5},
           "port_details": {"i__payload": {"bits": 6}, "o__payload": {"bits": 5}}}
    with pytest.raises(ContractError, match="i__payload is 6 bits wide, but 4 values of 2"):
        Contract.from_manifest(doc)
