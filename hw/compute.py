"""What a dense or conv2d layer engine computes, without any model knowledge.

:class:`ComputeSpec` is one layer as :class:`~.engine.LayerEngine` needs it (codes,
products, bias, bounds, thresholds, folding, the conv2d window), with its derived timing
and buffer layout; :func:`make_unit` builds a product unit by kind; :func:`csd_digits`
writes a constant weight as canonical signed digits for the baked mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .adder_graph import AdderGraph, GraphError
from .adder_graph_unit import stages as graph_stages
from .product import ApotProduct, PotProduct, TableProduct, UniformProduct, signed_width
from .timing import ConvModel, FrameModel, stage_timing
from .window import WindowSpec

__all__ = ["ComputeSpec", "make_unit", "csd_digits", "FRAME_MEMORY_MIN_BITS",
           "FRAME_MEMORY_MIN_FILL"]


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
    # synthesis hint for the weight ROM: None (the tool decides), "block" or "logic"
    rom_style: str | None = None
    # a register stage between the adder trees and the accumulators (higher Fmax)
    pipeline: bool = False
    # copy the input frame and the results into second buffers: load, compute and send
    # overlap
    double_buffer: bool = False
    # baked shift-add constants: the adder graph of the layer's sums (``[OC][taps]`` from
    # :func:`mulfree.hw.cmvm.solve`; None: per-channel pairwise trees) and the adder levels
    # per register stage in it (0: combinational)
    adder_graph: AdderGraph | None = None
    latency_cutoff: int = 0

    @property
    def graph_latency(self) -> int:
        """Register stages inside the adder graph (0 without one)."""
        if self.adder_graph is None:
            return 0
        return graph_stages(self.adder_graph, self.latency_cutoff)[1]

    @property
    def lag(self) -> int:
        """Extra cycles between a step's products and its accumulation: the ``pipeline``
        register and the adder graph's register stages."""
        return int(self.pipeline) + self.graph_latency

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
    def fifo_depth(self) -> int:
        """Conv2d: result beats the engine's output FIFO holds; enough for one output
        channel group per cycle with the output always ready (a group's credit comes
        back ``4 + lag`` cycles after its last step); at least 2 (a one-entry
        ``SyncFIFO`` has zero-width pointers)."""
        return max(2, -(-(4 + self.lag) // self.sf))

    @property
    def delay(self) -> int:
        """Dense: cycles from the last input beat taken to the first output beat valid.
        Conv2d: cycles from the last input beat taken to the last output beat sent, the
        stage alone with its input always offered and its output always ready (from
        :func:`mulfree.hw.timing.stage_timing`)."""
        if self.window is not None:
            return stage_timing(self)[0]
        return self.steps + 4 + self.lag + int(self.double_buffer)

    @property
    def period(self) -> int:
        """Cycles between inference starts when this layer is the slowest stage (conv2d:
        the stage alone, from :func:`mulfree.hw.timing.stage_timing`)."""
        if self.window is not None:
            return stage_timing(self)[1]
        if self.double_buffer:
            return max(self.steps + 4 + self.lag, self.in_beats + 1, self.out_beats + 1)
        return self.steps + 3 + self.lag + max(self.in_beats, self.out_beats)

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
        if self.rom_style not in (None, "block", "logic"):
            raise ValueError(f"ROM style must be None, 'block' or 'logic', not "
                             f"{self.rom_style!r}")
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
        if self.latency_cutoff and g is None:
            raise ValueError("A latency cutoff needs an adder graph (baked shift-add "
                             "constants)")
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
