"""The build script runner: a progress stage per tool and per nextpnr phase (fake tools
that write the logs Yosys and nextpnr write)."""

import io
import os
import stat

import pytest

from mulfree.boards.script import run_build_script
from mulfree.gen import progress

SCRIPT = """set -e
: ${YOSYS:=yosys}
"$YOSYS" -q -l top.rpt top.ys
"$NEXTPNR_ICE40" --quiet --log top.tim
"$ICEPACK" top.asc top.bin
"""


def _tool(path, body):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.fixture
def lines(monkeypatch):
    monkeypatch.setattr(progress, "DELAY", 0.0)
    out = io.StringIO()
    progress.configure("lines", prefix="mulfree build", stream=out)
    yield out
    progress.configure("off")


def test_stages_follow_the_tools_and_nextpnrs_phases(tmp_path, lines):
    (tmp_path / "build_top.sh").write_text(SCRIPT)
    phases = ["Info: Packing constants..", "Info: Creating initial analytic placement",
              "Info: Routing..", "Info: Critical path report for clock"]
    nextpnr = "".join(f"echo '{p}' >> top.tim; sleep 0.6\n" for p in phases)
    env = {**os.environ,
           "YOSYS": _tool(tmp_path / "fake-yosys", "echo '2.5. Executing ABC pass' >> top.rpt;"
                                                   " echo synthesized; sleep 0.6\n"),
           "NEXTPNR_ICE40": _tool(tmp_path / "fake-nextpnr", nextpnr),
           # no sleep: the last tool ends before the next poll (the race CI once hit)
           "ICEPACK": _tool(tmp_path / "fake-icepack", "touch top.bin\n")}
    code, log = run_build_script(tmp_path, "build_top", env)
    assert code == 0 and "synthesized" in log and "+ " not in log
    shown = [l.removeprefix("mulfree build: ").removesuffix(" ...")
             for l in lines.getvalue().splitlines()]
    want = ["yosys: synthesis", "nextpnr: packing", "nextpnr: placing", "nextpnr: routing",
            "nextpnr: timing report", "packing the bitstream"]
    assert [s for s in shown if s in want] == want, shown


def test_a_failing_tool_returns_its_code_and_output(tmp_path, lines):
    (tmp_path / "build_top.sh").write_text(SCRIPT)
    env = {**os.environ, "YOSYS": _tool(tmp_path / "fake-yosys", "echo 'ERROR: no' >&2; exit 3\n"),
           "NEXTPNR_ICE40": "false", "ICEPACK": "false"}
    code, log = run_build_script(tmp_path, "build_top", env)
    assert code == 3 and "ERROR: no" in log


def test_an_interrupt_stops_the_tools_too(tmp_path, lines, monkeypatch):
    """Ctrl-C during a build stops the tool (its own process group), not only the shell."""
    import time
    from pathlib import Path

    (tmp_path / "build_top.sh").write_text(SCRIPT)
    env = {**os.environ,
           "YOSYS": _tool(tmp_path / "fake-yosys", "echo $$ > pid; exec sleep 60\n"),
           "NEXTPNR_ICE40": "false", "ICEPACK": "false"}
    from mulfree.boards import script

    def interrupted(proc, *a):
        while not (tmp_path / "pid").exists() or not (tmp_path / "pid").read_text().strip():
            time.sleep(0.05)
        raise KeyboardInterrupt

    monkeypatch.setattr(script, "_follow", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_build_script(tmp_path, "build_top", env)
    pid = int((tmp_path / "pid").read_text())
    time.sleep(0.2)
    try:        # gone, or a zombie waiting for init to reap it
        state = (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0])
    except FileNotFoundError:
        state = "gone"
    assert state in ("gone", "Z", "X"), state
