"""The elaboration plan: a model description in, a :class:`~mulfree.hw.network.Network`
and its manifest out.

This is where the model's numbers become hardware parameters: product units and their
native weight encodings, exact accumulator widths, the folding of every layer (PE, SIMD),
the stream widths between layers, cycle counts and a resource estimate.

Fold file (JSON)::

    {
      "input_values_per_beat": 8,          # optional: input codes per input beat
      "pipeline": false,                   # optional: register the adder trees' outputs
      "double_buffer": false,              # optional: overlap load, compute and send
      "default": "serial" | "parallel" | "auto",   # optional, for layers not listed
      "device": "ice40up5k",               # optional: fit the layers not listed to it
      "clock_mhz": 12,                     # optional, with device: the clock the fit must meet
      "layers": {                          # optional, by layer name
        "fc1": {"pe": 4, "simd": 16, "rom": "block"},
        "conv1": "parallel"
      }
    }

``pe`` must divide the layer's output channels and ``simd`` its inputs per output
(``in_features`` for dense, ``kh * kw * in_channels`` for conv2d); a layer given as
``"serial"`` is ``pe = simd = 1``, ``"parallel"`` is all of them at once. ``rom`` asks
synthesis to put the weight ROM in block RAM (``"block"``) or logic (``"logic"``); by
default the tool decides (Yosys maps shallow ROMs to logic). ``fold`` may
also be one of those strings for every layer, a dict of that form, or a path to the file.
Baked mode is fully parallel per output position and accepts only ``"parallel"`` folds.

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

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, ModelError, MulfreeError
from ..model.golden import accumulator_bounds, product_table
from ..model.format import Conv2d, Dense, Flatten, MaxPool, Model, OutputKind, Scheme

__all__ = ["build_network", "plan_network", "load_fold", "FOLD_PRESETS", "PORTS",
           "top_name", "relaxed_bounds"]

FOLD_PRESETS = ("auto", "serial", "parallel")
MODES = ("runtime", "baked")

# The names Amaranth gives the network's ports in emitted Verilog.
PORTS = ["clk", "rst", "i__payload", "i__valid", "i__ready", "o__payload", "o__valid",
         "o__ready"]

# Table products up to this many entries replace a decode + product unit when the
# activation codebook is not the identity.
_TABLE_LIMIT = 256


def top_name(model: Model) -> str:
    """The Verilog module name: the model's name, made an identifier."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", model.name)
    return "mulfree_" + name


def load_fold(fold: Any, model: Model | None = None, mode: str = "runtime") -> dict:
    """Normalize a fold (``None``, a preset name, ``"device:NAME"``, a dict, or a JSON
    file path). With ``model`` given, a fold that names a device is fitted to it
    (:func:`mulfree.gen.plan.fit.fit_fold`): the result lists every layer's ``pe``, ``simd``
    and ``rom``, and ``"fit"`` holds the fitter's record for the manifest."""
    from .devices import get_device

    if fold is None:
        return {"default": "auto", "layers": {}, "pipeline": False, "double_buffer": False}
    if isinstance(fold, str) and fold in FOLD_PRESETS:
        return {"default": fold, "layers": {}, "pipeline": False, "double_buffer": False}
    if isinstance(fold, str) and fold.startswith("device:"):
        fold = {"device": fold[len("device:"):]}
    elif isinstance(fold, (str, os.PathLike)):
        try:
            text = Path(fold).read_text()
        except FileNotFoundError:
            raise InputError(f"{fold}: no such fold file (or a preset: "
                             f"{', '.join(FOLD_PRESETS)}, or device:NAME)") from None
        except OSError as e:
            raise InputError(f"{fold}: cannot read fold file ({e.strerror})") from None
        try:
            fold = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{fold}: not valid JSON at line {e.lineno} column {e.colno}: "
                             f"{e.msg}") from None
    if not isinstance(fold, dict):
        raise InputError(f"fold: expected an object, a preset ({', '.join(FOLD_PRESETS)}), "
                         f"device:NAME or a file, got {type(fold).__name__}")
    unknown = sorted(set(fold) - {"input_values_per_beat", "default", "layers", "pipeline",
                                  "double_buffer", "device", "clock_mhz"})
    if unknown:
        raise InputError(f"fold: unknown field '{unknown[0]}' (expected "
                         f"input_values_per_beat, default, layers, pipeline, double_buffer, "
                         f"device, clock_mhz)")
    for key in ("pipeline", "double_buffer"):
        if not isinstance(fold.get(key, False), bool):
            raise InputError(f"fold: '{key}' must be true or false, got {fold[key]!r}")
    default = fold.get("default", "auto")
    if default not in FOLD_PRESETS:
        raise InputError(f"fold: 'default' must be one of {', '.join(FOLD_PRESETS)}, "
                         f"got {default!r}")
    layers = fold.get("layers", {})
    if not isinstance(layers, dict):
        raise InputError("fold: 'layers' must be an object mapping layer names to folds")
    out = {"default": default, "layers": dict(layers), "pipeline": fold.get("pipeline", False),
           "double_buffer": fold.get("double_buffer", False)}
    if "input_values_per_beat" in fold:
        out["input_values_per_beat"] = fold["input_values_per_beat"]
    if fold.get("device") is not None:
        if not isinstance(fold["device"], str):
            raise InputError(f"fold: 'device' must be a device name, got {fold['device']!r}")
        out["device"] = get_device(fold["device"]).name
        if fold.get("clock_mhz") is not None:
            clock = fold["clock_mhz"]
            if isinstance(clock, bool) or not isinstance(clock, (int, float)) or not clock > 0:
                raise InputError(f"fold: 'clock_mhz' must be a positive number of MHz, got "
                                 f"{clock!r}")
            out["clock_mhz"] = float(clock)
        if model is not None:
            from .fit import fit_fold
            result = fit_fold(model, out["device"], out, mode)
            out["layers"] = {**out["layers"], **result.layers}
            out["input_values_per_beat"] = result.input_values_per_beat
            out["pipeline"] = result.pipeline
            out["fit"] = result.to_json()
    elif fold.get("clock_mhz") is not None:
        raise InputError(f"fold: 'clock_mhz' ({fold['clock_mhz']!r}) is the clock a device fit "
                         f"must meet; it needs 'device'")
    return out


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _window_row(window) -> dict:
    """The manifest's description of a sliding-window generator (conv2d and max-pool)."""
    c = window.shape[2]
    return {"storage": f"line buffer {window.line_rows} rows x {window.scan_cols} columns x "
                       f"{c} channels in memory, window {window.kernel[0]}x"
                       f"{window.kernel[1]}x{c} in registers",
            "line_rows": window.line_rows, "line_cols": window.scan_cols, "channels": c,
            "memory_depth": window.memory_depth, "memory_width": window.memory_width,
            "memory_bits": window.memory_bits, "window_bits": window.window_bits,
            "scan_cycles": window.scan_pieces}


def _largest_divisor(n: int, limit: int) -> int:
    return max(d for d in _divisors(n) if d <= max(1, limit))


def _layer_fold(layer, fold: dict, out_ch: int, taps: int, mode: str) -> tuple[int, int]:
    entry = fold["layers"].get(layer.name, fold["default"])
    if mode == "baked":
        if entry not in ("parallel", "auto") and entry != {"pe": out_ch, "simd": taps}:
            raise InputError(f"layer '{layer.name}': baked mode is fully parallel (pe = "
                             f"{out_ch}, simd = {taps}); give it the fold 'parallel' or use "
                             f"--mode runtime")
        return out_ch, taps
    if entry == "serial":
        return 1, 1
    if entry == "parallel":
        return out_ch, taps
    if entry == "auto":
        return _largest_divisor(out_ch, 4), _largest_divisor(taps, 16)
    if not isinstance(entry, dict) or set(entry) - {"pe", "simd", "rom"}:
        raise InputError(f"fold: layer '{layer.name}' must be 'serial', 'parallel', 'auto' "
                         f"or {{\"pe\": P, \"simd\": S}} (optionally \"rom\": \"block\" or "
                         f"\"logic\"), got {entry!r}")
    pe, simd = entry.get("pe", 1), entry.get("simd", 1)
    for name, v, whole, what in [("pe", pe, out_ch, "output channels"),
                                 ("simd", simd, taps, "inputs per output")]:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1 or whole % v:
            raise InputError(f"fold: layer '{layer.name}': {name} must divide its {whole} "
                             f"{what} (one of {_divisors(whole)}), got {v!r}")
    return pe, simd


def _rom_style(layer, fold: dict) -> str | None:
    entry = fold["layers"].get(layer.name)
    if not isinstance(entry, dict) or "rom" not in entry:
        return None
    if entry["rom"] not in ("block", "logic", "auto"):
        raise InputError(f"fold: layer '{layer.name}': rom must be 'block', 'logic' or "
                         f"'auto', got {entry['rom']!r}")
    return None if entry["rom"] == "auto" else entry["rom"]


def relaxed_bounds(layer, in_shape) -> tuple[int, int]:
    """Bounds holding every partial sum the engine forms (bias plus any subset of the
    products, padding included), and the final pre-activation."""
    table = product_table(layer)
    pmin = np.minimum(table.min(axis=1), 0)
    pmax = np.maximum(table.max(axis=1), 0)
    codes = layer.weights.codes.reshape(layer.weights.codes.shape[0], -1)
    bias = layer.bias.astype(np.int64)
    lo = int((bias + pmin[codes].sum(axis=1)).min())
    hi = int((bias + pmax[codes].sum(axis=1)).max())
    exact = accumulator_bounds(layer, in_shape)
    return min(lo, exact.min, 0), max(hi, exact.max, 0)


def _exp_bits(max_exp: int) -> int:
    return max(0, int(max_exp).bit_length())


def _choose_unit(layer, act_identity: bool, products: np.ndarray):
    """(kind, params, native weights per code, activation decode or None)."""
    w = layer.weights
    k, n_a = products.shape
    if w.scheme is Scheme.TABLE or (not act_identity and k * n_a <= _TABLE_LIMIT):
        return "table", {"table": products.tolist()}, list(range(k)), None
    decode = None if act_identity else [int(v) for v in layer.activation_codebook]
    values = [int(v) for v in w.codebook]
    mags = [abs(v) for v in values if v]
    # The declared scheme picks the unit; a LUT-Q codebook gets the cheapest unit its
    # values allow.
    scheme = w.scheme
    is_pot = all(m & (m - 1) == 0 for m in mags)
    is_apot = all(bin(m).count("1") <= 2 for m in mags)
    if scheme in (Scheme.POT, Scheme.BINARY, Scheme.TERNARY) or (scheme is Scheme.LUT and is_pot):
        # the codebook's own largest exponent: products and accumulators no wider
        exps = [m.bit_length() - 1 for m in mags] or [0]
        from mulfree.hw.product import PotProduct
        unit = PotProduct(max_exp=max(exps), act_bits=1)
        kind, params = "pot", {"max_exp": unit.max_exp}
    elif scheme is Scheme.APOT or (scheme is Scheme.LUT and is_apot):
        from mulfree.hw.product import ApotProduct, apot_max_exps
        hi, lo = apot_max_exps(mags)
        unit = ApotProduct(max_exp=hi, lo_max_exp=lo, act_bits=1)
        kind, params = "apot", {"max_exp": unit.max_exp, "lo_max_exp": unit.lo_max_exp}
    else:
        from mulfree.hw.product import UniformProduct, signed_width
        wb = max(signed_width(min(values)), signed_width(max(values)))
        unit = UniformProduct(weight_bits=wb, act_bits=1)
        kind, params = "uniform", {"weight_bits": wb}
    unit._MustUse__used = True
    return kind, params, [unit.encode(v) for v in values], decode


def _window(in_shape, layer: Conv2d, in_bits: int, in_beat: int):
    """The conv2d layer's sliding-window geometry (:class:`mulfree.hw.window.WindowSpec`):
    taps in (dy, dx, channel) order, output positions row-major."""
    from mulfree.hw.window import WindowSpec

    return WindowSpec(shape=tuple(int(v) for v in in_shape),
                      kernel=tuple(int(v) for v in layer.kernel),
                      stride=tuple(int(v) for v in layer.stride),
                      padding=tuple(int(v) for v in layer.padding),
                      code_bits=int(in_bits), in_beat=int(in_beat))


def _pool_streams(model: Model, index: int, fold: dict, spec) -> bool:
    """Whether max-pool layer ``index`` (``spec``: its streaming spec) streams through a
    line buffer (:class:`mulfree.hw.pool.StreamMaxPool`) rather than loading its frame
    into registers (:class:`mulfree.hw.engine.MaxPoolUnit`). ``bench/max_pool.py``
    measured both (Yosys ``synth_ice40``, 2x2 on ``N x N x 8``): streaming is smaller
    from 4x4x8 on (2-bit codes: 162 LUT4 and 225 FF against 281 and 263; 8x8x8: 122, 150
    and one EBR against 891 and 1035), the frame unit on a map of one window (2x2x8: 101
    LUT4 and 68 FF against 118 and 188).

    So it streams unless its frame is no more flip-flops than the streaming pool's own
    registers (a map of about one window), or its output goes (through flatten) to a
    dense layer without ``double_buffer``. Such a layer cannot take a frame while it
    computes; the frame pool is then its second input buffer, the stream before it keeps
    moving, and the network keeps its slowest stage's period (which the device fit
    promises). Streamed into it, the dense layer's compute waits for the whole stream:
    the example network, serial, 2871 cycles per inference against 2304. With
    ``double_buffer`` the dense layer has a second buffer of its own, of the pooled map,
    ``kh * kw`` times smaller than the frame pool's."""
    from .cost import stage_ffs

    if spec.in_count * spec.in_bits <= stage_ffs(spec):
        return False
    for layer in model.layers[index + 1:]:
        if isinstance(layer, Flatten):
            continue
        return not isinstance(layer, Dense) or bool(fold["double_buffer"])
    return True


def plan_network(model: Model, mode: str = "runtime", fold: Any = None):
    """The stage specs and the manifest (without building components)."""
    from mulfree.hw.engine import ArgMaxSpec, ComputeSpec, MaxPoolSpec

    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    fold = load_fold(fold, model, mode)
    names = {layer.name for layer in model.layers}
    for name in fold["layers"]:
        if name not in names:
            raise InputError(f"fold: no layer named '{name}' in the model (layers: "
                             f"{', '.join(layer.name for layer in model.layers)})")
    n_in = int(np.prod(model.input_shape))
    in_vpb = fold.get("input_values_per_beat")
    if in_vpb is None:
        in_vpb = _largest_divisor(n_in, max(1, 32 // model.input_bits))
    if isinstance(in_vpb, bool) or not isinstance(in_vpb, int) or in_vpb < 1 or n_in % in_vpb:
        raise InputError(f"fold: input_values_per_beat must divide the {n_in} input codes "
                         f"(one of {_divisors(n_in)}), got {in_vpb!r}")

    stages, rows = [], []
    beat = in_vpb
    for index, (layer, io) in enumerate(zip(model.layers, model.io)):
        in_count = int(np.prod(io.in_shape))
        if isinstance(layer, Flatten):
            rows.append({"index": index, "name": layer.name, "type": "flatten", "cycles": 0,
                         "note": "wiring only: the stream order is already (row, column, "
                                 "channel)"})
            continue
        if isinstance(layer, MaxPool):
            h, w, c = io.in_shape
            out_count = int(np.prod(io.out_shape))
            spec = MaxPoolSpec(in_bits=io.in_bits, in_shape=tuple(int(v) for v in io.in_shape),
                               kernel=tuple(int(v) for v in layer.kernel),
                               stride=tuple(int(v) for v in layer.stride), in_beat=beat,
                               out_beat=_largest_divisor(out_count, c))
            if not _pool_streams(model, index, fold, spec):
                spec = dataclasses.replace(spec, streaming=False,
                                           double_buffer=fold["double_buffer"])
            stages.append(spec)
            row = {"index": index, "name": layer.name, "type": "maxpool",
                   "in_beat": spec.in_beat, "out_beat": spec.out_beat, "cycles": spec.period}
            window = spec.window_spec
            if window is not None:
                row["window"] = _window_row(window)
            else:
                row["storage"] = f"frame of {spec.in_count} codes in registers"
            rows.append(row)
            beat = spec.out_beat
            continue
        table = product_table(layer)
        n_a = 2**io.in_bits
        if table.shape[1] < n_a:
            table = np.concatenate([table, np.zeros((table.shape[0], n_a - table.shape[1]),
                                                    np.int64)], axis=1)
        act_cb = layer.activation_codebook
        act_identity = act_cb is not None and act_cb.size == n_a and \
            bool(np.all(act_cb == np.arange(n_a)))
        if isinstance(layer, Dense):
            positions, taps, window = 1, layer.in_features, None
            out_ch = layer.out_features
        else:
            out_ch = layer.out_channels
            window = _window(io.in_shape, layer, io.in_bits, beat)
            positions, taps = window.positions, window.taps
        pe, simd = _layer_fold(layer, fold, out_ch, taps, mode)
        lo, hi = relaxed_bounds(layer, io.in_shape)
        kind = layer.output.kind
        thresholds = None
        if kind is OutputKind.THRESHOLDS:
            thresholds = tuple(tuple(int(v) for v in row) for row in layer.output.thresholds)
        codes = tuple(tuple(int(v) for v in row)
                      for row in layer.weights.codes.reshape(out_ch, taps))
        common = dict(in_bits=io.in_bits, in_count=in_count, in_beat=beat, out_beat=pe,
                      positions=positions, out_channels=out_ch, taps=taps, pe=pe, simd=simd,
                      codes=codes, products=tuple(tuple(int(v) for v in r) for r in table),
                      bias=tuple(int(v) for v in layer.bias), acc_bounds=(lo, hi),
                      mode=mode, window=window, thresholds=thresholds,
                      pipeline=fold["pipeline"], double_buffer=fold["double_buffer"])
        if mode == "runtime":
            ukind, params, native, decode = _choose_unit(layer, act_identity, table)
            spec = ComputeSpec(**common, unit_kind=ukind, unit_params=params,
                               native=tuple(native),
                               act_decode=None if decode is None else tuple(decode),
                               rom_style=_rom_style(layer, fold))
            unit_name = ukind
        else:
            values = None
            if act_identity and layer.weights.scheme is not Scheme.TABLE:
                values = tuple(int(v) for v in layer.weights.codebook)
            spec = ComputeSpec(**common, values=values)
            unit_name = "shift-add constants" if values is not None else "lookup constants"
        try:
            spec.check()
        except ValueError as e:
            raise InputError(f"layer '{layer.name}': {e}") from None
        stages.append(spec)
        exact = accumulator_bounds(layer, io.in_shape)
        row = {"index": index, "name": layer.name,
               "type": "dense" if isinstance(layer, Dense) else "conv2d",
               "scheme": layer.weights.scheme.value, "unit": unit_name, "pe": pe,
               "simd": simd, "positions": positions, "out_channels": out_ch, "taps": taps,
               "acc_width": spec.acc_width, "acc_bounds": [lo, hi],
               "acc_width_exact": exact.width, "output": kind.value,
               "in_beat": spec.in_beat, "out_beat": spec.out_beat,
               "cycles": spec.steps, "rom_bits": 0}
        if window is not None:
            row["window"] = _window_row(window)
        else:
            # the dense input frame: a memory (block RAM) or flip-flops (hw/engine.py)
            db = 2 if spec.double_buffer else 1
            row["input_buffer"] = (
                {"storage": "memory", "depth": spec.buffer_depth * db,
                 "width": spec.buffer_word * spec.in_bits}
                if spec.buffer_in_memory else
                {"storage": "registers", "bits": spec.in_count * spec.in_bits * db})
        if mode == "runtime":
            from mulfree.hw.engine import make_unit
            u = make_unit(spec.unit_kind, spec.unit_params, 1, False)
            u._MustUse__used = True
            row["rom_bits"] = spec.nf * spec.sf * pe * simd * u.weight_bits
            row["native_weight_bits"] = u.weight_bits
        rows.append(row)
        beat = pe
        if kind is OutputKind.ARGMAX:
            am = ArgMaxSpec(width=spec.acc_width, group=out_ch, in_beat=pe)
            stages.append(am)
            beat = 1
    if not stages:
        raise ModelError("the model has no layer that needs hardware (only flatten)")

    manifest = _manifest(model, mode, stages, rows, in_vpb)
    if "fit" in fold:
        manifest["device_fit"] = fold["fit"]
    return stages, manifest


def _timing(stages) -> tuple[int, int]:
    """(latency, initiation interval) with no stalls; see docs/hardware.md.

    A conv2d stage takes its input as fast as its line buffer and compute allow, so no
    per-stage formula chains exactly: :func:`mulfree.hw.timing.network_timing` runs the
    stages' handshake models together, cycle by cycle."""
    from mulfree.hw.timing import network_timing

    return network_timing(stages)


def _manifest(model, mode, stages, rows, in_vpb) -> dict:
    from mulfree.hw.engine import ArgMaxSpec, ComputeSpec, MaxPoolSpec

    n_in = int(np.prod(model.input_shape))
    last = stages[-1]
    out_kind = model.output_kind
    if isinstance(last, ArgMaxSpec):
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
    return {
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


def _count_out(model: Model) -> int:
    return int(np.prod(model.output_shape))


def _estimate(stages, rows) -> dict:
    """The plan's resource estimate (not synthesis): product units, ROM bits, the frame
    buffers' and accumulators' flip-flops, and, for runtime weights, the resource model's
    LUT, flip-flop, block RAM and logic-cell estimates per target family and per stage
    (:mod:`mulfree.gen.plan.cost`; the network alone, without a board harness)."""
    from mulfree.hw.engine import ArgMaxSpec, ComputeSpec, MaxPoolSpec

    from .cost import network_cost, total

    units = rom = ffs = 0
    for s in stages:
        if isinstance(s, ComputeSpec):
            units += s.pe * s.simd if s.mode == "runtime" else 0
            frame = 0 if s.buffer_in_memory else s.in_count * s.in_bits
            ffs += frame + s.out_count * s.out_bits + s.pe * s.acc_width
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
            names.append(f"{names[-1]}.argmax" if isinstance(s, ArgMaxSpec) else next(it))
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


def build_network(model: Model, mode: str = "runtime", fold: Any = None):
    """``(Network, manifest)`` for ``model``.

    Parameters
    ----------
    model : Model
    mode : "runtime" | "baked"
        Runtime: weight codes in ROM, folded by (PE, SIMD). Baked: weights as constants
        in the logic, fully parallel per output position.
    fold : None, preset name, dict or path
        See the module docstring.
    """
    from mulfree.hw.network import Network

    stages, manifest = plan_network(model, mode, fold)
    try:
        net = Network(stages=stages)
    except (ValueError, TypeError) as e:
        raise MulfreeError(f"cannot build the network: {e}") from None
    return net, manifest
