"""Threshold folding: dense/conv + batch norm + ReLU/clip + re-quantization -> integers.

The FQ-Conv idea in integer form. A quantized layer computes the exact integer
accumulator ``acc`` (``bias = 0``); the float network it stands for computes, per output
channel ``j``, the real pre-activation

    y[j] = a[j] * acc[j] + b[j]

where ``a[j]`` collects the weight scale, the activation step and the batch-norm scale
``gamma / sqrt(var + eps)`` and ``b[j]`` the float bias and the batch-norm shift
(:func:`bn_affine`). ReLU, clipping and re-quantization then give the output code
``#{t : y[j] >= B[t]}`` for the activation quantizer's decision boundaries ``B``
(:class:`mulfree.gen.train.quant.ActQuant`). Because ``acc`` is an integer and the map is
monotone, each boundary becomes one integer threshold:

    T[j][t] = the smallest integer x with  a[j] * x + b[j] >= B[t]   (a[j] > 0)

found by a search that evaluates the float expression itself, so the folded integer layer
agrees with the float expression ``a * acc + b`` (evaluated in float64, in that order) on
every input, including inputs that land exactly on a boundary: **ties go up** (a value
equal to a boundary takes the higher code, as in ``round half up``). A float network that
computes the same quantity in a different order (for example ``gamma * (z - mean) /
sqrt(var + eps) + beta``) can differ from it by a rounding error, so it agrees except
within about 1e-12 (relative) of a boundary.

Negative scales (a negative batch-norm ``gamma``): ``a[j] * x`` is decreasing, which
thresholds ``acc >= T`` cannot express. The channel's weights are flipped (every code
replaced by the code of the negated codebook entry) so the layer computes
``acc' = -acc``, and ``T`` is found for ``(-a[j]) * x + b[j]``, which is bit for bit the
same float value as ``a[j] * (-x) + b[j]``. This needs every used codebook entry's
negation in the codebook (true for the uniform, binary, ternary, pot and apot codebooks of
:mod:`mulfree.gen.train.quant`); otherwise :class:`ModelError`. ``a[j] = 0`` gives a constant
code. Thresholds are clipped into ``[low, high + 1]`` of the accumulator's reachable range
(a threshold above ``high`` never fires, one at ``low`` always does).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError, ModelError

__all__ = ["bn_affine", "fold_thresholds", "flip_codes", "affine_codes"]


def bn_affine(scale, bias, gamma, beta, mean, var, eps: float = 1e-5
              ) -> tuple[np.ndarray, np.ndarray]:
    """``y = a * acc + b`` for ``z = scale * acc + bias`` followed by batch norm.

    ``scale`` is the product of the weight scale and the input step (a scalar or one per
    channel); ``gamma, beta, mean, var`` are per channel.
    """
    gamma, beta, mean, var = (np.asarray(v, np.float64) for v in (gamma, beta, mean, var))
    for name, v in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)):
        if not np.all(np.isfinite(v)):
            raise InputError(f"batch norm {name} contains NaN or infinity")
    if np.any(var + eps <= 0):
        raise InputError("batch norm variance plus eps must be positive")
    inv = gamma / np.sqrt(var + eps)
    a = inv * np.asarray(scale, np.float64)
    b = inv * (np.asarray(bias, np.float64) - mean) + beta
    return np.broadcast_to(a, gamma.shape).copy(), np.broadcast_to(b, gamma.shape).copy()


def affine_codes(acc: np.ndarray, a: np.ndarray, b: np.ndarray,
                 boundaries: np.ndarray) -> np.ndarray:
    """The float reference: ``#{t : a * acc + b >= B[t]}`` per channel (last axis)."""
    y = a * np.asarray(acc, np.float64) + b
    bnd = np.asarray(boundaries, np.float64)
    if bnd.ndim == 1:
        return np.searchsorted(bnd, y, side="right").astype(np.int64)
    return (y[..., None] >= bnd).sum(axis=-1).astype(np.int64)


def fold_thresholds(a, b, boundaries, low, high) -> tuple[np.ndarray, np.ndarray]:
    """Integer thresholds for ``#{t : a[j] * acc + b[j] >= B[t]}``.

    Parameters
    ----------
    a, b : array [out]
        The per-channel affine map from the accumulator to the real pre-activation.
    boundaries : array [n - 1] or [out, n - 1]
        Non-decreasing decision boundaries of the output quantizer.
    low, high : array [out]
        The reachable accumulator range of each channel *before* any flip.

    Returns
    -------
    thresholds : int64 [out, n - 1]
        For the accumulator of the flipped layer (see ``flip``).
    flip : bool [out]
        Channels whose weights must be negated (:func:`flip_codes`).
    """
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    out = a.size
    bnd = np.asarray(boundaries, np.float64)
    if bnd.ndim == 1:
        bnd = np.broadcast_to(bnd, (out, bnd.size))
    if b.size != out or bnd.shape[0] != out:
        raise InputError(f"fold: expected {out} channels in a, b and boundaries")
    for name, v in (("scale", a), ("shift", b), ("boundaries", bnd)):
        if not np.all(np.isfinite(v)):
            raise InputError(f"fold: {name} contains NaN or infinity")
    if bnd.shape[1] and np.any(np.diff(bnd, axis=1) < 0):
        raise InputError("fold: boundaries must be non-decreasing")
    low = np.asarray(low, np.int64).ravel()
    high = np.asarray(high, np.int64).ravel()
    flip = a < 0
    am = np.abs(a)                       # (-a) * x is the same float as a * (-x)
    lo = np.where(flip, -high, low)
    hi = np.where(flip, -low, high)
    n_t = bnd.shape[1]
    t = np.empty((out, n_t), np.int64)
    A = am[:, None]
    B = b[:, None]
    LO = np.broadcast_to(lo[:, None], (out, n_t))
    HI = np.broadcast_to(hi[:, None], (out, n_t))

    def fires(x):
        return A * x.astype(np.float64) + B >= bnd

    with np.errstate(divide="ignore", invalid="ignore"):
        guess = np.ceil((bnd - B) / A)
    guess = np.where(np.isfinite(guess), guess, np.where(B >= bnd, -np.inf, np.inf))
    x = np.clip(guess, LO, HI + 1).astype(np.int64)
    # Walk down while the value one below still fires, up while this one does not.
    for _ in range(64):
        down = (x > LO) & fires(x - 1)
        if not down.any():
            break
        x = np.where(down, x - 1, x)
    for _ in range(64):
        up = (x <= HI) & ~fires(x)
        if not up.any():
            break
        x = np.where(up, x + 1, x)
    t[:] = x
    # A zero-scale channel is a constant: all or nothing per boundary.
    const = am == 0
    if const.any():
        on = (B >= bnd)[const]
        t[const] = np.where(on, LO[const], HI[const] + 1)
    t = np.maximum.accumulate(t, axis=1)
    return t, flip


def flip_codes(codes: np.ndarray, codebook: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """Replace, in each flipped output channel, every weight code by the code of the
    negated codebook entry (so the channel's accumulator changes sign)."""
    codes = np.asarray(codes, np.int64)
    flip = np.asarray(flip, bool)
    if not flip.any():
        return codes.copy()
    cb = np.asarray(codebook, np.int64)
    neg = np.full(cb.size, -1, np.int64)
    for k, v in enumerate(cb.tolist()):
        hits = np.flatnonzero(cb == -v)
        if hits.size:
            neg[k] = hits[0]
    used = np.unique(codes[flip])
    missing = used[neg[used] < 0]
    if missing.size:
        raise ModelError(f"cannot fold a negative batch-norm scale: codebook entry "
                         f"{int(cb[missing[0]])} (code {int(missing[0])}) has no negation in "
                         f"the codebook {cb.tolist()}")
    out = codes.copy()
    out[flip] = neg[codes[flip]]
    return out
