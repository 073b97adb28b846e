"""The core clock of ``mulfree build`` (boards/build.py build_clocked): the PLL step from
nextpnr's Fmax, its retries and fallback, requested clocks, boards without a PLL; with a
stand-in for nextpnr (no place and route here). The harness with each board's PLL elaborates
(the amaranth build plan, no tools)."""

import json
import warnings

import pytest

from mulfree.boards import build as build_mod
from mulfree.boards.build import (build_clocked, fifo_block_bytes, fit_target, format_report,
                                  requested_clock)
from mulfree.boards.clockgen import PLLClock
from mulfree.boards.harness import BoardTop, Harness
from mulfree.boards.network import frame_format, network_for
from mulfree.boards.pll import ClockRequestError, pll_at_or_below, pll_frequencies
from mulfree.boards.registry import BOARDS, get_board
from mulfree.gen.plan.folds import load_fold
from test_fit_build import FakeNextpnr, _digits, cached_fit_target  # noqa: F401 (autouse)


def _fitted(board):
    return load_fold(f"device:{board.part.name}")


def _mhz(plls):
    return [None if p is None else p.f_out_mhz for p in plls]


def test_the_fit_aims_at_the_clock_with_the_most_estimated_inferences_per_second():
    board = get_board("icebreaker")
    t = fit_target(_digits(), board)
    clocks = [c for c, _, _, _ in t.tried]
    assert clocks[0] == 12.0 and all(b >= a * 1.1 for a, b in zip(clocks, clocks[1:]))
    assert all(c in pll_frequencies("ice40", 12) for c in clocks[1:])
    best = max(c / n for c, n, _, _ in t.tried)
    assert t.clock_mhz / dict((c, n) for c, n, _, _ in t.tried)[t.clock_mhz] == best
    assert t.setting.f_out_mhz == t.clock_mhz > 12
    # each tried clock's fold is estimated to reach it
    assert all(e >= c for c, _, e, _ in t.tried)
    # the candidates: that fold, then the board clock's when it is another one
    assert [c[0] for c in t.candidates()] == [t.clock_mhz, 12.0]


def test_pll_step_clocks_the_core_at_the_highest_pll_frequency_nextpnr_meets(tmp_path,
                                                                            monkeypatch):
    fake = FakeNextpnr(fixed=33.1, pll_fmax=lambda f: 33.1)
    monkeypatch.setattr(build_mod, "build", fake)
    board = get_board("icebreaker")
    target = build_mod.fit_target(_digits(), board, _fitted(board)).clock_mhz
    assert target < 33.0
    said = []
    r = build_clocked(_digits(), board, tmp_path, fitted=True, fold=_fitted(board),
                      notify=said.append)
    # the fit's clock first, then the highest 12 * (DIVF + 1) / 2**DIVQ at or below 33.1
    assert _mhz(fake.plls) == [target, 33.0]
    assert r.clk_hz == 33e6 and r.board_clock_hz == 12e6 and r.timing_met
    assert dict(r.pll.params) == {"DIVR": 0, "DIVF": 87, "DIVQ": 5, "FILTER_RANGE": 1}
    assert fake.folds[1] == fake.folds[0]          # the same fold, only the clock moves
    assert fake.folds[0] == build_mod.first_fold(board, _fitted(board), model=_digits())
    assert [a.met for a in r.clock_attempts] == [True]
    assert r.clock_note.startswith("kept the PLL at 33 MHz (met: nextpnr 33.1 MHz); nothing "
                                   "faster than 33 MHz")
    assert any("building at 33 MHz" in t for t in said)
    assert not (tmp_path / ".pll-trial").exists()
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["clock"]["core_mhz"] == 33.0 and doc["clock"]["source"] == "pll"
    assert doc["clock"]["pll"]["primitive"] == "SB_PLL40_PAD"
    assert doc["clock"]["fit_target"]["clock_mhz"] == target
    assert doc["inferences_per_s"]["at_core_clock"] == pytest.approx(
        33e6 / doc["cycles_per_inference"])
    assert doc["timing_attempts"][0]["clock_mhz"] == pytest.approx(target)
    # the manifest records the clock beside the fit
    core = doc["manifest"]["core_clock"]
    assert core == {"mhz": 33.0, "board_mhz": 12.0, "source": "pll",
                    "pll": {"primitive": "SB_PLL40_PAD", "DIVR": 0, "DIVF": 87, "DIVQ": 5,
                            "FILTER_RANGE": 1},
                    "fmax_mhz": 33.1, "met": True,
                    "inferences_per_s": pytest.approx(33e6 / doc["cycles_per_inference"])}
    text = (tmp_path / "report.txt").read_text()
    assert ("core clock: 33 MHz, from the 12 MHz board clock through SB_PLL40_PAD (DIVR=0, "
            "DIVF=87, DIVQ=5, FILTER_RANGE=1; VCO 1056 MHz)") in text
    assert f"{33e6 / r.cycles_per_inference:,.0f} at the 33 MHz core clock" in text
    assert f"device fit for {target:g} MHz" in text


def test_a_missed_faster_clock_keeps_the_build_that_met(tmp_path, monkeypatch):
    fake = FakeNextpnr(fixed=31.0, pll_fmax=lambda f: 31.0 if f <= 30 else 29.0)
    monkeypatch.setattr(build_mod, "build", fake)
    board = get_board("icebreaker")
    r = build_clocked(_digits(), board, tmp_path, fitted=True, fold=_fitted(board))
    # 30 met (31 reached); 30.75 missed (29 reached); nothing faster than 30 below 29
    assert _mhz(fake.plls) == [30.0, 30.75]
    assert r.clk_hz == 30e6 and r.timing_met and not r.warnings
    assert [a.met for a in r.clock_attempts] == [False]
    assert "nothing faster than 30 MHz at or below nextpnr's 29.0 MHz" in r.clock_note
    assert not (tmp_path / ".pll-trial").exists()


def test_a_missed_first_clock_is_lowered_to_what_nextpnr_reached(tmp_path, monkeypatch):
    fake = FakeNextpnr(fixed=25.0, pll_fmax=lambda f: 25.0)
    monkeypatch.setattr(build_mod, "build", fake)
    board = get_board("icebreaker")
    r = build_clocked(_digits(), board, tmp_path, fitted=True, fold=_fitted(board))
    # 24.75 = 12 * 66 / 32; then the board clock's fold (estimated 26.9 MHz, so it might
    # have done better) is built too, reaches the same and is not kept
    assert _mhz(fake.plls) == [30.0, 24.75, None, 24.75]
    assert r.clk_hz == 24.75e6 and r.timing_met and not r.warnings
    assert r.fold == fake.folds[0] and not (tmp_path / ".fold-trial").exists()


def test_below_the_pll_minimum_the_board_clock_is_used(tmp_path, monkeypatch):
    fake = FakeNextpnr(fixed=15.0, pll_fmax=lambda f: 15.0)   # the iCE40 PLL starts at 16
    monkeypatch.setattr(build_mod, "build", fake)
    board = get_board("icebreaker")
    r = build_clocked(_digits(), board, tmp_path, fitted=True, fold=_fitted(board))
    assert _mhz(fake.plls) == [30.0, None, None]      # then the board clock's fold
    assert r.pll is None and r.clk_hz == 12e6 and r.timing_met and not r.warnings
    assert r.clock_note.startswith("kept the 12 MHz board clock (met: nextpnr 15.0 MHz)")
    assert "core clock: 12 MHz, the board clock (no PLL)" in format_report(r)


def test_the_board_clocks_fold_wins_when_the_estimate_was_too_optimistic(tmp_path,
                                                                         monkeypatch):
    """The ULX3S story: the fit's favourite (14 cycles, estimated 82.6 MHz) reaches 55.7 MHz
    in nextpnr; the board clock's fold (8 cycles, estimated 41.5) reaches 39.9 and wins."""
    board = get_board("ulx3s-85f")
    target = build_mod.fit_target(_digits(), board, _fitted(board))
    (fast, n_fast, _, _), (slow, n_slow, _, _) = target.candidates()
    assert fast > 25 and slow == 25 and n_slow < n_fast
    fake = FakeNextpnr(fmax_of=lambda fold, pll: 55.7 if fold["clock_mhz"] > 25 else 39.9)
    monkeypatch.setattr(build_mod, "build", fake)
    r = build_clocked(_digits(), board, tmp_path, fitted=True, fold=_fitted(board))
    assert r.cycles_per_inference == n_slow and r.timing_met
    assert r.clk_hz / 1e6 == pll_at_or_below("ecp5", 25, 39.9).f_out_mhz
    assert r.fold["clock_mhz"] == 25.0
    assert f"fold fitted for {fast:.4g} MHz: {n_fast} cycles" in r.clock_note
    assert f"fold fitted for 25 MHz: {n_slow} cycles" in r.clock_note
    assert not (tmp_path / ".fold-trial").exists() and (tmp_path / "ulx3s-85f.bit").exists()


def test_a_core_slower_than_the_board_clock_is_slowed_down_by_the_pll(tmp_path, monkeypatch):
    """nextpnr reaches less than the ULX3S's 25 MHz: the PLL brings the clock down to what
    it reached, so the bitstream is reliable."""
    fake = FakeNextpnr(fixed=21.3, pll_fmax=lambda f: 21.3)
    monkeypatch.setattr(build_mod, "build", fake)
    board = get_board("ulx3s-85f")
    r = build_clocked(_digits(), board, tmp_path, fitted=True, fold=_fitted(board))
    assert r.pll.f_out_mhz == pll_at_or_below("ecp5", 25, 21.3).f_out_mhz <= 21.3
    assert r.timing_met and r.clk_hz < 25e6
    assert not r.warnings
    assert "EHXPLLL" in format_report(r)


def test_the_pll_step_is_bounded(tmp_path, monkeypatch):
    # every build reaches 10% above its clock: each faster clock meets, so it would climb
    fake = FakeNextpnr(fixed=33.0, pll_fmax=lambda f: 1.1 * f)
    monkeypatch.setattr(build_mod, "build", fake)
    board = get_board("icebreaker")
    r = build_clocked(_digits(), board, tmp_path, fitted=True, fold=_fitted(board),
                      pll_attempts=2)
    assert len(fake.plls) == 3 and len(r.clock_attempts) == 2
    assert r.clk_hz / 1e6 == fake.plls[-1].f_out_mhz and "stopped after 2 build(s)" in r.clock_note


def test_a_given_fold_gets_the_pll_step_too(tmp_path, monkeypatch):
    fake = FakeNextpnr(fixed=40.3, pll_fmax=lambda f: 40.3)
    monkeypatch.setattr(build_mod, "build", fake)
    r = build_clocked(_digits(), get_board("ulx3s-85f"), tmp_path, fitted=False,
                      fold="serial")
    assert _mhz(fake.plls) == [None, 40.0] and r.clk_hz == 40e6 and r.fit_target is None


def test_no_pll_keeps_the_board_clock_and_the_fits_retries(tmp_path, monkeypatch):
    fake = FakeNextpnr(ratio=0.5)
    monkeypatch.setattr(build_mod, "build", fake)
    board = get_board("ulx3s-85f")
    r = build_clocked(_digits(), board, tmp_path, fitted=True, fold=_fitted(board),
                      use_pll=False)
    assert set(_mhz(fake.plls)) == {None} and len(fake.plls) > 1     # refits at 25 MHz
    assert r.clock_note == "the PLL step is off (--no-pll): the board clock"


def test_a_requested_clock_is_the_target_of_the_fit_and_of_every_build(tmp_path, monkeypatch):
    fake = FakeNextpnr(ratio=1.0)
    monkeypatch.setattr(build_mod, "build", fake)
    board = get_board("ulx3s-85f")
    r = build_clocked(_digits(), board, tmp_path, fitted=True, fold=_fitted(board),
                      clock_mhz=50)
    assert all(p is not None and p.f_out_mhz == 50.0 for p in fake.plls)
    assert fake.folds[0]["clock_mhz"] == 50.0 and r.attempts[0].clock_mhz == 50.0
    assert r.clock_note == "--clock-mhz 50: the PLL makes 50 MHz" and not r.clock_attempts
    # the fold mulfree run assumes for the same request
    assert build_mod.first_fold(board, _fitted(board), clock_mhz=50) == fake.folds[0]
    # the board clock itself needs no PLL
    fake.plls.clear()
    build_clocked(_digits(), board, tmp_path, fitted=True, fold=_fitted(board), clock_mhz=25)
    assert fake.plls == [None]


def test_a_requested_clock_nextpnr_misses_is_a_warning_with_the_achieved_fmax(tmp_path,
                                                                              monkeypatch,
                                                                              capsys):
    from mulfree.cli.main import main
    from mulfree.gen.model.format import save

    monkeypatch.setattr(build_mod, "build", FakeNextpnr(fixed=41.3))
    save(_digits(), tmp_path / "d.mf")
    out = tmp_path / "out"
    rc = main(["build", str(tmp_path / "d.mf"), "--board", "ulx3s-85f", "--fold", "serial",
               "--clock-mhz", "50", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 0
    assert ("mulfree build: warning: timing missed on cd_sync.clk: achieved 41.3 MHz, the "
            "core runs at 50.0 MHz") in err
    doc = json.loads((out / "report.json").read_text())
    assert doc["clock"]["core_mhz"] == 50.0 and doc["inferences_per_s"]["at_core_clock"] is None
    core = doc["manifest"]["core_clock"]
    assert core["mhz"] == 50.0 and core["fmax_mhz"] == 41.3 and core["met"] is False
    assert core["inferences_per_s"] is None and core["pll"]["primitive"] == "EHXPLLL"
    assert "not reliable at the 50 MHz core clock: timing missed" in (out / "report.txt").read_text()


def test_requested_clocks_the_pll_cannot_make():
    ice = get_board("icebreaker")
    assert requested_clock(ice, 12) is None and requested_clock(ice, 12.1) is None
    assert requested_clock(ice, 30).f_out_mhz == 30.0
    with pytest.raises(ClockRequestError, match=r"^the iCE40 PLL cannot make 300 MHz from the "
                                                r"12 MHz board clock \(above its 275 MHz "
                                                r"maximum\); the nearest it can make: 270 MHz "
                                                r"\(or 12 MHz, the board clock without the "
                                                r"PLL\)$"):
        requested_clock(ice, 300)
    with pytest.raises(ClockRequestError, match="below its 16 MHz minimum"):
        requested_clock(ice, 14)
    for bad in (0, -3, float("nan")):
        with pytest.raises(ClockRequestError, match="a clock must be a positive number of MHz"):
            requested_clock(ice, bad)
    nano = get_board("tangnano9k")
    assert requested_clock(nano, 27) is None
    with pytest.raises(ClockRequestError, match=r"^board tangnano9k cannot run at 40 MHz: "
                                                r"mulfree does not drive the Gowin rPLL"):
        requested_clock(nano, 40)


def test_a_board_without_pll_keeps_its_clock(tmp_path, monkeypatch):
    fake = FakeNextpnr(fixed=60.0)
    monkeypatch.setattr(build_mod, "build", fake)
    board = get_board("tangnano9k")
    r = build_clocked(_digits(), board, tmp_path, fitted=False, fold="serial")
    assert fake.plls == [None]
    assert r.pll is None


def test_every_board_has_a_pll_or_says_why_not():
    for board in BOARDS.values():
        assert bool(board.pll) != bool(board.no_pll)
    assert {n for n, b in BOARDS.items() if b.pll} == {"icebreaker", "ulx3s-85f", "ulx3s-12f",
                                                     "orangecrab-25f"}
    assert fifo_block_bytes(get_board("icebreaker")) == 512
    assert fifo_block_bytes(get_board("ulx3s-85f")) == 2048
    assert fifo_block_bytes(get_board("tangnano9k")) == 16


@pytest.mark.parametrize("name", [n for n, b in BOARDS.items() if b.pll])
def test_the_harness_with_the_pll_elaborates_for_each_board(name, tmp_path):
    """The amaranth build plan (Verilog/RTLIL, constraints, script) with the PLL, no tools."""
    board = get_board(name)
    model = _digits()
    net, manifest, _ = network_for(model, fold="serial")
    frames = frame_format(model, net, manifest, {})
    board_mhz = board.clk_freq / 1e6
    pll = pll_at_or_below(board.family, board_mhz, 2 * board_mhz)
    harness = Harness(net, frames, clk_freq=pll.f_out_mhz * 1e6, baud=115200)
    # the UART's bit period is the core clock's, not the board clock's
    assert harness.bit_period == round(pll.f_out_mhz * 1e6 / 115200) != round(board_mhz * 1e6
                                                                              / 115200)
    top = BoardTop(harness, board, pll)
    platform = board.make_platform()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        plan = platform.build(top, name="top", do_build=False)
    files = plan.files
    design = files["top.il"].decode() if isinstance(files["top.il"], bytes) else files["top.il"]
    assert board.pll in design
    for key, value in pll.params:
        assert f"parameter \\{key} {value}" in design
    if board.pll == "SB_PLL40_PAD":       # the PLL takes the oscillator's pad itself
        assert "SB_GB_IO" not in design


def test_pll_clock_parameters_are_checked():
    with pytest.raises(ValueError, match="A ecp5 setting does not configure SB_PLL40_PAD"):
        PLLClock(primitive="SB_PLL40_PAD", setting=pll_at_or_below("ecp5", 25, 30))
    with pytest.raises(ValueError, match="PLL primitive must be one of SB_PLL40_PAD, EHXPLLL, "
                                         "not 'rPLL'"):
        PLLClock(primitive="rPLL", setting=pll_at_or_below("ecp5", 25, 30))
    with pytest.raises(TypeError, match="Setting must be a PLLSetting, not 30"):
        PLLClock(primitive="EHXPLLL", setting=30)


@pytest.mark.parametrize("board,mhz,message", [
    ("icebreaker", "500", "mulfree build: error: the iCE40 PLL cannot make 500 MHz from the "
                          "12 MHz board clock (above its 275 MHz maximum); the nearest it can "
                          "make: 270 MHz (or 12 MHz, the board clock without the PLL)"),
    ("tangnano9k", "54", "mulfree build: error: board tangnano9k cannot run at 54 MHz: mulfree "
                         "does not drive the Gowin rPLL (amaranth 0.5.10's legacy nextpnr-gowin "
                         "flow); the core runs at the 27 MHz board clock"),
])
def test_cli_clock_requests_the_board_cannot_make_exit_2(board, mhz, message, tmp_path, capsys,
                                                         monkeypatch):
    from mulfree.cli.main import main
    from mulfree.gen.model.format import save

    monkeypatch.setattr(build_mod, "build", FakeNextpnr())      # never reached
    save(_digits(), tmp_path / "d.mf")
    out = tmp_path / "out"
    rc = main(["build", str(tmp_path / "d.mf"), "--board", board, "--clock-mhz", mhz,
               "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err == message + "\n"         # one line, no traceback
    assert not out.exists()                          # nothing written
    assert main(["build", str(tmp_path / "d.mf"), "--board", "icebreaker", "--clock-mhz", "30",
                 "--no-pll"]) == 2
    assert "--clock-mhz and --no-pll exclude each other" in capsys.readouterr().err
    assert main(["run", "--port", "/dev/null", str(tmp_path / "d.mf"), str(tmp_path / "x.npy"),
                 "--board", "icebreaker", "--clock-mhz", "30", "--no-pll"]) == 2
    assert "--clock-mhz and --no-pll exclude each other" in capsys.readouterr().err


@pytest.mark.parametrize("mhz", ["0", "-30", "nan", "fast"])
def test_cli_clock_mhz_that_is_not_a_positive_number_exits_2(mhz, tmp_path, capsys):
    from mulfree.cli.main import main
    from mulfree.gen.model.format import save

    save(_digits(), tmp_path / "d.mf")
    with pytest.raises(SystemExit) as e:
        main(["build", str(tmp_path / "d.mf"), "--board", "icebreaker", f"--clock-mhz={mhz}",
              "-o", str(tmp_path / "out")])
    assert e.value.code == 2
    assert "argument --clock-mhz: expected a" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_trial_that_does_not_build_leaves_the_kept_build(tmp_path, monkeypatch):
    from mulfree.boards.build import DoesNotFit

    board = get_board("icebreaker")
    inner = FakeNextpnr(fixed=25.0, pll_fmax=lambda f: 25.0)

    def flaky(model, board, out_dir, **kw):
        if kw.get("fold", {}).get("clock_mhz") == 12.0:     # the second fold candidate
            raise DoesNotFit("ICESTORM_LC: 5400 used, 5280 available")
        return inner(model, board, out_dir, **kw)

    monkeypatch.setattr(build_mod, "build", flaky)
    r = build_clocked(_digits(), board, tmp_path, fitted=True, fold=_fitted(board))
    assert r.clk_hz == 24.75e6 and r.timing_met
    assert ("the fold fitted for 12 MHz did not build: ICESTORM_LC: 5400 used, 5280 "
            "available") in r.clock_note
    assert not (tmp_path / ".fold-trial").exists()

    def failing_trial(model, board, out_dir, **kw):
        if ".pll-trial" in str(out_dir):
            raise DoesNotFit("placement failed")
        return FakeNextpnr(fixed=33.1)(model, board, out_dir, **kw)

    monkeypatch.setattr(build_mod, "build", failing_trial)
    r = build_clocked(_digits(), board, tmp_path / "b", fitted=True, fold=_fitted(board))
    assert r.clk_hz == 30e6 and "the build at 33 MHz failed: placement failed" in r.clock_note
