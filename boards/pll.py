"""PLL settings from the board clock: the iCE40's (as ``icepll`` finds them) and the ECP5's
(as ``ecppll`` does), and which output frequencies each can make.

Plain Python, no hardware: :mod:`mulfree.boards.clockgen` instantiates the primitive with
these parameters, :mod:`mulfree.boards.build` picks the frequency.

Both searches mirror their tool exactly (loop order, tie-breaks, the ECP5 tool's
single-precision arithmetic), so a setting here is the one the tool prints for the same
request; ``tests/boards/test_pll.py`` checks that against the tools' outputs. The
frequency ranges come from the data sheets (cited at each table below); each tool's own
limits are the same numbers, except where a comment says otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np

from mulfree.gen.errors import InputError

__all__ = ["PLLLimits", "PLLSetting", "ClockRequestError", "LIMITS", "ice40_pll", "ecp5_pll",
           "pll_search", "pll_frequencies", "pll_at_or_below", "pll_for_request", "check_request",
           "REQUEST_TOLERANCE"]

# A requested clock is made if the PLL gets within this share of it, from below.
REQUEST_TOLERANCE = 0.01


class ClockRequestError(InputError):
    """A requested core clock the board's PLL cannot make (the message gives the nearest)."""


@dataclass(frozen=True)
class PLLLimits:
    """Frequency ranges in MHz, each (min, max): reference input, phase detector, VCO,
    output."""

    f_in: tuple[float, float]
    f_pfd: tuple[float, float]
    f_vco: tuple[float, float]
    f_out: tuple[float, float]


LIMITS: dict[str, PLLLimits] = {
    # iCE40 UltraPlus Family Data Sheet (FPGA-DS-02008), "sysCLOCK PLL Timing": F_REF 10 to
    # 133 MHz, F_PFD 10 to 133 MHz, F_VCO 533 to 1066 MHz, F_OUT 16 to 275 MHz; the same in
    # the iCE40 sysCLOCK PLL Design and Usage Guide (FPGA-TN-02052) and in icepll.cc.
    "ice40": PLLLimits((10.0, 133.0), (10.0, 133.0), (533.0, 1066.0), (16.0, 275.0)),
    # ECP5 and ECP5-5G Family Data Sheet (FPGA-DS-02012), "sysCLOCK PLL Timing": f_IN 8 to
    # 400 MHz, f_PFD 3.125 to 400 MHz, f_VCO 400 to 800 MHz, f_OUT 3.125 to 400 MHz.
    # ecppll.cpp has the same except OUTPUT_MIN 10 MHz, which it only warns about (its
    # search reaches 400/128 = 3.125 MHz).
    "ecp5": PLLLimits((8.0, 400.0), (3.125, 400.0), (400.0, 800.0), (3.125, 400.0)),
}

PRIMITIVES = {"ice40": ("DIVR", "DIVF", "DIVQ", "FILTER_RANGE"),
              "ecp5": ("CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV", "CLKOP_CPHASE")}


@dataclass(frozen=True)
class PLLSetting:
    """One PLL configuration. Frequencies in MHz; ``f_out_mhz`` is exact (the dividers'
    ratio times the input), ``params`` the primitive's parameters in the tool's order."""

    family: str
    f_in_mhz: float
    f_out_mhz: float
    f_pfd_mhz: float
    f_vco_mhz: float
    params: tuple[tuple[str, int], ...]

    def __getitem__(self, name: str) -> int:
        return dict(self.params)[name]

    def describe(self) -> str:
        ps = ", ".join(f"{k}={v}" for k, v in self.params)
        return (f"{_mhz(self.f_in_mhz)} -> {_mhz(self.f_out_mhz)} MHz ({ps}; PFD "
                f"{_mhz(self.f_pfd_mhz)} MHz, VCO {_mhz(self.f_vco_mhz)} MHz)")

    def to_json(self) -> dict:
        return {"family": self.family, "f_in_mhz": self.f_in_mhz,
                "f_out_mhz": self.f_out_mhz, "f_pfd_mhz": self.f_pfd_mhz,
                "f_vco_mhz": self.f_vco_mhz, "params": dict(self.params)}


def _mhz(f: float) -> str:
    return f"{f:.4f}".rstrip("0").rstrip(".")


def _check_in(family: str, f_in: float) -> None:
    lo, hi = LIMITS[family].f_in
    if not lo <= f_in <= hi:
        raise ClockRequestError(f"the {_NAME[family]} PLL takes a {lo:g} to {hi:g} MHz "
                                f"reference, not {f_in:g} MHz")


_NAME = {"ice40": "iCE40", "ecp5": "ECP5"}


# -- iCE40: icepll ------------------------------------------------------------------------

def _ice40_candidates(f_in: float):
    """(fout, divr, divf, divq) in icepll's loop order, SIMPLE feedback (DIVF up to 127:
    icepll notes the usage guide's 63 holds only for the other feedback modes)."""
    lim = LIMITS["ice40"]
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if f_pfd < lim.f_pfd[0] or f_pfd > lim.f_pfd[1]:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if f_vco < lim.f_vco[0] or f_vco > lim.f_vco[1]:
                continue
            for divq in range(1, 7):
                yield f_vco * 2.0 ** -divq, divr, divf, divq


def _filter_range(f_pfd: float) -> int:
    # icepll's table (the usage guide's loop filter settings by PFD frequency).
    return (1 if f_pfd < 17 else 2 if f_pfd < 26 else 3 if f_pfd < 44 else
            4 if f_pfd < 66 else 5 if f_pfd < 101 else 6)


def ice40_pll(f_in_mhz: float, f_out_mhz: float) -> PLLSetting:
    """What ``icepll -i F_IN -o F_OUT`` prints: the first setting in its loop order whose
    output is nearest the request (the request is not range-checked here; see
    :func:`pll_for_request`)."""
    _check_in("ice40", f_in_mhz)
    best = None
    for cand in _ice40_candidates(float(f_in_mhz)):
        if best is None or abs(cand[0] - f_out_mhz) < abs(best[0] - f_out_mhz):
            best = cand
    _, divr, divf, divq = best
    f_in = Fraction(f_in_mhz)
    pfd = f_in / (divr + 1)
    vco = pfd * (divf + 1)
    return PLLSetting("ice40", float(f_in), float(vco / 2 ** divq), float(pfd), float(vco),
                      (("DIVR", divr), ("DIVF", divf), ("DIVQ", divq),
                       ("FILTER_RANGE", _filter_range(float(pfd)))))


# -- ECP5: ecppll ---------------------------------------------------------------------------

@lru_cache(maxsize=16)
def _ecp5_table(f_in_mhz: float):
    """Every (in, fb, out) divider triple ecppll's search accepts, in its loop order, with
    its float32 VCO and output frequencies."""
    f32 = np.float32
    in_div = np.arange(1, 129)
    pfd = f32(f_in_mhz) / in_div.astype(f32)
    ok = (pfd >= f32(3.125)) & (pfd <= f32(400.0))
    in_div, pfd = in_div[ok], pfd[ok]
    fb = np.arange(1, 81)          # ecppll: feedback_div 1..80
    od = np.arange(1, 129)
    I, F, O = np.meshgrid(np.arange(len(in_div)), fb, od, indexing="ij")
    I, F, O = I.ravel(), F.ravel(), O.ravel()
    # fvco = fpfd * (float)feedback_div * (float)output_div, left to right, in float32
    vco = (pfd[I] * F.astype(f32)).astype(f32) * O.astype(f32)
    vco = vco.astype(f32)
    keep = (vco >= f32(400.0)) & (vco <= f32(800.0))
    I, F, O, vco = in_div[I[keep]], F[keep], O[keep], vco[keep]
    out = (vco / O.astype(f32)).astype(f32)
    return I, F, O, vco, out


def ecp5_pll(f_in_mhz: float, f_out_mhz: float) -> PLLSetting:
    """What ``ecppll -i F_IN -o F_OUT`` writes: the nearest output, ties to the VCO nearest
    600 MHz, then the first in its loop order; ``CLKOP_CPHASE`` as it computes it (half the
    output period in VCO cycles, truncated, in its own single/double precision mix)."""
    _check_in("ecp5", f_in_mhz)
    f32 = np.float32
    I, F, O, vco, out = _ecp5_table(float(f_in_mhz))
    err = np.abs(out - f32(f_out_mhz)).astype(f32)
    cand = np.flatnonzero(err == err.min())
    dist = np.abs(vco[cand] - f32(600)).astype(f32)
    k = cand[np.flatnonzero(dist == dist.min())[0]]
    i, fb, od = int(I[k]), int(F[k]), int(O[k])
    ns_phase = float(f32(1.0 / (float(out[k]) * 1e6) * 0.5))
    cphase = int(ns_phase * (float(vco[k]) * 1e6))
    f_in = Fraction(f_in_mhz)
    pfd = f_in / i
    return PLLSetting("ecp5", float(f_in), float(pfd * fb), float(pfd), float(pfd * fb * od),
                      (("CLKI_DIV", i), ("CLKFB_DIV", fb), ("CLKOP_DIV", od),
                       ("CLKOP_CPHASE", cphase)))


# -- choosing a frequency -----------------------------------------------------------------

def pll_search(family: str, f_in_mhz: float, f_out_mhz: float) -> PLLSetting:
    """The family's tool search (nearest output to ``f_out_mhz``)."""
    if family == "ice40":
        return ice40_pll(f_in_mhz, f_out_mhz)
    if family == "ecp5":
        return ecp5_pll(f_in_mhz, f_out_mhz)
    raise ValueError(f"no PLL model for the {family!r} family")


@lru_cache(maxsize=16)
def pll_frequencies(family: str, f_in_mhz: float) -> tuple[float, ...]:
    """Every output frequency (MHz, exact) the PLL can make from ``f_in_mhz`` within the
    data sheet's output range, ascending."""
    _check_in(family, f_in_mhz)
    lo, hi = LIMITS[family].f_out
    f_in = Fraction(f_in_mhz)
    if family == "ice40":
        outs = {f_in * (divf + 1) / (divr + 1) / 2 ** divq
                for _, divr, divf, divq in _ice40_candidates(float(f_in_mhz))}
    elif family == "ecp5":
        I, F, _, _, _ = _ecp5_table(float(f_in_mhz))
        outs = {f_in * int(fb) / int(i) for i, fb in set(zip(I.tolist(), F.tolist()))}
    else:
        raise ValueError(f"no PLL model for the {family!r} family")
    return tuple(sorted(float(f) for f in outs if lo <= f <= hi))


def pll_at_or_below(family: str, f_in_mhz: float, f_max_mhz: float,
                    accept=None) -> PLLSetting | None:
    """The highest frequency the PLL makes at or below ``f_max_mhz`` (and for which
    ``accept(f_mhz)`` holds, when given), as the tool would set it; None if there is none."""
    for f in reversed(pll_frequencies(family, f_in_mhz)):
        if f <= f_max_mhz and (accept is None or accept(f)):
            setting = pll_search(family, f_in_mhz, f)
            if not math.isclose(setting.f_out_mhz, f, rel_tol=1e-6):
                raise AssertionError(f"the {family} search for {f} MHz gave "
                                     f"{setting.f_out_mhz} MHz")
            return setting
    return None


def check_request(request_mhz) -> None:
    """A clock request is a positive, finite number of MHz."""
    if (isinstance(request_mhz, bool) or not isinstance(request_mhz, (int, float))
            or not math.isfinite(request_mhz) or request_mhz <= 0):
        raise ClockRequestError(f"a clock must be a positive number of MHz, not "
                                f"{request_mhz!r}")


def pll_for_request(family: str, f_in_mhz: float, request_mhz: float,
                    tolerance: float = REQUEST_TOLERANCE) -> PLLSetting:
    """The setting for a user's clock request: the highest frequency at or below it (so the
    timing constraint is never above what was asked), if within ``tolerance`` of it;
    otherwise :class:`ClockRequestError` naming the nearest frequencies it can make."""
    check_request(request_mhz)
    freqs = pll_frequencies(family, f_in_mhz)
    below = pll_at_or_below(family, f_in_mhz, request_mhz)
    if below is not None and below.f_out_mhz >= request_mhz * (1 - tolerance):
        return below
    lo, hi = LIMITS[family].f_out
    above = next((f for f in freqs if f > request_mhz), None)
    near = sorted({f for f in (below.f_out_mhz if below else None, above) if f is not None},
                  key=lambda f: abs(f - request_mhz))
    where = (f"above its {hi:g} MHz maximum" if request_mhz > hi else
             f"below its {lo:g} MHz minimum" if request_mhz < lo else
             f"not within {tolerance:.0%} below a frequency it makes")
    nearest = " or ".join(f"{_mhz(f)} MHz" for f in near)
    raise ClockRequestError(f"the {_NAME[family]} PLL cannot make {request_mhz:g} MHz from "
                            f"the {f_in_mhz:g} MHz board clock ({where}); the nearest it can "
                            f"make: {nearest}")
