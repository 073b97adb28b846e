"""A network's SPRAM load image from the board's SPI flash, read once after reset.

The iCE40 UltraPlus's SPRAM has no initial contents in the bitstream (hw/spram.py), so a
network that keeps weights or thresholds there has a ``load`` port that takes its load
image before any input. On a board the image sits in the configuration flash behind the
bitstream, at :data:`FLASH_OFFSET` (``mulfree build`` writes it as ``<board>.load.bin``,
16-bit words little-endian; ``iceprog -o 1M <board>.load.bin`` programs it), and
:class:`SpiFlashReader` streams it into the network: it wakes the flash from deep
power-down (``0xAB``), waits, then sends one ``READ`` (``0x03``) with the 24-bit
address and clocks the bytes in (SPI mode 0, MSB first), two per load word, pausing the
clock while the network does not take a word. :class:`FlashLoaded` wraps a network with
the reader so the harness sees an ordinary network (``i``, ``o``) plus the flash pins.
"""


from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FLASH_OFFSET", "SpiFlashReader", "FlashLoaded", "load_bytes"]

# Where the load image starts in the flash: 1 MiB, past any iCE40 bitstream (an UP5K
# image is about 104 kB) and inside the 16 MiB flash of the iCEBreaker.
FLASH_OFFSET = 1 << 20

_RELEASE_POWER_DOWN = 0xAB
_READ = 0x03


def load_bytes(words) -> bytes:
    """The flash image of a load image: each 16-bit word little-endian."""
    return b"".join(int(w).to_bytes(2, "little") for w in words)


class SpiFlashReader(wiring.Component):
    """Read ``words`` 16-bit little-endian words from a SPI NOR flash at byte ``offset``,
    once after reset.

    Parameters
    ----------
    offset : int
        Byte address of the first word (24 bits).
    words : int
        Words to read.
    divider : int
        Clock cycles per half period of SCK (SCK = clock / (2 * divider)).
    wake_cycles : int
        Cycles to wait after the release-from-power-down command (the flash's tRES1, 3 us
        for a W25Q128: 36 cycles at 12 MHz; the default is generous).

    Members
    -------
    sck, cs, copi : Out(1)
        The flash's clock, chip select (active high: the board inverts it) and data in.
    cipo : In(1)
        The flash's data out.
    o : Out(stream.Signature(16))
        The words, in order.
    done : Out(1)
        High once the last word is taken.

    Latency: ``(8 + 32 + 16 * words) * 2 * divider`` cycles plus ``wake_cycles`` and the
    cycles the consumer of ``o`` stalls.
    """

    def __init__(self, *, offset: int, words: int, divider: int = 1,
                 wake_cycles: int = 1024) -> None:
        for name, v, lo in (("Offset", offset, 0), ("Words", words, 1),
                            ("Divider", divider, 1), ("Wake cycles", wake_cycles, 1)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an integer, not {v!r}")
            if v < lo:
                raise ValueError(f"{name} must be at least {lo}, not {v}")
        if offset + 2 * words > 1 << 24:
            raise ValueError(f"Offset {offset} and {words} words exceed a 24-bit address")
        self._offset, self._words = offset, words
        self._divider, self._wake = divider, wake_cycles
        super().__init__({
            "sck": Out(1), "cs": Out(1), "copi": Out(1), "cipo": In(1),
            "o": Out(stream.Signature(16)), "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        div = self._divider
        tick = Signal(range(div), name="half")        # cycles into the half period
        at_edge = tick == div - 1
        cmd = Const((_READ << 24) | self._offset, 32)
        shift = Signal(32, name="shift")              # bits going out, MSB first
        count = Signal(range(33), name="count")       # bits left in this phase
        word = Signal(16, name="word")                # bits coming in, MSB first per byte
        nbits = Signal(range(17), name="bits_in")
        left = Signal(range(self._words + 1), name="words_left", init=self._words)
        wait = Signal(range(self._wake + 1), name="wait")

        def half_step():
            with m.If(at_edge):
                m.d.sync += tick.eq(0)
            with m.Else():
                m.d.sync += tick.eq(tick + 1)

        m.d.comb += self.copi.eq(shift[31])
        with m.FSM(name="flash"):
            with m.State("WAKE"):
                m.d.sync += [shift.eq(_RELEASE_POWER_DOWN << 24), count.eq(8),
                             self.cs.eq(1)]
                m.next = "SEND_WAKE"
            with m.State("SEND_WAKE"):
                self._send(m, at_edge, half_step, shift, count, "PAUSE")
            with m.State("PAUSE"):
                m.d.sync += [self.cs.eq(0), wait.eq(self._wake)]
                m.next = "WAIT"
            with m.State("WAIT"):
                m.d.sync += wait.eq(wait - 1)
                with m.If(wait == 1):
                    m.d.sync += [self.cs.eq(1), shift.eq(cmd), count.eq(32)]
                    m.next = "SEND_READ"
            with m.State("SEND_READ"):
                self._send(m, at_edge, half_step, shift, count, "READ")
            with m.State("READ"):
                # SCK low (copi don't care) for a half period, then high: sample cipo
                half_step()
                with m.If(at_edge):
                    with m.If(~self.sck):
                        m.d.sync += self.sck.eq(1)
                    with m.Else():
                        m.d.sync += [self.sck.eq(0), nbits.eq(nbits + 1)]
                        # bytes arrive MSB first; the first byte is the word's low byte
                        low = Cat(self.cipo, word[:7])
                        with m.If(nbits < 8):
                            m.d.sync += word[:8].eq(low)
                        with m.Else():
                            m.d.sync += word[8:].eq(Cat(self.cipo, word[8:15]))
                        with m.If(nbits == 15):
                            m.next = "OFFER"
            with m.State("OFFER"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(word)]
                with m.If(self.o.ready):
                    m.d.sync += [nbits.eq(0), left.eq(left - 1)]
                    with m.If(left == 1):
                        m.d.sync += [self.cs.eq(0), self.done.eq(1)]
                        m.next = "DONE"
                    with m.Else():
                        m.next = "READ"
            with m.State("DONE"):
                pass
        return m

    def _send(self, m, at_edge, half_step, shift, count, then):
        """Shift ``count`` bits of ``shift`` out, MSB first: COPI set while SCK is low,
        the flash samples it on the rising edge."""
        half_step()
        with m.If(at_edge):
            with m.If(~self.sck):
                m.d.sync += self.sck.eq(1)
            with m.Else():
                m.d.sync += [self.sck.eq(0), shift.eq(shift << 1), count.eq(count - 1)]
                with m.If(count == 1):
                    m.next = then


class FlashLoaded(wiring.Component):
    """A network with a ``load`` port, fed from the SPI flash by a
    :class:`SpiFlashReader`: to the harness an ordinary network (``i``, ``o``), plus the
    flash pins for the board top.

    Parameters
    ----------
    network : wiring.Component
        With ``i``, ``o``, ``load`` and ``load_words``.
    offset : int
        Byte address of the load image in the flash.
    divider : int
        SCK half period in clock cycles.
    """

    def __init__(self, network, *, offset: int = FLASH_OFFSET, divider: int = 1) -> None:
        self._net = network
        self._reader = SpiFlashReader(offset=offset, words=network.load_words, divider=divider)
        super().__init__({
            "i": In(stream.Signature(len(network.i.payload))),
            "o": Out(stream.Signature(len(network.o.payload))),
            "sck": Out(1), "cs": Out(1), "copi": Out(1), "cipo": In(1),
        })

    @property
    def network(self):
        return self._net

    @property
    def load_words(self) -> int:
        return self._net.load_words

    def load_image(self) -> list[int]:
        return self._net.load_image()

    def elaborate(self, platform):
        m = Module()
        m.submodules.network = net = self._net
        m.submodules.flash = rd = self._reader
        wiring.connect(m, rd.o, net.load)
        wiring.connect(m, wiring.flipped(self.i), net.i)
        wiring.connect(m, net.o, wiring.flipped(self.o))
        m.d.comb += [self.sck.eq(rd.sck), self.cs.eq(rd.cs), self.copi.eq(rd.copi),
                     rd.cipo.eq(self.cipo)]
        return m
