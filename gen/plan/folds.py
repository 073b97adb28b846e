"""Folds: how far each layer is folded between fully serial and fully parallel.

Fold file (JSON)::

    {
      "input_values_per_beat": 8,          # optional: input codes per input beat
      "pipeline": false,                   # optional: register the adder trees' outputs
      "double_buffer": false,              # optional: overlap load, compute and send
      "link_fifos": true,                  # optional: FIFOs between stages where they
                                           #   speed the chain up (gen/plan/links.py)
      "family": "ice40" | "ecp5",          # optional: the FPGA family baked adders are
                                           #   priced for (default ice40)
      "latency_cutoff": 0,                 # optional: register the adder trees (runtime)
                                           #   or graph (baked) every this many adder
                                           #   levels (0: never)
      "default": "serial" | "parallel" | "auto",   # optional, for layers not listed
      "device": "ice40up5k",               # optional: fit the layers not listed to it
      "clock_mhz": 12,                     # optional, with device: the clock the fit must meet
      "layers": {                          # optional, by layer name
        "fc1": {"pe": 4, "simd": 16, "rom": "block", "thresholds": "search"},
        "conv1": "parallel"
      },
      "tables": {"limit": 7}              # optional, tables mode (gen/plan/tables.py)
    }

``pe`` must divide the layer's output channels and ``simd`` its inputs per output
(``in_features`` for dense, ``kh * kw * in_channels`` for conv2d); a layer given as
``"serial"`` is ``pe = simd = 1``, ``"parallel"`` is all of them at once. ``rom`` asks
synthesis to put the weight ROM in block RAM (``"block"``) or logic (``"logic"``); by
default the tool decides (Yosys maps shallow ROMs to logic). ``thresholds`` picks the
threshold unit (:data:`mulfree.hw.compute.THRESHOLD_UNITS`): ``"parallel"`` (the default:
a comparator per threshold, the thresholds constants), ``"search"`` (a pipelined binary
search over thresholds in memories) or ``"sequential"`` (one memory, one comparison per
cycle; needs ``taps / simd >= out_bits``); ``threshold_memory`` says where a memory unit's
thresholds go (``"block"``, ``"logic"``, ``"spram"`` for the sequential unit; by default
the tool decides; ``threshold_logic_levels``: the search unit's first levels in logic).
``"spram"`` (the iCE40 UltraPlus's SPRAM) needs a load image after
reset: the network then has a ``load`` port (docs/hardware.md). ``fold`` may
also be one of those strings for every layer, a dict of that form, or a path to the file.
Baked mode is fully parallel per output position and accepts only ``"parallel"`` folds;
its sums are one shared adder graph per layer (:mod:`mulfree.hw.cmvm`), solved for
``family`` (the device's family when the fold names a device) and registered every
``latency_cutoff`` adder levels. In runtime mode ``latency_cutoff`` registers every
layer's adder trees after every that many of their ``ceil(log2(simd))`` levels (a layer
with fewer levels gets none), to shorten the path from the weight ROM through a wide tree.

A fold that names a device is fitted to it by :func:`mulfree.gen.plan.fit.fit_fold`
(through :func:`mulfree.gen.plan.network.fitted_fold`); this module only reads and checks
folds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from .devices import get_device

__all__ = ["FOLD_PRESETS", "FAMILIES", "LAYER_KEYS", "load_fold", "layer_fold", "rom_style",
           "threshold_unit", "threshold_memory", "threshold_logic_levels", "divisors",
           "largest_divisor"]

# The keys of a layer's entry in a fold file.
LAYER_KEYS = ("pe", "simd", "rom", "thresholds", "threshold_memory",
              "threshold_logic_levels")
_THRESHOLD_UNITS = ("parallel", "search", "sequential")

FOLD_PRESETS = ("auto", "serial", "parallel")
FAMILIES = ("ice40", "ecp5")


def load_fold(fold: Any) -> dict:
    """Normalize a fold (``None``, a preset name, ``"device:NAME"``, a dict, or a JSON
    file path) and check it; a device it names is checked, not fitted (see
    :func:`mulfree.gen.plan.network.fitted_fold`)."""
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
                                  "double_buffer", "link_fifos", "device", "clock_mhz",
                                  "family", "latency_cutoff", "tables"})
    if unknown:
        raise InputError(f"fold: unknown field '{unknown[0]}' (expected "
                         f"input_values_per_beat, default, layers, pipeline, double_buffer, "
                         f"link_fifos, device, clock_mhz, family, latency_cutoff, tables)")
    cutoff = fold.get("latency_cutoff", 0)
    if isinstance(cutoff, bool) or not isinstance(cutoff, int) or cutoff < 0:
        raise InputError(f"fold: 'latency_cutoff' must be an integer >= 0 (adder levels per "
                         f"register stage; 0: none), got {cutoff!r}")
    if fold.get("family") is not None and fold["family"] not in FAMILIES:
        raise InputError(f"fold: 'family' must be one of {', '.join(FAMILIES)}, got "
                         f"{fold['family']!r}")
    for key in ("pipeline", "double_buffer", "link_fifos"):
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
    if cutoff:
        out["latency_cutoff"] = cutoff
    if fold.get("link_fifos") is False:
        out["link_fifos"] = False
    if fold.get("family") is not None:
        out["family"] = fold["family"]
    if "input_values_per_beat" in fold:
        out["input_values_per_beat"] = fold["input_values_per_beat"]
    if "tables" in fold:
        out["tables"] = fold["tables"]
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
    elif fold.get("clock_mhz") is not None:
        raise InputError(f"fold: 'clock_mhz' ({fold['clock_mhz']!r}) is the clock a device fit "
                         f"must meet; it needs 'device'")
    return out


def divisors(n: int) -> list[int]:
    """The positive divisors of ``n``, ascending."""
    return [d for d in range(1, n + 1) if n % d == 0]


def largest_divisor(n: int, limit: int) -> int:
    """The largest divisor of ``n`` that is at most ``limit`` (at least 1)."""
    return max(d for d in divisors(n) if d <= max(1, limit))


def layer_fold(layer, fold: dict, out_ch: int, taps: int, mode: str) -> tuple[int, int]:
    """``(pe, simd)`` of ``layer`` under the normalized ``fold``."""
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
        return largest_divisor(out_ch, 4), largest_divisor(taps, 16)
    if not isinstance(entry, dict) or set(entry) - set(LAYER_KEYS):
        raise InputError(f"fold: layer '{layer.name}' must be 'serial', 'parallel', 'auto' "
                         f"or {{\"pe\": P, \"simd\": S}} (optionally \"rom\": \"block\" or "
                         f"\"logic\", \"thresholds\": {' or '.join(_THRESHOLD_UNITS)}), got "
                         f"{entry!r}")
    pe, simd = entry.get("pe", 1), entry.get("simd", 1)
    for name, v, whole, what in [("pe", pe, out_ch, "output channels"),
                                 ("simd", simd, taps, "inputs per output")]:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1 or whole % v:
            raise InputError(f"fold: layer '{layer.name}': {name} must divide its {whole} "
                             f"{what} (one of {divisors(whole)}), got {v!r}")
    return pe, simd


def rom_style(layer, fold: dict) -> str | None:
    """The fold's weight ROM placement for ``layer``: None (the tool decides), "block",
    "logic" or "spram" (iCE40 UltraPlus SPRAM, loaded after reset)."""
    entry = fold["layers"].get(layer.name)
    if not isinstance(entry, dict) or "rom" not in entry:
        return None
    if entry["rom"] not in ("block", "logic", "spram", "auto"):
        raise InputError(f"fold: layer '{layer.name}': rom must be 'block', 'logic', 'spram' "
                         f"or 'auto', got {entry['rom']!r}")
    return None if entry["rom"] == "auto" else entry["rom"]


def threshold_unit(layer, fold: dict) -> str:
    """The fold's threshold unit for ``layer`` (``"parallel"`` unless its entry says)."""
    entry = fold["layers"].get(layer.name)
    if not isinstance(entry, dict) or "thresholds" not in entry:
        return "parallel"
    if entry["thresholds"] not in _THRESHOLD_UNITS:
        raise InputError(f"fold: layer '{layer.name}': thresholds must be one of "
                         f"{', '.join(_THRESHOLD_UNITS)}, got {entry['thresholds']!r}")
    return entry["thresholds"]


def threshold_memory(layer, fold: dict) -> str | None:
    """Where the fold puts ``layer``'s memory threshold unit's memories: None (the tool
    decides), "block", "logic" or "spram" (the sequential unit only)."""
    entry = fold["layers"].get(layer.name)
    if not isinstance(entry, dict) or entry.get("threshold_memory", "auto") == "auto":
        return None
    if entry["threshold_memory"] not in ("block", "logic", "spram"):
        raise InputError(f"fold: layer '{layer.name}': threshold_memory must be 'block', "
                         f"'logic', 'spram' or 'auto', got {entry['threshold_memory']!r}")
    return entry["threshold_memory"]


def threshold_logic_levels(layer, fold: dict) -> int:
    """How many of a search threshold unit's first levels the fold puts in logic (0)."""
    entry = fold["layers"].get(layer.name)
    if not isinstance(entry, dict):
        return 0
    n = entry.get("threshold_logic_levels", 0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InputError(f"fold: layer '{layer.name}': threshold_logic_levels must be a "
                         f"non-negative integer, got {n!r}")
    return n
