"""The stage plan: a model's layers as the hardware stages that compute them.

This is where the model's numbers become hardware parameters: product units and their
native weight encodings, exact accumulator widths, each layer's folding (PE, SIMD), the
stream widths between layers, and the manifest's row for every layer.
"""

from __future__ import annotations

import dataclasses
import functools
import logging

import numpy as np

from mulfree.hw.argmax import ArgMaxSpec
from mulfree.hw.cmvm import solve
from mulfree.hw.compute import ComputeSpec, make_unit
from mulfree.hw.pool import MaxPoolSpec
from mulfree.hw.product import ApotProduct, PotProduct, UniformProduct, apot_max_exps, signed_width
from mulfree.hw.spram import spram_tiles
from mulfree.hw.window import WindowSpec

from ..errors import InputError, ModelError
from ..model.format import Conv2d, Dense, Flatten, MaxPool, Model, OutputKind, Scheme
from ..model.golden import accumulator_bounds, product_table
from .cost import lane_luts, stage_ffs
from .folds import (divisors, largest_divisor, layer_fold, rom_style, threshold_logic_levels,
                    threshold_memory, threshold_unit)

__all__ = ["MODES", "plan_stages", "relaxed_bounds"]

log = logging.getLogger(__name__)

MODES = ("runtime", "baked", "tables")


# Table products up to this many entries replace a decode + product unit when the
# activation codebook is not the identity.
_TABLE_LIMIT = 256


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


@functools.lru_cache(maxsize=16)
def _solve(w_bytes: bytes, shape: tuple, amax: int, family: str):
    """:func:`mulfree.hw.cmvm.solve` for unsigned codes up to ``amax``, remembered: planning
    and building the same network solve each layer once."""
    w = np.frombuffer(w_bytes, dtype=np.int64).reshape(shape)
    return solve(w, [(0, amax)] * shape[1], family)


def _solver_row(solution, spec) -> dict:
    """The manifest's record of a baked layer's adder graph (:mod:`mulfree.hw.cmvm`)."""
    g = solution.graph
    return {"method": solution.method, "restart": solution.seed,
            "family": solution.family.value,
            "adders": len(g.adders),
            "subtractions": sum(1 for a in g.adders if a.a.neg or a.b.neg),
            "depth": g.max_depth, "latency_cutoff": spec.latency_cutoff,
            "latency": spec.graph_latency,
            "lut_estimate": {"ice40": g.cost("ice40"), "ecp5": g.cost("ecp5")},
            "candidates": dict(solution.costs), "skipped": dict(solution.skipped)}


def relaxed_bounds(layer, in_shape, bias: bool = True) -> tuple[int, int]:
    """Bounds holding every partial sum the engine forms (bias plus any subset of the
    products, padding included), and the final pre-activation. ``bias=False``: the same
    without the bias (a memory threshold unit folds it into the thresholds)."""
    table = product_table(layer)
    pmin = np.minimum(table.min(axis=1), 0)
    pmax = np.maximum(table.max(axis=1), 0)
    codes = layer.weights.codes.reshape(layer.weights.codes.shape[0], -1)
    b = layer.bias.astype(np.int64) if bias else np.zeros(codes.shape[0], np.int64)
    lo = int((b + pmin[codes].sum(axis=1)).min())
    hi = int((b + pmax[codes].sum(axis=1)).max())
    if not bias:
        return min(lo, 0), max(hi, 0)
    exact = accumulator_bounds(layer, in_shape)
    return min(lo, exact.min, 0), max(hi, exact.max, 0)



def _weights_row(spec) -> dict:
    """Where the layer's weights are (the manifest): constants in the logic (one ROM
    word), a ROM (``rom_style``: the tool decides, block RAM, logic) or SPRAM (loaded
    after reset)."""
    depth, width = spec.nf * spec.sf, spec.pe * spec.simd * spec.weight_bits
    if depth == 1:
        return {"storage": "constants"}
    if spec.rom_style == "spram":
        return {"storage": "spram", "depth": depth, "width": width,
                "blocks": sum(r * c for r, c in [spram_tiles(depth, width)]),
                "load_words": spram_tiles(depth, width)[1] * depth}
    return {"storage": {None: "rom (the tool decides)", "block": "block ram",
                        "logic": "logic"}[spec.rom_style], "depth": depth, "width": width}


def _threshold_row(spec) -> dict:
    """The manifest's description of a layer's threshold unit."""
    if spec.threshold_unit == "parallel":
        n = len(spec.thresholds[0])
        return {"kind": "parallel", "comparators_per_pe": n,
                "storage": "constants" + (" selected by the channel group" if spec.nf > 1
                                          else "")}
    lo, hi = spec.acc_bounds
    tw = max(spec.acc_width, signed_width(lo), signed_width(hi + 1))
    bits = spec.out_bits
    if spec.threshold_unit == "search":
        memories = [{"depth": spec.nf << level, "width": tw} for level in range(bits)]
    else:
        memories = [{"depth": spec.nf << bits, "width": tw}]
    row = {"kind": spec.threshold_unit, "latency": spec.threshold_latency,
           "comparators_per_pe": bits if spec.threshold_unit == "search" else 1,
           "memories_per_pe": memories, "storage": spec.threshold_style or "tool decides",
           "bias": "folded into the thresholds"}
    if spec.threshold_logic_levels:
        row["logic_levels"] = spec.threshold_logic_levels
    return row


def _choose_unit(layer, act_identity: bool, products: np.ndarray, in_bits: int):
    """(kind, params, native weights per code, activation decode or None).

    A table layer gets a product table. Otherwise the scheme's unit (the cheapest a LUT-Q
    codebook's values allow), with an activation decode in front when the activation
    codebook is not the identity; such a layer gets a product table instead when that
    has at most ``_TABLE_LIMIT`` entries and the resource model prices it lower than the
    unit and its decode (a signed or shifted codebook decodes by wiring, so signed 4-bit
    activations keep a PoT shifter rather than a 256-entry table per lane)."""
    w = layer.weights
    k, n_a = products.shape
    table = ("table", {"table": products.tolist()}, list(range(k)), None)
    if w.scheme is Scheme.TABLE:
        return table
    unit = _scheme_unit(layer, act_identity)
    if not act_identity and k * n_a <= _TABLE_LIMIT:
        kind, params, _, decode = unit
        if lane_luts("table", table[1], in_bits, None) <= \
                lane_luts(kind, params, in_bits, decode):
            return table
    return unit


def _scheme_unit(layer, act_identity: bool):
    """The scheme's product unit (:func:`_choose_unit`)."""
    w = layer.weights
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
        unit = PotProduct(max_exp=max(exps), act_bits=1)
        kind, params = "pot", {"max_exp": unit.max_exp}
    elif scheme is Scheme.APOT or (scheme is Scheme.LUT and is_apot):
        hi, lo = apot_max_exps(mags)
        unit = ApotProduct(max_exp=hi, lo_max_exp=lo, act_bits=1)
        kind, params = "apot", {"max_exp": unit.max_exp, "lo_max_exp": unit.lo_max_exp}
    else:
        wb = max(signed_width(min(values)), signed_width(max(values)))
        unit = UniformProduct(weight_bits=wb, act_bits=1)
        kind, params = "uniform", {"weight_bits": wb}
    unit._MustUse__used = True
    return kind, params, [unit.encode(v) for v in values], decode


def _window(in_shape, layer: Conv2d, in_bits: int, in_beat: int):
    """The conv2d layer's sliding-window geometry (:class:`mulfree.hw.window.WindowSpec`):
    taps in (dy, dx, channel) order, output positions row-major."""
    return WindowSpec(shape=tuple(int(v) for v in in_shape),
                      kernel=tuple(int(v) for v in layer.kernel),
                      stride=tuple(int(v) for v in layer.stride),
                      padding=tuple(int(v) for v in layer.padding),
                      code_bits=int(in_bits), in_beat=int(in_beat))


def _pool_streams(model: Model, index: int, fold: dict, spec) -> bool:
    """Whether max-pool layer ``index`` (``spec``: its streaming spec) streams through a
    line buffer (:class:`mulfree.hw.pool.StreamMaxPool`) rather than loading its frame
    into registers (:class:`mulfree.hw.pool.MaxPoolUnit`). ``bench/max_pool.py``
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
    if spec.in_count * spec.in_bits <= stage_ffs(spec):
        return False
    for layer in model.layers[index + 1:]:
        if isinstance(layer, Flatten):
            continue
        return not isinstance(layer, Dense) or bool(fold["double_buffer"])
    return True


def plan_stages(model: Model, mode: str, fold: dict) -> tuple[list, list[dict], int]:
    """``(stage specs, the manifest's layer rows, input codes per beat)`` of ``model``
    under a normalized ``fold`` (:func:`~.folds.load_fold`; a device fit already applied,
    its ``device`` is not read here)."""
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "tables":
        from .tables import plan_tables
        return plan_tables(model, fold)
    names = {layer.name for layer in model.layers}
    for name in fold["layers"]:
        if name not in names:
            raise InputError(f"fold: no layer named '{name}' in the model (layers: "
                             f"{', '.join(layer.name for layer in model.layers)})")
    n_in = int(np.prod(model.input_shape))
    in_vpb = fold.get("input_values_per_beat")
    if in_vpb is None:
        in_vpb = largest_divisor(n_in, max(1, 32 // model.input_bits))
    if isinstance(in_vpb, bool) or not isinstance(in_vpb, int) or in_vpb < 1 or n_in % in_vpb:
        raise InputError(f"fold: input_values_per_beat must divide the {n_in} input codes "
                         f"(one of {divisors(n_in)}), got {in_vpb!r}")

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
                               out_beat=largest_divisor(out_count, c))
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
        pe, simd = layer_fold(layer, fold, out_ch, taps, mode)
        kind = layer.output.kind
        thresholds = None
        thr_unit, thr_style, thr_logic = "parallel", None, 0
        if kind is OutputKind.THRESHOLDS:
            thresholds = tuple(tuple(int(v) for v in row) for row in layer.output.thresholds)
            thr_unit = threshold_unit(layer, fold) if mode == "runtime" else "parallel"
            if thr_unit != "parallel":
                thr_style = threshold_memory(layer, fold)
            if thr_unit == "search":
                thr_logic = threshold_logic_levels(layer, fold)
        # a memory threshold unit folds the bias into its thresholds
        lo, hi = relaxed_bounds(layer, io.in_shape, bias=thr_unit == "parallel")
        codes = tuple(tuple(int(v) for v in row)
                      for row in layer.weights.codes.reshape(out_ch, taps))
        common = dict(in_bits=io.in_bits, in_count=in_count, in_beat=beat, out_beat=pe,
                      positions=positions, out_channels=out_ch, taps=taps, pe=pe, simd=simd,
                      codes=codes, products=tuple(tuple(int(v) for v in r) for r in table),
                      bias=tuple(int(v) for v in layer.bias), acc_bounds=(lo, hi),
                      mode=mode, window=window, thresholds=thresholds,
                      threshold_unit=thr_unit, threshold_style=thr_style,
                      threshold_logic_levels=thr_logic,
                      pipeline=fold["pipeline"], double_buffer=fold["double_buffer"])
        if mode == "runtime":
            ukind, params, native, decode = _choose_unit(layer, act_identity, table, io.in_bits)
            spec = ComputeSpec(**common, unit_kind=ukind, unit_params=params,
                               native=tuple(native),
                               act_decode=None if decode is None else tuple(decode),
                               rom_style=rom_style(layer, fold),
                               latency_cutoff=fold.get("latency_cutoff", 0))
            unit_name = ukind
        else:
            values, solution = None, None
            if act_identity and layer.weights.scheme is not Scheme.TABLE:
                values = tuple(int(v) for v in layer.weights.codebook)
                w = np.asarray(values, dtype=np.int64)[np.asarray(codes)]
                family = fold.get("family", "ice40")
                log.info("layer %s: solving its %d x %d constant matrix for %s",
                         layer.name, out_ch, taps, family)
                solution = _solve(w.tobytes(), w.shape, n_a - 1, family)
                log.info("layer %s: %s, %d adders, estimated %d LUT", layer.name,
                         solution.method, len(solution.graph.adders), solution.cost)
            spec = ComputeSpec(**common, values=values,
                               adder_graph=None if solution is None else solution.graph,
                               latency_cutoff=0 if solution is None else
                               fold.get("latency_cutoff", 0))
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
        if thresholds is not None:
            row["threshold_unit"] = _threshold_row(spec)
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
            row["output_buffer"] = (
                {"storage": "memory", "depth": spec.nf * db, "width": spec.pe * spec.out_bits}
                if spec.out_in_memory else
                {"storage": "registers", "bits": spec.out_count * spec.out_bits * db})
        if mode == "baked" and solution is not None:
            row["solver"] = _solver_row(solution, spec)
        if mode == "runtime":
            u = make_unit(spec.unit_kind, spec.unit_params, 1, False)
            u._MustUse__used = True
            row["rom_bits"] = spec.nf * spec.sf * pe * simd * u.weight_bits
            row["native_weight_bits"] = u.weight_bits
            row["weights"] = _weights_row(spec)
            # registers inside the adder trees (the fold's latency_cutoff)
            row["adder_tree"] = {"levels": spec.tree_levels,
                                 "latency_cutoff": spec.latency_cutoff,
                                 "latency": spec.tree_latency}
        rows.append(row)
        beat = pe
        if kind is OutputKind.ARGMAX:
            am = ArgMaxSpec(width=spec.acc_width, group=out_ch, in_beat=pe)
            stages.append(am)
            beat = 1
    if not stages:
        raise ModelError("the model has no layer that needs hardware (only flatten)")
    return stages, rows, in_vpb
