"""Threshold units: output code = number of thresholds the accumulator reaches."""

from __future__ import annotations

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .product import _check_width

__all__ = ["ThresholdUnit", "threshold_code"]


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
