"""One truth table: any function of a few input bits, given as its list of values.

A neuron whose inputs are few needs no arithmetic: its whole function, from the bits of
its input codes to its output, is a table of ``2**in_bits`` integers, and an FPGA is made
of truth tables. :class:`TruthTable` emits such a table so that Yosys and ABC can minimize
it into LUTs. Three ways of writing the same table are offered (``style``); they compute
the same function and differ only in what synthesis is handed (``bench/tables.py``
measures them):

``"bdd"``
    each output bit as a reduced binary decision diagram built here: a 2:1 multiplexer per
    distinct sub-function of the lower index bits (the highest index bit selects at the
    top), equal sub-functions shared, constant ones folded; small Verilog for the
    structured functions neurons are;
``"bits"``
    each output bit is one constant of ``2**in_bits`` bits indexed by the input
    (``Const.bit_select``: a ``$shiftx`` cell, which Yosys maps to a multiplexer tree of
    constants that ABC then minimizes);
``"case"``
    a ``Switch`` with one ``Case`` per entry that differs from the most common value;
``"rom"``
    a read-only :class:`amaranth.lib.memory.Memory` with a combinational read port,
    marked ``rom_style = "logic"`` so Yosys maps it to logic, not block RAM.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .product import _check_width, shape_for

__all__ = ["TruthTable", "STYLES", "MAX_IN_BITS"]

STYLES = ("bdd", "bits", "case", "rom")

# 2**20 entries per table: past that a table is no longer a few LUTs (and Verilog of it is
# megabytes); the planner's limit is far below.
MAX_IN_BITS = 20


def _int_list(name: str, values) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a list of integers, not {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool):
            raise TypeError(f"{name} entries must be integers, not {v!r}")
        try:
            iv = int(v)
        except (TypeError, ValueError):
            raise TypeError(f"{name} entries must be integers, not {v!r}") from None
        if iv != v:
            raise TypeError(f"{name} entries must be integers, not {v!r}")
        out.append(iv)
    return tuple(out)


class TruthTable(wiring.Component):
    """``value = table[index]``: a constant table over ``in_bits`` input bits.

    Parameters
    ----------
    table : list of int
        ``2**in_bits`` values; the output shape is the narrowest holding all of them
        (signed when one is negative).
    style : "bdd" | "bits" | "case" | "rom"
        How the table is written for synthesis (see the module docstring); the function is
        the same.

    Members
    -------
    index : In(in_bits)
        The entry to read (``in_bits = log2(len(table))``, at least 1).
    value : Out(shape)
        ``table[index]``.

    Combinational: latency 0.
    """

    def __init__(self, *, table, style: str = "bdd") -> None:
        values = _int_list("Table", table)
        n = len(values)
        if n < 2 or n & (n - 1):
            raise ValueError(f"Table must have a power-of-two number of entries, at least 2, "
                             f"not {n}")
        in_bits = n.bit_length() - 1
        if in_bits > MAX_IN_BITS:
            raise ValueError(f"Table must have at most 2**{MAX_IN_BITS} entries, not 2**{in_bits}")
        if not isinstance(style, str) or style not in STYLES:
            raise ValueError(f"Style must be one of {', '.join(STYLES)}, not {style!r}")
        _check_width("Table index bits", in_bits)
        self._table = values
        self._style = style
        self._shape = shape_for(min(values), max(values))
        super().__init__({"index": In(in_bits), "value": Out(self._shape)})

    @property
    def table(self) -> tuple[int, ...]:
        return self._table

    @property
    def style(self) -> str:
        return self._style

    @property
    def in_bits(self) -> int:
        return len(self.index)

    @property
    def bounds(self) -> tuple[int, int]:
        return min(self._table), max(self._table)

    def _column(self, b: int) -> int:
        """Output bit ``b`` of every entry, entry ``e`` at bit ``e``."""
        column = 0
        for idx, v in enumerate(self._table):
            column |= ((v >> b) & 1) << idx
        return column

    def _bdd(self, m: Module, column: int, size: int, offset: int, nodes: dict):
        """The sub-function of entries ``[offset, offset + size)`` of ``column`` (a power of
        two of them: the lower ``log2(size)`` index bits free) as a 1-bit value."""
        bits = (column >> offset) & ((1 << size) - 1)
        if bits == 0:
            return Const(0, 1)
        if bits == (1 << size) - 1:
            return Const(1, 1)
        key = (size, bits)
        if key not in nodes:
            half = size // 2
            lo = self._bdd(m, column, half, offset, nodes)
            hi = self._bdd(m, column, half, offset + half, nodes)
            if lo is hi:                # this index bit does not matter here
                nodes[key] = lo
            else:
                node = Signal(name=f"bdd{len(nodes)}")
                m.d.comb += node.eq(Mux(self.index[half.bit_length() - 1], hi, lo))
                nodes[key] = node
        return nodes[key]

    def elaborate(self, platform):
        m = Module()
        width = self._shape.width
        if self._style == "bdd":
            nodes: dict = {}
            bits = [self._bdd(m, self._column(b), len(self._table), 0, nodes)
                    for b in range(width)]
            m.d.comb += self.value.eq(Cat(*bits))
        elif self._style == "bits":
            bits = []
            for b in range(width):
                column = 0
                for idx, v in enumerate(self._table):
                    column |= ((v >> b) & 1) << idx
                if column == 0 or column == (1 << len(self._table)) - 1:
                    bits.append(Const(column & 1, 1))
                else:
                    bits.append(Const(column, len(self._table)).bit_select(self.index, 1))
            m.d.comb += self.value.eq(Cat(*bits))
        elif self._style == "case":
            common = max(sorted(set(self._table)), key=self._table.count)
            with m.Switch(self.index):
                for idx, v in enumerate(self._table):
                    if v != common:
                        with m.Case(idx):
                            m.d.comb += self.value.eq(Const(v, self._shape))
                with m.Default():
                    m.d.comb += self.value.eq(Const(common, self._shape))
        else:
            mask = (1 << width) - 1
            m.submodules.rom = rom = memory.Memory(
                shape=width, depth=len(self._table),
                init=[v & mask for v in self._table], attrs={"rom_style": "logic"})
            port = rom.read_port(domain="comb")
            raw = Signal(width)
            m.d.comb += [port.addr.eq(self.index), raw.eq(port.data),
                         self.value.eq(raw.as_signed() if self._shape.signed else raw)]
        return m
