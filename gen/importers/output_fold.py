"""Making the argmax of the last layer's integers the model's class, exactly.

The source model's class is ``argmax_j (m[j] * acc[j] + c[j])`` (ties to the lowest
index); the hardware compares integers. With ``u`` the largest rational dividing every
``m[j]`` (``m`` and ``c`` are float64, so exact rationals), ``a[j] = m[j] / u`` are
integers and ``e[j] = c[j] / u = n[j] + f[j]`` with integer ``n[j]`` and ``0 <= f[j] < 1``.
Rank the distinct fractions ``f`` as ``r[j]`` in ``0 .. R-1``. Then, for any integers,

    m[j] x + c[j] > m[k] y + c[k]  <=>  R (a[j] x + n[j]) + r[j] > R (a[k] y + n[k]) + r[k]

(the left side is ``L + f[j] - f[k] > 0`` for the integer ``L = a[j] x + n[j] - a[k] y -
n[k]``; as ``|f[j] - f[k]| < 1`` that is ``L >= 1``, or ``L = 0`` and ``f[j] > f[k]``, which
is the right side as ``|r[j] - r[k]| < R``; equality holds on both sides together). So the
layer with weights ``R a[j] W[j]`` and bias ``R n[j] + r[j]`` has the model's argmax, ties
included. It is free (no weight changes) when every ``a[j]`` is 1 and ``R`` is 1: one
scale per tensor, biases that are whole multiples apart. It fits when the new weights stay
within 16 bits; per-channel scales learned in float (or batch norm after the last layer)
make ``a`` astronomically large, and then the layer must emit accumulators and the host
applies the float affine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = ["Fold", "fold_argmax"]

_MAX_WEIGHT = 2**15
_MAX_BIAS = 2**47


@dataclass(frozen=True)
class Fold:
    ok: bool
    why: str = ""
    ints: np.ndarray | None = None     # the new weights
    bias: np.ndarray | None = None     # the new integer bias
    scale: np.ndarray | None = None    # logits = scale * acc' + offset (float, for decoding)
    offset: np.ndarray | None = None


def _gcd(values: list[Fraction]) -> Fraction:
    num = 0
    den = 1
    for v in values:
        num = math.gcd(num, v.numerator)
        den = den * v.denominator // math.gcd(den, v.denominator)
    return Fraction(num, den)


def fold_argmax(ints: np.ndarray, m: np.ndarray, c: np.ndarray, free_only: bool = False) -> Fold:
    """The exact integer form of ``m * acc + c`` for the argmax, if it exists and fits
    (``free_only``: only if it leaves the weights unchanged)."""
    mf = [Fraction(float(v)) for v in np.ravel(m)]
    cf = [Fraction(float(v)) for v in np.ravel(c)]
    nonzero = [abs(v) for v in mf if v != 0]
    if not nonzero:
        return Fold(False, "every output channel has scale 0")
    u = _gcd(nonzero)
    a = [v / u for v in mf]
    if any(v.denominator != 1 for v in a):  # pragma: no cover - gcd guarantees integers
        return Fold(False, "internal: non-integer ratio")
    a_int = [int(v) for v in a]
    e = [v / u for v in cf]
    n = [math.floor(v) for v in e]
    f = [v - k for v, k in zip(e, n)]
    distinct = sorted(set(f))
    rank = {v: i for i, v in enumerate(distinct)}
    big_r = len(distinct)
    r = [rank[v] for v in f]
    mult = [big_r * v for v in a_int]
    if free_only and any(v != 1 for v in mult):
        why = ("the output channels have different scales (per-channel weight scales or a "
               "batch norm after the last layer)" if any(abs(v) != 1 for v in a_int) else
               "the output biases are not whole multiples of the output scale apart")
        return Fold(False, why)
    top = max(abs(v) for v in mult) * int(np.abs(ints).max(initial=1))
    if top >= _MAX_WEIGHT:
        return Fold(False, f"the output channels' scales are in ratios that need integer "
                           f"weights up to {_describe(top)} (more than 16 bits)")
    bias = [big_r * k + rr for k, rr in zip(n, r)]
    if max(abs(v) for v in bias) >= _MAX_BIAS:
        return Fold(False, "the output biases are too large for integers")
    shape = (-1,) + (1,) * (ints.ndim - 1)
    new = ints * np.array(mult, np.int64).reshape(shape)
    scale = np.full(len(mf), float(u / big_r))
    offset = np.array([float(u * (ff - Fraction(rr, big_r))) for ff, rr in zip(f, r)])
    return Fold(True, "", new, np.array(bias, np.int64), scale, offset)


def _describe(v: int) -> str:
    return f"2**{v.bit_length() - 1}" if v > 10**6 else str(v)
