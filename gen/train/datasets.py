"""Data sets for training and evaluation, and their input codes.

``digits`` is scikit-learn's 8x8 handwritten digits (1797 images, pixel values 0..16,
ten classes), which ships with scikit-learn: no download. The split is fixed (stratified,
80 % train / 20 % test, independent of any training seed) so every model is evaluated on
the same 360 test images.

Input codes: a pixel ``x`` in ``0..16`` becomes the ``b``-bit code
``round_half_up(x * (2**b - 1) / 16)``, computed in integers; the float network sees the
code times ``1 / (2**b - 1)`` (so inputs lie in ``[0, 1]``), and the integer network's
first activation codebook is ``A[c] = c``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = ["Dataset", "load", "input_codes", "input_step", "DATASETS", "PIXEL_MAX"]

DATASETS = ("digits",)
PIXEL_MAX = 16


@dataclass(frozen=True)
class Dataset:
    """Raw pixels (``x_*``: float, ``[N, 8, 8, 1]`` images) and labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


def load(name: str = "digits") -> Dataset:
    """Load a data set by name (only ``digits`` for now)."""
    if name != "digits":
        raise InputError(f"unknown data set {name!r} (available: {', '.join(DATASETS)})")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.images.astype(np.int64)[..., None]         # [N, 8, 8, 1], 0..16
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return Dataset("digits", x_tr, y_tr, x_te, y_te, 10)


def input_codes(x: np.ndarray, bits: int) -> np.ndarray:
    """Pixels ``0..16`` to ``bits``-bit codes (integer round half up)."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
        raise InputError(f"input code bits must be 1 to 8, got {bits!r}")
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
            raise InputError("digits pixels must be integers 0..16")
        x = x.astype(np.int64)
    if x.size and (x.min() < 0 or x.max() > PIXEL_MAX):
        raise InputError(f"digits pixels must be 0..{PIXEL_MAX}, got {int(x.min())}..{int(x.max())}")
    n = 2**bits - 1
    return ((x.astype(np.int64) * n * 2 + PIXEL_MAX) // (2 * PIXEL_MAX)).astype(np.int64)


def input_step(bits: int) -> float:
    """The real value of one input code step (inputs in [0, 1])."""
    return 1.0 / (2**bits - 1)
