"""The SPI flash reader against a model of a SPI NOR flash (release from power-down, READ
with a 24-bit address, mode 0), a network with SPRAM memories loaded from that flash and
then bit-exact, and a flash holding a wrong image caught."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from mulfree.boards.flash import FLASH_OFFSET, FlashLoaded, SpiFlashReader, load_bytes
from mulfree.gen.model.examples import random_dense
from mulfree.gen.model.format import Model
from mulfree.gen.plan.network import build_network

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def flash_model(pins, memory: dict, log: list):
    """An async testbench acting as the flash on ``pins`` (sck, cs, copi, cipo): it
    shifts in a command on rising SCK edges while selected and, after READ and its
    address, shifts the addressed bytes out MSB first, changing CIPO after falling edges."""

    async def run(ctx):
        sck_was, cs_was = 0, 0
        bits, nbits, addr, out_bits, mode = 0, 0, 0, [], None
        async for _, _, sck, cs, copi in ctx.tick().sample(pins.sck, pins.cs, pins.copi):
            if cs and not cs_was:
                bits, nbits, mode, out_bits = 0, 0, None, []
            if not cs and cs_was and mode is not None:
                log.append(mode)
            if cs and sck and not sck_was and mode in (None, "addr"):
                bits, nbits = (bits << 1) | copi, nbits + 1
                if nbits == 8 and mode is None:
                    mode = {0xAB: "wake", 0x03: "addr"}.get(bits, f"cmd {bits:#x}")
                    bits, nbits = 0, 0
                elif mode == "addr" and nbits == 24:
                    addr, mode = bits, "read"
            if cs and not sck and sck_was and mode == "read":
                if not out_bits:
                    byte = memory.get(addr, 0xFF)
                    addr += 1
                    out_bits = [(byte >> (7 - k)) & 1 for k in range(8)]
                ctx.set(pins.cipo, out_bits.pop(0))
            sck_was, cs_was = sck, cs

    return run


@pytest.mark.parametrize("divider", [1, 3])
def test_reader_streams_the_words(divider):
    words = [0x1234, 0xBEEF, 0x0001, 0x8000, 0xFFFF]
    offset = 0x10203
    memory = {offset + n: b for n, b in enumerate(load_bytes(words))}
    rd = SpiFlashReader(offset=offset, words=len(words), divider=divider, wake_cycles=5)
    got, log = [], []

    async def consumer(ctx):
        n = 0
        while len(got) < len(words):
            ready = n % 3 != 1          # stall now and then
            ctx.set(rd.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(rd.o.valid, rd.o.payload)
            if valid and ready:
                got.append(payload)
            n += 1
        await ctx.tick().repeat(4)
        assert ctx.get(rd.done) and not ctx.get(rd.cs)

    sim = Simulator(rd)
    sim.add_clock(1e-6)
    sim.add_testbench(flash_model(rd, memory, log), background=True)
    sim.add_testbench(consumer)
    sim.run()
    assert got == words
    assert log == ["wake", "read"]


def _net(seed=3):
    rng = np.random.default_rng(seed)
    l1 = random_dense(rng, 12, 4, scheme="pot", wbits=3, in_bits=2, out_bits=2, name="fc1")
    l2 = random_dense(rng, 4, 3, scheme="uniform", wbits=3, in_bits=2, output="acc", name="fc2")
    model = Model(name="f", input_shape=(12,), input_bits=2, layers=(l1, l2))
    fold = {"layers": {"fc1": {"pe": 1, "simd": 3, "rom": "spram", "thresholds": "sequential",
                               "threshold_memory": "spram"}}}
    return model, build_network(model, "runtime", fold)


def _run_loaded(image_bytes):
    from netsim import golden_flat, run_network  # noqa: F401 (golden below)
    model, (net, manifest) = _net()
    top = FlashLoaded(net, divider=1)
    memory = {FLASH_OFFSET + n: b for n, b in enumerate(image_bytes)}
    x = np.random.default_rng(4).integers(0, 4, (3, 12))
    from netsim import input_beats, unpack
    beats = input_beats(manifest, x)
    out = manifest["output"]
    got = []

    async def driver(ctx):
        for b in beats:
            ctx.set(top.i.valid, 1)
            ctx.set(top.i.payload, b)
            await ctx.tick().until(top.i.ready)
        ctx.set(top.i.valid, 0)

    async def monitor(ctx):
        ctx.set(top.o.ready, 1)
        while len(got) < out["beats"] * len(x):
            payload, = await ctx.tick().sample(top.o.payload).until(top.o.valid)
            got.append(payload)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(flash_model(top, memory, []), background=True)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.run()
    values = np.array(unpack(got, out["value_bits"], out["values_per_beat"], out["signed"]))
    return values.reshape(len(x), -1), golden_flat(model, x)


def test_network_loaded_from_flash_is_bit_exact():
    _, (net, _) = _net()
    got, want = _run_loaded(load_bytes(net.load_image()))
    np.testing.assert_array_equal(got, want)


def test_wrong_flash_image_is_caught():
    _, (net, _) = _net()
    image = list(net.load_image())
    image = image[1:] + image[:1]          # every word one place off
    got, want = _run_loaded(load_bytes(image))
    assert not np.array_equal(got, want)
