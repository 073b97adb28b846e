"""Data sets for training and evaluation, and their input codes.

``digits`` is scikit-learn's 8x8 handwritten digits (1797 images, pixel values 0..16,
ten classes), which ships with scikit-learn: no download. The split is fixed (stratified,
80 % train / 20 % test, independent of any training seed) so every model is evaluated on
the same 360 test images.

Input codes of digits: a pixel ``x`` in ``0..16`` becomes the ``b``-bit code
``round_half_up(x * (2**b - 1) / 16)``, computed in integers; the float network sees the
code times ``1 / (2**b - 1)`` (so inputs lie in ``[0, 1]``), and the integer network's
first activation codebook is ``A[c] = c``.

Your own data (:func:`load_npz`): a ``.npz`` archive with ``x_train``, ``y_train``,
``x_test``, ``y_test``; features ``[N, F]`` or images ``[N, H, W, C]`` (numbers, finite),
labels integer classes ``0 .. C-1`` (``C`` = the largest training label + 1; every test
label must be a training class). Float values become ``b``-bit codes by an affine
quantizer whose range comes from the training split, per feature (``[N, F]``) or per
channel (images): ``scale = (max - min) / (2**b - 1)`` (1 where ``max == min``),
``code = clip(round(x / scale - min / scale), 0, 2**b - 1)``, rounding half to even, in
float32; values outside the training range clip. The parameters are the model's
``metadata.input_encoding`` (the format of :mod:`mulfree.gen.model.encoding`, quantizer
kind ``int``), so ``mulfree predict --float`` and ``mulfree eval`` apply the same rule
through :func:`mulfree.gen.model.encoding.int_quant_codes`, the one implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model.encoding import int_quant_codes

__all__ = ["Dataset", "load", "load_npz", "input_codes", "input_step", "feature_encoding",
           "DATASETS", "PIXEL_MAX", "NPZ_ARRAYS"]

DATASETS = ("digits",)     # by name; any other data set is a .npz file (load_npz)
PIXEL_MAX = 16
NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class Dataset:
    """Samples (``x_*``: digits: ``[N, 8, 8, 1]`` pixels; a file's: ``[N, F]`` features or
    ``[N, H, W, C]`` images) and labels. ``kind`` says how samples become input codes:
    ``"pixels"`` (the digits rule, :func:`input_codes`) or ``"features"`` (the affine rule
    of the module docstring, :meth:`encoding`)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    kind: str = "pixels"
    source: str = field(default="", compare=False)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """One sample's shape (``(H, W, C)`` for images, ``(F,)`` for features)."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def encoding(self, bits: int) -> dict | None:
        """The ``metadata.input_encoding`` of a model trained on this data set with
        ``bits``-bit inputs (None for digits: its pixel rule is the default)."""
        if self.kind == "pixels":
            return None
        return feature_encoding(self.x_train, bits)

    def codes(self, x: np.ndarray, bits: int) -> np.ndarray:
        """Input codes of samples ``x`` (this data set's rule), shaped like ``x``."""
        if self.kind == "pixels":
            return input_codes(x, bits)
        q = self.encoding(bits)["quantizer"]
        x = np.asarray(x)
        n = int(np.prod(x.shape[1:]))
        xf = x.reshape(x.shape[0], n).astype(np.float32)
        codes = int_quant_codes(xf, np.asarray(q["scale"], np.float32),
                                np.asarray(q["zero_point"], np.float32), q["bits"],
                                q["signed"], q["narrow"], q["rounding"])
        return codes.reshape(x.shape)


def feature_encoding(x_train: np.ndarray, bits: int) -> dict:
    """The affine input encoding (module docstring) fitted on ``x_train``, in the format
    of ``metadata.input_encoding``: one scale and zero point per input element."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
        raise InputError(f"input code bits must be 1 to 8, got {bits!r}")
    x = np.asarray(x_train, np.float64)
    axes = (0,) if x.ndim == 2 else (0, 1, 2)
    lo, hi = x.min(axis=axes), x.max(axis=axes)
    scale = np.where(hi > lo, (hi - lo) / (2**bits - 1), 1.0)
    zero = -lo / scale
    shape = x.shape[1:]
    scale = np.broadcast_to(scale, shape).ravel()
    zero = np.broadcast_to(zero, shape).ravel()
    return {"source_shape": [int(v) for v in shape],
            "layout": "NC" if x.ndim == 2 else "NHWC",
            "origin": "dataset",
            "rule": "per-feature min-max of the training split" if x.ndim == 2 else
                    "per-channel min-max of the training split",
            "steps": [],
            "quantizer": {"kind": "int", "scale": [float(v) for v in scale],
                          "zero_point": [float(v) for v in zero], "bits": int(bits),
                          "signed": False, "narrow": False, "rounding": "ROUND"}}


def load(name: str = "digits") -> Dataset:
    """Load a data set: ``digits`` by name, anything else as a ``.npz`` file
    (:func:`load_npz`)."""
    if name == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        d = load_digits()
        x = d.images.astype(np.int64)[..., None]         # [N, 8, 8, 1], 0..16
        y = d.target.astype(np.int64)
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0,
                                                  stratify=y)
        return Dataset("digits", x_tr, y_tr, x_te, y_te, 10)
    if str(name).endswith(".npz") or Path(name).is_file():
        return load_npz(name)
    raise InputError(f"unknown data set {name!r} (available: {', '.join(DATASETS)}, or a "
                     f".npz file with {', '.join(NPZ_ARRAYS)})")


def load_npz(path) -> Dataset:
    """A data set from a ``.npz`` archive (module docstring), checked: every malformed
    file gives an :class:`InputError` naming the array and what was expected."""
    path = Path(path)
    what = str(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            files = set(z.files)
            missing = [k for k in NPZ_ARRAYS if k not in files]
            if missing:
                raise InputError(f"{what}: missing array '{missing[0]}' (a data set needs "
                                 f"{', '.join(NPZ_ARRAYS)})")
            arrays = {k: z[k] for k in NPZ_ARRAYS}
    except FileNotFoundError:
        raise InputError(f"{what}: no such file") from None
    except InputError:
        raise
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{what}: not a readable .npz archive without pickled objects "
                         f"({str(e).splitlines()[0]})") from None
    xs = {}
    for k in ("x_train", "x_test"):
        x = arrays[k]
        if x.dtype.kind not in "biuf":
            raise InputError(f"{what}: {k} must hold numbers, got an array of {x.dtype}")
        if x.ndim not in (2, 4):
            raise InputError(f"{what}: {k} must be features [N, F] or images [N, H, W, C], "
                             f"got shape {list(x.shape)}")
        if x.shape[0] == 0 or int(np.prod(x.shape[1:])) == 0:
            raise InputError(f"{what}: {k} is empty (shape {list(x.shape)})")
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            bad = np.argwhere(~np.isfinite(x))[0].tolist()
            raise InputError(f"{what}: {k} contains NaN or infinity (first at index {bad})")
        xs[k] = x
    if xs["x_train"].shape[1:] != xs["x_test"].shape[1:]:
        raise InputError(f"{what}: x_train samples have shape "
                         f"{list(xs['x_train'].shape[1:])} but x_test samples "
                         f"{list(xs['x_test'].shape[1:])}")
    ys = {}
    for k, xk in (("y_train", "x_train"), ("y_test", "x_test")):
        y = arrays[k]
        if y.dtype.kind not in "iu":
            raise InputError(f"{what}: {k} must be integer class labels, got an array of "
                             f"{y.dtype}")
        if y.ndim != 1:
            raise InputError(f"{what}: {k} must be one label per sample [N], got shape "
                             f"{list(y.shape)}")
        if y.shape[0] != xs[xk].shape[0]:
            raise InputError(f"{what}: {k} has {y.shape[0]} labels but {xk} has "
                             f"{xs[xk].shape[0]} samples")
        ys[k] = y.astype(np.int64)
    if ys["y_train"].min() < 0:
        i = int(np.argmin(ys["y_train"]))
        raise InputError(f"{what}: label {int(ys['y_train'][i])} at y_train[{i}] is out of "
                         f"range (labels are classes 0, 1, 2, ...)")
    classes = int(ys["y_train"].max()) + 1
    if classes < 2:
        raise InputError(f"{what}: y_train has one class only; a classifier needs at least 2")
    bad = np.flatnonzero((ys["y_test"] < 0) | (ys["y_test"] >= classes))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{what}: label {int(ys['y_test'][i])} at y_test[{i}] is out of range "
                         f"(the training split has classes 0..{classes - 1})")
    name = path.stem
    return Dataset(name, xs["x_train"], ys["y_train"], xs["x_test"], ys["y_test"], classes,
                   kind="features", source=str(path))


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
