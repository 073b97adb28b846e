"""Real bitstreams through Yosys, nextpnr and the packers (YoWASP), and the reports.

iCEBreaker (through the CLI) and ULX3S-85F build in the default run; ULX3S-12F,
OrangeCrab-25F and Tang Nano 9K (when its tools are installed) are marked slow. Each builds a
small serial-folded MLP inside the full UART harness.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from mulfree.boards.build import DoesNotFit, _failure, build, format_report, timing_warnings
from mulfree.boards.registry import BOARDS, UnsupportedBoard, get_board, tool_path_or_none
from mulfree.gen.cli import main
from mulfree.gen.examples import random_dense
from mulfree.gen.model import Model, save

DATA = Path(__file__).parent / "data"


def _small_model():
    rng = np.random.default_rng(3)
    l1 = random_dense(rng, 16, 8, scheme="pot", in_bits=2, out_bits=2, name="fc1")
    l2 = random_dense(rng, 8, 4, scheme="apot", in_bits=2, output="argmax", name="fc2")
    return Model(name="small", input_shape=(16,), input_bits=2, layers=(l1, l2))


def _check(result, board):
    assert result.bitstream.exists() and result.bitstream.stat().st_size > 1000
    doc = json.loads((result.out_dir / "report.json").read_text())
    assert doc["board"] == board.name and doc["network"] == "mulfree.gen.plan"
    rows = {r["resource"]: r for r in doc["utilization"]}
    assert 50 < rows["LUT4"]["used"] < rows["LUT4"]["available"]
    assert rows["FF"]["used"] > 50
    assert board.family == "gowin" or rows["BRAM"]["available"] > 0
    (clk, f), = doc["fmax_mhz"].items()
    assert f["constraint"] == pytest.approx(result.clk_hz / 1e6, rel=1e-3)
    assert f["achieved"] > 0
    assert doc["cycles_per_inference"] == result.manifest["cycles_per_inference"] > 0
    assert doc["inferences_per_s"]["at_fmax"] == pytest.approx(
        f["achieved"] * 1e6 / doc["cycles_per_inference"])
    assert doc["uart"]["inferences_per_s"] == pytest.approx(
        115200 / 10 / (doc["framing"]["input"]["frame_bytes"] + doc["framing"]["output"]["frame_bytes"] + 2))
    text = (result.out_dir / "report.txt").read_text()
    assert "inferences/s" in text and "UART link" in text


def test_build_icebreaker_through_the_cli(tmp_path, capsys):
    save(_small_model(), tmp_path / "small.mf")
    rc = main(["build", str(tmp_path / "small.mf"), "--board", "icebreaker",
               "-o", str(tmp_path / "out"), "--fold", "serial"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "ICESTORM_LC (placed)" in out and "constraint 12.0 MHz" in out
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    assert doc["bitstream"] == "icebreaker.bin" and (tmp_path / "out" / "icebreaker.bin").exists()
    assert doc["utilization"][0]["available"] == 5280


@pytest.mark.parametrize("name", [
    "ulx3s-85f",
    pytest.param("ulx3s-12f", marks=pytest.mark.slow),
    pytest.param("orangecrab-25f", marks=pytest.mark.slow),
    pytest.param("tangnano9k", marks=[pytest.mark.slow, pytest.mark.skipif(
        tool_path_or_none("gowin_pack") is None or tool_path_or_none("yowasp-nextpnr-gowin") is None,
        reason="yowasp-nextpnr-gowin (with Apycula's gowin_pack) is not installed")]),
])
def test_build_board(name, tmp_path):
    board = get_board(name)
    result = build(_small_model(), board, tmp_path, fold="serial")
    _check(result, board)
    print(format_report(result))


def test_every_board_is_tested():
    assert set(BOARDS) == {"icebreaker", "ulx3s-85f", "ulx3s-12f", "orangecrab-25f",
                           "tangnano9k"}


def test_tang_nano_without_its_tools_says_what_to_install(monkeypatch):
    monkeypatch.setattr("mulfree.boards.registry.tool_path_or_none", lambda exe: None)
    with pytest.raises(UnsupportedBoard, match="board 'tangnano9k' needs yowasp-nextpnr-gowin, "
                                               "which is not installed: pip install "
                                               "yowasp-nextpnr-gowin"):
        get_board("tangnano9k").make_platform()


def test_does_not_fit_message_from_a_real_nextpnr_log(tmp_path):
    log = ((DATA / "icebreaker_too_big_stderr.log").read_text() + "\n" +
           (DATA / "icebreaker_too_big_nextpnr.log").read_text())
    err = _failure(log, get_board("icebreaker"), tmp_path, mode="baked")
    assert isinstance(err, DoesNotFit)
    msg = str(err)
    assert msg.startswith("the design does not fit the iCE40UP5K-SG48 on icebreaker: "
                          "ICESTORM_LC: 6420 used, 5280 available (122%). Hint: --mode "
                          "runtime")
    assert "smaller fold" in msg and "Failed to expand" not in msg
    # Already in runtime mode: the hint does not suggest it again.
    runtime = str(_failure(log, get_board("icebreaker"), tmp_path, mode="runtime"))
    assert "--mode runtime" not in runtime and "Hint: a smaller fold" in runtime


def test_other_failures_quote_the_first_error(tmp_path):
    err = _failure("Info: x\nERROR: Max frequency for clock 'clk': 11 MHz (FAIL at 12 MHz)\n",
                   get_board("ulx3s-85f"), tmp_path)
    assert not isinstance(err, DoesNotFit)
    assert "the build for ulx3s-85f failed: ERROR: Max frequency" in str(err)


def test_missed_timing_is_a_warning_with_the_achieved_fmax():
    assert timing_warnings({"cd_sync.clk": (30.0, 12.0)}) == []
    (w,) = timing_warnings({"cd_sync.clk": (11.79, 12.0)})
    assert w.startswith("timing missed on cd_sync.clk: achieved 11.8 MHz, the board runs it "
                        "at 12.0 MHz")
