"""Amaranth-simulator drivers: a Network (packed beats in, values out, random stalls) and a
MAC lane (one step per clock)."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator


def pack(values, bits: int, per_beat: int) -> list[int]:
    values = [int(v) & (2**bits - 1) for v in values]
    beats = []
    for n in range(0, len(values), per_beat):
        word = 0
        for k, v in enumerate(values[n:n + per_beat]):
            word |= v << (k * bits)
        beats.append(word)
    return beats


def unpack(beats, bits: int, per_beat: int, signed: bool) -> list[int]:
    out = []
    for word in beats:
        for k in range(per_beat):
            v = (word >> (k * bits)) & (2**bits - 1)
            if signed and v >= 2 ** (bits - 1):
                v -= 2**bits
            out.append(v)
    return out


async def drive(ctx, port, beats, rng, idle: float) -> None:
    """Offer ``beats`` on the input stream ``port``, idling a random number of cycles
    (probability ``idle`` each) before each; ``valid`` drops after every transfer."""
    for beat in beats:
        while rng.random() < idle:
            await ctx.tick()
        ctx.set(port.valid, 1)
        ctx.set(port.payload, beat)
        await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)


def run_network(net, manifest, x: np.ndarray, *, seed: int = 0, idle: float = 0.3,
                stall: float = 0.3, max_cycles: int = 2_000_000):
    """Feed every sample of ``x`` (``[N, *input shape]``) and return
    ``(outputs [N, values], cycles)``."""
    rng = np.random.default_rng(seed)
    inp, out = manifest["input"], manifest["output"]
    beats = []
    for sample in x:
        beats += pack(sample.reshape(-1), inp["value_bits"], inp["values_per_beat"])
    n_out = out["beats"] * len(x)
    got = []
    cycles = [0]

    async def driver(ctx):
        await drive(ctx, net.i, beats, rng, idle)

    async def monitor(ctx):
        for _ in range(n_out):
            while rng.random() < stall:
                await ctx.tick()
            ctx.set(net.o.ready, 1)
            payload, = await ctx.tick().sample(net.o.payload).until(net.o.valid)
            ctx.set(net.o.ready, 0)
            got.append(payload)

    async def counter(ctx):
        async for _ in ctx.tick():
            cycles[0] += 1
            if cycles[0] > max_cycles:
                raise AssertionError("simulation ran too long")

    sim = Simulator(net)
    sim.add_clock(1e-6)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    add_loader(sim, net, rng, idle)
    sim.add_process(counter)
    sim.run()
    values = unpack(got, out["value_bits"], out["values_per_beat"], out["signed"])
    return np.array(values, dtype=np.int64).reshape(len(x), -1), cycles[0]


def golden_flat(model, x) -> np.ndarray:
    from mulfree.gen.model.golden import run

    y = run(model, x).output
    return y.reshape(len(x), -1)


def run_lane(lane, control, steps, *, top=None, reset=None) -> list[int]:
    """Clock ``lane`` through ``steps`` of ``(weight, act, valid, control[, reset])``, one
    per cycle, with ``control`` its ``first``/``clear``/``last`` port; returns ``acc`` after
    each. ``top``: the module to simulate (default the lane), ``reset``: the signal the
    steps' fifth value drives."""
    got = []

    async def bench(ctx):
        for step in steps:
            w, a, v, c = step[:4]
            ctx.set(lane.weight, w)
            ctx.set(lane.act, a)
            ctx.set(lane.valid, v)
            ctx.set(control, c)
            if reset is not None:
                ctx.set(reset, step[4])
            await ctx.tick()
            got.append(ctx.get(lane.acc))

    sim = Simulator(lane if top is None else top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


def add_loader(sim, net, rng=None, idle: float = 0.0) -> None:
    """A network with a ``load`` port (memories in SPRAM) gets its load image first."""
    if "load" not in net.signature.members:
        return
    image = net.load_image()
    rng = rng if rng is not None else np.random.default_rng(0)

    async def loader(ctx):
        await drive(ctx, net.load, image, rng, idle)

    sim.add_testbench(loader)


def transfer_cycles(net, in_beats, n_out: int) -> tuple[int, list[int]]:
    """Input always offered, output always ready: the cycle of the first input transfer
    and of each of the first ``n_out`` output transfers."""
    first, out = [], []

    async def driver(ctx):
        t = 0
        for beat in in_beats:
            ctx.set(net.i.valid, 1)
            ctx.set(net.i.payload, beat)
            while True:
                _, _, ready = await ctx.tick().sample(net.i.ready)
                t += 1
                if ready:
                    break
            if not first:
                first.append(t)
        ctx.set(net.i.valid, 0)

    async def monitor(ctx):
        ctx.set(net.o.ready, 1)
        t = 0
        while len(out) < n_out:
            _, _, valid = await ctx.tick().sample(net.o.valid)
            t += 1
            if valid:
                out.append(t)

    sim = Simulator(net)
    sim.add_clock(1e-6)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    add_loader(sim, net)
    sim.run()
    return first[0], out


def input_beats(manifest, x) -> list[int]:
    """The input stream of samples ``x`` as the manifest packs it."""
    inp = manifest["input"]
    beats = []
    for sample in x:
        beats += pack(sample.reshape(-1), inp["value_bits"], inp["values_per_beat"])
    return beats


def stream_through(dut, beats, n_out: int, *, rng, idle: float, stall: float,
                   fields=None) -> list:
    """Drive ``beats`` into ``dut.i`` with random idle cycles and take ``n_out`` transfers
    from ``dut.o`` under random back-pressure, checking the output stream rules every
    cycle (once valid, valid stays and the payload holds until the transfer). Returns the
    payloads, or with ``fields`` (signals to sample instead) a tuple of their values per
    transfer."""
    sampled = [dut.o.payload] if fields is None else list(fields)
    got = []

    async def driver(ctx):
        await drive(ctx, dut.i, beats, rng, idle)

    async def monitor(ctx):
        held = None
        while len(got) < n_out:
            ready = int(rng.random() >= stall)
            ctx.set(dut.o.ready, ready)
            _, _, valid, *values = await ctx.tick().sample(dut.o.valid, *sampled)
            value = values[0] if fields is None else tuple(values)
            if held is not None:
                assert valid and value == held, "payload changed while valid waited"
            held = None
            if valid and ready:
                got.append(value)
            elif valid:
                held = value

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.run()
    return got
