"""Integer thresholds for a quantizer after a float function of the accumulator.

Between a layer's accumulator and its output codes a graph computes, per channel, a chain
of monotone float operations (affine maps from scales, biases and batch norm; ReLU and
Clip) and then a quantizer (QONNX ``Quant``, ``BipolarQuant``, or FINN's
``MultiThreshold``). The composition is monotone in the accumulator, so the codes are
``sum_t (acc >= T[t])`` for integer thresholds ``T``. Each ``T[t]`` is found by binary
search over the channel's reachable accumulator range (about 50 steps for any width,
all channels and thresholds at once), evaluating the chain in float64 exactly as it is
defined, ties included: ``T[t]`` is the smallest reachable accumulator whose code is at
least ``t``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model.encoding import (bipolar_codes, int_quant_codes, quant_range, round_mode,
                              threshold_codes)

__all__ = ["Affine", "Relu", "Clip", "OutQuant", "Chain", "chain_value", "chain_direction",
           "search_thresholds", "TIE"]

TIE = 2.0**-16   # float32 sums are this close (relative to their terms) to the exact value


@dataclass(frozen=True)
class Affine:
    """``v -> scale * v + bias`` per channel."""

    scale: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class Relu:
    pass


@dataclass(frozen=True)
class Clip:
    lo: float | None
    hi: float | None


@dataclass(frozen=True)
class OutQuant:
    """The quantizer that ends the chain, per channel (arrays are ``[channels]``)."""

    kind: str                      # int | bipolar | thresholds | trunc
    scale: np.ndarray = field(default_factory=lambda: np.ones(1))
    zero_point: np.ndarray = field(default_factory=lambda: np.zeros(1))
    bits: int = 1
    signed: bool = True
    narrow: bool = False
    rounding: str = "ROUND"
    thresholds: np.ndarray | None = None   # [channels or 1, T] for kind thresholds
    trunc_scale: float = 1.0               # trunc: 2**round(log2(out_scale / scale))
    out_scale: float = 1.0                 # trunc: the value of one output step

    @property
    def n_codes(self) -> int:
        if self.kind == "bipolar" or (self.kind == "int" and self.bits == 1 and self.signed):
            return 2
        if self.kind in ("int", "trunc"):
            lo, hi = quant_range(self.bits, self.signed, self.narrow)
            return hi - lo + 1
        return int(self.thresholds.shape[1]) + 1

    @property
    def value_scale(self) -> np.ndarray:
        """The float value of one level (per channel or one)."""
        return np.asarray(self.out_scale if self.kind == "trunc" else self.scale, np.float64)

    def levels(self) -> np.ndarray:
        """The integer level (value / scale) of each code, per channel ``[C or 1, n]``."""
        z = np.asarray(self.zero_point, np.float64).reshape(-1, 1)
        if self.kind == "bipolar":
            return np.array([[-1, 1]], np.int64)
        if self.kind == "int" and self.bits == 1 and self.signed:
            return (np.array([[-1, 1]]) - z).astype(np.int64)
        if self.kind == "int":
            lo, hi = quant_range(self.bits, self.signed, self.narrow)
            return (np.arange(lo, hi + 1)[None, :] - z).astype(np.int64)
        if self.kind == "trunc":
            lo, hi = quant_range(self.bits, self.signed, self.narrow)
            return (np.arange(lo, hi + 1)[None, :] - z / self.trunc_scale).astype(np.int64)
        return np.arange(self.n_codes, dtype=np.int64)[None, :]

    def codes(self, v: np.ndarray) -> np.ndarray:
        """Codes of ``v`` ``[C, K]`` (row j is channel j), in float64."""
        col = lambda a: np.asarray(a, np.float64).reshape(-1, 1)  # noqa: E731
        t = None if self.thresholds is None else np.asarray(self.thresholds, np.float64)[:, None, :]
        return self.codes_with(v, col(self.scale), col(self.zero_point), t)

    def codes_with(self, v, scale, zero_point, thresholds) -> np.ndarray:
        """Codes of ``v`` with per-element parameters already broadcast against it."""
        if self.kind == "int":
            return int_quant_codes(v, scale, zero_point, self.bits, self.signed, self.narrow,
                                   self.rounding)
        if self.kind == "bipolar":
            return bipolar_codes(v)
        if self.kind == "trunc":
            # qonnx's Trunc (v2): round(x / scale + zero point), divided by the truncation
            # scale, clipped to the output range, rounded by the node's rounding mode.
            y = np.round(v / scale + zero_point) / self.trunc_scale
            lo, hi = quant_range(self.bits, self.signed, self.narrow)
            y = round_mode(self.rounding)(np.clip(y, lo, hi))
            return (y - lo).astype(np.int64)
        return threshold_codes(v, thresholds)


def chain_value(ops: list, acc: np.ndarray) -> np.ndarray:
    """The chain's float value for accumulators ``acc`` ``[C, K]`` (row j is channel j)."""
    v = acc.astype(np.float64)
    for op in ops:
        if isinstance(op, Affine):
            v = np.asarray(op.scale, np.float64)[:, None] * v + np.asarray(op.bias, np.float64)[:, None]
        elif isinstance(op, Relu):
            v = np.maximum(v, 0.0)
        elif isinstance(op, Clip):
            v = np.clip(v, -np.inf if op.lo is None else op.lo, np.inf if op.hi is None else op.hi)
        else:  # pragma: no cover - the lowering builds only these
            raise TypeError(f"unknown chain op {op!r}")
    return v


def chain_direction(ops: list, channels: int) -> np.ndarray:
    """+1 where the chain is non-decreasing in the accumulator, -1 where non-increasing."""
    sign = np.ones(channels)
    for op in ops:
        if isinstance(op, Affine):
            sign = sign * np.where(np.asarray(op.scale) < 0, -1.0, 1.0)
    return sign


def search_thresholds(code_at, lo: np.ndarray, hi: np.ndarray, n_codes: int,
                      n_thresholds: int) -> np.ndarray:
    """``T[j, t-1]`` = the smallest ``a`` in ``[lo[j], hi[j]]`` with ``code_at(a)[j] >= t``
    (``hi[j] + 1`` when none), for ``t = 1 .. n_thresholds``; ``code_at`` maps an int64
    array ``[C, K]`` to codes, non-decreasing along each row's accumulator. Thresholds for
    codes the quantizer cannot give (``t >= n_codes``) are ``hi + 1``: never reached."""
    lo = np.asarray(lo, np.int64)
    hi = np.asarray(hi, np.int64)
    c = lo.size
    t = np.arange(1, n_thresholds + 1)[None, :]
    low = np.repeat(lo[:, None], n_thresholds, axis=1)
    high = np.repeat(hi[:, None] + 1, n_thresholds, axis=1)
    while True:
        active = low < high
        if not active.any():
            break
        mid = low + (high - low) // 2
        reached = code_at(mid) >= t
        high = np.where(active & reached, mid, high)
        low = np.where(active & ~reached, mid + 1, low)
    out = np.where(t >= n_codes, hi[:, None] + 1, low)
    assert out.shape == (c, n_thresholds)
    return out


@dataclass(frozen=True)
class Chain:
    """A threshold layer's float definition: ``codes = quant(ops(sign * acc))`` per channel,
    and the largest accumulator magnitude of each channel (for the float32 tie test)."""

    ops: tuple
    quant: OutQuant
    sign: np.ndarray
    acc_max: np.ndarray

    def _pick(self, v, ch: np.ndarray) -> np.ndarray:
        a = np.asarray(v, np.float64)
        return a[ch] if a.ndim and a.size > 1 else np.broadcast_to(a.ravel()[0] if a.size else 0.0,
                                                                     ch.shape)

    def value_and_size(self, acc: np.ndarray, ch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The exact float value before the quantizer, and the magnitude of the terms a
        float computation of it adds up, for accumulators ``acc`` of channels ``ch``."""
        v = self.sign[ch] * acc.astype(np.float64)
        size = self.acc_max[ch].astype(np.float64)
        for op in self.ops:
            if isinstance(op, Affine):
                a, b = self._pick(op.scale, ch), self._pick(op.bias, ch)
                v, size = a * v + b, np.abs(a) * size + np.abs(b)
            elif isinstance(op, Relu):
                v = np.maximum(v, 0.0)
            else:
                v = np.clip(v, -np.inf if op.lo is None else op.lo, np.inf if op.hi is None else op.hi)
        return v, size

    def codes_at(self, v: np.ndarray, ch: np.ndarray) -> np.ndarray:
        q = self.quant
        rows = None
        if q.thresholds is not None:
            t = np.asarray(q.thresholds, np.float64)
            rows = t[ch] if t.shape[0] > 1 else np.broadcast_to(t[0], ch.shape + t.shape[1:])
        return q.codes_with(v, self._pick(q.scale, ch), self._pick(q.zero_point, ch), rows)

    def tie_codes(self, acc: np.ndarray, ch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The codes just below and just above the exact value (by ``TIE`` of its terms'
        magnitude): a float32 computation may land on either where they differ."""
        v, size = self.value_and_size(acc, ch)
        d = TIE * np.maximum(size, np.abs(v))
        return self.codes_at(v - d, ch), self.codes_at(v + d, ch)
