"""The NumPy golden model: the numeric contract, exactly, on a batch of inputs.

Everything is int64 and exact. One function per hardware unit (products, dense and conv
accumulation, thresholds, max-pool, argmax), and :func:`run` chaining them over a model.
The RTL is correct when it agrees with these functions on every output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import limits
from ..errors import InputError
from .format import Conv2d, Dense, Flatten, MaxPool, Model, OutputKind, ComputeLayer

__all__ = [
    "product_table", "dense_acc", "conv2d_acc", "conv2d_windows", "apply_thresholds",
    "maxpool", "argmax", "layer_forward", "run", "GoldenResult", "AccBounds",
    "accumulator_bounds", "signed_width", "check_input_codes", "values_per_sample",
]

# Work on this many samples at a time so that large batches stay within memory.
_CHUNK_ELEMENTS = 1 << 24


def product_table(layer: ComputeLayer) -> np.ndarray:
    """``P[k][c]``: the layer's explicit table, else ``W[k] * A[c]`` (int64, ``[K, Na]``)."""
    w = layer.weights
    if w.products is not None:
        return w.products.astype(np.int64)
    return np.multiply.outer(w.codebook.astype(np.int64),
                             layer.activation_codebook.astype(np.int64))


def dense_acc(table: np.ndarray, codes: np.ndarray, bias: np.ndarray,
              x: np.ndarray) -> np.ndarray:
    """``acc[n, j] = bias[j] + sum_i table[codes[j, i], x[n, i]]``.

    ``x`` may hold the code ``Na`` (one past the last) to mean "padding": it contributes 0.
    """
    n_w, n_a = table.shape
    out, n_in = codes.shape
    x = np.asarray(x, dtype=np.int64)
    padded = np.concatenate([table, np.zeros((n_w, 1), np.int64)], axis=1)
    acc = np.empty((x.shape[0], out), np.int64)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n_in * min(n_w, n_a + 1)))
    for s in range(0, x.shape[0], chunk):
        xs = x[s:s + chunk]
        a = np.broadcast_to(bias, (xs.shape[0], out)).copy()
        if n_a + 1 <= n_w:
            # Loop over activation codes: rows of P gathered by weight code.
            for c in range(n_a + 1):
                hit = (xs == c).astype(np.int64)          # [n, in]
                if hit.any():
                    a += hit @ padded[codes, c].T          # [n, in] @ [in, out]
        else:
            # Loop over weight codes: one matmul per code.
            for k in range(n_w):
                mask = (codes == k).astype(np.int64)      # [out, in]
                if mask.any():
                    a += padded[k][xs] @ mask.T
        acc[s:s + chunk] = a
    return acc


def conv2d_windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                   padding: tuple[int, int], pad_code: int) -> np.ndarray:
    """Sliding windows of ``x [N, H, W, C]`` as ``[N, OH, OW, kh * kw * C]`` in
    (row, column, channel) order; padded positions hold ``pad_code``."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xp = np.full((n, h + 2 * ph, w + 2 * pw, c), pad_code, np.int64)
    xp[:, ph:ph + h, pw:pw + w, :] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    cols = np.empty((n, oh, ow, kh, kw, c), np.int64)
    for dy in range(kh):
        for dx in range(kw):
            cols[:, :, :, dy, dx, :] = xp[:, dy:dy + sh * oh:sh, dx:dx + sw * ow:sw, :]
    return cols.reshape(n, oh, ow, kh * kw * c)


def conv2d_acc(table: np.ndarray, codes: np.ndarray, bias: np.ndarray, x: np.ndarray,
               stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """Convolution accumulators ``[N, OH, OW, out]``; ``codes`` is ``[out, kh, kw, C]``."""
    out, kh, kw, c = codes.shape
    cols = conv2d_windows(x, (kh, kw), stride, padding, pad_code=table.shape[1])
    n, oh, ow, taps = cols.shape
    acc = dense_acc(table, codes.reshape(out, taps), bias, cols.reshape(-1, taps))
    return acc.reshape(n, oh, ow, out)


def apply_thresholds(acc: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``out[..., j] = sum_t (acc[..., j] >= T[j, t])``."""
    acc = np.asarray(acc, np.int64)
    return (acc[..., None] >= thresholds).sum(axis=-1).astype(np.int64)


def maxpool(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """Max over ``kernel`` windows of ``x [N, H, W, C]`` (no padding, floor)."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.full((n, oh, ow, c), np.iinfo(np.int64).min, np.int64)
    for dy in range(kh):
        for dx in range(kw):
            out = np.maximum(out, x[:, dy:dy + sh * oh:sh, dx:dx + sw * ow:sw, :])
    return out


def argmax(acc: np.ndarray) -> np.ndarray:
    """Index of the largest accumulator along the last axis; ties go to the lowest index."""
    return np.argmax(acc, axis=-1)[..., None].astype(np.int64)


def layer_forward(layer, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """One layer on a batch: returns (output, accumulators or None)."""
    if isinstance(layer, Flatten):
        return x.reshape(x.shape[0], -1), None
    if isinstance(layer, MaxPool):
        return maxpool(x, layer.kernel, layer.stride), None
    table = product_table(layer)
    codes = layer.weights.codes.astype(np.int64)
    bias = layer.bias.astype(np.int64)
    if isinstance(layer, Dense):
        acc = dense_acc(table, codes, bias, x)
    else:
        acc = conv2d_acc(table, codes, bias, x, layer.stride, layer.padding)
    kind = layer.output.kind
    if kind is OutputKind.THRESHOLDS:
        return apply_thresholds(acc, layer.output.thresholds), acc
    if kind is OutputKind.ARGMAX:
        return argmax(acc), acc
    return acc, acc


@dataclass(frozen=True)
class GoldenResult:
    """Every layer's output (codes, or the last layer's accumulators / class) and the
    accumulators of every compute layer (``None`` for maxpool and flatten)."""

    outputs: tuple[np.ndarray, ...]
    accumulators: tuple[np.ndarray | None, ...]

    @property
    def output(self) -> np.ndarray:
        return self.outputs[-1]

    @property
    def last_accumulators(self) -> np.ndarray:
        return next(a for a in reversed(self.accumulators) if a is not None)


def check_input_codes(model: Model, x: np.ndarray, layer: int = 0) -> np.ndarray:
    """Validate a batch of input codes for `layer` and return it as int64.

    Accepts one sample (the layer's input shape) or a batch (a leading batch axis).
    """
    io = model.io[layer]
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        what = "booleans" if x.dtype.kind == "b" else f"an array of {x.dtype}"
        raise InputError(f"input codes must be integers, got {what}")
    if x.shape == io.in_shape:
        x = x[None]
    if x.shape[1:] != io.in_shape:
        raise InputError(f"layer {layer} '{model.layers[layer].name}' expects inputs of shape "
                         f"{list(io.in_shape)} (or a batch [N, {', '.join(map(str, io.in_shape))}]), "
                         f"got {list(x.shape)}")
    # Range check in the array's own type: a uint64 code past int64 shows as itself.
    if x.size and (x.min() < 0 or x.max() >= io.in_codes):
        bad = np.argwhere((x < 0) | (x >= io.in_codes))[0]
        raise InputError(f"input code {int(x[tuple(bad)])} at index {bad.tolist()} is out of "
                         f"range for layer {layer} '{model.layers[layer].name}' (expected "
                         f"0 <= code < {io.in_codes}, {io.in_bits}-bit codes)")
    return x.astype(np.int64)


def values_per_sample(model: Model, start: int = 0, stop: int | None = None) -> int:
    """The largest array, in values per sample, that :func:`run` makes for one layer of
    ``start .. stop-1``: a conv2d layer's windows, a layer's threshold comparisons, a map."""
    most = 1
    for layer, io in zip(model.layers[start:stop], model.io[start:stop]):
        size = max(int(np.prod(io.in_shape)), int(np.prod(io.out_shape)))
        if isinstance(layer, Conv2d):
            positions = int(np.prod(io.out_shape[:2]))
            size = max(size, positions * int(np.prod(layer.weights.codes.shape[1:])))
        if isinstance(layer, (Dense, Conv2d)) and layer.output.thresholds is not None:
            size = max(size, int(np.prod(io.out_shape)) * layer.output.thresholds.shape[1])
        most = max(most, size)
    return most


def run(model: Model, x: np.ndarray, start: int = 0, stop: int | None = None) -> GoldenResult:
    """Run layers ``start .. stop-1`` on a batch of codes (``[N, *input shape]``)."""
    x = check_input_codes(model, x, start)
    limits.check(x.shape[0] * values_per_sample(model, start, stop),
                 f"the golden model on {x.shape[0]:,} samples (its largest array)")
    outputs, accs = [], []
    for layer in model.layers[start:stop]:
        x, acc = layer_forward(layer, x)
        outputs.append(x)
        accs.append(acc)
    return GoldenResult(tuple(outputs), tuple(accs))


# -- accumulator bounds -------------------------------------------------------------------

@dataclass(frozen=True)
class AccBounds:
    """Exact per-channel extremes of a layer's pre-activation over every input."""

    low: np.ndarray    # [out]
    high: np.ndarray   # [out]

    @property
    def min(self) -> int:
        return int(self.low.min())

    @property
    def max(self) -> int:
        return int(self.high.max())

    @property
    def width(self) -> int:
        """Two's complement width that holds every reachable pre-activation."""
        return max(signed_width(self.min), signed_width(self.max))


def signed_width(value: int) -> int:
    """Bits of the smallest two's complement type holding `value`."""
    value = int(value)
    return (value if value >= 0 else ~value).bit_length() + 1


def accumulator_bounds(layer: ComputeLayer, in_shape: tuple[int, ...] | None = None) -> AccBounds:
    """Exact min and max of ``acc[j]`` when every input code ranges freely.

    Each input contributes independently, so the extreme sum is the sum of per-input
    extremes. For conv2d the set of in-bounds taps depends on the output position
    (padding contributes 0), so the extremes are taken over positions too; that needs
    the input's spatial shape.
    """
    table = product_table(layer)
    pmin, pmax = table.min(axis=1), table.max(axis=1)
    codes = layer.weights.codes
    bias = layer.bias.astype(np.int64)
    if isinstance(layer, Dense):
        return AccBounds(bias + pmin[codes].sum(axis=1), bias + pmax[codes].sum(axis=1))
    if in_shape is None:
        raise ValueError("accumulator_bounds of a conv2d layer needs its input shape")
    h, w = in_shape[0], in_shape[1]
    kh, kw = layer.kernel
    valid = conv2d_windows(np.zeros((1, h, w, 1), np.int64), (kh, kw), layer.stride,
                           layer.padding, pad_code=1)[0] == 0      # [OH, OW, kh*kw]
    valid = valid.reshape(-1, kh * kw).astype(np.int64)               # [positions, taps]
    lo_tap = pmin[codes].sum(axis=3).reshape(codes.shape[0], -1)      # [out, taps]
    hi_tap = pmax[codes].sum(axis=3).reshape(codes.shape[0], -1)
    low = (lo_tap @ valid.T).min(axis=1)
    high = (hi_tap @ valid.T).max(axis=1)
    return AccBounds(bias + low, bias + high)
