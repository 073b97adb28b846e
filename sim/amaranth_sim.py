"""The Amaranth-simulator backend: the network component itself, no Verilog.

Async testbenches (``sim.add_testbench``) drive the input stream with a random idle
pattern and the output stream with random back-pressure, obeying the stream rules
(valid held until the transfer, payload stable while valid waits). Slow (Python every
cycle) but needs nothing outside the Python environment.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

from .contract import Contract

__all__ = ["AmaranthRun", "run_amaranth"]


@dataclass
class AmaranthRun:
    words: list[int]
    out_cycles: list[int]
    marks: list[int]
    cycles: int
    wall_s: float
    cpu_s: float
    timeout: bool


def run_amaranth(component, contract: Contract, words_in: list[int], out_beats: int, *,
                 idle: float, backpressure: float, seed: int, watchdog: int,
                 waves: Path | None = None) -> AmaranthRun:
    from amaranth.sim import Simulator

    rng_in, rng_out = random.Random(seed), random.Random(seed * 7919 + 1)
    from amaranth.hdl import Value

    i, o = component.i, component.o
    i_payload, o_payload = Value.cast(i.payload), Value.cast(o.payload)
    state = {"cycle": 0, "last": 0, "done": False, "timeout": False}
    words_out: list[int] = []
    out_cycles: list[int] = []
    marks: list[int] = []
    ibeats = contract.input.beats

    async def clock_counter(ctx):
        async for _ in ctx.tick():
            state["cycle"] += 1
            if state["cycle"] - state["last"] > watchdog:
                state["timeout"] = True
                state["done"] = True
            if state["done"]:
                return

    async def driver(ctx):
        for n, w in enumerate(words_in):
            while rng_in.random() < idle:
                await ctx.tick()
                if state["done"]:
                    return
            ctx.set(i_payload, w)
            ctx.set(i.valid, 1)
            while True:
                _, _, ready = await ctx.tick().sample(i.ready)
                if ready:
                    break
                if state["done"]:
                    return
            state["last"] = state["cycle"]
            if n % ibeats == 0:
                marks.append(state["cycle"])
            ctx.set(i.valid, 0)

    async def monitor(ctx):
        while len(words_out) < out_beats and not state["done"]:
            ready = int(rng_out.random() >= backpressure)
            ctx.set(o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(o.valid, o_payload)
            if ready and valid:
                words_out.append(int(payload) & ((1 << contract.output.width) - 1))
                out_cycles.append(state["cycle"])
                state["last"] = state["cycle"]
        ctx.set(o.ready, 0)
        state["done"] = True

    async def loader(ctx):
        # the SPRAM load image first (hw/network.py: no input is taken before it)
        load = component.load
        for w in component.load_image():
            ctx.set(load.payload, w)
            ctx.set(load.valid, 1)
            await ctx.tick().until(load.ready)
            state["last"] = state["cycle"]
        ctx.set(load.valid, 0)

    sim = Simulator(component)
    sim.add_clock(1e-8)
    sim.add_testbench(clock_counter, background=True)
    sim.add_testbench(driver, background=True)
    if "load" in component.signature.members:
        sim.add_testbench(loader, background=True)
    sim.add_testbench(monitor)
    t0, c0 = time.perf_counter(), time.process_time()
    if waves is not None:
        if waves.suffix != ".vcd":
            from mulfree.gen.errors import InputError
            raise InputError(f"{waves}: Amaranth's simulator writes VCD only (use a .vcd name)")
        waves.parent.mkdir(parents=True, exist_ok=True)
        with sim.write_vcd(str(waves)):
            sim.run()
    else:
        sim.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return AmaranthRun(words_out, out_cycles, marks, state["cycle"], wall, cpu, state["timeout"])
