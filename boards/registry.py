"""The boards mulfree builds for: amaranth-boards platforms plus what the harness needs.

Each :class:`Board` names its amaranth-boards platform, where its UART and LEDs are, how
it is programmed, and which tool checks of the platform have to be bypassed because they
concern programming, not building (the ULX3S platform insists on ``openFPGALoader`` and
the OrangeCrab on ``dfu-suffix`` even to build).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from mulfree.gen.plan.devices import DEVICES, Device
from mulfree.gen.errors import MulfreeError

from .toolchain import ToolchainError, tool_path

__all__ = ["Board", "BOARDS", "get_board", "UnsupportedBoard"]


class UnsupportedBoard(MulfreeError):
    """A board that is known but cannot be built yet (the message says why)."""


@dataclass(frozen=True)
class Board:
    """One buildable board.

    ``uart`` is the ``platform.request`` arguments of the UART; ``leds`` up to four
    ``(resource, number, subsignal or None)`` for the harness's status LEDs, in the order of
    :data:`mulfree.boards.harness.LED_MEANING`; ``programmers`` lists command lines
    (``{bitstream}`` is replaced), the first whose program is installed is used.
    """

    name: str
    title: str
    family: str                 # ice40 | ecp5 | gowin (nextpnr-<family>)
    device: str                 # the full part number (package, speed grade)
    part: Device                # its capacities: mulfree.gen.plan.devices, the one source
    module: str                 # amaranth_boards module
    platform: str               # class name in it
    bitstream: str              # file extension of the product
    uart: tuple = ("uart", 0)
    leds: tuple = ()
    programmers: tuple = ()
    build_env: dict = field(default_factory=dict)
    extra_uart: tuple | None = None    # (rx pin, tx pin, connector, attrs) when the board has none
    notes: str = ""
    unsupported: str = ""
    needs: tuple = ()                  # (executable, package) beyond Yosys and nextpnr
    pll: str = ""                      # the PLL primitive clocking the core (boards/clockgen.py)
    no_pll: str = ""                   # without one: why, for the report and the errors

    def __post_init__(self) -> None:
        if self.part.family != self.family or not self.device.upper().startswith(
                self.part.part.upper().split("-")[0]):
            raise ValueError(f"Board {self.name}: device {self.device} does not match "
                             f"{self.part.part} ({self.part.family})")
        if bool(self.pll) == bool(self.no_pll):
            raise ValueError(f"Board {self.name}: give either its PLL primitive or why it "
                             f"has none")

    def make_platform(self):
        if self.unsupported:
            raise UnsupportedBoard(f"board '{self.name}' ({self.title}) is not supported yet: "
                                   f"{self.unsupported}")
        for exe, package in self.needs:
            if tool_path_or_none(exe) is None:
                raise UnsupportedBoard(f"board '{self.name}' needs {exe}, which is not "
                                       f"installed: pip install {package.split()[0]} in the "
                                       f"project virtualenv (see docs/boards.md)")
        mod = importlib.import_module(self.module)
        platform = getattr(mod, self.platform)()
        if self.extra_uart is not None:
            from amaranth.build import Attrs
            from amaranth_boards.resources import UARTResource
            rx, tx, conn, attrs = self.extra_uart
            platform.add_resources([UARTResource(0, rx=rx, tx=tx, conn=conn,
                                                 attrs=Attrs(**attrs))])
        return platform

    @property
    def clk_freq(self) -> float:
        """The board oscillator's frequency in Hz (from the platform; no tool is needed)."""
        platform = getattr(importlib.import_module(self.module), self.platform)()
        return float(platform.default_clk_frequency)


BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("icebreaker", "1BitSquared iCEBreaker", "ice40",
          "iCE40UP5K-SG48", DEVICES["ice40up5k"],
          "amaranth_boards.icebreaker", "ICEBreakerPlatform", "bin",
          leds=(("led_g", 0, None), ("led_r", 0, None)),
          programmers=(("iceprog", "{bitstream}"),
                       ("openFPGALoader", "-b", "ice40_generic", "{bitstream}")),
          pll="SB_PLL40_PAD",    # the 12 MHz oscillator is on pin 35, the UP5K's PLL pad
          notes="12 MHz clock; UART through the FTDI's second channel (/dev/ttyUSB1). "
                "Green LED: heartbeat; red LED: busy."),
    Board("ulx3s-85f", "Radiona ULX3S (ECP5 LFE5U-85F)", "ecp5",
          "LFE5U-85F-6BG381C", DEVICES["lfe5u-85f"],
          "amaranth_boards.ulx3s", "ULX3S_85F_Platform", "bit",
          leds=tuple(("led", i, None) for i in range(4)),
          programmers=(("openFPGALoader", "-b", "ulx3s", "{bitstream}"),
                       ("fujprog", "{bitstream}")),
          build_env={"OPENFPGALOADER": "true"},
          pll="EHXPLLL",
          notes="25 MHz clock; UART through the FTDI (US1 port)."),
    Board("ulx3s-12f", "Radiona ULX3S (ECP5 LFE5U-12F)", "ecp5",
          "LFE5U-12F-6BG381C", DEVICES["lfe5u-12f"],
          "amaranth_boards.ulx3s", "ULX3S_12F_Platform", "bit",
          leds=tuple(("led", i, None) for i in range(4)),
          programmers=(("openFPGALoader", "-b", "ulx3s", "{bitstream}"),
                       ("fujprog", "{bitstream}")),
          build_env={"OPENFPGALOADER": "true"},
          pll="EHXPLLL",
          notes="25 MHz clock; UART through the FTDI (US1 port)."),
    Board("orangecrab-25f", "Good Stuff Department OrangeCrab r0.2 (ECP5 LFE5U-25F)", "ecp5",
          "LFE5U-25F-8MG285C", DEVICES["lfe5u-25f"], "amaranth_boards.orangecrab_r0_2",
          "OrangeCrabR0_2_25FPlatform", "bit",
          leds=(("rgb_led", 0, "g"), ("rgb_led", 0, "b"), ("rgb_led", 0, "r")),
          programmers=(("dfu-util", "-a", "0", "-D", "{bitstream}"),
                       ("openFPGALoader", "-b", "orangecrab", "{bitstream}")),
          build_env={"DFU_SUFFIX": "true"},
          extra_uart=("0", "1", ("io", 0), {"IO_TYPE": "LVCMOS33", "PULLMODE": "UP"}),
          pll="EHXPLLL",
          notes="48 MHz clock. The board has no USB-serial chip: the harness's UART is on "
                "the Feather header, RX on pin 0 and TX on pin 1 (3.3 V); connect a USB-serial "
                "adapter there. Program over USB DFU (hold the button while plugging in). "
                "Green: heartbeat, blue: busy, red: error."),
    Board("tangnano9k", "Sipeed Tang Nano 9K (Gowin GW1NR-9C)", "gowin",
          "GW1NR-LV9QN88PC6/I5", DEVICES["gw1nr-9"],
          "amaranth_boards.tang_nano_9k", "TangNano9kPlatform", "fs",
          leds=tuple(("led", i, None) for i in range(4)),
          programmers=(("openFPGALoader", "-b", "tangnano9k", "{bitstream}"),),
          build_env={"NEXTPNR_GOWIN": "yowasp-nextpnr-gowin", "GOWIN_PACK": "gowin_pack"},
          needs=(("yowasp-nextpnr-gowin", "yowasp-nextpnr-gowin"),
                 ("gowin_pack", "apycula (installed with yowasp-nextpnr-gowin)")),
          no_pll="mulfree does not drive the Gowin rPLL (amaranth 0.5.10's legacy "
                 "nextpnr-gowin flow); the core runs at the 27 MHz board clock",
          notes="Experimental: amaranth 0.5.10 drives the legacy nextpnr-gowin "
                "(yowasp-nextpnr-gowin 0.7, deprecated upstream, with Apycula 0.15's "
                "gowin_pack), which maps no block RAM and ignores amaranth's clock "
                "constraint (its report says 12 MHz; the board clock is 27 MHz). Builds "
                "here; not yet run on a board. 27 MHz clock, UART through the BL702 "
                "(the second USB serial port)."),
)}


def tool_path_or_none(exe: str) -> str | None:
    try:
        return tool_path(exe)
    except ToolchainError:
        return None


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        known = ", ".join(b for b, v in BOARDS.items() if not v.unsupported)
        raise MulfreeError(f"unknown board '{name}'; known boards: {known}") from None
