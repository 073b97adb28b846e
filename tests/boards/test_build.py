"""Real bitstreams through Yosys, nextpnr and the packers (YoWASP), and the reports.

iCEBreaker (through the CLI) and ULX3S-85F build in the default run; ULX3S-12F,
OrangeCrab-25F and Tang Nano 9K (when its tools are installed) are marked slow. Each builds a
small serial-folded MLP inside the full UART harness.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from mulfree.boards.build import DoesNotFit, _failure, build, format_report, timing_warnings
from mulfree.boards.pll import pll_at_or_below
from mulfree.boards.registry import BOARDS, UnsupportedBoard, get_board, tool_path_or_none
from mulfree.cli.main import main
from mulfree.gen.model.examples import random_dense
from mulfree.gen.model.format import Model, save

DATA = Path(__file__).parent / "data"


def _small_model():
    rng = np.random.default_rng(3)
    l1 = random_dense(rng, 16, 8, scheme="pot", in_bits=2, out_bits=2, name="fc1")
    l2 = random_dense(rng, 8, 4, scheme="apot", in_bits=2, output="argmax", name="fc2")
    return Model(name="small", input_shape=(16,), input_bits=2, layers=(l1, l2))


def _check(result, board):
    assert result.bitstream.exists() and result.bitstream.stat().st_size > 1000
    doc = json.loads((result.out_dir / "report.json").read_text())
    assert doc["board"] == board.name and doc["network"] == "mulfree.gen.plan.network"
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
    n_in, n_out = (doc["framing"]["input"]["frame_bytes"] + 1,
                   doc["framing"]["output"]["frame_bytes"] + 1)
    assert doc["uart"]["stop_and_wait_inferences_per_s"] == pytest.approx(
        115200 / 10 / (n_in + n_out))
    assert doc["uart"]["window"] >= 2      # a small model's frames: streamed
    assert doc["uart"]["inferences_per_s"] == pytest.approx(115200 / 10 / max(n_in, n_out))
    text = (result.out_dir / "report.txt").read_text()
    assert "inferences/s" in text and "UART link" in text


def test_build_icebreaker_through_the_cli(tmp_path, capsys):
    """The default clock flow with real nextpnr: built at the 12 MHz board clock, then the
    PLL step takes the core to the highest PLL clock nextpnr meets (at most 3 more builds)."""
    save(_small_model(), tmp_path / "small.mf")
    rc = main(["build", str(tmp_path / "small.mf"), "--board", "icebreaker",
               "-o", str(tmp_path / "out"), "--fold", "serial", "--pll-attempts", "3"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "ICESTORM_LC (placed)" in out and "through SB_PLL40_PAD" in out
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    assert doc["bitstream"] == "icebreaker.bin" and (tmp_path / "out" / "icebreaker.bin").exists()
    assert doc["utilization"][0]["available"] == 5280
    # the UP5K's SPRAMs have their own row (none used by this serial fold)
    spram, = [r for r in doc["utilization"] if r["resource"] == "SPRAM"]
    assert spram == {"resource": "SPRAM", "used": 0, "available": 4}
    clock = doc["clock"]
    assert clock["source"] == "pll" and clock["core_mhz"] > 16 and clock["board_mhz"] == 12
    (name, f), = doc["fmax_mhz"].items()
    # nextpnr's constraint is the PLL's output (derived from the dividers), and it was met
    assert f["constraint"] == pytest.approx(clock["core_mhz"], rel=2e-3)
    assert f["achieved"] >= f["constraint"]
    assert any(a["met"] and a["clock_mhz"] == clock["core_mhz"] for a in clock["attempts"])
    assert doc["inferences_per_s"]["at_core_clock"] == pytest.approx(
        clock["core_mhz"] * 1e6 / doc["cycles_per_inference"])
    assert not (tmp_path / "out" / ".pll-trial").exists()


@pytest.mark.parametrize("name", [
    "ulx3s-85f",
    pytest.param("ulx3s-12f", marks=pytest.mark.slow),
    pytest.param("orangecrab-25f", marks=pytest.mark.slow),
    pytest.param("tangnano9k", marks=[pytest.mark.slow, pytest.mark.skipif(
        tool_path_or_none("gowin_pack") is None or tool_path_or_none("yowasp-nextpnr-gowin") is None,
        reason="yowasp-nextpnr-gowin (with Apycula's gowin_pack) is not installed")]),
])
def test_build_board(name, tmp_path):
    """Each board builds with its PLL at about 1.5 times its clock (the Tang Nano, which has
    none here, at its board clock)."""
    board = get_board(name)
    board_mhz = board.clk_freq / 1e6
    pll = (pll_at_or_below(board.family, board_mhz, 1.5 * board_mhz) if board.pll else None)
    result = build(_small_model(), board, tmp_path, fold="serial", pll=pll)
    _check(result, board)
    text = format_report(result)
    print(text)
    core = f"{result.clk_hz / 1e6:.4g} MHz"
    assert f"at the {core} core clock" in text and "not reliable" not in text
    if pll is not None:
        assert result.clk_hz == pytest.approx(pll.f_out_mhz * 1e6) and pll.f_out_mhz > board_mhz
        assert f"core clock: {core}, from the {board_mhz:g} MHz board clock through {board.pll}" in text
        doc = json.loads((tmp_path / "report.json").read_text())
        assert doc["clock"]["pll"]["params"] == dict(pll.params)
    else:
        assert f"core clock: {core}, the board clock (no PLL)" in text
        assert f"{board.name} has no PLL here" in text
    # the same report with the clock's timing missed: no throughput claimed at that clock
    slow = {clk: (con * 0.9, con) for clk, (_, con) in result.resources.fmax_mhz.items()}
    missed = dataclasses.replace(result, resources=dataclasses.replace(result.resources,
                                                                         fmax_mhz=slow))
    assert f"not reliable at the {core} core clock" in format_report(missed)


def test_build_defaults_to_a_fold_fitted_to_the_boards_device(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_build(model, board, out, **kw):
        seen.update(kw, board=board.name)
        raise DoesNotFit("stop here")

    monkeypatch.setattr("mulfree.boards.build.build", fake_build)
    save(_small_model(), tmp_path / "small.mf")
    for args, device in [([], "ice40up5k"), (["--device", "ice40hx8k"], "ice40hx8k")]:
        rc = main(["build", str(tmp_path / "small.mf"), "--board", "icebreaker", *args])
        assert rc == 2 and seen["fold"]["device"] == device
    assert main(["build", str(tmp_path / "small.mf"), "--board", "ulx3s-85f"]) == 2
    assert seen["fold"]["device"] == "lfe5u-85f"
    # an explicit preset, and baked mode, keep their own folds
    main(["build", str(tmp_path / "small.mf"), "--board", "icebreaker", "--fold", "serial"])
    assert seen["fold"]["default"] == "serial" and "device" not in seen["fold"]
    main(["build", str(tmp_path / "small.mf"), "--board", "icebreaker", "--mode", "baked"])
    assert seen["fold"] is None
    assert "fold fitted to the ice40up5k" in capsys.readouterr().err


def _demo_model(tmp_path):
    """The demo's model (scripts/demo.sh step 1): about 3 s of training."""
    path = tmp_path / "digits.mf"
    assert main(["train", "--dataset", "digits", "--arch", "mlp", "--hidden", "16",
                 "--scheme", "pot", "--wbits", "3", "--abits", "2", "--ibits", "4",
                 "--seed", "1", "-o", str(path)]) == 0
    return path


@pytest.mark.slow
def test_demo_model_default_fold_fits_the_icebreaker_and_beats_serial(tmp_path):
    """The first build of the demo's default flow, alone (one build, to keep the suite
    short; the PLL step after it runs with a stand-in for nextpnr in
    test_clocked_build.py and for real on a small model above): the fit aims at the clock
    with the most estimated inferences/s, the fold fits the UP5K and beats serial, and the
    core runs through the PLL faster than the 12 MHz board clock, at a clock nextpnr
    meets."""
    from mulfree.boards.build import fit_target
    from mulfree.gen.model.format import load
    from mulfree.gen.plan.network import plan_network

    path = _demo_model(tmp_path)
    target = fit_target(load(path), get_board("icebreaker")).clock_mhz
    rc = main(["build", str(path), "--board", "icebreaker", "-o", str(tmp_path / "ice"),
               "--clock-mhz", str(target), "--attempts", "1"])
    assert rc == 0
    doc = json.loads((tmp_path / "ice" / "report.json").read_text())
    lc = doc["resources"]["placed"]["ICESTORM_LC"]
    assert lc["used"] <= lc["available"] == 5280
    fit = doc["manifest"]["device_fit"]
    assert fit["device"]["name"] == "ice40up5k"
    serial = plan_network(load(path), "runtime", "serial")[1]["cycles_per_inference"]
    assert doc["cycles_per_inference"] < serial
    # the estimate was not far from what nextpnr placed
    assert abs(fit["estimate"]["cells"] - lc["used"]) <= 0.25 * lc["used"]
    # the fit aimed at the clock with the most estimated inferences/s, and nextpnr checked
    # the clock the core runs at: the PLL's, above the board clock, met
    clock = doc["clock"]
    assert fit["clock_mhz"] == target > 12.0 and clock["how"].startswith("--clock-mhz")
    assert clock["source"] == "pll" and clock["core_mhz"] > 16 and clock["board_mhz"] == 12
    (clk, f), = doc["fmax_mhz"].items()
    assert f["constraint"] == pytest.approx(clock["core_mhz"], rel=2e-3)
    assert f["achieved"] >= f["constraint"]
    assert doc["inferences_per_s"]["at_core_clock"] > 12e6 / doc["cycles_per_inference"]
    assert doc["timing_attempts"][0]["target_mhz"] == fit["clock_mhz"]


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
    assert w.startswith("timing missed on cd_sync.clk: achieved 11.8 MHz, the core runs at "
                        "12.0 MHz")


@pytest.mark.parametrize("router", ["router1", "router2"])
def test_the_router_reaches_nextpnr(tmp_path, monkeypatch, router):
    """``--router`` lands on nextpnr's command line (router1, its default, is not named);
    the script is read and the tools are not run."""
    import mulfree.boards.build as build_module
    from mulfree.boards.toolchain import ToolchainError

    seen = {}

    def stop(build_dir, script, env):
        seen["script"] = (Path(build_dir) / f"{script}.sh").read_text()
        return 1, "stopped by the test"

    monkeypatch.setattr(build_module, "run_build_script", stop)
    with pytest.raises(ToolchainError):
        build(_small_model(), get_board("ulx3s-85f"), tmp_path / "out", fold="serial",
              router=router)
    nextpnr = next(ln for ln in seen["script"].splitlines() if "NEXTPNR_ECP5" in ln
                   and "--json" in ln)
    assert ("--router router2" in nextpnr) == (router == "router2")
    with pytest.raises(ValueError, match="router must be one of router1, router2"):
        build(_small_model(), get_board("ulx3s-85f"), tmp_path / "out", router="router3")


def test_an_unknown_router_is_a_usage_error(tmp_path, capsys):
    model = tmp_path / "m.mf"
    save(_small_model(), model)
    with pytest.raises(SystemExit) as e:
        main(["build", str(model), "--board", "ulx3s-85f", "--router", "fast",
              "-o", str(tmp_path / "out")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--router" in err[0] and "router2" in err[0]
    assert not (tmp_path / "out").exists()
