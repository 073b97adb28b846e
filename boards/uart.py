"""A small 8N1 UART with stream interfaces, for the board harness.

:class:`UARTRx` turns the serial line into a stream of bytes, :class:`UARTTx` a stream of
bytes into the serial line. Both are parameterized by the clock frequency and the baud
rate; the bit period is the nearest whole number of clock cycles, and a rate that this
rounding would put more than 2% off is refused (a UART tolerates a few percent in total
between both ends).
"""


from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["bit_period", "UARTRx", "UARTTx"]

MAX_BAUD_ERROR = 0.02


def bit_period(clk_freq: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_freq`` Hz, checked for rounding error."""
    if isinstance(clk_freq, bool) or not isinstance(clk_freq, (int, float)) or clk_freq <= 0:
        raise TypeError(f"Clock frequency must be a positive number, not {clk_freq!r}")
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise TypeError(f"Baud rate must be a positive integer, not {baud!r}")
    period = round(clk_freq / baud)
    if period < 4:
        raise ValueError(f"Baud rate {baud} is too high for a {clk_freq / 1e6:g} MHz clock: "
                         f"a bit would last {clk_freq / baud:.2f} cycles, at least 4 are needed")
    error = abs(clk_freq / period - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"Baud rate {baud} cannot be made from a {clk_freq / 1e6:g} MHz clock: "
                         f"{period} cycles per bit give {clk_freq / period:.0f} baud, "
                         f"{error:.1%} off (at most {MAX_BAUD_ERROR:.0%})")
    return period


class UARTRx(wiring.Component):
    """UART receiver, 8 data bits, no parity, 1 stop bit, LSB first.

    The line is synchronized with two flip-flops, each bit sampled in its middle. A
    received byte waits in ``o`` until taken; a byte that completes while the previous one
    is still waiting is dropped and ``overrun`` pulses. A low stop bit drops the byte and
    pulses ``frame_error``; the receiver then waits for the line to go idle (high).

    Parameters
    ----------
    clk_freq : float
        Clock frequency in Hz.
    baud : int
        Baud rate.

    Members
    -------
    rx : In(1)
        The serial line (idle high).
    o : Out(stream.Signature(8))
        Received bytes.
    overrun : Out(1)
        One-cycle pulse: a byte was lost because ``o`` was not taken in time.
    frame_error : Out(1)
        One-cycle pulse: a byte had a low stop bit.

    Latency: a byte appears on ``o`` half a bit period after the middle of its stop bit
    plus 3 cycles (2 for the synchronizer, 1 for the output register).
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    overrun: Out(1)
    frame_error: Out(1)

    def __init__(self, *, clk_freq: float, baud: int) -> None:
        try:
            self._period = bit_period(clk_freq, baud)
        except (TypeError, ValueError):
            self._MustUse__silence = True     # never built: no "created but never used"
            raise
        self._clk_freq, self._baud = clk_freq, baud
        super().__init__()

    @property
    def period(self) -> int:
        return self._period

    def elaborate(self, platform):
        m = Module()
        period = self._period
        line = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)

        timer = Signal(range(period))
        bit = Signal(range(8))
        shreg = Signal(8)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += [self.overrun.eq(0), self.frame_error.eq(0)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(period // 2)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):     # a glitch, not a start bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(period - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)), timer.eq(period - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    with m.If(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += self.frame_error.eq(1)
                    m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """UART transmitter, 8N1, LSB first.

    Parameters
    ----------
    clk_freq : float
        Clock frequency in Hz.
    baud : int
        Baud rate.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send; ``ready`` is high while the transmitter is idle.
    tx : Out(1)
        The serial line (idle high).

    Latency: the start bit begins one cycle after a byte is taken; a byte occupies the line
    for 10 bit periods, and a waiting byte is taken in the last cycle of the stop bit, so
    bytes go out back to back.
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, *, clk_freq: float, baud: int) -> None:
        try:
            self._period = bit_period(clk_freq, baud)
        except (TypeError, ValueError):
            self._MustUse__silence = True     # never built: no "created but never used"
            raise
        super().__init__()

    @property
    def period(self) -> int:
        return self._period

    def elaborate(self, platform):
        m = Module()
        period = self._period
        timer = Signal(range(period))
        left = Signal(range(11))
        shreg = Signal(10, init=0x3FF)

        # Ready when idle, and in the last cycle of a stop bit, so bytes go back to back.
        m.d.comb += self.i.ready.eq((left == 0) | ((left == 1) & (timer == 0)))
        m.d.comb += self.tx.eq(shreg[0])
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shreg.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),
                         left.eq(10), timer.eq(period - 1)]
        with m.Elif(left == 0):
            pass
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [shreg.eq(Cat(shreg[1:], Const(1, 1))), left.eq(left - 1),
                         timer.eq(period - 1)]
        return m
