"""What a dense or conv2d layer engine computes, without any model knowledge.

:class:`ComputeSpec` is one layer as :class:`~.engine.LayerEngine` needs it (codes,
products, bias, bounds, thresholds, folding, the conv2d window), with its derived timing
and buffer layout; :func:`make_unit` builds a product unit by kind; :func:`csd_digits`
writes a constant weight as canonical signed digits for the baked mode.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .adder_graph import AdderGraph, GraphError
from .adder_graph_unit import stages as graph_stages
from .product import ApotProduct, PotProduct, TableProduct, UniformProduct, signed_width
from .spram import SpramMemory, spram_tiles
from .threshold import sequential_words
from .timing import ConvModel, FrameModel, conv_period, stage_timing
from .window import WindowSpec

__all__ = ["ComputeSpec", "make_unit", "csd_digits", "decode_wiring", "FRAME_MEMORY_MIN_BITS",
           "FRAME_MEMORY_MIN_FILL", "THRESHOLD_UNITS"]

# How a layer turns accumulators into codes (hw/threshold.py): "parallel" compares with
# every threshold at once (constants selected by the channel group); "search" is a
# pipelined binary search over thresholds in memories (one per output bit); "sequential"
# searches one memory, one comparison per cycle (needs ``taps / simd >= out_bits``).
THRESHOLD_UNITS = ("parallel", "search", "sequential")


# A dense engine keeps its input frame in a memory (block RAM) when the frame is at
# least this many bits, more than one word of ``lcm(in_beat, simd)`` codes, and fills
# its iCE40 blocks to at least FRAME_MEMORY_MIN_FILL bits each (else in flip-flops:
# :attr:`ComputeSpec.buffer_in_memory`). Measured with synth_ice40 on one dense stage,
# registers against memory: a RAM of up to 64 bits per block is mapped to logic by Yosys
# (its memory_libmap prices a RAM bit in logic at 1, an iCE40 block at 64: a 4 x 64-bit
# frame stayed in logic) and was 2 to 10 LUT4 worse than registers (up to 51 with
# double_buffer); 128 bits took an EBR and saved 104 LUT4 and 97 FF, about what one of
# the UP5K's 30 EBRs is worth in cells (5280 / 30); 256 bits saved 196 LUT4 and 207 FF.
# Smaller frames stay in registers, which leaves the blocks to weight ROMs.
FRAME_MEMORY_MIN_BITS = 256

FRAME_MEMORY_MIN_FILL = 128


# iCE40 RAM4K read shapes (depth, width), the smallest block mulfree targets
_ICE40_RAM_SHAPES = ((256, 16), (512, 8), (1024, 4), (2048, 2))


def _ice40_blocks(depth: int, width: int) -> int:
    return min(-(-width // w) * -(-depth // d) for d, w in _ICE40_RAM_SHAPES)


@lru_cache(maxsize=256)
def _weight_bits(kind: str, params: str) -> int:
    unit = make_unit(kind, json.loads(params), 1, False)
    unit._MustUse__used = True
    return unit.weight_bits


def make_unit(kind: str, params: dict, act_bits: int, act_signed: bool):
    """A product unit from its kind (``uniform``, ``pot``, ``apot``, ``table``)."""
    if kind == "uniform":
        return UniformProduct(weight_bits=params["weight_bits"], act_bits=act_bits,
                              act_signed=act_signed)
    if kind == "pot":
        return PotProduct(max_exp=params["max_exp"], act_bits=act_bits, act_signed=act_signed)
    if kind == "apot":
        return ApotProduct(max_exp=params["max_exp"], lo_max_exp=params["lo_max_exp"],
                           act_bits=act_bits, act_signed=act_signed)
    if kind == "table":
        return TableProduct(table=params["table"])
    raise ValueError(f"Product unit kind must be uniform, pot, apot or table, not {kind!r}")


def decode_wiring(decode, in_bits: int) -> tuple[str, int] | None:
    """How an activation decode (``decode[c]``: the level of code ``c``) is wiring, or
    None when it is a lookup: ``("unsigned", k)`` for ``c << k``, ``("signed", k)`` for
    the code read as two's complement, shifted by ``k``, ``("offset", k)`` for ``(c -
    2**(in_bits - 1)) << k`` (the most significant bit inverted, then read as two's
    complement). Signed activations, in either order, need no table."""
    if decode is None:
        return None
    n = 1 << in_bits
    if len(decode) != n:
        return None
    half = n >> 1
    forms = {"unsigned": list(range(n)),
             "signed": [c - n if c >= half else c for c in range(n)],
             "offset": [c - half for c in range(n)]}
    for name, base in forms.items():
        if in_bits == 1 and name != "unsigned":
            continue                    # a 1-bit signed code is {0, -1}: leave it a table
        for k in range(0, 16):
            if list(decode) == [v << k for v in base]:
                return name, k
    return None


def csd_digits(value: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``value``: ``[(sign, shift)]`` with ``sum sign << shift
    == value`` and no two adjacent non-zero digits (fewest adders for a constant)."""
    digits, shift, v = [], 0, int(value)
    while v:
        if v & 1:
            d = 2 - (v & 3)          # +1 if v = 1 mod 4, -1 if v = 3 mod 4
            digits.append((d, shift))
            v -= d
        v >>= 1
        shift += 1
    return digits


@dataclass(frozen=True)
class ComputeSpec:
    """One dense or conv2d layer, as the engine needs it (no model knowledge).

    A dense layer is a conv2d with one position whose window is the whole input.
    """

    in_bits: int                    # input code width
    in_count: int                   # codes in one input frame
    in_beat: int                    # codes per input beat
    out_beat: int                   # values per output beat
    positions: int                  # output positions P (1 for dense)
    out_channels: int               # OC
    taps: int                       # inputs per output channel
    pe: int
    simd: int
    codes: tuple                    # weight codes [OC][taps]
    products: tuple                 # P[k][c], [K][2**in_bits]
    bias: tuple                     # [OC]
    acc_bounds: tuple               # (lo, hi): every partial sum fits
    mode: str = "runtime"           # "runtime" | "baked"
    window: WindowSpec | None = None  # conv2d: the window geometry; None: dense
    thresholds: tuple | None = None  # [OC][n]; None: output the accumulators
    # runtime product unit: kind, parameters, native weight per code [K], activation
    # decode [2**in_bits] (None: the unit takes the code itself)
    unit_kind: str = "uniform"
    unit_params: dict = field(default_factory=dict)
    native: tuple = ()
    act_decode: tuple | None = None
    # baked: W[k] when the product is W[k] * c (identity activations), else None
    values: tuple | None = None
    # where the weight ROM goes: None (the tool decides), "block" or "logic" (synthesis
    # hints), "spram" (iCE40 UltraPlus SPRAM, loaded after reset: hw/spram.py)
    rom_style: str | None = None
    # the threshold unit (THRESHOLD_UNITS) and where a memory unit's thresholds go: None
    # (the tool decides per memory), "block" or "logic" (hw/threshold.py), or "spram"
    # (a sequential unit only: each PE's memory in SPRAM, loaded after reset)
    threshold_unit: str = "parallel"
    threshold_style: str | None = None
    # the search unit: its first levels (the smallest memories) in logic
    threshold_logic_levels: int = 0
    # a register stage between the adder trees and the accumulators (higher Fmax)
    pipeline: bool = False
    # copy the input frame and the results into second buffers: load, compute and send
    # overlap
    double_buffer: bool = False
    # baked shift-add constants: the adder graph of the layer's sums (``[OC][taps]`` from
    # :func:`mulfree.hw.cmvm.solve`; None: per-channel pairwise trees) and the adder levels
    # per register stage in it (0: combinational); in runtime mode the cutoff registers
    # the adder trees likewise
    adder_graph: AdderGraph | None = None
    latency_cutoff: int = 0

    @property
    def graph_latency(self) -> int:
        """Register stages inside the adder graph (0 without one)."""
        if self.adder_graph is None:
            return 0
        return graph_stages(self.adder_graph, self.latency_cutoff)[1]

    @property
    def tree_levels(self) -> int:
        """Adder levels of each of the engine's adder trees: ``ceil(log2(simd))``."""
        return (self.simd - 1).bit_length()

    @property
    def tree_latency(self) -> int:
        """Register stages inside a runtime layer's adder trees: one after every
        ``latency_cutoff`` of its :attr:`tree_levels` (0 without a cutoff)."""
        if self.mode != "runtime" or not self.latency_cutoff:
            return 0
        return self.tree_levels // self.latency_cutoff

    @property
    def nf(self) -> int:
        return self.out_channels // self.pe

    @property
    def sf(self) -> int:
        return self.taps // self.simd

    @property
    def steps(self) -> int:
        return self.positions * self.nf * self.sf

    @property
    def threshold_latency(self) -> int:
        """Cycles a memory threshold unit adds between a group's accumulators and its
        codes (``out_bits``; 0 for the parallel unit and for accumulator outputs)."""
        if self.thresholds is None or self.threshold_unit == "parallel":
            return 0
        return self.out_bits

    @property
    def fold_bias(self) -> bool:
        """Whether the bias is folded into the thresholds (a memory threshold unit: the
        accumulators start from 0 and the memories hold ``T - bias``), so that no
        per-channel bias constant is selected in logic. ``acc_bounds`` must then hold
        the partial sums without the bias."""
        return self.threshold_latency > 0

    @property
    def lag(self) -> int:
        """Cycles from a group's last step issued to its results written (stage B, the
        accumulator, stage C, ``pipeline``, the adder graph's or trees' register stages
        and the threshold unit)."""
        return 2 + int(self.pipeline) + self.graph_latency + self.tree_latency + \
            self.threshold_latency

    @property
    def fifo_depth(self) -> int:
        """Conv2d: result beats the engine's output FIFO holds; enough for one output
        channel group per cycle with the output always ready (a group's credit comes
        back ``lag + 2`` cycles after its last step); at least 2 (a one-entry
        ``SyncFIFO`` has zero-width pointers)."""
        return max(2, -(-(self.lag + 2) // self.sf))

    @property
    def delay(self) -> int:
        """Dense: cycles from the last input beat taken to the first output beat valid.
        Conv2d: cycles from the last input beat taken to the last output beat sent, the
        stage alone with its input always offered and its output always ready (from
        :func:`mulfree.hw.timing.stage_timing`)."""
        if self.window is not None:
            return stage_timing(self)[0]
        return self.steps + self.lag + 2 + int(self.double_buffer)

    @property
    def period(self) -> int:
        """Cycles between inference starts when this layer is the slowest stage (conv2d:
        the stage alone: :func:`mulfree.hw.timing.conv_period`, equal to
        :func:`mulfree.hw.timing.stage_timing`'s period without running the cycles)."""
        if self.window is not None:
            return conv_period(self.window, self.sf * self.nf)
        if self.double_buffer:
            return max(self.steps + self.lag + 2, self.in_beats + 1, self.out_beats + 1)
        return self.steps + self.lag + 1 + max(self.in_beats, self.out_beats)

    @property
    def buffer_word(self) -> int:
        """Dense: codes per word of the input frame memory, ``lcm(in_beat, simd)``: whole
        beats are assembled into a word and a step's ``simd`` codes are one slice of a
        word (see :attr:`buffer_in_memory`)."""
        return math.lcm(self.in_beat, self.simd)

    @property
    def buffer_depth(self) -> int:
        """Dense: words of one input frame in the frame memory."""
        return self.in_count // self.buffer_word

    @property
    def buffer_in_memory(self) -> bool:
        """Dense: whether the input frame lives in a memory with a synchronous read port
        (block RAM when Yosys finds it deep enough) rather than in flip-flops read through
        a ``taps / simd`` way multiplexer: a frame of more than one word, at least
        ``FRAME_MEMORY_MIN_BITS`` bits, ``FRAME_MEMORY_MIN_FILL`` bits per iCE40 block."""
        if self.window is not None or self.buffer_depth < 2:
            return False
        depth = self.buffer_depth * (2 if self.double_buffer else 1)
        width = self.buffer_word * self.in_bits
        return (self.in_count * self.in_bits >= FRAME_MEMORY_MIN_BITS and
                depth * width >= FRAME_MEMORY_MIN_FILL * _ice40_blocks(depth, width))

    @property
    def weight_bits(self) -> int:
        """Bits of one native weight in the ROM word (runtime mode)."""
        return _weight_bits(self.unit_kind, json.dumps(self.unit_params, sort_keys=True))

    def rom_words(self) -> list[int]:
        """The weight ROM: word ``nf_index * sf + sf_index`` holds the ``pe * simd``
        native weights of that step, PE-major, LSB first."""
        width = self.weight_bits
        words = []
        for addr in range(self.nf * self.sf):
            n_, f_ = divmod(addr, self.sf)
            word = 0
            for pe in range(self.pe):
                for lane in range(self.simd):
                    k = self.codes[n_ * self.pe + pe][f_ * self.simd + lane]
                    word |= self.native[k] << ((pe * self.simd + lane) * width)
            words.append(word)
        return words

    @property
    def threshold_width(self) -> int:
        """Width of a threshold as stage C compares it (the accumulator's range + 1)."""
        lo, hi = self.acc_bounds
        return max(self.acc_width, signed_width(lo), signed_width(hi + 1))

    def threshold_rows(self, pe: int) -> list[list[int]]:
        """A memory threshold unit's table for lane ``pe``: per channel group, the
        thresholds of channel ``group * pe_count + pe`` minus its bias when folded,
        clamped into the accumulator's range and padded to ``2**out_bits - 1`` with
        thresholds no accumulator reaches."""
        lo, hi = self.acc_bounds
        count = (1 << self.out_bits) - 1
        rows = []
        for n_ in range(self.nf):
            j = n_ * self.pe + pe
            off = self.bias[j] if self.fold_bias else 0
            row = [min(max(t - off, lo), hi + 1) for t in self.thresholds[j]]
            rows.append(row + [hi + 1] * (count - len(row)))
        return rows

    def spram_memories_shapes(self) -> list[tuple[str, int, int]]:
        """The stage's memories in SPRAM, in load order: ``(name, depth, width)`` (the
        weight ROM, then each PE's sequential threshold memory)."""
        out = []
        if self.rom_style == "spram":
            out.append(("rom", self.nf * self.sf, self.pe * self.simd * self.weight_bits))
        if self.threshold_style == "spram" and self.thresholds is not None:
            for pe in range(self.pe):
                out.append((f"thr{pe}", self.nf << self.out_bits, self.threshold_width))
        return out

    def spram_memories(self) -> list[tuple[str, int, int, list[int]]]:
        """:meth:`spram_memories_shapes` with each memory's words (thresholds two's
        complement in ``width`` bits)."""
        out = []
        for name, depth, width in self.spram_memories_shapes():
            if name == "rom":
                words = self.rom_words()
            else:
                rows = self.threshold_rows(int(name[3:]))
                words = [w & ((1 << width) - 1) for w in sequential_words(rows, self.out_bits)]
            out.append((name, depth, width, words))
        return out

    @property
    def spram_blocks(self) -> int:
        """SPRAM blocks the stage uses."""
        return sum(r * c for r, c in (spram_tiles(d, w) for _, d, w in
                                      self.spram_memories_shapes()))

    @property
    def load_words(self) -> int:
        """16-bit words the stage's SPRAM memories load after reset (0: none)."""
        return sum(spram_tiles(d, w)[1] * d for _, d, w in self.spram_memories_shapes())

    def load_image(self) -> list[int]:
        """The 16-bit words the stage loads after reset, in order."""
        out = []
        for _, depth, width, words in self.spram_memories():
            out += SpramMemory.image_of(words, depth, width)
        return out

    @property
    def out_in_memory(self) -> bool:
        """Dense: whether the result frame lives in a memory (one word of ``pe`` codes per
        channel group, read by the send counter) rather than in flip-flops sent through a
        ``out_beats`` way multiplexer: more than one group, one beat per group, and the
        same size rules as the input frame (:attr:`buffer_in_memory`)."""
        if self.window is not None or self.nf < 2 or self.out_beat != self.pe:
            return False
        depth = self.nf * (2 if self.double_buffer else 1)
        width = self.pe * self.out_bits
        return (self.out_count * self.out_bits >= FRAME_MEMORY_MIN_BITS and
                depth * width >= FRAME_MEMORY_MIN_FILL * _ice40_blocks(depth, width))

    @property
    def acc_width(self) -> int:
        lo, hi = self.acc_bounds
        return max(signed_width(lo), signed_width(hi))

    @property
    def out_bits(self) -> int:
        if self.thresholds is None:
            return self.acc_width
        return max(1, len(self.thresholds[0]).bit_length())

    @property
    def out_count(self) -> int:
        return self.positions * self.out_channels

    @property
    def in_beats(self) -> int:
        return self.in_count // self.in_beat

    @property
    def out_beats(self) -> int:
        return self.out_count // self.out_beat

    def cycle_model(self):
        """A fresh cycle model of this stage's handshakes (:mod:`.timing`)."""
        return FrameModel(self) if self.window is None else ConvModel(self)

    def check(self) -> None:
        if self.mode not in ("runtime", "baked"):
            raise ValueError(f"Mode must be 'runtime' or 'baked', not {self.mode!r}")
        if self.rom_style not in (None, "block", "logic", "spram"):
            raise ValueError(f"ROM style must be None, 'block', 'logic' or 'spram', not "
                             f"{self.rom_style!r}")
        if self.rom_style == "spram" and (self.mode != "runtime" or self.nf * self.sf < 2):
            raise ValueError("A weight ROM in SPRAM needs runtime weights and more than one "
                             "ROM word")
        if self.threshold_unit not in THRESHOLD_UNITS:
            raise ValueError(f"Threshold unit must be one of {', '.join(THRESHOLD_UNITS)}, "
                             f"not {self.threshold_unit!r}")
        if self.threshold_style not in (None, "block", "logic", "spram"):
            raise ValueError(f"Threshold style must be None, 'block', 'logic' or 'spram', "
                             f"not {self.threshold_style!r}")
        if self.threshold_logic_levels and (self.threshold_unit != "search" or
                                            self.threshold_logic_levels > self.out_bits):
            raise ValueError(f"Threshold logic levels need the search unit and at most "
                             f"{self.out_bits} levels, not {self.threshold_logic_levels} "
                             f"with the {self.threshold_unit!r} unit")
        if self.threshold_style == "spram" and self.threshold_unit != "sequential":
            raise ValueError(f"Thresholds in SPRAM need the sequential unit, not "
                             f"{self.threshold_unit!r}")
        if self.threshold_unit != "parallel" and self.mode != "runtime":
            raise ValueError(f"A {self.threshold_unit} threshold unit needs runtime weights")
        if self.threshold_unit == "sequential" and self.thresholds is not None and \
                self.sf < self.out_bits:
            raise ValueError(f"A sequential threshold unit needs at least {self.out_bits} "
                             f"steps per channel group (taps / SIMD), not {self.sf}")
        for name, whole, part in [("PE", self.out_channels, self.pe),
                                  ("SIMD", self.taps, self.simd),
                                  ("Input beat", self.in_count, self.in_beat),
                                  ("Output beat", self.out_count, self.out_beat)]:
            if part < 1 or whole % part:
                raise ValueError(f"{name} must be a positive divisor of {whole}, not {part}")
        w = self.window
        if w is not None:
            if not isinstance(w, WindowSpec):
                raise TypeError(f"Window must be a WindowSpec or None, not {w!r}")
            got = (w.code_bits, w.in_beat, w.taps, w.positions, w.in_beats * w.in_beat)
            want = (self.in_bits, self.in_beat, self.taps, self.positions, self.in_count)
            if got != want:
                raise ValueError(f"Window {w!r} does not match the layer (code bits, input "
                                 f"beat, taps, positions, input codes: {want!r})")
            if self.out_beat != self.pe:
                raise ValueError(f"Output beat of a conv2d layer must be its PE count "
                                 f"{self.pe}, not {self.out_beat}")
        if isinstance(self.latency_cutoff, bool) or not isinstance(self.latency_cutoff, int) \
                or self.latency_cutoff < 0:
            raise ValueError(f"Latency cutoff must be an integer >= 0, not "
                             f"{self.latency_cutoff!r}")
        g = self.adder_graph
        if self.latency_cutoff and g is None and self.mode != "runtime":
            raise ValueError("A latency cutoff needs runtime mode (registers in the adder "
                             "trees) or an adder graph (baked shift-add constants)")
        if g is not None:
            if not isinstance(g, AdderGraph):
                raise TypeError(f"Adder graph must be an AdderGraph or None, not {g!r}")
            if self.mode != "baked" or self.values is None:
                raise ValueError("An adder graph needs baked mode with shift-add constants "
                                 "(values)")
            if g.in_bounds != ((0, 2**self.in_bits - 1),) * self.taps:
                raise ValueError(f"The adder graph's inputs must be the {self.taps} codes of "
                                 f"{self.in_bits} bits")
            w = np.array([[self.values[k] for k in row] for row in self.codes], np.int64)
            try:
                g.check_matrix(w)
            except GraphError as e:
                raise ValueError(f"The adder graph does not compute the layer's weights: "
                                 f"{e}") from None
