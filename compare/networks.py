"""Whole networks in ``mulfree compare``: small digits MLPs trained per scheme, built and
measured like a point, so the per-lane ratios can be checked on a complete design."""

from __future__ import annotations

import json
import multiprocessing
import sys
import traceback
from pathlib import Path

from mulfree.boards.synth import (Flow, SynthResult, design_key, emit_verilog, harness_verilog,
                                  synthesize)
from mulfree.gen.errors import MulfreeError

from .sweep import Cache, Progress, _init_worker, default_cache_dir

__all__ = ["model_table", "evaluate_network", "MODEL_SCHEMES"]


# (scheme, weight bits) of the networks in the model table; each an MLP 64-32-10 on the
# digits data set, 2-bit hidden activations, 4-bit inputs, argmax output.
MODEL_SCHEMES = (("uniform", 4), ("pot", 4), ("apot", 4), ("lut", 4), ("ternary", 2),
                 ("binary", 1))

MODEL_HIDDEN = (32,)

MODEL_EPOCHS = 15

MODEL_TARGET = "ecp5"   # the default-folded networks overflow an iCE40UP5K (5.7k-6.5k LCs)


def _model_config(scheme: str, wbits: int):
    from mulfree.gen.train.config import TrainConfig

    return TrainConfig(arch="mlp", hidden=MODEL_HIDDEN, scheme=scheme, wbits=wbits, abits=2,
                       ibits=4, epochs=MODEL_EPOCHS, seed=0)


def _trained_model(scheme: str, wbits: int, root: Path) -> Path:
    """Train (once: the model file is cached by its configuration and the training code)
    and return the model file."""
    import hashlib
    import inspect

    from mulfree.gen.model import format as model_io
    from mulfree.gen.train import config, export, fold, net, quant, tbn, trainer

    cfg = _model_config(scheme, wbits)
    h = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    for module in (config, net, trainer, export, quant, fold, tbn):   # the training code
        h.update(inspect.getsource(module).encode())
    path = root / "models" / f"digits-{scheme}-w{wbits}-{h.hexdigest()[:16]}.mf"
    if not path.exists():
        trained, _history = trainer.train(cfg)
        model = export.to_model(export.export(trained), name="digits")
        path.parent.mkdir(parents=True, exist_ok=True)
        model_io.save(model, path)
    return path


def evaluate_network(model_path: str, *, pnr: bool = True,
                     known_keys: frozenset | None = None) -> dict:
    """Worker: accuracy of the model's golden integer network on the digits test set, and
    its runtime-mode network (default folding) synthesized for ``MODEL_TARGET``."""
    out = {"model_path": model_path, "key": None, "cached": False, "result": None,
           "error": None}
    try:
        from mulfree.gen.model import format as model_io
        from mulfree.gen.plan.network import build_network
        from mulfree.gen.train.evaluate import evaluate_model

        model = model_io.load(model_path)
        out["accuracy"] = round(evaluate_model(model), 4)
        net, manifest = build_network(model, "runtime", None)
        out["cycles_per_inference"] = manifest.get("cycles_per_inference")
        flow = Flow(target=MODEL_TARGET, pnr=pnr)
        text = emit_verilog(net)
        out["key"] = key = design_key(text, flow)
        if known_keys is not None and key in known_keys:
            out["cached"] = True
            return out
        harness = harness_verilog(net) if flow.runs_pnr else None
        out["result"] = synthesize(text, flow, harness_text=harness).to_json()
    except MulfreeError as e:
        out["error"] = str(e)
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}"
    return out


def _call_network(args):
    path, kwargs = args
    return evaluate_network(path, **kwargs)


def model_table(*, cache_dir=None, jobs: int = 1, quiet: bool = False,
                pnr: bool = True) -> tuple[list[dict], str]:
    """Rows of the whole-network table (one per scheme in ``MODEL_SCHEMES``) and a note
    saying how they were made."""
    cache = Cache(cache_dir if cache_dir is not None else default_cache_dir())
    paths = []
    for scheme, wbits in MODEL_SCHEMES:
        if not quiet:
            print(f"mulfree compare: digits network, {scheme} {wbits}-bit weights: training "
                  f"(cached after the first time)", file=sys.stderr, flush=True)
        paths.append(str(_trained_model(scheme, wbits, cache.root)))
    kwargs = {"pnr": pnr, "known_keys": cache.keys()}
    bar = Progress(len(paths), enabled=not quiet)
    results = []
    if jobs > 1:
        ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux")
                                          else "spawn")
        pool = ctx.Pool(min(jobs, len(paths)), initializer=_init_worker)
        try:
            results = list(pool.imap(_call_network, [(p, kwargs) for p in paths]))
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
    else:
        results = [evaluate_network(p, **kwargs) for p in paths]
    rows = []
    for (scheme, wbits), res in zip(MODEL_SCHEMES, results):
        result = None
        if res["error"] is None:
            result = cache.get(res["key"]) if res["cached"] else None
            if result is None and res["result"] is None:
                res = evaluate_network(res["model_path"], pnr=pnr, known_keys=frozenset())
            if result is None and res["error"] is None:
                result = SynthResult.from_json(res["result"])
                cache.put(result)
        bar.update(f"digits {scheme} w{wbits}", cached=bool(res.get("cached")),
                   failed=res["error"] is not None,
                   detail=f"{result.report.lut} LUT" if result else "")
        r = result.report if result else None
        fmax = result.fmax_mhz if result else None
        cycles = res.get("cycles_per_inference")
        accuracy = res.get("accuracy")
        rows.append({
            "scheme": scheme, "wbits": wbits, "model": "MLP 64-32-10, 2-bit act.",
            "target": MODEL_TARGET,
            "logic": (r.lut + 2 * r.carry if MODEL_TARGET == "ecp5" else r.lut) if r else None,
            "lut": r.lut if r else None, "carry": r.carry if r else None,
            "ff": r.ff if r else None,
            "bram": r.bram if r else None, "fmax_mhz": fmax,
            "cycles_per_inference": cycles,
            "inferences_per_s": (round(fmax * 1e6 / cycles) if fmax and cycles else None),
            "accuracy": accuracy,
            "accuracy_pct": round(100 * accuracy, 1) if accuracy is not None else None,
            "error": res["error"],
        })
    bar.close()
    note = (f"Each network: `mulfree train --arch mlp --hidden {','.join(map(str, MODEL_HIDDEN))} "
            f"--scheme S --wbits W --abits 2 --ibits 4 --epochs {MODEL_EPOCHS} --seed 0` on the "
            f"digits data set; accuracy of the golden integer model on the test split; LUTs and "
            f"Fmax of its runtime-mode network (default folding, weights in ROM) on "
            f"{MODEL_TARGET}; inferences/s = Fmax / cycles per inference.")
    return rows, note
