"""The sweep machinery of ``mulfree compare`` on tiny grids: real Yosys runs (the generic
flow, about a second a point), cache hits, interrupted sweeps, reports, Dask."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Fragment

from mulfree.compare import designs, networks
from mulfree.compare import sweep as compare
from mulfree.compare.designs import build_design
from mulfree.compare.sweep import Cache, Grid, Point, run_sweep
from mulfree.compare.estimate import estimate_lut, primitives
from mulfree.compare.report import COLUMNS, summary_ratios, write_reports
from mulfree.gen.errors import InputError

# Four cheap points: runtime lanes with 3-bit activations, generic gates only, no PnR.
TINY = Grid(schemes=("uniform", "pot"), wbits=(2, 3), abits=(3,), modes=("runtime",),
            targets=("generic",))


def _quiet_sweep(points, cache, **kw):
    return run_sweep(points, cache_dir=cache, progress=False, **kw)


def test_grid_points_and_checks():
    g = Grid(schemes=("uniform", "lut", "binary", "ternary"), wbits=(2, 4), abits=(8,),
             modes=("runtime", "baked"), targets=("ice40",))
    pts = g.points()
    assert Point("runtime", "binary", 1, 8, "ice40") in pts
    assert Point("runtime", "ternary", 2, 8, "ice40") in pts
    assert Point("baked", "ternary", 2, 8, "ice40") in pts
    # A runtime table of 4 + 8 index bits belongs in block RAM: left out; 2 + 8 stays.
    assert Point("runtime", "lut", 2, 8, "ice40") in pts
    assert Point("runtime", "lut", 4, 8, "ice40") not in pts
    assert Point("baked", "lut", 4, 8, "ice40") in pts
    assert len(pts) == len(set(pts))
    assert pts == sorted(pts, key=compare._point_order)
    with pytest.raises(InputError, match=r"Scheme must be one of .*, not 'fp8'"):
        Grid(schemes=("fp8",))
    with pytest.raises(InputError, match=r"wbits must be integers from 1 to 16, not 0"):
        Grid(wbits=(0,))
    with pytest.raises(ValueError, match=r"Target must be one of"):
        Point("runtime", "pot", 4, 8, "asic")


def test_baked_core_is_exact():
    from amaranth.sim import Simulator

    for scheme, wb in [("uniform", 3), ("apot", 3), ("lut", 2), ("binary", 1)]:
        dut = build_design("baked", scheme, wb, 4)
        w = designs.baked_weights(scheme, wb)
        xs = np.random.default_rng(1).integers(0, 16, (12, w.shape[1]))
        got = []

        async def tb(ctx):
            for x in xs:
                for i, v in enumerate(x):
                    ctx.set(dut.a[i], int(v))
                got.append([ctx.get(dut.y[j]) for j in range(w.shape[0])])

        sim = Simulator(dut)
        sim.add_testbench(tb)
        sim.run()
        assert (np.array(got) == xs @ w.T).all(), scheme


def test_runtime_lanes_build_for_every_scheme():
    for scheme, wb in [("uniform", 4), ("pot", 4), ("apot", 4), ("lut", 2), ("binary", 1),
                       ("ternary", 2)]:
        lane = build_design("runtime", scheme, wb, 8)
        assert len(lane.acc) >= 8 + 6
        Fragment.get(lane, None)          # it elaborates (and is not left unused)
        assert primitives("runtime", scheme, wb, 8)
        assert estimate_lut(Point("runtime", scheme, wb, 8, "ice40")) > 0


def test_sweep_reports_and_cache_hit(tmp_path):
    cache = tmp_path / "cache"
    pts = TINY.points()
    assert len(pts) == 4
    first = _quiet_sweep(pts, cache, jobs=2)
    assert (first.synthesized, first.cached, first.failed) == (4, 0, 0)
    assert [Point(**{k: r[k] for k in ("mode", "scheme", "wbits", "abits", "target")})
            for r in first.rows] == pts
    for r in first.rows:
        assert r["lut"] > 0 and r["area_ge"] > 0 and r["fmax_mhz"] is None
        assert r["logic"] == r["lut"]          # generic: the gate count
        assert r["est_logic"] > 0 and r["est_err_pct"] is not None
    assert len(Cache(cache).keys()) == 4

    again = _quiet_sweep(pts, cache, jobs=1)
    assert (again.synthesized, again.cached) == (0, 4)
    assert [r["lut"] for r in again.rows] == [r["lut"] for r in first.rows]

    # Only a changed point is synthesized: one new activation width.
    more = Grid(schemes=("uniform", "pot"), wbits=(2, 3), abits=(3, 2), modes=("runtime",),
                targets=("generic",)).points()
    grown = _quiet_sweep(more, cache, jobs=2)
    assert (grown.synthesized, grown.cached) == (4, 4)

    out = tmp_path / "report"
    paths = write_reports(out, grown.rows, meta={"command": "test", "jobs": 2})
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0].keys()) == COLUMNS and len(rows) == 8
    doc = json.loads((out / "results.json").read_text())
    assert len(doc["rows"]) == 8 and doc["summary"]
    for name in ("luts", "ratio", "estimate"):
        png = (out / "plots" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG")
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3
    assert "<script" not in page and "src='http" not in page       # self-contained
    md = (out / "report.md").read_text()
    assert "relative to uniform" in md and "(plots/luts.png)" in md
    assert set(paths) >= {"csv", "json", "md", "html"}
    assert not list(out.rglob("*.tmp"))
    ratios = summary_ratios(grown.rows)
    assert all(e["ratio"]["uniform"] == 1.0 for e in ratios)


def test_interrupted_sweep_resumes(tmp_path):
    cache = tmp_path / "cache"
    pts = TINY.points()
    seen = []

    def stop_after_two(row):
        seen.append(row)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _quiet_sweep(pts, cache, jobs=2, on_result=stop_after_two)
    assert len(Cache(cache).keys()) == 2
    resumed = _quiet_sweep(pts, cache, jobs=2)
    assert (resumed.cached, resumed.synthesized) == (2, 2)


def test_unreadable_cache_entry_is_redone(tmp_path):
    cache = tmp_path / "cache"
    pts = TINY.points()[:1]
    first = _quiet_sweep(pts, cache)
    entry = next(cache.rglob("*.json"))
    entry.write_text('{"key": "trunc')
    again = _quiet_sweep(pts, cache)
    assert (again.synthesized, again.cached, again.failed) == (1, 0, 0)
    assert again.rows[0]["lut"] == first.rows[0]["lut"]
    assert json.loads(entry.read_text())["key"] == first.rows[0]["key"]


def test_failing_point_is_reported_not_fatal(tmp_path, monkeypatch):
    real = compare.build_design

    def broken(mode, scheme, wbits, abits):
        if scheme == "pot":
            raise RuntimeError("boom")
        return real(mode, scheme, wbits, abits)

    monkeypatch.setattr(compare, "build_design", broken)
    res = _quiet_sweep(TINY.points(), tmp_path / "cache", jobs=1)
    assert res.failed == 2 and res.synthesized == 2
    bad = [r for r in res.rows if r["error"]]
    assert all("boom" in r["error"] and r["lut"] is None for r in bad)
    write_reports(tmp_path / "r", res.rows, meta={})
    assert "Failed points" in (tmp_path / "r" / "report.md").read_text()


def _cli(*args, **kw):
    env = dict(os.environ)
    env.pop("YOSYS", None)
    return subprocess.Popen([sys.executable, "-m", "mulfree.cli", "compare", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            **kw)


def test_cli_tiny_grid(tmp_path):
    proc = _cli("-o", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"),
                "--targets", "generic", "--schemes", "uniform,apot", "--wbits", "2",
                "--abits", "3", "--modes", "runtime", "--jobs", "2")
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "| weight bits |" in out
    assert "2 synthesized, 0 cached, 0 failed" in err
    assert (tmp_path / "out" / "report.html").exists()
    bad = _cli("--wbits", "x")
    _out, err = bad.communicate(timeout=60)
    assert bad.returncode == 2 and "expected integers" in err


def test_cli_sigint_leaves_a_resumable_cache(tmp_path):
    cache = tmp_path / "cache"
    args = ("-o", str(tmp_path / "out"), "--cache", str(cache), "--targets", "generic",
            "--schemes", "uniform,pot,apot", "--wbits", "2-4", "--abits", "3",
            "--modes", "runtime", "--jobs", "2", "-q")
    proc = _cli(*args)
    deadline = time.monotonic() + 120
    while not list(cache.rglob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    done = len(list(cache.rglob("*.json")))
    assert done >= 1
    assert not list(cache.rglob("*.tmp")) and not (tmp_path / "out" / "results.json").exists()
    for entry in cache.rglob("*.json"):
        json.loads(entry.read_text())       # every entry whole
    proc = _cli(*args)
    _out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert f"{done} cached" in err


def test_dask_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    pts = TINY.points()[:2]
    local = _quiet_sweep(pts, tmp_path / "local")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        res = _quiet_sweep(pts, tmp_path / "dask", scheduler=cluster.scheduler_address)
        assert (res.synthesized, res.failed) == (2, 0)
        assert [r["lut"] for r in res.rows] == [r["lut"] for r in local.rows]
        assert [r["key"] for r in res.rows] == [r["key"] for r in local.rows]
        # The parent wrote the cache: a rerun on the cluster synthesizes nothing.
        again = _quiet_sweep(pts, tmp_path / "dask", scheduler=cluster.scheduler_address)
        assert (again.synthesized, again.cached) == (0, 2)


def test_missing_scheduler_is_a_clear_error(tmp_path):
    pytest.importorskip("distributed")
    from mulfree.gen.errors import MulfreeError

    with pytest.raises(MulfreeError, match="cannot reach the Dask scheduler"):
        _quiet_sweep(TINY.points()[:1], tmp_path, scheduler="tcp://127.0.0.1:9")


@pytest.mark.slow
def test_model_table_trains_once_and_measures(tmp_path, monkeypatch):
    monkeypatch.setattr(networks, "MODEL_SCHEMES", (("ternary", 2),))
    monkeypatch.setattr(networks, "MODEL_EPOCHS", 2)
    rows, note = networks.model_table(cache_dir=tmp_path, jobs=1, quiet=True, pnr=False)
    assert len(rows) == 1 and rows[0]["error"] is None, rows
    r = rows[0]
    assert r["logic"] > 100 and r["fmax_mhz"] is None and r["cycles_per_inference"] > 0
    assert 0 <= r["accuracy_pct"] <= 100
    assert "mulfree train" in note
    models = list((tmp_path / "models").glob("*.mf"))
    assert len(models) == 1
    again, _ = networks.model_table(cache_dir=tmp_path, jobs=1, quiet=True, pnr=False)
    assert again[0]["logic"] == r["logic"]
    assert list((tmp_path / "models").glob("*.mf")) == models


def test_grid_leaves_out_pot_past_its_codebook_and_says_so():
    grid = Grid(schemes=("pot", "uniform"), wbits=(4, 6, 7, 8), abits=(8,),
                modes=("runtime", "baked"), targets=("generic",))
    kept = {(p.scheme, p.wbits) for p in grid.points()}
    assert ("pot", 6) in kept and ("pot", 7) not in kept and ("uniform", 8) in kept
    assert grid.skipped() == [("pot", 7), ("pot", 8)]


def test_baked_weights_come_from_the_quantizers_codebook():
    from mulfree.gen.train.quant import weight_levels

    for scheme, wb in [("pot", 4), ("pot", 6), ("apot", 8), ("uniform", 4)]:
        w = designs.baked_weights(scheme, wb)
        assert set(np.unique(w)) <= set(weight_levels(scheme, wb).tolist()), (scheme, wb)
    # the example codebook's extra level -2**7 is not a 4-bit PoT weight of the quantizer
    assert designs.baked_weights("pot", 4).min() >= -64
    with pytest.raises(Exception, match="no 7-bit codebook"):
        designs.baked_weights("pot", 7)


def test_tables_design_is_the_sparse_layer(tmp_path):
    """--modes tables: each neuron's truth table is its accumulator (the corners and a
    sample of the 2**12 inputs; tests/gen/plan/test_tables.py checks tables exhaustively);
    the default grids leave the mode out."""
    from amaranth.sim import Simulator

    for scheme, wb, ab in [("pot", 3, 2), ("apot", 4, 3), ("binary", 1, 4)]:
        dut = build_design("tables", scheme, wb, ab)
        f = designs.tables_fan_in(ab)
        assert f * ab <= designs.TABLE_BITS and dut.layer.in_count == f
        w = designs.baked_weights(scheme, wb)[:, :f]
        entries = np.random.default_rng(wb).choice(2 ** (f * ab), 160, replace=False)
        entries = np.concatenate([[0, 2 ** (f * ab) - 1], entries])   # corners, a sample
        xs = np.array([[(e >> (ab * k)) & (2**ab - 1) for k in range(f)] for e in entries])
        got = []

        async def tb(ctx):
            for x in xs:
                ctx.set(dut.x, sum(int(v) << (ab * k) for k, v in enumerate(x)))
                await ctx.delay(1e-9)
                y = ctx.get(dut.y)
                width = dut.layer.out_width
                vals = [(y >> (width * j)) & (2**width - 1) for j in range(w.shape[0])]
                got.append([v - 2**width if v >= 2 ** (width - 1) else v for v in vals])

        sim = Simulator(dut)
        sim.add_testbench(tb)
        sim.run()
        assert (np.array(got) == xs @ w.T).all(), scheme
    assert "tables" not in compare.DEFAULT_GRID.modes and "tables" not in compare.QUICK_GRID.modes
    pts = Grid(schemes=("pot",), wbits=(3,), abits=(2,), modes=("tables",),
               targets=("generic",)).points()
    assert pts == [Point("tables", "pot", 3, 2, "generic")]
    assert estimate_lut(pts[0]) is None
    res = _quiet_sweep(pts, tmp_path / "cache")
    assert res.failed == 0 and res.rows[0]["lut"] > 0


def test_progress_says_at_once_that_the_sweep_started():
    """The first points take seconds each: the bar shows a line before any finishes."""
    import io

    from mulfree.compare.sweep import Progress

    out = io.StringIO()
    bar = Progress(3, stream=out)
    assert "0/3" in out.getvalue() and "started" in out.getvalue()
    bar.update("runtime pot w2 a8 ice40", detail="40 LUT")
    bar.close()
    assert out.getvalue().splitlines()[-1].endswith("runtime pot w2 a8 ice40: 40 LUT")
    quiet = io.StringIO()
    Progress(3, stream=quiet, enabled=False).close()
    assert quiet.getvalue() == ""
