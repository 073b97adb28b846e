"""cocotb tests run inside the simulator on the ``mf_tb`` wrapper (see :mod:`.tbgen`).

Two tests, selected by the runner:

- ``batch``: the main path. The Verilog wrapper streams the whole batch by itself
  (LFSR idle and back-pressure); this test waits for ``done``, reads the logged output
  beats, and scores every value against the golden model's outputs.
- ``per_cycle``: a Python driver and monitor move one beat at a time (random idle and
  back-pressure from a seeded ``random.Random``) on the wrapper's ``x_*`` ports; slow, but
  it checks the stream handshake from cocotb's side of the boundary as well.

Both write ``result.json`` (stats and the first mismatch) for the caller, and fail the
cocotb test on any mismatch or timeout, so the results file tells the truth as well.
The settings come from the JSON file named by ``MF_SIM_CONFIG``.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cocotb
from cocotb.triggers import FallingEdge, RisingEdge

from .scoreboard import parse_output_log, score


def _config() -> dict:
    return json.loads(Path(os.environ["MF_SIM_CONFIG"]).read_text())


def _write_result(cfg: dict, result: dict) -> None:
    tmp = Path(cfg["result"] + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(cfg["result"])


@cocotb.test()
async def batch(dut):
    cfg = _config()
    t0, c0 = time.perf_counter(), time.process_time()
    if str(dut.done.value) != "1":
        await RisingEdge(dut.done)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    cycles = int(dut.cycle.value.to_unsigned())
    timed_out = bool(int(dut.timeout.value))
    out_cycles, words = parse_output_log(Path(cfg["out_log"]))
    mismatch = score(cfg, words)
    _write_result(cfg, {
        "test": "batch", "cycles": cycles, "wall_s": wall, "cpu_s": cpu, "timeout": timed_out,
        "out_cycles": out_cycles, "beats_out": len(words),
        "mismatch": None if mismatch is None else mismatch.to_dict(),
    })
    assert not timed_out, (f"watchdog: no stream transfer for {cfg['watchdog']} cycles "
                           f"after {len(words)} of {cfg['out_beats']} output beats")
    assert mismatch is None, mismatch.describe()


@cocotb.test()
async def per_cycle(dut):
    """Python decides valid and ready every cycle (at the falling edge, so the values are
    settled before the next rising edge); the transfers themselves are read back from the
    wrapper's counters half a cycle after each edge, which is exact on every simulator."""
    cfg = _config()
    rng = random.Random(cfg["seed"])
    idle_p, bp_p = cfg["idle"] / 256, cfg["backpressure"] / 256
    words_in = [int(w, 16) for w in Path(cfg["in_mem"]).read_text().split()]
    want = cfg["out_beats"]
    words_out: list[int | None] = []
    out_cycles: list[int] = []
    dut.x_valid.value = 0
    dut.x_ready.value = 0
    while str(dut.rst.value) != "0":
        await RisingEdge(dut.clk)
    t0, c0 = time.perf_counter(), time.process_time()
    cycles, last, offered, valid, taken = 0, 0, -1, 0, 0
    while len(words_out) < want:
        await FallingEdge(dut.clk)
        cycles += 1
        # monitor: the transfers of the rising edge just past
        ptr = int(dut.in_ptr.value.to_unsigned())
        n_out = int(dut.out_cnt.value.to_unsigned())
        assert ptr - taken <= 1 and n_out - len(words_out) <= 1, \
            f"more than one transfer in a cycle (in {taken}->{ptr}, out {len(words_out)}->{n_out})"
        if n_out > len(words_out):
            v = dut.out_last.value
            words_out.append(v.to_unsigned() if v.is_resolvable else None)
            out_cycles.append(int(dut.cycle.value.to_unsigned()))
            last = cycles
        if ptr > taken:
            assert valid and offered == taken, "the design took a beat that was not offered"
            taken, valid, last = ptr, 0, cycles
        # driver: offer the next beat unless idle; never withdraw an offered beat
        if not valid and taken < len(words_in) and rng.random() >= idle_p:
            valid, offered = 1, taken
            dut.x_payload.value = words_in[taken]
        dut.x_valid.value = valid
        dut.x_ready.value = int(rng.random() >= bp_p)
        if cycles - last > cfg["watchdog"]:
            break
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    mismatch = score(cfg, words_out)
    timed_out = len(words_out) < want
    _write_result(cfg, {
        "test": "per_cycle", "cycles": cycles, "wall_s": wall, "cpu_s": cpu,
        "timeout": timed_out, "out_cycles": out_cycles, "beats_out": len(words_out),
        "mismatch": None if mismatch is None else mismatch.to_dict(),
    })
    assert not timed_out, f"watchdog: no stream transfer for {cfg['watchdog']} cycles"
    assert mismatch is None, mismatch.describe()
