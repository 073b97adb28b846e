"""The board harness: UART in, the network, UART out, status LEDs.

:class:`Harness` is the board-independent part (a ``wiring.Component`` simulated in the
tests): a UART receiver fills a receive FIFO, from which a deframer assembles the input
frame's bytes into beats on the network's input stream, so the next frame arrives while
the network works; the network's output beats are sent back as bytes behind a start byte;
an identify command answers with the frame lengths, the model fingerprint and the FIFO's
depth; a lost byte is answered with :data:`~mulfree.boards.framing.LOST`. The framing is
in :mod:`mulfree.boards.framing` and docs/boards.md.

:class:`BoardTop` puts a harness on a board: it requests the UART and the LEDs from the
amaranth-boards platform and runs everything in one clock domain, ``sync``: the board's
PLL output (:mod:`mulfree.boards.clockgen`), or the platform's default clock with its
power-on reset. The UART's bit period is computed for that clock, so there is no clock-
domain crossing (docs/boards.md has the measurements behind that choice).
"""


from amaranth.hdl import Array, Cat, Const, Elaboratable, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .clockgen import PLLClock
from .framing import FRAME_IN, FRAME_OUT, IDENT, LOST, FrameFormat, rx_fifo_depth
from .uart import UARTRx, UARTTx

__all__ = ["Harness", "BoardTop", "LED_MEANING"]

LED_MEANING = ("heartbeat (about 1 Hz: clock running)", "busy (a frame is in flight)",
               "error (a received byte was lost: receive FIFO full, or a bad stop bit; "
               "sticky until reset)",
               "toggles on each completed inference")


class Harness(wiring.Component):
    """UART framing around a network with the stream contract of ``build_network``.

    Parameters
    ----------
    network : wiring.Component
        With ``i: In(stream.Signature(unsigned(IN_BEAT_BITS)))`` and
        ``o: Out(stream.Signature(unsigned(OUT_BEAT_BITS)))``, in the ``sync`` domain.
    frames : FrameFormat
        Beats per frame and bytes per beat in each direction, and the identify reply.
    clk_freq : float
        Frequency of the ``sync`` clock in Hz.
    baud : int
        UART baud rate.
    rx_fifo_depth : int or None
        Bytes of the receive FIFO (at least 2); None: :func:`~mulfree.boards.framing.
        rx_fifo_depth` of the input frame length. Reported in the identify reply.

    Members
    -------
    rx : In(1)
        Serial line from the host (idle high).
    tx : Out(1)
        Serial line to the host (idle high).
    leds : Out(4)
        Status, see :data:`LED_MEANING`.

    Latency: a received byte leaves the receive FIFO 2 cycles after the UART delivers it
    (when the FIFO is empty), and the beat it completes goes to the network the cycle after;
    the output start byte goes out as soon as the first output beat is valid. A lost byte
    (the FIFO full when the UART delivers one, or a low stop bit) sets the error LED and
    sends ``LOST`` as soon as the transmitter is between two replies.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    leds: Out(4)

    def __init__(self, network, frames: "FrameFormat", *, clk_freq: float, baud: int,
                 rx_fifo_depth: int | None = None) -> None:
        self._MustUse__silence = True     # until the checks pass: never built otherwise
        if not isinstance(frames, FrameFormat):
            raise TypeError(f"Frames must be a FrameFormat, not {frames!r}")
        if rx_fifo_depth is None:
            rx_fifo_depth = _default_depth(frames)
        if (isinstance(rx_fifo_depth, bool) or not isinstance(rx_fifo_depth, int)
                or not 2 <= rx_fifo_depth < 1 << 16):
            raise ValueError(f"Receive FIFO depth must be an integer from 2 to 65535, not "
                             f"{rx_fifo_depth!r}")
        self._net = network
        self._frames = frames
        self._clk_freq = clk_freq
        self._rx = UARTRx(clk_freq=clk_freq, baud=baud)
        self._tx = UARTTx(clk_freq=clk_freq, baud=baud)
        self._fifo = SyncFIFOBuffered(width=8, depth=rx_fifo_depth)
        self._MustUse__silence = False
        super().__init__()

    @property
    def network(self):
        return self._net

    @property
    def frames(self) -> FrameFormat:
        return self._frames

    @property
    def bit_period(self) -> int:
        return self._rx.period

    @property
    def rx_fifo(self) -> SyncFIFOBuffered:
        """The receive FIFO (its ``level`` is what the measurements watch)."""
        return self._fifo

    def elaborate(self, platform):
        m = Module()
        net, fi, fo = self._net, self._frames.inp, self._frames.out
        m.submodules.network = net
        m.submodules.uart_rx = rx = self._rx
        m.submodules.uart_tx = tx = self._tx
        m.submodules.rx_fifo = fifo = self._fifo
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx),
                     fifo.w_data.eq(rx.o.payload), fifo.w_en.eq(rx.o.valid),
                     rx.o.ready.eq(fifo.w_rdy)]
        src = fifo.r_stream

        # -- status -------------------------------------------------------------------
        half_second = max(2, int(self._clk_freq // 2))
        beat = Signal(range(half_second))
        heartbeat = Signal()
        with m.If(beat == half_second - 1):
            m.d.sync += [beat.eq(0), heartbeat.eq(~heartbeat)]
        with m.Else():
            m.d.sync += beat.eq(beat + 1)
        # A byte is lost when the UART completes one while the previous one still waits for
        # room in the FIFO (overrun), or when its stop bit is low.
        lost = rx.overrun | rx.frame_error
        error = Signal()
        lost_pending = Signal()          # LOST still to be sent
        with m.If(lost):
            m.d.sync += error.eq(1)
        done = Signal()
        in_busy, out_busy = Signal(), Signal()
        m.d.comb += self.leds.eq(Cat(heartbeat, in_busy | out_busy, error, done))

        # -- host to network ------------------------------------------------------------
        ident_req = Signal()
        ident_ack = Signal()
        with m.If(ident_ack):
            m.d.sync += ident_req.eq(0)
        in_bpb = fi.bytes_per_beat
        in_word = Signal(in_bpb * 8)
        in_byte = Signal(range(in_bpb))
        in_beat = Signal(range(fi.beats))
        m.d.comb += net.i.payload.eq(in_word[:len(net.i.payload)])
        with m.FSM(name="deframer"):
            with m.State("IDLE"):
                m.d.comb += src.ready.eq(1)
                with m.If(src.valid):
                    with m.If(src.payload == FRAME_IN):
                        m.d.sync += [in_byte.eq(0), in_beat.eq(0)]
                        m.next = "RECV"
                    with m.Elif(src.payload == IDENT):
                        m.d.sync += ident_req.eq(1)
            with m.State("RECV"):
                m.d.comb += [src.ready.eq(1), in_busy.eq(1)]
                with m.If(src.valid):
                    if in_bpb == 1:
                        m.d.sync += in_word.eq(src.payload)
                    else:
                        m.d.sync += in_word.eq(Cat(in_word[8:], src.payload))
                    m.d.sync += in_byte.eq(in_byte + 1)
                    with m.If(in_byte == in_bpb - 1):
                        m.d.sync += in_byte.eq(0)
                        m.next = "OFFER"
            with m.State("OFFER"):
                m.d.comb += [net.i.valid.eq(1), in_busy.eq(1)]
                with m.If(net.i.ready):
                    m.d.sync += in_beat.eq(in_beat + 1)
                    with m.If(in_beat == fi.beats - 1):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "RECV"

        # -- network to host ------------------------------------------------------------
        out_bpb = fo.bytes_per_beat
        out_word = Signal(out_bpb * 8)
        m.d.comb += out_word.eq(net.o.payload)
        out_bytes = Array(out_word[8 * k:8 * (k + 1)] for k in range(out_bpb))
        out_byte = Signal(range(out_bpb))
        out_beat = Signal(range(fo.beats))
        ident = self._frames.ident(self._fifo.depth)
        ident_rom = Array(Const(b, 8) for b in ident)
        ident_idx = Signal(range(len(ident)))
        with m.FSM(name="framer"):
            with m.State("IDLE"):
                with m.If(lost_pending):
                    m.d.comb += [tx.i.valid.eq(1), tx.i.payload.eq(LOST)]
                    with m.If(tx.i.ready):
                        m.d.sync += lost_pending.eq(0)
                with m.Elif(ident_req):
                    m.d.comb += ident_ack.eq(1)
                    m.d.sync += ident_idx.eq(0)
                    m.next = "IDENT"
                with m.Elif(net.o.valid):
                    m.next = "START"
            with m.State("IDENT"):
                m.d.comb += [tx.i.valid.eq(1), tx.i.payload.eq(ident_rom[ident_idx])]
                with m.If(tx.i.ready):
                    m.d.sync += ident_idx.eq(ident_idx + 1)
                    with m.If(ident_idx == len(ident) - 1):
                        m.next = "IDLE"
            with m.State("START"):
                m.d.comb += [tx.i.valid.eq(1), tx.i.payload.eq(FRAME_OUT), out_busy.eq(1)]
                with m.If(tx.i.ready):
                    m.d.sync += [out_byte.eq(0), out_beat.eq(0)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [out_busy.eq(1), tx.i.valid.eq(net.o.valid),
                             tx.i.payload.eq(out_bytes[out_byte])]
                with m.If(net.o.valid & tx.i.ready):
                    m.d.sync += out_byte.eq(out_byte + 1)
                    with m.If(out_byte == out_bpb - 1):
                        m.d.comb += net.o.ready.eq(1)
                        m.d.sync += [out_byte.eq(0), out_beat.eq(out_beat + 1)]
                        with m.If(out_beat == fo.beats - 1):
                            m.d.sync += done.eq(~done)
                            m.next = "IDLE"
        with m.If(lost):                 # after the framer's clear: a new loss wins
            m.d.sync += lost_pending.eq(1)
        return m


def _default_depth(frames: FrameFormat) -> int:
    return rx_fifo_depth(frames.inp.frame_bytes)


class BoardTop(Elaboratable):
    """A harness on a board: UART and LEDs from the platform, the ``sync`` domain from the
    board clock, through the board's PLL when ``pll`` is given.

    Parameters
    ----------
    harness : Harness
        Built for the core clock (``pll.f_out_mhz``, else the board clock).
    board : Board
        The registry entry (which resources carry the UART and the LEDs, the PLL primitive).
    pll : PLLSetting or None
        None: the platform's default clock domain (with its power-on reset), as before.
    """

    def __init__(self, harness: Harness, board, pll=None) -> None:
        if pll is not None and not board.pll:
            raise ValueError(f"Board {board.name} has no PLL: {board.no_pll}")
        self.harness = harness
        self.board = board
        self.pll = pll

    def elaborate(self, platform):
        m = Module()
        if self.pll is not None:
            m.submodules.clock = PLLClock(primitive=self.board.pll, setting=self.pll)
        m.submodules.harness = h = self.harness
        uart = platform.request(*self.board.uart)
        m.d.comb += [h.rx.eq(uart.rx.i), uart.tx.o.eq(h.tx)]
        net = h.network
        if "cipo" in net.signature.members:
            # a network loading SPRAM from the SPI flash (mulfree.boards.flash.FlashLoaded)
            flash = platform.request("spi_flash_1x", 0)
            m.d.comb += [flash.cs.o.eq(net.cs), flash.clk.o.eq(net.sck),
                         flash.copi.o.eq(net.copi), net.cipo.eq(flash.cipo.i)]
            for pin in ("wp", "hold"):
                if hasattr(flash, pin):
                    m.d.comb += getattr(flash, pin).o.eq(0)
        requested = {}
        for i, (name, number, sub) in enumerate(self.board.leds[:4]):
            if (name, number) not in requested:
                requested[name, number] = platform.request(name, number)
            res = requested[name, number]
            pin = getattr(res, sub) if sub else res
            m.d.comb += pin.o.eq(h.leds[i])
        return m
