"""Benchmark: the dense engine's input frame in block RAM against the frame in registers.

The same QONNX TFC models (784-64-64-64-10) and the same folds, built two ways in one run:
by this checkout and by the git revision ``--rev`` (default 834fb9e, the engine before
the frame memory; its sources are taken with ``git archive``, so the worktree is not
touched). Every stage is synthesized alone with Yosys (``synth_ice40``, no place and
route) as ``bench/fold_fit.py`` does; a network's numbers are the sum of its stages.
Also printed: the resource model's estimate (each revision's own ``gen/plan/cost.py``) and
whether ``mulfree verilog --device ice40up5k`` finds a fold that fits.

    .venv/bin/python bench/dense_buffer.py             # both TFC models, serial and fit
    .venv/bin/python bench/dense_buffer.py --models TFC_1W1A

Folds: ``serial``, and ``fit``: the fold this checkout's device fit picks for the
iCE40UP5K (per layer pe, simd and ROM placement, and the input beat); the old revision
builds that same fold, though its own fit finds none.
Yosys results are cached in out/dense_buffer/cache.json, keyed by a hash of the Verilog.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "dense_buffer"
MODELS = Path("/work/shared/models/qonnx-tfc")
os.environ["AMARANTH_USE_YOSYS"] = "builtin"

# Run by each revision's Python path: emits every stage's Verilog for a fold, the
# resource model's estimate per stage, and the device fit's verdict.
HELPER = r"""
import json, sys
from mulfree.boards.synth import emit_verilog
from mulfree.gen.errors import InputError
try:                      # the package layout since issue 16
    from mulfree.gen.model.format import load
    from mulfree.gen.plan.cost import network_cost
    from mulfree.gen.plan.network import plan_network
    from mulfree.hw.network import build_stage
except ImportError:       # revisions before it (834fb9e)
    from mulfree.gen.cost import network_cost
    from mulfree.gen.model import load
    from mulfree.gen.plan import plan_network
    from mulfree.hw.engine import build_stage

model_path, fold, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
model = load(model_path)
res = {}
try:
    _, man = plan_network(model, "runtime", "device:ice40up5k")
    fit = man["device_fit"]
    res["fit"] = {"fits": True, "cells": fit["use"]["cells"],
                  "fold": {"layers": fit["fitted_layers"],
                           "input_values_per_beat": man["input"]["values_per_beat"]}}
except InputError as e:
    res["fit"] = {"fits": False, "message": str(e)}
if fold == "fit":
    fold = res["fit"]["fold"] if res["fit"]["fits"] else None
if fold is not None:
    stages, man = plan_network(model, "runtime", fold)
    res["manifest"] = {"latency": man["latency_cycles"],
                       "period": man["cycles_per_inference"],
                       "in_beat": man["input"]["values_per_beat"],
                       "layers": [{k: r.get(k) for k in ("name", "pe", "simd", "in_beat")}
                                  for r in man["layers"]]}
    res["estimate"] = [c.to_json("ice40") for c in network_cost(stages, "ice40")]
    res["stages"] = []
    for n, s in enumerate(stages):
        path = f"{out}/stage{n}.v"
        with open(path, "w") as f:
            f.write(emit_verilog(build_stage(s)))
        res["stages"].append(path)
print(json.dumps(res))
"""


def _checkout(rev: str, where: Path) -> Path:
    """The revision's packages as an importable ``mulfree`` under ``where``."""
    pkg = where / "mulfree"
    pkg.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "hw", "gen", "sim",
                              "boards"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(pkg)], input=archive, check=True)
    (pkg / "__init__.py").write_text("")
    return where


def _emit(pythonpath: Path | None, model_path: Path, fold, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    code = HELPER
    if pythonpath is not None:
        code = f"import sys; sys.path.insert(0, {str(pythonpath)!r})\n" + HELPER
    p = subprocess.run([sys.executable, "-c", code, str(model_path), json.dumps(fold),
                        str(out)], capture_output=True, text=True, env=env)
    if p.returncode:
        raise RuntimeError(p.stderr[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def _yosys(path: str, cache: dict) -> dict:
    from mulfree.boards.synth import Flow, synthesize

    text = Path(path).read_text()
    key = hashlib.sha256(("ice40\n" + text).encode()).hexdigest()
    if key not in cache:
        r = synthesize(text, Flow(target="ice40", pnr=False)).report
        cache[key] = {"lut": r.lut, "ff": r.ff, "bram": r.bram, "carry": r.carry}
    return cache[key]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="834fb9e", help="the revision to compare against")
    ap.add_argument("--models", default="TFC_2W2A,TFC_1W1A")
    ap.add_argument("--folds", default="serial,fit")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)

    from mulfree.gen.model.format import save
    from mulfree.gen.importers.qonnx import import_qonnx

    OUT.mkdir(parents=True, exist_ok=True)
    cache_path = OUT / "cache.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="mulfree-old-") as tmp:
        old = _checkout(args.rev, Path(tmp))
        for name in args.models.split(","):
            model_path = OUT / f"{name}.json"
            save(import_qonnx(MODELS / f"{name}.onnx"), model_path)
            for fold in args.folds.split(","):
                new = _emit(None, model_path, fold, OUT / name / fold / "new")
                fold_for_old = fold
                if fold == "fit" and new["fit"]["fits"]:
                    # the same fold: layers (pe, simd, ROM placement) and input beat
                    fold_for_old = new["fit"]["fold"]
                was = _emit(old, model_path, fold_for_old, OUT / name / fold / "old")
                for label, res in ((args.rev, was), ("this", new)):
                    paths = res.get("stages", [])
                    with ThreadPoolExecutor(args.jobs) as ex:
                        got = list(ex.map(lambda p: _yosys(p, cache), paths))
                    cache_path.write_text(json.dumps(cache))
                    rows.append((name, fold, label, res, got))
    print(f"{'model':<10}{'fold':<8}{'design':<9}{'part':<9}{'LUT4':>7}{'est':>7}{'FF':>7}"
          f"{'est':>7}{'BRAM':>6}{'est':>5}")
    for name, fold, label, res, got in rows:
        est = res.get("estimate", [])
        if not got:
            print(f"{name:<10}{fold:<8}{label:<9}(no fold)")
        for part, sel in (("fc1", slice(0, 1)), ("network", slice(None))):
            if not got:
                continue
            y = {k: sum(g[k] for g in got[sel]) for k in ("lut", "ff", "bram")}
            e = {k: sum(g[k] for g in est[sel]) for k in ("lut", "ff", "bram")}
            print(f"{name:<10}{fold:<8}{label:<9}{part:<9}{y['lut']:>7}{e['lut']:>7}"
                  f"{y['ff']:>7}{e['ff']:>7}{y['bram']:>6}{e['bram']:>5}")
        fit = res["fit"]
        verdict = (f"fits, estimated {fit['cells']:.1%} of its logic cells with the harness"
                   if fit["fits"] else
                   "does not fit: " + fit["message"].split(": ", 1)[-1])
        print(f"{'':<10}{'':<8}{label:<9}mulfree verilog --device ice40up5k: {verdict}")
        if "manifest" in res:
            m = res["manifest"]
            folds = " ".join(f"{r['name']}:{r['pe']}x{r['simd']}" for r in m["layers"])
            print(f"{'':<27}latency {m['latency']}, {m['period']} cycles/inference, input "
                  f"beat {m['in_beat']}, pe x simd {folds}")
    (OUT / "results.json").write_text(json.dumps(
        [{"model": n, "fold": f, "design": lab, "result": r, "yosys": g}
         for n, f, lab, r, g in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
