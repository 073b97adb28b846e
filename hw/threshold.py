"""Threshold units: output code = number of thresholds the accumulator reaches."""

from __future__ import annotations

from amaranth.hdl import Const, Module, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .product import _check_width

__all__ = ["ThresholdUnit", "SequentialThresholdUnit", "threshold_code"]


def threshold_code(acc, thresholds):
    """``sum_t (acc >= T[t])`` as an Amaranth value (parallel comparators, then a sum).

    For non-decreasing thresholds the comparisons form a thermometer code, so the sum is
    the index of the first threshold not reached."""
    bits = [acc >= t for t in thresholds]
    total = 0
    for b in bits:
        total = total + b
    return total


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
