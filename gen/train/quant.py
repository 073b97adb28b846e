"""Quantizers: float weights and activations to integer codebooks, codes and a scale.

Weights (``quantize_weights``): a float array becomes codes into an integer codebook
``W[k]`` and one real scale per layer, so that ``w ~ scale * W[codes]``.

- uniform (b bits): the codebook is two's complement (code k is k read as a b-bit signed
  number) but weights are projected only onto the symmetric levels
  ``-(2**(b-1) - 1) .. 2**(b-1) - 1``: the most negative value is never used, so every
  used level has its negation in the codebook, which threshold folding needs to flip a
  channel.
- binary: ``{-1, +1}``, scale = mean ``|w|`` (XNOR-Net).
- ternary: ``{0, +1, -1}``, zero below ``0.7 * mean |w|`` (TWN), scale = mean of the rest.
- pot (b bits: a sign and a (b-1)-bit exponent field, one field value meaning zero):
  ``0`` and ``+-2**e`` for ``e = 0 .. 2**(b-1) - 2``; b = 1 is ``{-1, +1}``.
- apot (b bits): ``0`` and ``+-m`` for the ``2**(b-1) - 1`` smallest magnitudes ``m`` that
  are a power of two or a sum of two (Li et al. 2020, additive powers of two: every
  product is at most two shifts and an add); for 4 bits ``1, 2, 3, 4, 5, 6, 8``.
- lut (LUT-Q, Cardinaux et al.): a K-entry float dictionary ``d`` and an assignment
  ``A`` learned by one-step k-means (:func:`kmeans_step`), integerized at a chosen
  precision; variants ``pot`` (every entry ``+-s * 2**e`` or 0: multiplier-less) and
  pruned (entry 0 pinned at 0 and at least a target fraction of the weights on it).
  A connection mask (sparse fan-in, :mod:`mulfree.gen.train.net`) pins entry 0 at 0 the
  same way and puts every masked weight on it.

For the fixed-level schemes the scale is chosen to minimize the squared error over a grid
of candidates (deterministic). Projection is to the nearest level; a value exactly half
way between two levels goes to the upper one. Projection is idempotent.

Activations (:class:`ActQuant`): codes ``c`` in ``[0, 2**b)`` with integer levels
``A[c]`` (the layer's activation codebook) and a real step, value ``= step * A[c]``:

- uniform: ReLU clipped at ``alpha``, ``A[c] = c``, step ``alpha / (2**b - 1)``;
- bipolar: 1 bit, ``A = [-1, +1]`` (the sign, ``y >= 0`` gives +1);
- learned: any increasing levels (LQ-Net / table-based units), integerized at a
  precision.

The code of a real ``y`` is the number of decision boundaries ``<= y`` (boundaries are
the midpoints between consecutive level values), which is exactly the integer
threshold rule ``sum_t (acc >= T[t])`` once folded (:mod:`mulfree.gen.train.fold`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..model.format import MAX_CODE_BITS, Scheme, Weights

__all__ = [
    "WEIGHT_SCHEMES", "check_float_array", "check_bits", "weight_levels", "project",
    "QuantizedWeights", "quantize_weights", "usable_levels", "best_scale", "lutq_init", "kmeans_assign",
    "kmeans_step", "lutq_error", "lutq_quantize", "integerize_levels", "pot_project",
    "ActQuant", "uniform_act", "bipolar_act", "learned_act",
]

WEIGHT_SCHEMES = ("uniform", "binary", "ternary", "pot", "apot", "lut")

# Candidate clipping fractions of max|w| for the MSE scale search.
_SCALE_GRID = np.linspace(0.15, 1.0, 35)


# -- input checks ---------------------------------------------------------------------

def check_float_array(w, what: str = "weights") -> np.ndarray:
    """A finite, non-empty float64 array, or :class:`InputError` saying what is wrong."""
    try:
        arr = np.asarray(w, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what}: expected an array of numbers") from None
    if arr.size == 0:
        raise InputError(f"{what}: empty (shape {list(arr.shape)}); a layer needs at least "
                         f"one weight")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise InputError(f"{what}: contains NaN or infinity (first at index {bad})")
    return arr


def check_bits(scheme: str, bits: int, what: str = "weight bits") -> int:
    """Validate a code width for a scheme; return it as an int."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise InputError(f"{what} must be an integer, got {bits!r}")
    bits = int(bits)
    if scheme == "binary" and bits != 1:
        raise InputError(f"the binary scheme has 1-bit weights, got {what} = {bits}")
    if scheme == "ternary" and bits != 2:
        raise InputError(f"the ternary scheme has 2-bit weights, got {what} = {bits}")
    if scheme == "uniform" and not 2 <= bits <= 16:
        raise InputError(f"uniform weights need 2 to 16 bits, got {what} = {bits}")
    if scheme == "pot" and not 1 <= bits <= 6:
        # 6 bits: exponents up to 2**30, the largest the model format allows.
        raise InputError(f"pot weights need 1 to 6 bits, got {what} = {bits}")
    if scheme == "apot" and not 2 <= bits <= 8:
        # 8 bits: 127 magnitudes, the largest 2**15 + 2**5.
        raise InputError(f"apot weights need 2 to 8 bits, got {what} = {bits}")
    if scheme in ("lut", "table") and not 1 <= bits <= MAX_CODE_BITS:
        raise InputError(f"{scheme} weights need 1 to {MAX_CODE_BITS} bits, got {what} = {bits}")
    if scheme not in WEIGHT_SCHEMES + ("table",):
        raise InputError(f"unknown weight scheme {scheme!r} (expected one of "
                         f"{', '.join(WEIGHT_SCHEMES + ('table',))})")
    return bits


# -- fixed-level schemes --------------------------------------------------------------

def weight_levels(scheme: str, bits: int) -> np.ndarray:
    """The integer codebook of a fixed-level scheme (closed under negation).

    Order: uniform in two's complement code order; binary ``[-1, +1]``; ternary
    ``[0, +1, -1]``; pot and apot ``0``, the positive levels ascending, then their
    negations (code = sign bit above the magnitude field).
    """
    bits = check_bits(scheme, bits)
    if scheme == "uniform":
        k = np.arange(2**bits, dtype=np.int64)
        return np.where(k >= 2 ** (bits - 1), k - 2**bits, k)
    if scheme == "binary":
        return np.array([-1, 1], np.int64)
    if scheme == "ternary":
        return np.array([0, 1, -1], np.int64)
    if scheme == "pot":
        if bits == 1:
            return np.array([-1, 1], np.int64)
        mags = 2 ** np.arange(2 ** (bits - 1) - 1, dtype=np.int64)
    elif scheme == "apot":
        n = 2 ** (bits - 1) - 1
        sums = {(1 << e1) + (1 << e2) for e1 in range(32) for e2 in range(e1)}
        mags = np.array(sorted(sums | {1 << e for e in range(32)})[:n], np.int64)
    else:
        raise InputError(f"scheme {scheme!r} has no fixed levels (it is learned)")
    return np.concatenate([[0], mags, -mags]).astype(np.int64)


def project(x: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Index into ``levels`` of the nearest level to each element (ties go up)."""
    levels = np.asarray(levels, np.float64)
    order = np.argsort(levels, kind="stable")
    s = levels[order]
    # Compare the real distances to the two neighbours: a midpoint (a + b) / 2 can round
    # onto one of them (subnormal levels), which would break "nearest" and idempotence.
    above = np.searchsorted(s, x, side="left")
    hi = np.minimum(above, s.size - 1)
    lo = np.maximum(above - 1, 0)
    x = np.asarray(x, np.float64)
    take_hi = np.abs(s[hi] - x) <= np.abs(x - s[lo])
    return order[np.where(take_hi, hi, lo)]


def usable_levels(scheme: str, bits: int) -> np.ndarray:
    """The levels projection may choose: the codebook, minus uniform's most negative value."""
    levels = weight_levels(scheme, bits)
    if scheme == "uniform":
        levels = levels[levels != -(2 ** (bits - 1))]
    return levels


def best_scale(w: np.ndarray, levels: np.ndarray) -> float:
    """The scale (from a fixed grid of clipping fractions) that minimizes ``|w - s*L|^2``."""
    top = float(np.abs(levels).max())
    wmax = float(np.abs(w).max())
    if wmax == 0.0 or top == 0.0:
        return 1.0
    best, best_err = wmax / top, np.inf
    flat = w.ravel()
    for frac in _SCALE_GRID:
        s = frac * wmax / top
        q = levels[project(flat / s, levels)] * s
        err = float(np.sum((flat - q) ** 2))
        if err < best_err:
            best, best_err = s, err
    return best


@dataclass(frozen=True)
class QuantizedWeights:
    """``w ~ scale * codebook[codes]``."""

    scheme: str
    bits: int
    codes: np.ndarray
    codebook: np.ndarray
    scale: float

    def values(self) -> np.ndarray:
        """The fake-quantized float weights."""
        return self.scale * self.codebook[self.codes].astype(np.float64)

    def to_weights(self) -> Weights:
        """The model-format :class:`~mulfree.gen.model.format.Weights`."""
        return Weights(Scheme(self.scheme), self.bits, self.codes.astype(np.int64),
                       codebook=self.codebook.astype(np.int64))


def quantize_weights(w, scheme: str, bits: int, scale: float | None = None, *,
                     lut_steps: int = 20, lut_pot: bool = False, lut_prune: float = 0.0,
                     precision: int = 8) -> QuantizedWeights:
    """Quantize a float weight array with a scheme (see the module docstring)."""
    w = check_float_array(w)
    bits = check_bits(scheme, bits)
    if scheme == "lut":
        return lutq_quantize(w, bits, steps=lut_steps, pot=lut_pot, prune=lut_prune,
                             precision=precision)
    if scheme == "table":
        raise InputError("the table scheme quantizes weights with LUT-Q; use "
                         "mulfree.gen.train.tbn to build its product table")
    levels = weight_levels(scheme, bits)
    if scale is None:
        if scheme == "binary":
            scale = float(np.mean(np.abs(w))) or 1.0
        elif scheme == "ternary":
            delta = 0.7 * float(np.mean(np.abs(w)))
            big = np.abs(w) > delta
            scale = float(np.mean(np.abs(w[big]))) if big.any() else 1.0
            codes = np.where(w > delta, 1, np.where(w < -delta, 2, 0))
            return QuantizedWeights(scheme, bits, codes.astype(np.int64), levels, scale)
        else:
            scale = best_scale(w, usable_levels(scheme, bits))
    if not (np.isfinite(scale) and scale > 0):
        raise InputError(f"weight scale must be a positive number, got {scale!r}")
    usable = levels
    if scheme == "uniform":
        usable = np.where(levels == -(2 ** (bits - 1)), 0, levels)  # never pick the odd one
    codes = project(w / scale, usable)
    if scheme == "uniform":
        codes = np.where(usable[codes] < 0, usable[codes] + 2**bits, usable[codes])
    return QuantizedWeights(scheme, bits, codes.astype(np.int64), levels, float(scale))


# -- LUT-Q -----------------------------------------------------------------------------

def pot_project(d: np.ndarray, unit: float, n_exp: int, allow_zero: bool = True) -> np.ndarray:
    """Nearest value of ``{0} u {+-unit * 2**e : 0 <= e < n_exp}`` to each entry of ``d``."""
    mags = unit * 2.0 ** np.arange(n_exp)
    cands = np.concatenate([[0.0] if allow_zero else [], mags, -mags])
    return cands[project(d, cands)]


def lutq_init(w: np.ndarray, k: int, *, pot: bool = False, prune: float = 0.0,
              mask: np.ndarray | None = None) -> np.ndarray:
    """A deterministic starting dictionary: ``k`` quantiles of the weights (entry 0 is
    0 when pruning or masking, the quantiles then of the other weights; entries projected
    to powers of two for the pot variant). ``mask`` (``True``: a connection) leaves the
    masked weights out of the quantiles."""
    w = check_float_array(w).ravel()
    if k < 1:
        raise InputError(f"a LUT-Q dictionary needs at least one entry, got {k}")
    if mask is not None:
        w = w[np.asarray(mask, bool).ravel()] if np.any(mask) else w
    if prune or mask is not None:
        rest = w
        if prune:
            rest = w[np.abs(w) > np.quantile(np.abs(w), prune)] if prune < 1 else w[:0]
        rest = rest if rest.size else w
        d = np.concatenate([[0.0], np.quantile(rest, (np.arange(k - 1) + 0.5) / max(k - 1, 1))])
    else:
        d = np.quantile(w, (np.arange(k) + 0.5) / k)
    if pot:
        d = _pot_dict(d, w, k, bool(prune) or mask is not None)
    return d


def _pot_unit(w: np.ndarray, n_exp: int) -> float:
    top = float(np.abs(w).max()) or 1.0
    return top / 2.0 ** (n_exp - 1)


def _pot_dict(d: np.ndarray, w: np.ndarray, k: int, pinned: bool) -> np.ndarray:
    n_exp = max(1, k // 2)
    out = pot_project(d, _pot_unit(w, n_exp), n_exp, allow_zero=False)
    if pinned:
        out[0] = 0.0
    return out


def kmeans_assign(w: np.ndarray, d: np.ndarray, prune: float = 0.0,
                  mask: np.ndarray | None = None) -> np.ndarray:
    """Nearest dictionary entry for each weight; with pruning, the ``prune`` fraction of
    smallest-magnitude weights is assigned to entry 0 (which is pinned at 0); with a
    ``mask``, every weight where it is ``False`` as well."""
    flat = w.ravel()
    if prune <= 0 and mask is None:
        return project(flat, d).reshape(w.shape)
    a = np.empty(flat.size, np.int64)
    small = np.zeros(flat.size, bool)
    if prune > 0:
        small[np.argsort(np.abs(flat), kind="stable")[:int(np.ceil(prune * flat.size))]] = True
    if mask is not None:
        small |= ~np.asarray(mask, bool).ravel()
    a[small] = 0
    a[~small] = project(flat[~small], d) if d.size > 1 else 0
    return a.reshape(w.shape)


def kmeans_step(w: np.ndarray, d: np.ndarray, *, pot: bool = False, prune: float = 0.0,
                unit: float | None = None, mask: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """One LUT-Q k-means step: assign each weight to its nearest entry, then move each
    entry to the mean of its weights (projected to the nearest allowed value for the pot
    variant; entry 0 stays 0 when pruning; an entry with no weights stays put).

    Never increases ``lutq_error`` (Lloyd's argument: each half-step minimizes the error
    with the other half fixed; the allowed values are chosen per entry independently).
    ``mask`` as in :func:`kmeans_assign`.
    """
    w = np.asarray(w, np.float64)
    a = kmeans_assign(w, d, prune, mask)
    flat, af = w.ravel(), a.ravel()
    counts = np.bincount(af, minlength=d.size)
    sums = np.bincount(af, weights=flat, minlength=d.size)
    new = d.astype(np.float64).copy()
    hit = counts > 0
    new[hit] = sums[hit] / counts[hit]
    if pot:
        n_exp = max(1, d.size // 2)
        u = unit if unit is not None else _pot_unit(w, n_exp)
        new[hit] = pot_project(new[hit], u, n_exp, allow_zero=False)
    if prune > 0 or mask is not None:
        new[0] = 0.0
    return a, new


def lutq_error(w: np.ndarray, d: np.ndarray, a: np.ndarray) -> float:
    """Sum of squared differences between the weights and ``d[a]``."""
    return float(np.sum((np.asarray(w, np.float64) - d[a]) ** 2))


def integerize_levels(values: np.ndarray, precision: int, signed: bool = True
                      ) -> tuple[np.ndarray, float]:
    """Integers ``L`` and a scale with ``values ~ scale * L``, ``|L| < 2**(precision-1)``
    (``signed``) or ``L < 2**precision``. Powers of two times a common unit stay exact."""
    values = check_float_array(values, "levels")
    if not 2 <= precision <= 24:
        raise InputError(f"integer precision must be 2 to 24 bits, got {precision}")
    top = float(np.abs(values).max())
    if top == 0.0:
        return np.zeros(values.shape, np.int64), 1.0
    nz = np.abs(values[values != 0])
    ratio = nz / nz.min()
    if np.allclose(ratio, 2.0 ** np.round(np.log2(ratio)), rtol=1e-9, atol=0) \
            and ratio.max() < 2 ** (precision - 1):
        scale = float(nz.min())          # pot dictionary: exact small integers
    else:
        scale = top / (2 ** (precision - 1 if signed else precision) - 1)
    return np.round(values / scale).astype(np.int64), scale


def lutq_quantize(w, bits: int, *, steps: int = 20, pot: bool = False, prune: float = 0.0,
                  precision: int = 8, d: np.ndarray | None = None) -> QuantizedWeights:
    """LUT-Q post-training: ``2**bits`` entries, ``steps`` k-means steps, then the
    dictionary integerized at ``precision`` bits (the codebook is ``round(d / scale)``)."""
    w = check_float_array(w)
    bits = check_bits("lut", bits)
    if not 0.0 <= prune < 1.0:
        raise InputError(f"pruning sparsity must be in [0, 1), got {prune}")
    k = 2**bits
    if d is None:
        d = lutq_init(w, k, pot=pot, prune=prune)
    unit = _pot_unit(w, max(1, k // 2)) if pot else None
    for _ in range(steps):
        _, d = kmeans_step(w, d, pot=pot, prune=prune, unit=unit)
    a = kmeans_assign(w, d, prune)
    cb, scale = integerize_levels(d, precision)
    return QuantizedWeights("lut", bits, a.astype(np.int64), cb, scale)


# -- activations -----------------------------------------------------------------------

@dataclass(frozen=True)
class ActQuant:
    """An activation quantizer: codes ``0 .. n-1``, integer levels ``A``, a real step.

    ``value(c) = step * A[c]``; ``code(y) = #{t : y >= boundaries[t]}``.
    """

    kind: str
    bits: int
    levels: np.ndarray   # integer A[c], increasing
    step: float

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= MAX_CODE_BITS:
            raise InputError(f"activation bits must be 1 to {MAX_CODE_BITS}, got {self.bits}")
        if self.levels.size != 2**self.bits or np.any(np.diff(self.levels) <= 0):
            raise InputError(f"activation levels must be {2**self.bits} increasing integers")
        if not (np.isfinite(self.step) and self.step > 0):
            raise InputError(f"activation step must be a positive number, got {self.step!r}")

    @property
    def values(self) -> np.ndarray:
        return self.step * self.levels.astype(np.float64)

    @property
    def boundaries(self) -> np.ndarray:
        v = self.values
        return (v[1:] + v[:-1]) / 2

    def codes(self, y: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.boundaries, y, side="right").astype(np.int64)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """Fake-quantized values."""
        return self.values[self.codes(y)]


def uniform_act(bits: int, alpha: float) -> ActQuant:
    """ReLU clipped at ``alpha``, ``2**bits`` uniform levels from 0."""
    if not (np.isfinite(alpha) and alpha > 0):
        raise InputError(f"activation clip must be a positive number, got {alpha!r}")
    if not 1 <= bits <= MAX_CODE_BITS:
        raise InputError(f"activation bits must be 1 to {MAX_CODE_BITS}, got {bits}")
    return ActQuant("uniform", bits, np.arange(2**bits, dtype=np.int64), alpha / (2**bits - 1))


def bipolar_act(scale: float = 1.0) -> ActQuant:
    """The sign: ``{-scale, +scale}``, ``y >= 0`` gives code 1."""
    return ActQuant("bipolar", 1, np.array([-1, 1], np.int64), float(scale))


def learned_act(values, precision: int = 8) -> ActQuant:
    """Learned increasing levels, integerized at ``precision`` bits (levels closer than one
    integer step are pushed apart by one step, so the codebook stays increasing)."""
    values = check_float_array(values, "activation levels").ravel()
    n = values.size
    bits = max(1, (n - 1).bit_length())
    if n != 2**bits:
        raise InputError(f"learned activation levels must number a power of two, got {n}")
    if np.any(np.diff(values) <= 0):
        raise InputError("learned activation levels must be strictly increasing")
    ints, scale = integerize_levels(values, precision, signed=bool(values.min() < 0))
    # Levels closer than one integer step would collide: push each up to stay increasing.
    for i in range(1, ints.size):
        ints[i] = max(ints[i], ints[i - 1] + 1)
    return ActQuant("learned", bits, ints, scale)


