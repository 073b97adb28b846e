"""Threshold units: output code = number of thresholds the accumulator reaches.

:class:`ThresholdUnit` and :func:`threshold_code` compare with every threshold at once
(``2**bits - 1`` comparators, the thresholds as inputs or constants);
:class:`SequentialThresholdUnit` searches thresholds given as inputs. The layer engine's
memory units hold one lane's per-channel thresholds in memories (block RAM, or logic when
the tool finds that cheaper) and binary-search them, one comparator per step:
:class:`ThresholdSearch` is pipelined (a memory and a comparator per output bit, one
accumulator per cycle), :class:`ThresholdSequential` steps through one memory (one
comparator, one accumulator every ``bits`` cycles; its memory may also be outside the
unit, e.g. an SPRAM).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .product import _check_width

__all__ = ["ThresholdUnit", "SequentialThresholdUnit", "ThresholdSearch",
           "ThresholdSequential", "threshold_code", "search_levels", "sequential_words",
           "THRESHOLD_STYLES"]

# Where a memory unit's thresholds live: None (the synthesis tool decides, per memory),
# "block" (block RAM), "logic" (LUTs), "external" (ThresholdSequential only: the unit
# drives an address and takes the data from a memory outside it, e.g. an SPRAM).
THRESHOLD_STYLES = (None, "block", "logic", "external")


def threshold_code(acc, thresholds):
    """``sum_t (acc >= T[t])`` as an Amaranth value (parallel comparators, then a sum).

    For non-decreasing thresholds the comparisons form a thermometer code, so the sum is
    the index of the first threshold not reached."""
    bits = [acc >= t for t in thresholds]
    total = 0
    for b in bits:
        total = total + b
    return total


def _check_unit_widths(acc_width, threshold_width, bits) -> None:
    """The widths a memory threshold unit takes: accumulator, threshold (at least the
    accumulator's) and code."""
    _check_width("Accumulator width", acc_width)
    _check_width("Threshold width", threshold_width)
    _check_width("Code width", bits)
    if threshold_width < acc_width:
        raise ValueError(f"Threshold width must be at least the accumulator width "
                         f"{acc_width}, not {threshold_width}")


class ThresholdUnit(wiring.Component):
    """``code = sum_t (acc >= thresholds[t])``, combinational (latency 0).

    Parameters
    ----------
    acc_width : int
        Width of the two's complement accumulator.
    threshold_width : int
        Width of each two's complement threshold.
    count : int
        Number of thresholds (``2**out_bits - 1``).

    Members
    -------
    acc : In(signed(acc_width))
    thresholds : In(ArrayLayout(signed(threshold_width), count))
    code : Out(unsigned(bits of count))
    """

    latency = 0

    def __init__(self, *, acc_width: int, threshold_width: int, count: int) -> None:
        _check_width("Accumulator width", acc_width)
        _check_width("Threshold width", threshold_width)
        _check_width("Threshold count", count)
        self._count = count
        super().__init__({
            "acc": In(signed(acc_width)),
            "thresholds": In(data.ArrayLayout(signed(threshold_width), count)),
            "code": Out(unsigned(count.bit_length())),
        })

    @property
    def count(self) -> int:
        return self._count

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.code.eq(threshold_code(self.acc, [self.thresholds[t]
                                                           for t in range(self._count)]))
        return m


class SequentialThresholdUnit(wiring.Component):
    """``code = sum_t (acc >= thresholds[t])`` by binary search over non-decreasing
    thresholds: one comparator and one threshold multiplexer instead of ``count``
    comparators, for layers with many output levels.

    Parameters
    ----------
    acc_width : int
        Width of the two's complement accumulator.
    threshold_width : int
        Width of each two's complement threshold.
    count : int
        Number of thresholds; must be ``2**bits - 1`` (a full code range).

    Members
    -------
    acc : In(signed(acc_width))
        Sampled on the cycle ``start`` is high.
    thresholds : In(ArrayLayout(signed(threshold_width), count))
        Must hold still until ``done``.
    start : In(1)
    code : Out(unsigned(bits))
        Valid while ``done`` is high.
    done : Out(1)
        High from ``bits`` cycles after ``start`` until the next ``start``.

    Latency: ``bits`` cycles (one comparison per output bit, most significant first).
    """

    def __init__(self, *, acc_width: int, threshold_width: int, count: int) -> None:
        _check_width("Accumulator width", acc_width)
        _check_width("Threshold width", threshold_width)
        _check_width("Threshold count", count)
        if count & (count + 1):
            raise ValueError(f"Threshold count must be 2**bits - 1, not {count}")
        self._count = count
        self.latency = count.bit_length()
        super().__init__({
            "acc": In(signed(acc_width)),
            "thresholds": In(data.ArrayLayout(signed(threshold_width), count)),
            "start": In(1),
            "code": Out(unsigned(count.bit_length())),
            "done": Out(1),
        })

    def elaborate(self, platform):
        from amaranth.hdl import Array, Signal

        m = Module()
        bits = self.latency
        acc = Signal.like(self.acc, name="acc_held")
        step = Signal(range(bits + 1), name="step")      # bits left to decide
        code = self.code
        table = Array(self.thresholds[t] for t in range(self._count))
        with m.If(self.start):
            m.d.sync += [acc.eq(self.acc), code.eq(0), step.eq(bits), self.done.eq(0)]
        with m.Elif(step != 0):
            # try setting the bit below the ones decided: code | bit reaches the
            # threshold at index (code | bit) - 1 iff at least that many are reached
            bit = Signal(bits, name="bit")
            m.d.comb += bit.eq(Const(1, bits) << (step - 1).as_unsigned()[:len(step)])
            trial = code | bit
            with m.If(acc >= table[trial - 1]):
                m.d.sync += code.eq(trial)
            m.d.sync += step.eq(step - 1)
            with m.If(step == 1):
                m.d.sync += self.done.eq(1)
        return m


def _node_threshold(bits: int, level: int, prefix: int) -> int:
    """Index of the threshold compared at ``level`` after the higher bits ``prefix``:
    the code so far with this bit set, minus one."""
    return (((prefix << 1) | 1) << (bits - 1 - level)) - 1


def search_levels(thresholds, bits: int) -> list[list[int]]:
    """The memory words of :class:`ThresholdSearch`: per level ``l``, word
    ``group * 2**l + prefix`` is the threshold that decides bit ``bits - 1 - l`` after
    the higher bits ``prefix``. ``thresholds`` is ``[groups][2**bits - 1]``."""
    return [[int(row[_node_threshold(bits, level, p)]) for row in thresholds
             for p in range(1 << level)] for level in range(bits)]


def sequential_words(thresholds, bits: int) -> list[int]:
    """The memory of :class:`ThresholdSequential`: ``2**bits`` words per group, word
    ``group * 2**bits + node`` for the heap node ``node = 2**l + prefix`` (level ``l``,
    higher bits ``prefix``); word 0 of every group is unused (0)."""
    words = []
    for row in thresholds:
        words.append(0)
        for level in range(bits):
            for p in range(1 << level):
                words.append(int(row[_node_threshold(bits, level, p)]))
    return words


def _check_table(thresholds, bits: int, threshold_width: int) -> tuple:
    if isinstance(thresholds, (str, bytes)) or not hasattr(thresholds, "__len__") \
            or len(thresholds) == 0:
        raise TypeError(f"Thresholds must be a non-empty sequence of rows, not {thresholds!r}")
    lo, hi = -(1 << (threshold_width - 1)), (1 << (threshold_width - 1)) - 1
    rows = []
    for g, row in enumerate(thresholds):
        row = tuple(row)
        if len(row) != (1 << bits) - 1:
            raise ValueError(f"Threshold row {g} must have 2**bits - 1 = {(1 << bits) - 1} "
                             f"entries, not {len(row)}")
        for v in row:
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"Threshold {v!r} in row {g} is not a {threshold_width}-bit "
                                 f"two's complement integer")
        if any(a > b for a, b in zip(row, row[1:])):
            raise ValueError(f"Threshold row {g} must be non-decreasing, not {row!r}")
        rows.append(row)
    return tuple(rows)


def _memory(words, width: int, style):
    attrs = {} if style is None else {"rom_style": style}
    return memory.Memory(shape=signed(width), depth=len(words), init=words, attrs=attrs)


class ThresholdSearch(wiring.Component):
    """``code = sum_t (acc >= T[group][t])`` by a pipelined binary search over
    thresholds held in memories: level ``l`` (one memory of ``groups * 2**l`` words, one
    comparator) decides bit ``bits - 1 - l`` of the code, the address of the next level's
    word being the group and the bits decided so far. One accumulator per cycle.

    Parameters
    ----------
    acc_width : int
        Width of the two's complement accumulator.
    threshold_width : int
        Width of each two's complement threshold (at least ``acc_width``).
    bits : int
        Output code width; ``2**bits - 1`` thresholds per group.
    thresholds : sequence of sequences of int
        ``[groups][2**bits - 1]``, each row non-decreasing.
    style : None, "block" or "logic"
        Where the memories go (a ``rom_style`` hint; None: the tool decides per memory).
    logic_levels : int
        The first ``logic_levels`` levels (the smallest memories) in logic whatever
        ``style`` says.

    Members
    -------
    valid : In(1)
        ``acc`` and ``group`` are taken on a cycle where it is high.
    acc : In(signed(acc_width))
    group : In(unsigned(max(1, ceil(log2(groups)))))
    code : Out(unsigned(bits))
    code_valid : Out(1)
        High ``bits`` cycles after ``valid`` (``code`` is combinational from the last
        level's memory read and comparator on that cycle).

    Latency: ``bits`` cycles, one input per cycle.
    """

    def __init__(self, *, acc_width: int, threshold_width: int, bits: int, thresholds,
                 style=None, logic_levels: int = 0) -> None:
        _check_unit_widths(acc_width, threshold_width, bits)
        if style not in (None, "block", "logic"):
            raise ValueError(f"Style must be None, 'block' or 'logic', not {style!r}")
        _check_width("Logic levels", logic_levels, minimum=0)
        if logic_levels > bits:
            raise ValueError(f"Logic levels must be at most the code width {bits}, not "
                             f"{logic_levels}")
        self._table = _check_table(thresholds, bits, threshold_width)
        self._bits, self._tw, self._style = bits, threshold_width, style
        self._logic_levels = logic_levels
        self.latency = bits
        groups = len(self._table)
        super().__init__({
            "valid": In(1),
            "acc": In(signed(acc_width)),
            "group": In(unsigned(max(1, (groups - 1).bit_length()))),
            "code": Out(unsigned(bits)),
            "code_valid": Out(1),
        })

    @property
    def groups(self) -> int:
        return len(self._table)

    def elaborate(self, platform):
        m = Module()
        bits, tw = self._bits, self._tw
        gw = len(self.group)
        one_group = self.groups == 1
        levels = search_levels(self._table, bits)
        # stage k (1 .. bits) holds the input k cycles on, the bits decided at levels
        # 0 .. k-2, and reads level k-1's word (addressed on the cycle before)
        valid, acc, group, prefix = self.valid, self.acc, self.group, Const(0, 0)
        data = []
        for level in range(bits):
            words = levels[level]
            addr = Cat(prefix, group) if not one_group else prefix
            if len(words) == 1:
                data.append(Const(words[0], signed(tw)))
            else:
                style = "logic" if level < self._logic_levels else self._style
                mem = _memory(words, tw, style)
                m.submodules[f"level{level}"] = mem
                rp = mem.read_port(domain="sync")
                m.d.comb += rp.addr.eq(addr)
                data.append(rp.data)
            # the next stage's registers
            v_n = Signal(name=f"v{level + 1}")
            acc_n = Signal.like(self.acc, name=f"acc{level + 1}")
            group_n = Signal(gw, name=f"group{level + 1}")
            m.d.sync += [v_n.eq(valid), acc_n.eq(acc), group_n.eq(group)]
            if level:
                prefix_n = Signal(level, name=f"prefix{level + 1}")
                m.d.sync += prefix_n.eq(prefix)
            else:
                prefix_n = Const(0, 0)
            bit = Signal(name=f"bit{level}")
            m.d.comb += bit.eq(acc_n >= data[level])
            valid, acc, group = v_n, acc_n, group_n
            prefix = Cat(bit, prefix_n)        # the decided bits, the newest lowest
        m.d.comb += [self.code.eq(prefix), self.code_valid.eq(valid)]
        return m


class ThresholdSequential(wiring.Component):
    """``code = sum_t (acc >= T[group][t])`` by a binary search that reads one memory
    word per cycle: one comparator and one memory of ``groups * 2**bits`` words (see
    :func:`sequential_words`) for all of a lane's thresholds.

    Parameters
    ----------
    acc_width, threshold_width, bits, thresholds
        As for :class:`ThresholdSearch`.
    style : None, "block", "logic" or "external"
        ``"external"``: the unit has no memory; it drives ``mem_addr`` and takes
        ``mem_data`` one cycle later (a synchronous read, e.g. an SPRAM), and the words
        of :func:`sequential_words` must be in that memory.

    Members
    -------
    valid, acc, group, code, code_valid
        As for :class:`ThresholdSearch`; ``valid`` may be high at most once every
        ``bits`` cycles (an input on the cycle ``code_valid`` is high is taken).
    mem_addr : Out(unsigned(bits + group bits))
        ``"external"`` only: the word to read.
    mem_data : In(signed(threshold_width))
        ``"external"`` only: the word addressed on the previous cycle.

    Latency: ``bits`` cycles; one input every ``bits`` cycles at most.
    """

    def __init__(self, *, acc_width: int, threshold_width: int, bits: int, thresholds,
                 style=None) -> None:
        _check_unit_widths(acc_width, threshold_width, bits)
        if style not in THRESHOLD_STYLES:
            raise ValueError(f"Style must be None, 'block', 'logic' or 'external', not "
                             f"{style!r}")
        self._table = _check_table(thresholds, bits, threshold_width)
        self._bits, self._tw, self._style = bits, threshold_width, style
        self.latency = bits
        gw = max(1, (len(self._table) - 1).bit_length())
        ports = {
            "valid": In(1),
            "acc": In(signed(acc_width)),
            "group": In(unsigned(gw)),
            "code": Out(unsigned(bits)),
            "code_valid": Out(1),
        }
        if style == "external":
            aw = bits + (gw if len(self._table) > 1 else 0)
            ports.update({"mem_addr": Out(unsigned(aw)), "mem_data": In(signed(threshold_width))})
        super().__init__(ports)

    @property
    def groups(self) -> int:
        return len(self._table)

    @property
    def words(self) -> list[int]:
        """The memory's contents (:func:`sequential_words`)."""
        return sequential_words(self._table, self._bits)

    def elaborate(self, platform):
        m = Module()
        bits, tw = self._bits, self._tw
        one_group = self.groups == 1
        acc = Signal.like(self.acc, name="acc_held")
        group = Signal.like(self.group, name="group_held")
        node = Signal(bits, name="node")              # heap node being compared
        step = Signal(range(bits + 1), name="step")   # comparisons left
        if self._style == "external":
            addr, data = self.mem_addr, self.mem_data
        else:
            mem = _memory(self.words, tw, self._style)
            m.submodules.thresholds = mem
            rp = mem.read_port(domain="sync")
            addr, data = rp.addr, rp.data
        bit = Signal(name="bit")
        m.d.comb += bit.eq(acc >= data)
        nxt = Cat(bit, node)                          # the child: 2 * node + bit
        m.d.comb += [self.code.eq(nxt[:bits]), self.code_valid.eq(step == 1)]

        def at(n, g):
            return n if one_group else Cat(n, g)

        with m.If(self.valid):
            m.d.comb += addr.eq(at(Const(1, bits), self.group))
            m.d.sync += [acc.eq(self.acc), group.eq(self.group), node.eq(1), step.eq(bits)]
        with m.Else():
            m.d.comb += addr.eq(at(nxt[:bits], group))
            with m.If(step != 0):
                m.d.sync += [node.eq(nxt[:bits]), step.eq(step - 1)]
        return m
