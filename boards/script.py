"""Run amaranth's build script with progress: one stage per tool, one per nextpnr phase.

A board build is Yosys, then nextpnr, then the packer, for minutes on a large design.
:func:`run_build_script` runs the script under ``sh -x``, whose trace marks each tool as
it starts, and follows the tools' own log files (``-l top.rpt`` for Yosys, ``--log
top.tim`` for nextpnr) to name what they are doing: Yosys's current pass, and nextpnr's
phases (packing, placing, routing, timing report), each its own progress stage
(:mod:`mulfree.gen.progress`). The trace lines are kept out of the captured output.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from pathlib import Path

from mulfree.gen import progress

__all__ = ["run_build_script", "NEXTPNR_PHASES"]

# (marker in nextpnr's log, phase): the first line of each phase, as nextpnr 0.11 writes
# it for iCE40, ECP5 and Gowin.
NEXTPNR_PHASES = (("Info: Packing", "packing"),
                  ("Info: Creating initial analytic placement", "placing"),
                  ("Info: Running main analytical placer", "placing"),
                  ("Info: Routing", "routing"),
                  ("Info: Critical path report", "timing report"))
_YOSYS_PASS = re.compile(r"^\d+(?:\.\d+)*\. Executing (\S+)", re.M)


def _tool(trace: str) -> str | None:
    """The tool a ``sh -x`` trace line starts (None for shell builtins)."""
    words = trace[2:].split()
    if not words or words[0] in (":", "[", ".", "set", "test"):
        return None
    name = Path(words[0]).name.lower()
    if "yosys" in name:
        return "yosys"
    if "nextpnr" in name:
        return "nextpnr"
    if "pack" in name:
        return "pack"
    return name


class _Follower:
    """Reads a growing log file from where it stopped last time."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def new_text(self) -> str:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return ""
        # only whole lines
        cut = data.rfind(b"\n") + 1
        self.offset += cut
        return data[:cut].decode("utf-8", "replace")


def run_build_script(build_dir: Path, script: str, env: dict) -> tuple[int, str]:
    """Run ``build_dir/<script>.sh``; returns (exit code, stdout + stderr without the
    trace). Progress stages: "yosys: synthesis", "nextpnr: <phase>", "packing"."""
    # Its own process group: on Ctrl-C (or any error here) the whole group, the tools
    # included, is stopped, not only the shell.
    proc = subprocess.Popen(["sh", "-x", f"{script}.sh"], cwd=build_dir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace", start_new_session=True)
    out: list[str] = []
    err: list[str] = []
    tools: list[str] = []
    lock = threading.Lock()

    def read_out() -> None:
        for line in proc.stdout:
            out.append(line)

    def read_err() -> None:
        for line in proc.stderr:
            if line.startswith("+ "):
                tool = _tool(line)
                if tool:
                    with lock:
                        tools.append(tool)
                continue
            err.append(line)

    readers = [threading.Thread(target=read_out, daemon=True),
               threading.Thread(target=read_err, daemon=True)]
    for t in readers:
        t.start()
    logs = {"yosys": _Follower(build_dir / "top.rpt"),
            "nextpnr": _Follower(build_dir / "top.tim")}
    try:
        _follow(proc, tools, lock, logs, readers)
    except BaseException:
        _stop(proc)
        raise
    for t in readers:
        t.join()
    return proc.returncode, "".join(out) + "".join(err)


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


def _follow(proc: subprocess.Popen, tools: list[str], lock, logs: dict,
            readers: list[threading.Thread]) -> None:
    """Open and close progress stages as the tools and nextpnr's phases go by."""
    seen = 0
    current: tuple | None = None    # (context manager, stage, tool, phase)

    def open_stage(title: str, tool: str, phase: str | None):
        nonlocal current
        close_stage()
        cm = progress.stage(title)
        current = (cm, cm.__enter__(), tool, phase)

    def close_stage():
        nonlocal current
        if current is not None:
            current[0].__exit__(None, None, None)
            current = None

    titles = {"yosys": "yosys: synthesis", "nextpnr": "nextpnr: reading the netlist",
              "pack": "packing the bitstream"}
    def read_logs():
        if current is None:
            return
        tool = current[2]
        text = logs[tool].new_text() if tool in logs else ""
        if tool == "yosys" and text:
            passes = _YOSYS_PASS.findall(text)
            if passes:
                current[1].update(f"({passes[-1].lower()} pass)")
        elif tool == "nextpnr" and text:
            for line in text.splitlines():
                for marker, phase in NEXTPNR_PHASES:
                    if line.startswith(marker) and phase != current[3]:
                        open_stage(f"nextpnr: {phase}", "nextpnr", phase)

    try:
        while True:
            done = proc.poll() is not None
            if done:
                # The trace reader may still hold the last tools' lines: let it finish
                # before the final pass, so no stage is lost to the race.
                for t in readers:
                    t.join()
            with lock:
                started = tools[seen:]
                seen = len(tools)
            for tool in started:
                read_logs()     # the finishing tool's last phases come first
                open_stage(titles.get(tool, tool), tool, None)
            read_logs()
            if done:
                break
            try:
                proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
    finally:
        close_stage()
