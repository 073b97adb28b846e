"""UART receiver and transmitter in Amaranth's simulator, against a bit-level line model."""

import pytest
from amaranth.sim import Simulator

from mulfree.boards.uart import UARTRx, UARTTx, bit_period


def _line_bits(byte, stop=1):
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


@pytest.mark.parametrize("period", [4, 7, 16])
def test_rx_receives_bytes_and_flags_overrun_and_framing(period):
    dut = UARTRx(clk_freq=1e6, baud=round(1e6 / period))
    assert dut.period == period
    sent = [0x00, 0xFF, 0xA5, 0x3C, 0x81]
    got, events = [], []

    async def drive(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * period)
        for b in sent:
            for bit in _line_bits(b):
                ctx.set(dut.rx, bit)
                await ctx.tick().repeat(period)
        # A low stop bit: frame error, byte dropped.
        for bit in _line_bits(0x55, stop=0) + [1, 1]:
            ctx.set(dut.rx, bit)
            await ctx.tick().repeat(period)
        # Two bytes nobody takes: the second one overruns.
        ctx.set(dut.o.ready, 0)
        for b in (0x11, 0x22):
            for bit in _line_bits(b):
                ctx.set(dut.rx, bit)
                await ctx.tick().repeat(period)
        await ctx.tick().repeat(2 * period)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 0x11

    async def take(ctx):
        ctx.set(dut.o.ready, 1)
        while True:
            await ctx.tick()
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                got.append(ctx.get(dut.o.payload))
            if ctx.get(dut.frame_error):
                events.append("frame")
            if ctx.get(dut.overrun):
                events.append("overrun")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.add_testbench(take, background=True)
    sim.run()
    assert got[:len(sent)] == sent
    assert events == ["frame", "overrun"]


@pytest.mark.parametrize("period", [4, 9])
def test_tx_sends_bytes_back_to_back(period):
    dut = UARTTx(clk_freq=1e6, baud=round(1e6 / period))
    sent = [0x00, 0xFF, 0x5A, 0x96]
    bits = []

    async def feed(ctx):
        for b in sent:
            ctx.set(dut.i.payload, b)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def watch(ctx):
        for _ in range((len(sent) * 10 + 2) * period):
            bits.append(ctx.get(dut.tx))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(feed, background=True)
    sim.add_testbench(watch)
    sim.run()
    want = [bit for b in sent for bit in _line_bits(b) for _ in range(period)]
    first = bits.index(0)
    assert bits[first:first + len(want)] == want


def test_bit_period_checks():
    assert bit_period(12e6, 115200) == 104
    assert bit_period(48e6, 3_000_000) == 16
    with pytest.raises(ValueError, match=r"Baud rate 4000000 is too high for a 12 MHz clock: a bit "
                                         r"would last 3.00 cycles, at least 4 are needed"):
        bit_period(12e6, 4_000_000)
    with pytest.raises(ValueError, match=r"cannot be made from a 12 MHz clock: 5 cycles per bit "
                                         r"give 2400000 baud, 4.3% off"):
        bit_period(12e6, 2_300_000)
    with pytest.raises(TypeError, match="Baud rate must be a positive integer, not 9600.0"):
        bit_period(12e6, 9600.0)
    with pytest.raises(TypeError, match="Clock frequency must be a positive number, not 0"):
        UARTRx(clk_freq=0, baud=9600)


def _talk(clk_freq, baud, host_bit):
    """Bytes through UARTRx from a host whose bits last ``host_bit`` cycles (fractional),
    and through UARTTx to a host sampling at ``host_bit`` intervals: (received, heard)."""
    from amaranth.hdl import Module

    rx, tx = UARTRx(clk_freq=clk_freq, baud=baud), UARTTx(clk_freq=clk_freq, baud=baud)
    sent = [0x00, 0xFF, 0xA5, 0x5A, 0x3C, 0x81, 0x7E]
    got, heard = [], []
    m = Module()
    m.submodules.rx, m.submodules.tx = rx, tx

    async def host_sends(ctx):
        ctx.set(rx.o.ready, 1)
        t, now = 0.0, 0
        for bit in [1] * 3 + [b for byte in sent for b in _line_bits(byte)] + [1] * 2:
            ctx.set(rx.rx, bit)
            t += host_bit
            while now < round(t):
                await ctx.tick()
                now += 1
                if ctx.get(rx.o.valid):
                    got.append(ctx.get(rx.o.payload))

    async def board_sends(ctx):
        for byte in sent:
            ctx.set(tx.i.valid, 1)
            ctx.set(tx.i.payload, byte)
            await ctx.tick().until(tx.i.ready)
        ctx.set(tx.i.valid, 0)

    async def host_listens(ctx):
        now = 0
        while True:                    # a start bit, then samples at the bit middles
            while ctx.get(tx.tx):
                await ctx.tick()
                now += 1
            start, value = now, 0
            for i in range(1, 10):
                while now < round(start + (i + 0.5) * host_bit):
                    await ctx.tick()
                    now += 1
                if i <= 8:
                    value |= ctx.get(tx.tx) << (i - 1)
            heard.append(value)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(host_sends)
    sim.add_testbench(board_sends, background=True)
    sim.add_testbench(host_listens, background=True)
    sim.run()
    return sent, got, heard[:len(sent)]


@pytest.mark.parametrize("clk_freq,baud", [
    (30.75e6, 115200),        # the demo's PLL clock: 267 cycles per bit for 266.93
    (1e6, 40816),             # 24.5 cycles per bit run as 25: the bits 2.0 % long
    (1e6, 39216),             # 25.5 run as 25: the bits 2.0 % short
])
def test_rx_and_tx_at_a_rounded_bit_period_talk_to_an_exact_host(clk_freq, baud):
    """The harness on a PLL clock rounds the bit period; the host's bits last exactly
    clk_freq / baud cycles. Both directions work up to the 2 % bit_period allows."""
    assert abs(clk_freq / bit_period(clk_freq, baud) - baud) / baud <= 0.02
    sent, got, heard = _talk(clk_freq, baud, clk_freq / baud)
    assert got == sent and heard == sent


def test_the_exact_host_model_detects_a_bit_period_too_far_off():
    sent, got, heard = _talk(1e6, 40000, 25 * 1.08)      # 8 % off: bytes go wrong
    assert got != sent and heard != sent
