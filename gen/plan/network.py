"""The elaboration plan: a model description in, a :class:`~mulfree.hw.network.Network`
and its manifest out.

:func:`plan_network` reads the fold (:mod:`.folds`), fits it to a device when it names
one (:mod:`.fit`), plans the stages (:mod:`.stages`) and writes the manifest: ports,
beat packing, latency and cycles per inference from the stages' cycle models, every
layer's folding and widths, and a resource estimate (:mod:`.cost`).

Device fit: ``fold="device:NAME"`` (or ``"device"`` in a fold file; names in
:mod:`mulfree.gen.plan.devices`) picks ``pe``, ``simd``, ``rom`` and, unless given,
``input_values_per_beat`` for every layer the fold does not list: the fold with the fewest
cycles per inference (the slowest stage's period, as in :func:`_timing`) whose estimated
logic cells (:mod:`mulfree.gen.plan.cost`, plus a reserve for the board harness) stay within
:data:`mulfree.gen.plan.fit.UTILIZATION` of the device and whose block RAMs fit it; among
equally fast folds the cheapest. With ``clock_mhz`` the fit also keeps every engine's
estimated Fmax (:func:`mulfree.gen.plan.cost.stage_fmax_mhz`) at or above that clock and may
turn ``pipeline`` on. Runtime mode only. When nothing fits, :class:`InputError`
names the device, the estimate and the budget. The manifest's ``device_fit`` records the
device, the fitted layers and the estimated use against the capacity.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np

from mulfree.hw.argmax import ArgMaxSpec
from mulfree.hw.compute import ComputeSpec
from mulfree.hw.link_fifo import LinkFifoSpec
from mulfree.hw.network import Network
from mulfree.hw.pool import MaxPoolSpec
from mulfree.hw.table_spec import TablesSpec
from mulfree.hw.timing import network_timing

from .. import progress
from ..errors import InputError, MulfreeError
from ..model.format import Model, OutputKind
from .cost import network_cost, stage_cost, total
from .fit import fit_fold
from .folds import load_fold
from .links import add_link_fifos
from .stages import plan_stages

__all__ = ["build_network", "plan_network", "fitted_fold", "PORTS", "LOAD_PORTS", "top_name"]


# The names Amaranth gives the network's ports in emitted Verilog.
PORTS = ["clk", "rst", "i__payload", "i__valid", "i__ready", "o__payload", "o__valid",
         "o__ready"]
# and the load stream's, when a stage keeps memories in SPRAM (hw/spram.py)
LOAD_PORTS = ["load__payload", "load__valid", "load__ready"]


def top_name(model: Model) -> str:
    """The Verilog module name: the model's name, made an identifier."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", model.name)
    return "mulfree_" + name


def _timing(stages) -> tuple[int, int]:
    """(latency, initiation interval) with no stalls; see docs/hardware.md.

    A conv2d stage takes its input as fast as its line buffer and compute allow, so no
    per-stage formula chains exactly: :func:`mulfree.hw.timing.network_timing` runs the
    stages' handshake models together, cycle by cycle. A table pipeline holds up to
    ``depth`` inferences, so it is fed enough of them to reach its steady state."""
    deep = max((s.depth for s in stages if isinstance(s, TablesSpec)), default=0)
    return network_timing(stages, max(4, 2 * deep + 2))


def _manifest(model, mode, stages, rows, in_vpb) -> dict:
    n_in = int(np.prod(model.input_shape))
    last = stages[-1]
    out_kind = model.output_kind
    if isinstance(last, TablesSpec):
        kind = ("argmax" if last.argmax else "acc" if last.out_shape.signed else "codes")
        out = {"kind": kind, "beats": last.out_beats, "values_per_beat": last.out_beat,
               "value_bits": last.out_bits, "signed": bool(last.out_shape.signed)}
    elif isinstance(last, ArgMaxSpec):
        out = {"kind": "argmax", "beats": _count_out(model), "values_per_beat": 1,
               "value_bits": max(1, (last.group - 1).bit_length()), "signed": False}
    elif isinstance(last, ComputeSpec) and last.thresholds is None:
        out = {"kind": "acc", "beats": last.out_beats, "values_per_beat": last.out_beat,
               "value_bits": last.acc_width, "signed": True}
    elif isinstance(last, ComputeSpec):
        out = {"kind": "codes", "beats": last.out_beats, "values_per_beat": last.out_beat,
               "value_bits": last.out_bits, "signed": False}
    else:  # MaxPoolSpec
        out = {"kind": "codes", "beats": last.out_count // last.out_beat,
               "values_per_beat": last.out_beat, "value_bits": last.in_bits, "signed": False}
    assert out_kind.value == out["kind"] or (out_kind is OutputKind.THRESHOLDS
                                             and out["kind"] == "codes")
    out["shape"] = list(model.output_shape)
    latency, period = _timing(stages)
    est = _estimate(stages, rows)
    load_words = sum(getattr(s, "load_words", 0) for s in stages)
    manifest = {
        "format": "mulfree-manifest", "version": 1,
        "top": top_name(model), "model": model.name, "mode": mode,
        "ports": list(PORTS),
        "clock": {"port": "clk", "reset": "rst", "reset_kind": "synchronous, active high"},
        "input": {"beats": n_in // in_vpb, "values_per_beat": in_vpb,
                  "value_bits": model.input_bits, "signed": False,
                  "shape": list(model.input_shape), "order": "row, column, channel"},
        "output": out,
        "packing": "value n of a beat at bits [n*value_bits, (n+1)*value_bits)",
        "latency_cycles": latency,
        "cycles_per_inference": period,
        "latency_definition": "cycles from the first input beat's transfer to the last "
                              "output beat's transfer, no stalls",
        "layers": rows,
        "resources_estimate": est,
    }
    fifos = _link_fifos(stages, rows)
    if fifos:
        manifest["link_fifos"] = fifos
    if load_words:
        manifest["ports"] += LOAD_PORTS
        manifest["load"] = {
            "port": "load", "words": load_words, "word_bits": 16,
            "file": f"{top_name(model)}.load.hex",
            "when": "once after reset: no input beat is taken before the last load word",
            "order": "stage by stage; per stage its weight ROM in SPRAM, then each PE's "
                     "threshold memory in SPRAM; per memory block row by block row, 16 bits "
                     "of the word at a time, addresses in order (hw/spram.py)"}
    if isinstance(last, TablesSpec):
        manifest["tables"] = {
            "registers": last.registers, "register_every": last.register_every,
            "argmax_every": last.argmax_every, "style": last.style,
            "depth": last.depth,
            "pipeline": "registers after every register_every layers and every "
                        "argmax_every argmax half-levels, a valid bit alongside, an output "
                        "register with a one-entry skid buffer; the pipeline holds while the "
                        "skid is full (i.ready = not full)"}
    return manifest


def _within_fit(stages, fit: dict) -> bool:
    """Whether the device fit's estimate with the link FIFOs in ``stages`` added stays in
    its budget (the fit prices the stages without them)."""
    family = fit["device"]["family"]
    fifos = [stage_cost(s, family) for s in stages if isinstance(s, LinkFifoSpec)]
    est, budget = fit["estimate"], fit["budget"]
    return (est["cells"] + sum(c.cells(family) for c in fifos) <= budget["cells"]
            and est["ffs"] + sum(c.ff for c in fifos) <= budget["ffs"]
            and est["bram"] + sum(c.bram for c in fifos) <= budget["bram"])


def _fit_link_fifos(plain, linked, fit: dict) -> list:
    """``linked`` if its link FIFOs fit the device fit's budget; else with the FIFOs'
    memories out of block RAM (ECP5 distributed RAM, iCE40 flip-flops) if that fits; else
    ``plain``: a fold at the edge of its budget keeps its slower chain rather than
    overflow the device."""
    if _within_fit(linked, fit):
        return linked
    style = "distributed" if fit["device"]["family"] == "ecp5" else "logic"
    out = [dataclasses.replace(s, style=style) if isinstance(s, LinkFifoSpec) else s
           for s in linked]
    return out if _within_fit(out, fit) else list(plain)


def _link_fifos(stages, rows) -> list[dict]:
    """The manifest's record of the FIFOs between stages (gen/plan/links.py): the layer
    each follows, its depth in beats and its beat's bits."""
    names = [r["name"] for r in rows if r["type"] != "flatten"]
    return [{"after": names[s.after], "depth": s.depth, "bits": s.width,
             "memory": s.style or "the tool decides"}
            for s in stages if isinstance(s, LinkFifoSpec)]


def _count_out(model: Model) -> int:
    return int(np.prod(model.output_shape))


def _estimate(stages, rows) -> dict:
    """The plan's resource estimate (not synthesis): product units, ROM bits, the frame
    buffers' and accumulators' flip-flops, and, for runtime weights, the resource model's
    LUT, flip-flop, block RAM and logic-cell estimates per target family and per stage
    (:mod:`mulfree.gen.plan.cost`; the network alone, without a board harness)."""
    if any(isinstance(s, TablesSpec) for s in stages):
        t = next(s for s in stages if isinstance(s, TablesSpec))
        tables = [n for l in t.layers for n in l.neurons if hasattr(n, "table")]
        return {"product_units": 0, "weight_rom_bits": 0,
                "table_neurons": len(tables),
                "table_entries": sum(len(n.table) for n in tables),
                "note": "planner's estimate; no LUT model for truth tables (Yosys and ABC "
                        "minimize them): synthesize for real numbers (mulfree build)"}
    units = rom = ffs = 0
    for s in stages:
        if isinstance(s, ComputeSpec):
            units += s.pe * s.simd if s.mode == "runtime" else 0
            frame = 0 if s.buffer_in_memory else s.in_count * s.in_bits
            results = 0 if s.out_in_memory else s.out_count * s.out_bits
            ffs += frame + results + s.pe * s.acc_width
        elif isinstance(s, MaxPoolSpec) and s.window_spec is not None:
            # the window and its output copy, two input beats (the line memory apart)
            ffs += 2 * s.window_spec.window_bits + 2 * s.in_beat * s.in_bits
        elif isinstance(s, MaxPoolSpec):
            ffs += s.in_count * s.in_bits * (2 if s.double_buffer else 1)
    rom = sum(r.get("rom_bits", 0) for r in rows)
    est = {"product_units": units, "weight_rom_bits": rom, "buffer_and_acc_ffs": ffs}
    if all(s.mode == "runtime" for s in stages if isinstance(s, ComputeSpec)):
        names, it = [], iter(r["name"] for r in rows if r["type"] != "flatten")
        for s in stages:
            names.append(f"{names[-1]}.argmax" if isinstance(s, ArgMaxSpec) else
                         f"{names[-1]}.fifo" if isinstance(s, LinkFifoSpec) else next(it))
        per = {f: network_cost(stages, f) for f in ("ice40", "ecp5")}
        for family, costs in per.items():
            est[family] = total(costs, family)
        est["stages"] = [{"name": n, **{f: per[f][i].to_json(f) for f in per}}
                         for i, n in enumerate(names)]
        est["note"] = ("planner's estimate (gen/plan/cost.py, calibrated against Yosys: see "
                       "docs/hardware.md); ice40 lut = LUT4, ecp5 lut = LUT4 + 2 x CCU2C; "
                       "cells = what nextpnr places; the board harness is not included")
    else:
        est["note"] = ("planner's estimate; the LUT model covers runtime weights only: "
                       "synthesize for real numbers (mulfree build)")
    return est


def fitted_fold(fold: Any, model: Model, mode: str = "runtime") -> dict:
    """The normalized fold (:func:`~.folds.load_fold`); when it names a device, fitted to
    it (:func:`~.fit.fit_fold`): the result lists every layer's ``pe``, ``simd`` and
    ``rom``, and ``"fit"`` holds the fitter's record for the manifest."""
    out = load_fold(fold)
    if out.get("device") is not None and mode == "tables":
        raise InputError(f"fold: a device fit ('{out['device']}') folds runtime weights; the "
                         f"tables mode has no fold to fit (drop --device)")
    if out.get("device") is not None:
        result = fit_fold(model, out["device"], out, mode)
        out["layers"] = {**out["layers"], **result.layers}
        out["input_values_per_beat"] = result.input_values_per_beat
        out["pipeline"] = result.pipeline
        out["fit"] = result.to_json()
    return out


def plan_network(model: Model, mode: str = "runtime", fold: Any = None):
    """``(stage specs, manifest)`` of ``model`` (without building components); ``fold``
    as in :func:`build_network`."""
    fold = fitted_fold(fold, model, mode)
    stages, rows, in_vpb = plan_stages(model, mode, fold)
    if fold.get("link_fifos", True):
        with progress.stage("sizing the FIFOs between stages") as st:
            linked = add_link_fifos(stages, report=st.update)
        stages = linked if "fit" not in fold else _fit_link_fifos(stages, linked, fold["fit"])
    manifest = _manifest(model, mode, stages, rows, in_vpb)
    if "fit" in fold:
        manifest["device_fit"] = fold["fit"]
    return stages, manifest


def build_network(model: Model, mode: str = "runtime", fold: Any = None):
    """``(Network, manifest)`` for ``model``.

    Parameters
    ----------
    model : Model
    mode : "runtime" | "baked" | "tables"
        Runtime: weight codes in ROM, folded by (PE, SIMD). Baked: weights as constants
        in the logic, fully parallel per output position. Tables: every neuron one truth
        table (or a sum of lookups above the limit), fully pipelined
        (:mod:`mulfree.gen.plan.tables`).
    fold : None, preset name, dict or path
        See the module docstring.
    """
    stages, manifest = plan_network(model, mode, fold)
    try:
        net = Network(stages=stages)
    except (ValueError, TypeError) as e:
        raise MulfreeError(f"cannot build the network: {e}") from None
    return net, manifest
