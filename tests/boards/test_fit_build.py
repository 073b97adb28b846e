"""The default build's device fit against the board clock (boards/build.py build_fitted):
the retry loop with a stand-in for nextpnr (no place and route here), and ``mulfree run``
assuming the same fold as ``mulfree build``."""

import argparse
import json

import numpy as np
import pytest

from mulfree.boards import build as build_mod
from mulfree.boards.build import Attempt, BuildResult, build_fitted, first_fold, format_report
from mulfree.cli.boards import _run_frames
from mulfree.boards.network import frames_for
from mulfree.boards.registry import get_board
from mulfree.boards.toolchain import ResourceReport
from mulfree.cli.main import main
from mulfree.gen.model.examples import random_dense
from mulfree.gen.model.format import Model, dumps, save
from mulfree.gen.plan.folds import load_fold
from mulfree.gen.plan.network import plan_network


_FIT_TARGETS: dict = {}
_fit_target = build_mod.fit_target


def _cached_fit_target(model, board, fold=None, baud=build_mod.DEFAULT_BAUD):
    """:func:`fit_target` (a dozen device fits, seconds) once per model, board, fold and
    baud rate in this test process: the tests here build the same few many times."""
    key = (dumps(model), board.name, json.dumps(fold, sort_keys=True, default=str), baud)
    if key not in _FIT_TARGETS:
        _FIT_TARGETS[key] = _fit_target(model, board, fold, baud)
    return _FIT_TARGETS[key]


@pytest.fixture(autouse=True)
def cached_fit_target(monkeypatch):
    monkeypatch.setattr(build_mod, "fit_target", _cached_fit_target)


def _digits():
    rng = np.random.default_rng(0)
    l1 = random_dense(rng, 64, 16, scheme="pot", wbits=3, in_bits=4, out_bits=2, name="dense0")
    l2 = random_dense(rng, 16, 10, scheme="pot", wbits=3, in_bits=2, output="argmax",
                      name="dense1")
    return Model(name="digits-pot", input_shape=(64,), input_bits=4, layers=(l1, l2))


class FakeNextpnr:
    """Stands in for :func:`mulfree.boards.build.build`: plans the fold as the real build
    would, and 'measures' Fmax as ``ratio`` times the timing model's estimate (or
    ``fixed`` MHz whatever the fold)."""

    def __init__(self, ratio: float = 1.0, fixed: float | None = None, pll_fmax=None,
                 fmax_of=None) -> None:
        self.ratio, self.fixed, self.pll_fmax, self.fmax_of = ratio, fixed, pll_fmax, fmax_of
        self.folds = []
        self.plls = []

    def __call__(self, model, board, out_dir, *, mode="runtime", fold=None, pll=None, **kw):
        self.folds.append(fold)
        self.plls.append(pll)
        _, manifest = plan_network(model, mode, fold)
        fmax = self.fixed or manifest["device_fit"]["fmax_estimate_mhz"] * self.ratio
        if pll is not None and self.pll_fmax is not None:
            fmax = self.pll_fmax(pll.f_out_mhz)
        if self.fmax_of is not None:
            fmax = self.fmax_of(fold, pll)
        clk = pll.f_out_mhz * 1e6 if pll is not None else board.clk_freq
        res = ResourceReport(cells={}, lut=100, ff=50, carry=10, bram=0, dsp=0,
                             placed={"TRELLIS_COMB": {"used": 1234, "available": 83640}},
                             fmax_mhz={"cd_sync.clk": (round(fmax, 2), clk / 1e6)})
        frames = frames_for(model, mode, fold)
        out_dir.mkdir(parents=True, exist_ok=True)
        bit = out_dir / f"{board.name}.{board.bitstream}"
        bit.write_bytes(b"\0" * 16)
        result = BuildResult(board=board.name, device=board.device, model=model.name,
                             mode=mode, network_source="fake", out_dir=out_dir, bitstream=bit,
                             resources=res, manifest=manifest, frames=frames, clk_hz=clk,
                             baud=115200, seconds=0.0, board_clk_hz=board.clk_freq, pll=pll,
                             pll_primitive=board.pll if pll else "", rx_fifo_depth=64,
                             fold=fold)
        result.warnings.extend(build_mod.timing_warnings(res.fmax_mhz))
        return result


def test_a_missed_clock_is_retried_with_a_faster_fit_and_the_first_met_is_kept(tmp_path,
                                                                               monkeypatch):
    fake = FakeNextpnr(ratio=0.5)      # the model twice as optimistic as "nextpnr"
    monkeypatch.setattr(build_mod, "build", fake)
    board = get_board("ulx3s-85f")
    result = build_fitted(_digits(), board, tmp_path, fold=load_fold("device:lfe5u-85f"))
    a = result.attempts
    assert len(a) >= 2 and [x.number for x in a] == list(range(1, len(a) + 1))
    assert all(not x.met for x in a[:-1]) and a[-1].met
    assert a[0].target_mhz == 25.0 and a[0].clock_mhz == 25.0
    # every retry asked for more than the last one and tried a different fold
    assert all(y.target_mhz > x.target_mhz for x, y in zip(a, a[1:]))
    assert len({(json.dumps(x.layers, sort_keys=True), x.pipeline) for x in a}) == len(a)
    assert all(y.cycles_per_inference >= x.cycles_per_inference for x, y in zip(a, a[1:]))
    assert result.kept.startswith(f"attempt {len(a)}, the first to meet the 25 MHz clock")
    # the first attempt's fold is the one mulfree run assumes
    assert fake.folds[0] == first_fold(board, load_fold("device:lfe5u-85f"))
    doc = json.loads((tmp_path / "report.json").read_text())
    assert [d["met"] for d in doc["timing_attempts"]] == [x.met for x in a]
    assert doc["kept_attempt"] == result.kept
    text = (tmp_path / "report.txt").read_text()
    assert f"device fit against the 25 MHz clock, {len(a)} build(s):" in text
    assert "attempt 1: dense0 " in text and "(missed)" in text and "(met)" in text
    assert "kept: attempt" in text
    assert not [w for w in result.warnings if "device fit missed" in w]


def test_met_at_once_is_one_build(tmp_path, monkeypatch):
    monkeypatch.setattr(build_mod, "build", FakeNextpnr(ratio=1.0))
    result = build_fitted(_digits(), get_board("ulx3s-85f"), tmp_path,
                          fold=load_fold("device:lfe5u-85f"))
    (a,) = result.attempts
    assert a.met and result.kept == "attempt 1: the fit's first choice met the 25 MHz clock"


def test_the_number_of_builds_is_bounded_and_a_miss_is_a_warning(tmp_path, monkeypatch):
    fake = FakeNextpnr(fixed=20.0)      # never meets the clock
    monkeypatch.setattr(build_mod, "build", fake)
    result = build_fitted(_digits(), get_board("ulx3s-85f"), tmp_path,
                          fold=load_fold("device:lfe5u-85f"), attempts=2)
    assert len(result.attempts) == len(fake.folds) == 2
    assert result.kept == ("attempt 2, the last of 2 allowed: none met the 25 MHz clock "
                           "(allow more attempts, or give a fold file)")
    assert any(w.startswith("the device fit missed the 25 MHz clock in 2 build(s)")
               for w in result.warnings)
    assert "not reliable at the 25 MHz core clock" in format_report(result)
    with pytest.raises(ValueError, match="attempts must be a positive integer, not 0"):
        build_fitted(_digits(), get_board("ulx3s-85f"), tmp_path, attempts=0)


def test_retries_stop_when_no_faster_fold_exists(tmp_path, monkeypatch):
    monkeypatch.setattr(build_mod, "build", FakeNextpnr(ratio=0.01))
    result = build_fitted(_digits(), get_board("ulx3s-85f"), tmp_path,
                          fold=load_fold("device:lfe5u-85f"), attempts=50)
    assert len(result.attempts) < 50
    assert "no other fold to try" in result.kept and "is estimated to reach" in result.kept


def test_attempt_text():
    a = Attempt(number=2, target_mhz=31.5, layers={"fc": {"pe": 2, "simd": 8, "rom": "block"}},
                pipeline=True, cycles_per_inference=9, fmax_estimate_mhz=33.0, fmax_mhz=26.1,
                clock_mhz=25.0, placed_cells=100)
    assert a.describe() == ("attempt 2: fc 2x8 (block ROM), pipeline; 9 cycles per inference; "
                            "fitted for 31.5 MHz, estimated 33.0 MHz; nextpnr 26.1 MHz (met)")


def test_cli_attempts_must_be_a_positive_integer(tmp_path, capsys):
    save(_digits(), tmp_path / "d.mf")
    with pytest.raises(SystemExit) as e:
        main(["build", str(tmp_path / "d.mf"), "--board", "ulx3s-85f", "--attempts", "0"])
    assert e.value.code == 2
    assert "argument --attempts: expected a positive integer, not '0'" in capsys.readouterr().err


def _run_args(model_path, **kw):
    base = dict(model=str(model_path), build=None, board=None, fold=None, device=None,
                mode="runtime", standin=False, clock_mhz=None, no_pll=False)
    base.update(kw)
    return argparse.Namespace(**base)


def test_run_assumes_the_fold_build_starts_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = _digits()
    save(model, tmp_path / "d.mf")
    fake = FakeNextpnr(ratio=1.0)
    monkeypatch.setattr(build_mod, "build", fake)
    for name, opts in [("icebreaker", {}), ("ulx3s-85f", {}), ("tangnano9k", {}),
                       ("ulx3s-85f", {"clock_mhz": 50.0}), ("icebreaker", {"no_pll": True})]:
        board = get_board(name)
        # what `mulfree build d.mf --board NAME -o elsewhere` builds by default
        argv = (["--clock-mhz", str(opts["clock_mhz"])] if "clock_mhz" in opts else []) + \
               (["--no-pll"] if opts.get("no_pll") else [])
        assert main(["build", "d.mf", "--board", name, "-o", str(tmp_path / "out" / name),
                     *argv]) == 0
        built = fake.folds[-1]
        frames, baud = _run_frames(_run_args("d.mf", board=name, **opts), model, None)
        assert frames == frames_for(model, "runtime", built)
        assert baud is None
        # not the old run default (the auto fold)
        assert frames != frames_for(model, "runtime", None)
        if not board.pll or opts.get("no_pll"):
            assert built["clock_mhz"] == board.clk_freq / 1e6
        elif "clock_mhz" in opts:
            assert built["clock_mhz"] == opts["clock_mhz"]
        else:      # the fit's target: more than the board clock for this model
            assert built["clock_mhz"] > board.clk_freq / 1e6


def test_run_takes_the_default_build_folders_report(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    model = _digits()
    save(model, tmp_path / "d.mf")
    monkeypatch.setattr(build_mod, "build", FakeNextpnr(ratio=0.5))   # retries
    # at a fixed clock a miss refits: the kept fold is not the first one
    assert main(["build", "d.mf", "--board", "ulx3s-85f", "--no-pll"]) == 0
    report = json.loads((tmp_path / "build" / "d-ulx3s-85f" / "report.json").read_text())
    assert len(report["timing_attempts"]) > 1
    frames, baud = _run_frames(_run_args("d.mf", board="ulx3s-85f"), model, None)
    assert frames.to_json() == report["framing"] and baud == 115200
    assert "framing from build/d-ulx3s-85f/report.json" in capsys.readouterr().err


def test_run_without_build_or_board_exits_2(tmp_path, capsys):
    save(_digits(), tmp_path / "d.mf")
    np.save(tmp_path / "x.npy", np.zeros(64, np.int64))
    rc = main(["run", "--port", "/dev/null", str(tmp_path / "d.mf"), str(tmp_path / "x.npy")])
    assert rc == 2
    assert ("give --build DIR (a folder written by 'mulfree build') or --board BOARD"
            in capsys.readouterr().err)


def test_a_clock_beyond_every_estimate_still_builds_the_fastest_fold(tmp_path, monkeypatch):
    fake = FakeNextpnr(ratio=1.0)
    monkeypatch.setattr(build_mod, "build", fake)
    board = get_board("ulx3s-85f")
    fold = {**load_fold("device:lfe5u-85f"), "clock_mhz": 900.0}
    result = build_fitted(_digits(), board, tmp_path, fold=fold, attempts=1)
    assert result.kept.startswith("no fold is estimated to reach the 900 MHz clock; built "
                                  "the fastest estimated (")
    assert len(fake.folds) == 1 and fake.folds[0]["clock_mhz"] < 900
