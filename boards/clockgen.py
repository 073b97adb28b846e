"""The core clock: the board's oscillator through its PLL, as the ``sync`` domain.

:class:`PLLClock` instantiates the PLL primitive a :class:`~mulfree.boards.registry.Board`
names with a :class:`~mulfree.boards.pll.PLLSetting` and drives the ``sync`` domain from
it, held in reset until the PLL reports lock and then for 15 us more, as amaranth's own
iCE40 power-on reset does (iCE40 block RAM reads zeros for about 3 us after configuration;
the 15 us is amaranth's 5x margin).

- ``SB_PLL40_PAD`` (iCE40): the PLL's own input pad drives it directly; the pad is then not
  usable as an ordinary input, so nothing else runs on the board clock. The iCEBreaker's
  12 MHz oscillator is on pin 35 (G0), the UP5K PLL's input pad.
- ``EHXPLLL`` (ECP5): the clock pin through an input buffer into ``CLKI``, feedback from
  ``CLKOP`` (as ``ecppll`` writes it), with ``ecppll``'s loop-filter attributes.
"""

from __future__ import annotations

from amaranth.hdl import (ClockDomain, ClockSignal, Elaboratable, Instance, Module, ResetSignal,
                          Signal)
from amaranth.lib import io
from amaranth.lib.cdc import FFSynchronizer

from .pll import PLLSetting

__all__ = ["PLLClock", "PRIMITIVE_FAMILY", "RESET_DELAY_S"]

# Which family each primitive belongs to.
PRIMITIVE_FAMILY = {"SB_PLL40_PAD": "ice40", "EHXPLLL": "ecp5"}
# Reset held after lock (amaranth's iCE40 power-on reset: 15 us).
RESET_DELAY_S = 15e-6


class PLLClock(Elaboratable):
    """Drives the ``sync`` domain from the board clock through the PLL.

    Parameters
    ----------
    primitive : str
        ``"SB_PLL40_PAD"`` or ``"EHXPLLL"``.
    setting : PLLSetting
        Of the primitive's family, for the platform's default clock.

    Members
    -------
    lock : Signal
        The PLL's lock output (raw, not synchronized).

    Latency: ``sync`` leaves reset ``RESET_DELAY_S`` after lock plus 2 cycles (synchronizer).
    """

    def __init__(self, *, primitive: str, setting: PLLSetting) -> None:
        self._MustUse__silence = True     # until the checks pass: never built otherwise
        if primitive not in PRIMITIVE_FAMILY:
            raise ValueError(f"PLL primitive must be one of {', '.join(PRIMITIVE_FAMILY)}, "
                             f"not {primitive!r}")
        if not isinstance(setting, PLLSetting):
            raise TypeError(f"Setting must be a PLLSetting, not {setting!r}")
        if setting.family != PRIMITIVE_FAMILY[primitive]:
            raise ValueError(f"A {setting.family} setting does not configure {primitive}")
        self.primitive = primitive
        self.setting = setting
        self.lock = Signal()
        self._MustUse__silence = False

    def elaborate(self, platform):
        m = Module()
        s = self.setting
        if platform is not None:
            board_hz = float(platform.default_clk_frequency)
            if abs(board_hz / 1e6 - s.f_in_mhz) > 1e-6 * s.f_in_mhz:
                raise ValueError(f"The PLL setting is for a {s.f_in_mhz:g} MHz reference; "
                                 f"the board clock is {board_hz / 1e6:g} MHz")
        clk = Signal(name="core_clk")
        if self.primitive == "SB_PLL40_PAD":
            pin = platform.request(platform.default_clk, dir="-")
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT="GENCLK",
                p_DIVR=s["DIVR"], p_DIVF=s["DIVF"], p_DIVQ=s["DIVQ"],
                p_FILTER_RANGE=s["FILTER_RANGE"],
                i_PACKAGEPIN=pin.io, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=clk, o_LOCK=self.lock)
        else:
            pin = platform.request(platform.default_clk, dir="-")
            m.submodules.clk_buf = buf = io.Buffer("i", pin)
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{s.f_in_mhz:g}",
                a_FREQUENCY_PIN_CLKOP=f"{s.f_out_mhz:.6g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
                p_OUTDIVIDER_MUXB="DIVB", p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=s["CLKI_DIV"], p_CLKFB_DIV=s["CLKFB_DIV"],
                p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=s["CLKOP_DIV"],
                p_CLKOP_CPHASE=s["CLKOP_CPHASE"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
                i_CLKI=buf.i, i_CLKFB=clk, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
                i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
                o_CLKOP=clk, o_LOCK=self.lock)
        # No clock constraint of our own: nextpnr derives the output's from the board clock's
        # constraint and the dividers (its log: "Derived frequency constraint of ... for
        # net ..."), and it could not find an amaranth signal name on the PLL's output net.

        # Reset: until lock, then RESET_DELAY_S more, counted on the PLL's clock.
        m.domains.pll_por = ClockDomain("pll_por", reset_less=True, local=True)
        m.d.comb += ClockSignal("pll_por").eq(clk)
        locked = Signal()
        m.submodules.lock_sync = FFSynchronizer(self.lock, locked, o_domain="pll_por")
        delay = max(1, int(RESET_DELAY_S * s.f_out_mhz * 1e6))
        timer = Signal(range(delay + 1))
        ready = Signal()
        with m.If(~locked):
            m.d.pll_por += [timer.eq(0), ready.eq(0)]
        with m.Elif(timer == delay):
            m.d.pll_por += ready.eq(1)
        with m.Else():
            m.d.pll_por += timer.eq(timer + 1)
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(clk), ResetSignal("sync").eq(~ready)]
        return m
