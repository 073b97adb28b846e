"""The iCE40 UltraPlus single-port RAM (``SB_SPRAM256KA``), and memories built from it.

An UP5K has four SPRAM blocks of 16384 x 16 bits (1 Mbit in all, eight times its block
RAM), but the bitstream cannot initialize them: a design that keeps constants there
writes them after reset. :class:`SpramMemory` is such a memory: ``depth x width`` bits in
as many blocks as it needs, written once from a stream of 16-bit words (the *load image*,
:meth:`SpramMemory.image`) and read like a ROM after that (one cycle, as
``amaranth.lib.memory``'s synchronous read port).

:class:`SpramTile` is one block: the ``SB_SPRAM256KA`` primitive when the design is
elaborated for an iCE40 build (:func:`primitive_wanted`), else a behavioural model of it
that the Amaranth simulator, Icarus and Verilator run. The model follows Yosys's
``ice40/cells_sim.v`` (the documented behaviour of the primitive) with ``STANDBY`` and
``SLEEP`` low and ``POWEROFF`` high (the block on, as mulfree uses it): on a clock edge
with ``CHIPSELECT`` high, ``WREN`` low reads ``mem[ADDRESS]`` into ``DATAOUT``; ``WREN``
high writes the nibbles ``MASKWREN`` selects (``DATAOUT`` is then undefined in the
primitive: the model keeps it, and no user of it reads it); ``CHIPSELECT`` low holds
``DATAOUT``. ``tests/hw/test_spram.py`` runs the model against ``cells_sim.v``.
"""

# no `from __future__ import annotations`: wiring.Component reads the port annotations
from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .product import _check_width

__all__ = ["SPRAM_DEPTH", "SPRAM_WIDTH", "SPRAM_BITS", "SpramTile", "SpramMemory",
           "primitive_wanted", "spram_tiles", "LOAD_WORD_BITS"]

SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16
SPRAM_BITS = SPRAM_DEPTH * SPRAM_WIDTH
LOAD_WORD_BITS = 16


def primitive_wanted(platform) -> bool:
    """Whether to instantiate ``SB_SPRAM256KA`` itself: elaborating for an iCE40 build
    (amaranth's iCE40 platform, or any platform object whose ``spram_primitive`` is
    true, e.g. a Yosys-only synthesis); the behavioural model otherwise."""
    if platform is None:
        return False
    flag = getattr(platform, "spram_primitive", None)
    if flag is not None:
        return bool(flag)
    from amaranth.vendor import SiliconBluePlatform
    return isinstance(platform, SiliconBluePlatform)


def spram_tiles(depth: int, width: int) -> tuple[int, int]:
    """(rows, columns) of SPRAM blocks a ``depth x width`` memory takes."""
    return -(-depth // SPRAM_DEPTH), -(-width // SPRAM_WIDTH)


class SpramTile(wiring.Component):
    """One ``SB_SPRAM256KA`` (16384 x 16 bits, one port), or its behavioural model.

    Members
    -------
    addr : In(14)
    data_in : In(16)
    mask : In(4)
        Nibbles written (``MASKWREN``).
    write : In(1)
        ``WREN``.
    select : In(1)
        ``CHIPSELECT``.
    data_out : Out(16)
        ``DATAOUT``: the word read on the previous clock edge with ``select`` high and
        ``write`` low (held otherwise).

    Latency: one cycle (``DATAOUT`` is registered in the block).
    """

    addr: In(14)
    data_in: In(16)
    mask: In(4)
    write: In(1)
    select: In(1)
    data_out: Out(16)

    def elaborate(self, platform):
        m = Module()
        if primitive_wanted(platform):
            m.submodules.spram = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=self.addr, i_DATAIN=self.data_in, i_MASKWREN=self.mask,
                i_WREN=self.write, i_CHIPSELECT=self.select, i_CLOCK=ClockSignal("sync"),
                i_STANDBY=Const(0, 1), i_SLEEP=Const(0, 1), i_POWEROFF=Const(1, 1),
                o_DATAOUT=self.data_out)
            return m
        mem = memory.Memory(shape=unsigned(16), depth=SPRAM_DEPTH, init=[])
        m.submodules.mem = mem
        wp = mem.write_port(granularity=4)
        rp = mem.read_port(domain="sync")
        we = self.select & self.write
        m.d.comb += [wp.addr.eq(self.addr), wp.data.eq(self.data_in),
                     wp.en.eq(Mux(we, self.mask, 0)),
                     rp.addr.eq(self.addr), rp.en.eq(self.select & ~self.write),
                     self.data_out.eq(rp.data)]
        return m


class SpramMemory(wiring.Component):
    """A ``depth x width`` memory in SPRAM blocks: written once after reset from
    ``load`` (16-bit words in the order of :meth:`image`), read like a ROM after that.

    Parameters
    ----------
    depth : int
    width : int

    Members
    -------
    load : In(stream.Signature(16))
        The load image; ``ready`` is high until its last word is taken.
    loaded : Out(1)
        High from the cycle after the last load word on.
    addr : In(unsigned(ceil(log2(depth))))
    data : Out(unsigned(width))
        The word at ``addr`` of the previous cycle (a synchronous read), once loaded.

    Latency: one cycle. Loading takes one cycle per image word the stream delivers.
    """

    def __init__(self, *, depth: int, width: int) -> None:
        _check_width("Depth", depth)
        _check_width("Width", width)
        self._depth, self._width = depth, width
        super().__init__({
            "load": In(stream.Signature(LOAD_WORD_BITS)),
            "loaded": Out(1),
            "addr": In(unsigned(max(1, (depth - 1).bit_length()))),
            "data": Out(unsigned(width)),
        })

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def width(self) -> int:
        return self._width

    @property
    def tiles(self) -> tuple[int, int]:
        return spram_tiles(self._depth, self._width)

    @staticmethod
    def image_of(words, depth: int, width: int) -> list[int]:
        """The load image of a ``depth x width`` memory holding ``words``: block row by
        block row, in each row column by column (16 bits of the word each), the row's
        used addresses in order."""
        if len(words) != depth:
            raise ValueError(f"Expected {depth} words, not {len(words)}")
        rows, cols = spram_tiles(depth, width)
        out = []
        for r in range(rows):
            lo, hi = r * SPRAM_DEPTH, min(depth, (r + 1) * SPRAM_DEPTH)
            for c in range(cols):
                out += [(int(w) >> (16 * c)) & 0xFFFF for w in words[lo:hi]]
        return out

    def image(self, words) -> list[int]:
        return self.image_of(words, self._depth, self._width)

    @property
    def image_words(self) -> int:
        rows, cols = self.tiles
        return cols * self._depth

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.tiles
        depth = self._depth
        # the load: block (row, column) and the address within it
        row = Signal(range(rows), name="load_row")
        col = Signal(range(cols), name="load_col")
        a = Signal(14, name="load_addr")
        loaded = self.loaded
        take = self.load.valid & ~loaded
        m.d.comb += self.load.ready.eq(~loaded)
        row_words = [min(SPRAM_DEPTH, depth - r * SPRAM_DEPTH) for r in range(rows)]
        last_a = Signal(name="load_last_addr")
        limit = Mux(row == rows - 1, row_words[-1] - 1, SPRAM_DEPTH - 1) if rows > 1 \
            else row_words[0] - 1
        m.d.comb += last_a.eq(a == limit)
        with m.If(take):
            with m.If(last_a):
                m.d.sync += a.eq(0)
                with m.If(col == cols - 1):
                    m.d.sync += col.eq(0)
                    with m.If(row == rows - 1):
                        m.d.sync += loaded.eq(1)
                    with m.Else():
                        m.d.sync += row.eq(row + 1)
                with m.Else():
                    m.d.sync += col.eq(col + 1)
            with m.Else():
                m.d.sync += a.eq(a + 1)
        # the read: the row's blocks side by side, the row picked by the registered
        # high address bits
        low = self.addr[:14] if len(self.addr) > 14 else self.addr
        high = self.addr[14:] if rows > 1 else None
        high_r = Signal(range(rows), name="read_row") if rows > 1 else None
        if rows > 1:
            m.d.sync += high_r.eq(high)
        outs = []
        for r in range(rows):
            parts = []
            for c in range(cols):
                tile = SpramTile()
                m.submodules[f"tile{r}_{c}"] = tile
                mine = (row == r) & (col == c)
                m.d.comb += [tile.select.eq(1), tile.mask.eq(0b1111),
                             tile.data_in.eq(self.load.payload),
                             tile.write.eq(take & mine),
                             tile.addr.eq(Mux(loaded, low, a))]
                parts.append(tile.data_out)
            outs.append(parts)
        words = [Cat(*p)[:self._width] for p in outs]
        if rows == 1:
            m.d.comb += self.data.eq(words[0])
        else:
            with m.Switch(high_r):
                for r, w in enumerate(words):
                    with m.Case(r):
                        m.d.comb += self.data.eq(w)
        return m
