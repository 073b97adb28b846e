"""PLL parameter math (boards/pll.py) against icepll's and ecppll's outputs, and the
frequency choice for a requested clock."""

import re
import subprocess
from fractions import Fraction

import pytest

from mulfree.boards.pll import (LIMITS, ClockRequestError, ecp5_pll, ice40_pll,
                                pll_at_or_below, pll_for_request, pll_frequencies)
from mulfree.boards.toolchain import ToolchainError, tool_path

# icepll -i F_IN -o F_OUT: (DIVR, DIVF, DIVQ, FILTER_RANGE, achieved MHz). Printed by
# yowasp-icepll (icestorm); the 12 -> 50.25 and 48 -> 60/100/150 rows also appear in
# published icepll transcripts (e.g. an iCEBreaker design's "icepll -i 12 -o 50").
ICEPLL = {
    (12, 30): (0, 79, 5, 1, 30.0),
    (12, 50): (0, 66, 4, 1, 50.25),
    (12, 96): (0, 63, 3, 1, 96.0),
    (48, 60): (0, 19, 4, 4, 60.0),
    (48, 100): (2, 49, 3, 1, 100.0),
    (48, 150): (1, 24, 2, 2, 150.0),
    (96, 16): (2, 31, 6, 3, 16.0),
    (48, 24): (0, 15, 5, 4, 24.0),
}

# ecppll -i F_IN -o F_OUT -f pll.v: (CLKI_DIV, CLKFB_DIV, CLKOP_DIV, CLKOP_CPHASE). Written by
# yowasp-ecppll (prjtrellis); 25 -> 40 and 12 -> 16 also in published ecppll output. The
# even CLKOP_DIV rows show ecppll's truncation (12 -> 5, 6 -> 2, not 6 and 3).
ECPPLL = {
    (25, 40): (5, 8, 15, 7),
    (25, 50): (1, 2, 12, 5),
    (25, 100): (1, 4, 6, 2),
    (25, 125): (1, 5, 5, 2),
    (25, 33.3): (3, 4, 18, 9),
    (12, 16): (3, 4, 37, 18),
}


@pytest.mark.parametrize("key", sorted(ICEPLL))
def test_ice40_matches_icepll(key):
    f_in, f_out = key
    divr, divf, divq, fr, achieved = ICEPLL[key]
    s = ice40_pll(f_in, f_out)
    assert dict(s.params) == {"DIVR": divr, "DIVF": divf, "DIVQ": divq, "FILTER_RANGE": fr}
    assert s.f_out_mhz == pytest.approx(achieved, abs=1e-9)
    # the ranges of the data sheet hold, and the output is what the dividers make
    lim = LIMITS["ice40"]
    assert lim.f_pfd[0] <= s.f_pfd_mhz <= lim.f_pfd[1]
    assert lim.f_vco[0] <= s.f_vco_mhz <= lim.f_vco[1]
    assert Fraction(s.f_out_mhz) == Fraction(f_in) * (divf + 1) / (divr + 1) / 2 ** divq


@pytest.mark.parametrize("key", sorted(ECPPLL))
def test_ecp5_matches_ecppll(key):
    f_in, f_out = key
    i, fb, od, cphase = ECPPLL[key]
    s = ecp5_pll(f_in, f_out)
    assert dict(s.params) == {"CLKI_DIV": i, "CLKFB_DIV": fb, "CLKOP_DIV": od,
                              "CLKOP_CPHASE": cphase}
    lim = LIMITS["ecp5"]
    assert lim.f_pfd[0] <= s.f_pfd_mhz <= lim.f_pfd[1]
    assert lim.f_vco[0] <= s.f_vco_mhz <= lim.f_vco[1]
    assert s.f_vco_mhz == pytest.approx(s.f_out_mhz * od)
    assert s.f_out_mhz == pytest.approx(f_in / i * fb)


def test_a_wrong_expectation_fails():
    """The comparison above can fail: a neighbouring setting is not icepll's."""
    assert dict(ice40_pll(12, 30).params) != {"DIVR": 0, "DIVF": 79, "DIVQ": 4,
                                              "FILTER_RANGE": 1}


def _tool(name):
    try:
        return tool_path(name)
    except ToolchainError:
        return None


@pytest.mark.skipif(_tool("yowasp-icepll") is None or _tool("yowasp-ecppll") is None,
                    reason="yowasp-icepll/ecppll not installed")
def test_against_the_tools_themselves(tmp_path):
    """A sweep of targets through the installed tools (a few seconds)."""
    for f_out in (17.3, 27, 41.7, 64, 110, 201):
        out = subprocess.run([_tool("yowasp-icepll"), "-i", "12", "-o", str(f_out)],
                             capture_output=True, text=True, check=True).stdout
        want = {k: int(v) for k, v in
                re.findall(r"(DIVR|DIVF|DIVQ|FILTER_RANGE):\s+(\d+)", out)}
        assert dict(ice40_pll(12, f_out).params) == want, f_out
    for f_out in (27, 41.7, 64, 110):
        subprocess.run([_tool("yowasp-ecppll"), "-i", "25", "-o", str(f_out), "-f", "p.v"],
                       capture_output=True, text=True, check=True, cwd=tmp_path)
        text = (tmp_path / "p.v").read_text()
        want = {k: int(v) for k, v in
                re.findall(r"\.(CLKI_DIV|CLKFB_DIV|CLKOP_DIV|CLKOP_CPHASE)\((\d+)\)", text)}
        assert dict(ecp5_pll(25, f_out).params) == want, f_out


def test_frequencies_are_in_range_and_made_exactly():
    for family, f_in in (("ice40", 12), ("ecp5", 25), ("ecp5", 48)):
        freqs = pll_frequencies(family, f_in)
        lo, hi = LIMITS[family].f_out
        assert freqs == tuple(sorted(set(freqs))) and lo <= freqs[0] and freqs[-1] <= hi
    # iCE40 from 12 MHz: DIVR is 0 (12/2 = 6 MHz is below the PFD minimum), so every
    # output is 12 * (DIVF + 1) / 2**DIVQ with the VCO in 533..1066 MHz
    want = sorted({12 * (f + 1) / 2 ** q for f in range(128) for q in range(1, 7)
                   if 533 <= 12 * (f + 1) <= 1066 and 16 <= 12 * (f + 1) / 2 ** q <= 275})
    assert list(pll_frequencies("ice40", 12)) == want


def test_highest_at_or_below():
    s = pll_at_or_below("ice40", 12, 27.13)
    assert s.f_out_mhz == 27.0 and s["DIVF"] == 71 and s["DIVQ"] == 5
    assert pll_at_or_below("ice40", 12, 15.0) is None      # below the output minimum
    assert pll_at_or_below("ice40", 12, 1e9).f_out_mhz == 270.0
    s = pll_at_or_below("ecp5", 25, 71.3)
    assert s.f_out_mhz == pytest.approx(25 * 17 / 6)      # 71.43 = 25 * 20 / 7 is above
    # a filter (e.g. the UART's baud rate) skips frequencies
    t = pll_at_or_below("ice40", 12, 27.13, accept=lambda f: f != 27.0)
    assert t.f_out_mhz < 27.0


def test_requested_clocks():
    assert pll_for_request("ice40", 12, 30).f_out_mhz == 30.0
    assert pll_for_request("ice40", 12, 50).f_out_mhz == 49.5      # at or below, within 1%
    assert pll_for_request("ecp5", 25, 100).f_out_mhz == 100.0
    with pytest.raises(ClockRequestError,
                       match=r"^the iCE40 PLL cannot make 500 MHz from the 12 MHz board clock "
                             r"\(above its 275 MHz maximum\); the nearest it can make: "
                             r"270 MHz$"):
        pll_for_request("ice40", 12, 500)
    with pytest.raises(ClockRequestError, match=r"below its 16 MHz minimum\); the nearest it "
                                                r"can make: 16.125 MHz$"):
        pll_for_request("ice40", 12, 10)
    with pytest.raises(ClockRequestError, match=r"not within 1% below a frequency it makes\); "
                                                r"the nearest it can make: 33.3333 MHz or "
                                                r"32.1429 MHz$"):
        pll_for_request("ecp5", 25, 33)
    for bad in (0, -5, float("nan"), float("inf"), True, "30"):
        with pytest.raises(ClockRequestError, match="a clock must be a positive number of MHz"):
            pll_for_request("ice40", 12, bad)
    with pytest.raises(ClockRequestError, match="takes a 10 to 133 MHz reference"):
        ice40_pll(5, 30)
