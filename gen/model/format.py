"""The model description, format version 1: typed, validated, saved as JSON.

A model is an input (shape and code width) and a list of layers. Everything in it is an
integer; the numeric contract in ``docs/model-format.md`` says what each field means.
Construction validates everything, so a :class:`Model` that exists is a valid one;
:func:`load` and :func:`loads` turn any malformed file into a :class:`ModelError` naming
the layer, the field and what was expected.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Union

import numpy as np

from .. import limits
from ..errors import LimitError, ModelError
from ..fileio import atomic_write_text

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "Scheme", "OutputKind", "Weights", "Output",
    "Dense", "Conv2d", "MaxPool", "Flatten", "Layer", "ComputeLayer", "Model",
    "LayerIO", "load", "loads", "save", "dumps", "scheme_allows",
]

FORMAT_NAME = "mulfree-model"
FORMAT_VERSION = 1

# Magnitude limits keep every exact sum inside int64 with room to spare.
MAX_LEVEL = 2**31          # codebook entries, activation levels, table products
MAX_OFFSET = 2**48         # bias and thresholds
MAX_ACC = 2**62            # any pre-activation the layer can produce
MAX_CODE_BITS = 16


class Scheme(str, Enum):
    """How a layer's weight codebook is constrained (and so which product unit fits)."""

    UNIFORM = "uniform"   # two's complement range of `bits` bits
    BINARY = "binary"     # {-1, +1}
    TERNARY = "ternary"   # {-1, 0, +1}
    POT = "pot"           # 0 and +-2**e
    APOT = "apot"         # 0, +-2**e1, +-(2**e1 + 2**e2)
    LUT = "lut"           # any integers (LUT-Q dictionary)
    TABLE = "table"       # an explicit product table P[k][c] (table-based units)


class OutputKind(str, Enum):
    THRESHOLDS = "thresholds"   # out = sum_t (acc >= T[t]): codes for the next layer
    ACC = "acc"                 # the pre-activation itself (last layer only)
    ARGMAX = "argmax"           # index of the largest pre-activation (last layer only)


def _is_pot(v: int) -> bool:
    return v > 0 and v & (v - 1) == 0


def scheme_allows(scheme: Scheme, bits: int, value: int) -> bool:
    """Whether `value` may stand in a weight codebook of this scheme and code width."""
    v = int(value)
    if scheme is Scheme.UNIFORM:
        return -(2 ** (bits - 1)) <= v < 2 ** (bits - 1)
    if scheme is Scheme.BINARY:
        return v in (-1, 1)
    if scheme is Scheme.TERNARY:
        return v in (-1, 0, 1)
    if scheme is Scheme.POT:
        return v == 0 or _is_pot(abs(v))
    if scheme is Scheme.APOT:
        return bin(abs(v)).count("1") <= 2
    return True  # LUT and TABLE: any integer


_SCHEME_RULE = {
    Scheme.UNIFORM: "a two's complement value of the layer's weight bits",
    Scheme.BINARY: "-1 or +1",
    Scheme.TERNARY: "-1, 0 or +1",
    Scheme.POT: "0 or +-2**e",
    Scheme.APOT: "0, +-2**e1 or +-(2**e1 + 2**e2)",
}


# -- checking helpers ---------------------------------------------------------------

class _FieldError(ModelError):
    """A problem with one field; the layer (if any) is added by whoever knows it."""

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(f"field '{field}': {msg}")
        self.field, self.msg = field, msg

    def in_layer(self, label: str) -> ModelError:
        return ModelError(f"{label}, field '{self.field}': {self.msg}")


def _fail(field: str, msg: str) -> None:
    raise _FieldError(field, msg)


def _check_int(value: Any, where: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        _fail(where, f"expected an integer, got {_describe(value)}")
    value = int(value)
    if lo is not None and value < lo:
        _fail(where, f"expected an integer >= {lo}, got {value}")
    if hi is not None and value > hi:
        _fail(where, f"expected an integer <= {hi}, got {value}")
    return value


def _check_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        _fail(where, f"expected a string, got {_describe(value)}")
    return value


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return type(value).__name__


def _int_array(value: Any, where: str, ndim: int, bound: int,
               shape: tuple[int | None, ...] | None = None) -> np.ndarray:
    """Turn nested lists (or an array) into an int64 array of exactly `ndim` dimensions,
    checking every element is an integer of magnitude below `bound`."""
    if isinstance(value, np.ndarray):
        if value.ndim != ndim:
            _fail(where, f"expected {ndim} dimensions, got shape {list(value.shape)}")
        if value.dtype.kind not in "iu" and value.dtype != bool:
            if value.dtype.kind == "f" and value.size and not np.all(np.isfinite(value)):
                _fail(where, "expected integers, got NaN or infinity")
            if value.dtype.kind != "f" or not np.all(np.floor(value) == value):
                _fail(where, f"expected integers, got an array of {value.dtype}")
        arr = value.astype(np.int64) if value.size == 0 or np.abs(value).max() < bound else None
        if arr is None:
            _fail(where, f"values must have magnitude below 2**{bound.bit_length() - 1}")
    else:
        flat: list[int] = []
        dims: list[int] = []
        _walk(value, where, ndim, 0, dims, flat, bound)
        arr = np.array(flat, dtype=np.int64).reshape(dims if dims else (0,) * ndim)
    if shape is not None:
        for axis, (got, want) in enumerate(zip(arr.shape, shape)):
            if want is not None and got != want:
                _fail(where, f"expected shape {_fmt_shape(shape)}, got {list(arr.shape)}")
    arr = arr.copy()
    arr.setflags(write=False)
    return arr


def _fmt_shape(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"


def _walk(value: Any, where: str, ndim: int, depth: int, dims: list[int], flat: list[int],
          bound: int) -> None:
    if depth == ndim:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and not math.isfinite(value):
                _fail(where, "expected integers, got NaN or infinity")
            _fail(where, f"expected integers in a {ndim}-dimensional list, got {_describe(value)}")
        if not -bound < value < bound:
            _fail(where, f"value {value} is out of range (magnitude must be below "
                         f"2**{bound.bit_length() - 1})")
        flat.append(value)
        return
    if not isinstance(value, list):
        _fail(where, f"expected a {ndim}-dimensional list of integers, got {_describe(value)} "
                     f"at depth {depth}")
    if len(dims) == depth:
        dims.append(len(value))
    elif dims[depth] != len(value):
        _fail(where, f"ragged list: rows at depth {depth} have lengths {dims[depth]} "
                     f"and {len(value)}")
    if not value and depth + 1 < ndim:
        dims.extend([0] * (ndim - depth - 1))
        return
    for item in value:
        _walk(item, where, ndim, depth + 1, dims, flat, bound)


def _pair(value: Any, where: str, lo: int) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        v = _check_int(value, where, lo=lo)
        return (v, v)
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        _fail(where, f"expected an integer or a list of two integers, got {_describe(value)}")
    return (_check_int(value[0], where, lo=lo), _check_int(value[1], where, lo=lo))


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


# -- the layer types ------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Weights:
    """A layer's weights: codes into a codebook, constrained by a scheme.

    Parameters
    ----------
    scheme : Scheme
        What the codebook may contain.
    bits : int
        Width of a weight code; the codebook has at most ``2**bits`` entries.
    codes : array of int
        ``[out, in]`` for dense, ``[out, kh, kw, in_channels]`` for conv2d.
    codebook : array of int or None
        ``W[k]`` for each code ``k``. Optional for the table scheme (informational).
    products : array of int or None
        The table scheme's ``P[k][c]``, shape ``[K, activation codes]``; absent otherwise.
    """

    scheme: Scheme
    bits: int
    codes: np.ndarray
    codebook: np.ndarray | None = None
    products: np.ndarray | None = None

    def __post_init__(self) -> None:
        where = "weights"
        try:
            scheme = Scheme(self.scheme)
        except ValueError:
            _fail(f"{where}.scheme", f"expected one of {', '.join(s.value for s in Scheme)}, "
                                     f"got {self.scheme!r}")
        object.__setattr__(self, "scheme", scheme)
        bits = _check_int(self.bits, f"{where}.bits", lo=1, hi=MAX_CODE_BITS)
        if scheme is Scheme.BINARY and bits != 1:
            _fail(f"{where}.bits", f"the binary scheme has 1-bit codes, got {bits}")
        if scheme is Scheme.TERNARY and bits != 2:
            _fail(f"{where}.bits", f"the ternary scheme has 2-bit codes, got {bits}")
        if self.codebook is not None:
            cb = _int_array(self.codebook, f"{where}.codebook", 1, MAX_LEVEL)
            if cb.size == 0:
                _fail(f"{where}.codebook", "expected at least one entry")
            if cb.size > 2**bits:
                _fail(f"{where}.codebook", f"{cb.size} entries do not fit {bits}-bit codes "
                                           f"(at most {2**bits})")
            for v in cb:
                if not scheme_allows(scheme, bits, int(v)):
                    _fail(f"{where}.codebook", f"value {int(v)} is not allowed by scheme "
                                               f"'{scheme.value}' (expected {_SCHEME_RULE[scheme]})")
            object.__setattr__(self, "codebook", cb)
        elif scheme is not Scheme.TABLE:
            _fail(f"{where}.codebook", f"required for scheme '{scheme.value}'")
        if scheme is Scheme.TABLE:
            if self.products is None:
                _fail(f"{where}.products", "required for scheme 'table'")
            p = _int_array(self.products, f"{where}.products", 2, MAX_LEVEL)
            if p.shape[0] == 0 or p.shape[1] == 0:
                _fail(f"{where}.products", f"expected a non-empty table, got shape {list(p.shape)}")
            if p.shape[0] > 2**bits:
                _fail(f"{where}.products", f"{p.shape[0]} rows do not fit {bits}-bit codes "
                                           f"(at most {2**bits})")
            if self.codebook is not None and self.codebook.size != p.shape[0]:
                _fail(f"{where}.products", f"expected {self.codebook.size} rows (one per "
                                           f"codebook entry), got {p.shape[0]}")
            object.__setattr__(self, "products", p)
        elif self.products is not None:
            _fail(f"{where}.products", f"only the table scheme has a product table, "
                                       f"this layer's scheme is '{scheme.value}'")
        codes = self.codes
        if not isinstance(codes, np.ndarray):
            if not isinstance(codes, list):
                _fail(f"{where}.codes", f"expected a list of integers, got {_describe(codes)}")
            ndim = 1
            probe = codes
            while probe and isinstance(probe, list) and isinstance(probe[0], list):
                ndim += 1
                probe = probe[0]
            codes = _int_array(codes, f"{where}.codes", ndim, MAX_LEVEL)
        else:
            codes = _int_array(codes, f"{where}.codes", codes.ndim, MAX_LEVEL)
        if codes.size == 0:
            _fail(f"{where}.codes", f"expected a non-empty array, got shape {list(codes.shape)}")
        n = self.num_codes
        bad = np.flatnonzero((codes < 0) | (codes >= n))
        if bad.size:
            idx = [int(i) for i in np.unravel_index(bad[0], codes.shape)]
            _fail(f"{where}.codes", f"code {int(codes.flat[bad[0]])} at index {idx} is out of "
                                    f"range (expected 0 <= code < {n})")
        object.__setattr__(self, "codes", codes)

    @property
    def num_codes(self) -> int:
        """K, the number of distinct weight codes."""
        if self.products is not None:
            return int(self.products.shape[0])
        return int(self.codebook.size)


@dataclass(frozen=True, eq=False)
class Output:
    """What a compute layer emits: threshold codes, the raw accumulator, or its argmax."""

    kind: OutputKind
    bits: int = 0
    thresholds: np.ndarray | None = None

    def __post_init__(self) -> None:
        try:
            kind = OutputKind(self.kind)
        except ValueError:
            _fail("output.kind", f"expected one of {', '.join(k.value for k in OutputKind)}, "
                                 f"got {self.kind!r}")
        object.__setattr__(self, "kind", kind)
        if kind is OutputKind.THRESHOLDS:
            bits = _check_int(self.bits, "output.bits", lo=1, hi=MAX_CODE_BITS)
            if self.thresholds is None:
                _fail("output.thresholds", "required when output.kind is 'thresholds'")
            t = _int_array(self.thresholds, "output.thresholds", 2, MAX_OFFSET,
                           shape=(None, 2**bits - 1))
            if t.shape[0] == 0:
                _fail("output.thresholds", "expected one row per output channel, got none")
            steps = np.diff(t, axis=1)
            if steps.size and steps.min() < 0:
                j, i = (int(x) for x in np.argwhere(steps < 0)[0])
                _fail("output.thresholds", f"channel {j} is not non-decreasing: "
                                           f"T[{i}] = {int(t[j, i])} > T[{i + 1}] = {int(t[j, i + 1])}")
            object.__setattr__(self, "thresholds", t)
        else:
            if self.thresholds is not None:
                _fail("output.thresholds", f"only allowed when output.kind is 'thresholds', "
                                           f"not '{kind.value}'")
            if self.bits not in (0, None):
                _fail("output.bits", f"only allowed when output.kind is 'thresholds', "
                                     f"not '{kind.value}'")
            object.__setattr__(self, "bits", 0)


@dataclass(frozen=True, eq=False)
class Dense:
    """``acc[j] = bias[j] + sum_i P[codes[j][i]][x[i]]``; inputs in (row, column, channel)
    order when the previous layer was spatial."""

    name: str
    weights: Weights
    bias: np.ndarray
    output: Output
    activation_codebook: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check_compute(self, ndim=2)

    @property
    def out_features(self) -> int:
        return int(self.weights.codes.shape[0])

    @property
    def in_features(self) -> int:
        return int(self.weights.codes.shape[1])


@dataclass(frozen=True, eq=False)
class Conv2d:
    """2-D convolution over an ``[H, W, C]`` code map; a window is read in (row, column,
    channel) order, matching ``weights.codes[out][kh][kw][in_channel]``. Zero padding:
    padded positions contribute nothing to the sum."""

    name: str
    weights: Weights
    bias: np.ndarray
    output: Output
    activation_codebook: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        _check_compute(self, ndim=4)
        object.__setattr__(self, "stride", _pair(self.stride, "stride", lo=1))
        object.__setattr__(self, "padding", _pair(self.padding, "padding", lo=0))

    @property
    def kernel(self) -> tuple[int, int]:
        return (int(self.weights.codes.shape[1]), int(self.weights.codes.shape[2]))

    @property
    def out_channels(self) -> int:
        return int(self.weights.codes.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.weights.codes.shape[3])


def _check_compute(layer: Dense | Conv2d, ndim: int) -> None:
    _check_str(layer.name, "name")
    if not isinstance(layer.weights, Weights):
        _fail("weights", f"expected Weights, got {_describe(layer.weights)}")
    if layer.weights.codes.ndim != ndim:
        shape = "[out, in]" if ndim == 2 else "[out, kh, kw, in_channels]"
        _fail("weights.codes", f"expected shape {shape}, got {list(layer.weights.codes.shape)}")
    out = int(layer.weights.codes.shape[0])
    object.__setattr__(layer, "bias", _int_array(layer.bias, "bias", 1, MAX_OFFSET, shape=(out,)))
    if not isinstance(layer.output, Output):
        _fail("output", f"expected Output, got {_describe(layer.output)}")
    if layer.output.thresholds is not None and layer.output.thresholds.shape[0] != out:
        _fail("output.thresholds", f"expected {out} rows (one per output channel), "
                                   f"got {layer.output.thresholds.shape[0]}")
    if layer.activation_codebook is not None:
        ac = _int_array(layer.activation_codebook, "activation_codebook", 1, MAX_LEVEL)
        object.__setattr__(layer, "activation_codebook", ac)
    elif layer.weights.scheme is not Scheme.TABLE:
        _fail("activation_codebook", f"required for scheme '{layer.weights.scheme.value}'")
    if layer.weights.products is not None and layer.activation_codebook is not None \
            and layer.weights.products.shape[1] != layer.activation_codebook.size:
        _fail("weights.products", f"expected {layer.activation_codebook.size} columns (one per "
                                  f"activation code), got {layer.weights.products.shape[1]}")


@dataclass(frozen=True)
class MaxPool:
    """Max over windows of codes (valid because thresholds are monotone); no padding."""

    name: str
    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        _check_str(self.name, "name")
        object.__setattr__(self, "kernel", _pair(self.kernel, "kernel", lo=1))
        stride = self.kernel if self.stride is None else self.stride
        object.__setattr__(self, "stride", _pair(stride, "stride", lo=1))


@dataclass(frozen=True)
class Flatten:
    """``[H, W, C]`` to ``[H * W * C]`` in (row, column, channel) order."""

    name: str

    def __post_init__(self) -> None:
        _check_str(self.name, "name")


ComputeLayer = Union[Dense, Conv2d]
Layer = Union[Dense, Conv2d, MaxPool, Flatten]
_LAYER_TYPES = {"dense": Dense, "conv2d": Conv2d, "maxpool": MaxPool, "flatten": Flatten}
_TYPE_NAMES = {cls: name for name, cls in _LAYER_TYPES.items()}


@dataclass(frozen=True)
class LayerIO:
    """What flows into and out of one layer."""

    in_shape: tuple[int, ...]
    in_codes: int            # number of distinct input codes (2**bits)
    out_shape: tuple[int, ...]
    out_codes: int | None    # None when the layer emits accumulators or a class index

    @property
    def in_bits(self) -> int:
        return max(1, (self.in_codes - 1).bit_length())

    @property
    def out_bits(self) -> int | None:
        return None if self.out_codes is None else max(1, (self.out_codes - 1).bit_length())


@dataclass(frozen=True, eq=False)
class Model:
    """A quantized network: input codes of `input_bits` bits in `input_shape`, then layers.

    ``input_shape`` is ``[features]`` or ``[height, width, channels]``.
    """

    name: str
    input_shape: tuple[int, ...]
    input_bits: int
    layers: tuple[Layer, ...]
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_str(self.name, "model.name")
        shape = self.input_shape
        if not isinstance(shape, (list, tuple)) or len(shape) not in (1, 3):
            _fail("input.shape", f"expected [features] or [height, width, channels], "
                                 f"got {_describe(shape)}")
        object.__setattr__(self, "input_shape",
                           tuple(_check_int(s, "input.shape", lo=1) for s in shape))
        _check_int(self.input_bits, "input.bits", lo=1, hi=MAX_CODE_BITS)
        if not isinstance(self.layers, (list, tuple)) or not self.layers:
            _fail("layers", "expected a non-empty list of layers")
        object.__setattr__(self, "layers", tuple(self.layers))
        if not isinstance(self.metadata, dict):
            _fail("metadata", f"expected an object, got {_describe(self.metadata)}")
        _check_metadata(self.metadata, "metadata")
        names = set()
        for i, layer in enumerate(self.layers):
            if type(layer) not in _TYPE_NAMES:
                _layer_fail(f"layer {i}", f"expected one of {', '.join(_LAYER_TYPES)}, got "
                                    f"{_describe(layer)}")
            if layer.name in names:
                _layer_fail(f"layer {i} '{layer.name}'", "name", "duplicate layer name")
            names.add(layer.name)
        object.__setattr__(self, "_io", tuple(self._infer_io()))

    # shape and code-count inference, with the cross-layer checks
    def _infer_io(self) -> list[LayerIO]:
        shape, codes = self.input_shape, 2**self.input_bits
        limits.check(math.prod(shape), "the input")
        ios = []
        for i, layer in enumerate(self.layers):
            where = f"layer {i} '{layer.name}'"
            if i > 0 and ios[-1].out_codes is None:
                _layer_fail(where, f"layer {i - 1} '{self.layers[i - 1].name}' outputs "
                             f"'{self.layers[i - 1].output.kind.value}', so it must be the last layer")
            if isinstance(layer, Dense):
                if len(shape) != 1:
                    _layer_fail(where, f"a dense layer needs a flat input, got shape {list(shape)} "
                                 f"(insert a flatten layer)")
                if layer.in_features != shape[0]:
                    _layer_fail(where, "weights.codes",
                          f"expected {shape[0]} inputs per row, got {layer.in_features}")
                out_shape: tuple[int, ...] = (layer.out_features,)
            elif isinstance(layer, Conv2d):
                if len(shape) != 3:
                    _layer_fail(where, f"conv2d needs an [height, width, channels] input, "
                                 f"got shape {list(shape)}")
                if layer.in_channels != shape[2]:
                    _layer_fail(where, "weights.codes",
                          f"expected {shape[2]} input channels, got {layer.in_channels}")
                oh = _out_len(shape[0], layer.kernel[0], layer.stride[0], layer.padding[0])
                ow = _out_len(shape[1], layer.kernel[1], layer.stride[1], layer.padding[1])
                if oh < 1 or ow < 1:
                    _layer_fail(where, f"kernel {list(layer.kernel)} does not fit input "
                                 f"{list(shape[:2])} with padding {list(layer.padding)}")
                out_shape = (oh, ow, layer.out_channels)
                limits.check(oh * ow * math.prod(layer.weights.codes.shape[1:]),
                             f"{where}: the input windows ({oh}x{ow} positions)")
            elif isinstance(layer, MaxPool):
                if len(shape) != 3:
                    _layer_fail(where, f"maxpool needs an [height, width, channels] input, "
                                 f"got shape {list(shape)}")
                oh = _out_len(shape[0], layer.kernel[0], layer.stride[0], 0)
                ow = _out_len(shape[1], layer.kernel[1], layer.stride[1], 0)
                if oh < 1 or ow < 1:
                    _layer_fail(where, f"kernel {list(layer.kernel)} does not fit input {list(shape[:2])}")
                ios.append(LayerIO(shape, codes, (oh, ow, shape[2]), codes))
                shape = (oh, ow, shape[2])
                continue
            else:  # Flatten
                out = (int(np.prod(shape)),)
                ios.append(LayerIO(shape, codes, out, codes))
                shape = out
                continue
            if layer.activation_codebook is not None and layer.activation_codebook.size != codes:
                _layer_fail(where, "activation_codebook",
                      f"expected {codes} entries (one per input code), got "
                      f"{layer.activation_codebook.size}")
            if layer.weights.products is not None and layer.weights.products.shape[1] != codes:
                _layer_fail(where, "weights.products",
                      f"expected {codes} columns (one per input code), got "
                      f"{layer.weights.products.shape[1]}")
            _check_acc_range(layer, where)
            _check_sizes(layer, where, shape, out_shape, codes)
            kind = layer.output.kind
            out_codes = 2**layer.output.bits if kind is OutputKind.THRESHOLDS else None
            if kind is OutputKind.ARGMAX:
                out_shape = (1,) if len(out_shape) == 1 else out_shape[:2] + (1,)
            ios.append(LayerIO(shape, codes, out_shape, out_codes))
            shape, codes = out_shape, (out_codes or 0)
        return ios

    @property
    def io(self) -> tuple[LayerIO, ...]:
        """Per layer: input and output shapes and code counts."""
        return self._io  # type: ignore[attr-defined]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.io[-1].out_shape

    @property
    def output_kind(self) -> OutputKind:
        last = self.layers[-1]
        return last.output.kind if isinstance(last, (Dense, Conv2d)) else OutputKind.THRESHOLDS

    def sub(self, start: int, stop: int | None = None) -> "Model":
        """Layers ``start .. stop-1`` as a model of their own (input = layer start's input)."""
        stop = len(self.layers) if stop is None else stop
        if not 0 <= start < stop <= len(self.layers):
            raise ModelError(f"layer range {start}..{stop - 1} is outside the model's "
                             f"layers 0..{len(self.layers) - 1}")
        io = self.io[start]
        return Model(name=f"{self.name}.layers{start}-{stop - 1}", input_shape=io.in_shape,
                     input_bits=io.in_bits, layers=self.layers[start:stop],
                     metadata=self.metadata)

    def compute_layers(self) -> list[tuple[int, ComputeLayer]]:
        return [(i, l) for i, l in enumerate(self.layers) if isinstance(l, (Dense, Conv2d))]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Model):
            return NotImplemented
        return _to_dict(self) == _to_dict(other)

    __hash__ = None  # type: ignore[assignment]


def _check_acc_range(layer: ComputeLayer, where: str) -> None:
    """Reject layers whose sums could leave int64 (a cheap bound, not the exact one)."""
    w = layer.weights
    if w.products is not None:
        top = int(np.abs(w.products).max())
    else:
        top = int(np.abs(w.codebook).max()) * int(np.abs(layer.activation_codebook).max())
    taps = int(np.prod(w.codes.shape[1:]))
    if taps * top + int(np.abs(layer.bias).max()) >= MAX_ACC:
        _layer_fail(where, "weights", f"{taps} products of magnitude up to {top} could "
                                      f"overflow the 63-bit accumulator limit")


def _check_sizes(layer: ComputeLayer, where: str, in_shape: tuple[int, ...],
                 out_shape: tuple[int, ...], codes: int) -> None:
    """Refuse a layer whose maps, product table or threshold comparisons are past the
    limit (:mod:`mulfree.gen.limits`), before anything of that size is allocated."""
    limits.check(math.prod(out_shape), f"{where}: the output map")
    limits.check(layer.weights.num_codes * codes, f"{where}: the product table")
    if layer.output.thresholds is not None:
        limits.check(math.prod(out_shape) * layer.output.thresholds.shape[1],
                     f"{where}: the threshold comparisons per sample")


def _layer_fail(label: str, *args: str) -> None:
    """``_layer_fail(label, msg)`` or ``_layer_fail(label, field, msg)``."""
    if len(args) == 1:
        raise ModelError(f"{label}: {args[0]}")
    raise ModelError(f"{label}, field '{args[0]}': {args[1]}")


def _out_len(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _check_metadata(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        _fail(where, "expected a finite number, got NaN or infinity")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                _fail(where, f"keys must be strings, got {_describe(k)}")
            _check_metadata(v, f"{where}.{k}")
    elif isinstance(value, list):
        for v in value:
            _check_metadata(v, where)
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        _fail(where, f"expected JSON data, got {type(value).__name__}")


# -- reading ---------------------------------------------------------------------------

def _reject_constant(name: str) -> None:
    raise ModelError(f"not valid JSON: {name} is not allowed (numbers must be finite)")


# Every integer of the format fits 64 bits (20 digits); a longer one is refused before
# Python converts it (a 5,000-digit integer would otherwise raise a ValueError, and
# a long one take quadratic time).
MAX_INT_DIGITS = 40


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise ModelError(f"an integer with {digits:,} digits (every number of the format "
                         f"fits 64 bits: at most {MAX_INT_DIGITS} digits)")
    return int(text)


def _unique_keys(pairs: list) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ModelError(f"duplicate key '{key}' in one object (which value is meant "
                             f"is ambiguous)")
        out[key] = value
    return out


def loads(text: str | bytes, source: str = "model") -> Model:
    """Parse and validate a model description from JSON text."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ModelError(f"{source}: not a mulfree model (not UTF-8 text: {e.reason} "
                             f"at byte {e.start})") from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int,
                         object_pairs_hook=_unique_keys)
    except ModelError as e:
        raise ModelError(f"{source}: {e}") from None
    except json.JSONDecodeError as e:
        hint = " (truncated?)" if e.pos >= len(text.rstrip()) - 1 else ""
        raise ModelError(f"{source}: not valid JSON at line {e.lineno} column {e.colno}: "
                         f"{e.msg}{hint}") from None
    except RecursionError:
        raise ModelError(f"{source}: not a mulfree model (nested too deeply)") from None
    try:
        return from_dict(doc)
    except ModelError as e:
        raise ModelError(f"{source}: {e}") from None
    except LimitError as e:
        raise LimitError(f"{source}: {e}") from None
    except RecursionError:
        raise ModelError(f"{source}: not a mulfree model (nested too deeply)") from None


def load(path: str | os.PathLike) -> Model:
    """Read and validate a model file."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a directory, not a model file") from None
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror})") from None
    return loads(data, source=str(path))


def _keys(doc: dict, where: str, required: set[str], optional: set[str]) -> None:
    missing = sorted(required - doc.keys())
    if missing:
        _fail(where, f"missing field '{missing[0]}'")
    unknown = sorted(set(doc) - required - optional)
    if unknown:
        _fail(where, f"unknown field '{unknown[0]}' (expected "
                     f"{', '.join(sorted(required | optional))})")


def _obj(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        _fail(where, f"expected an object, got {_describe(value)}")
    return value


def from_dict(doc: Any) -> Model:
    """Build a model from the parsed JSON document (see ``docs/model-format.md``)."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise ModelError(f"not a mulfree model (expected a JSON object with "
                         f"\"format\": \"{FORMAT_NAME}\")")
    version = doc.get("version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ModelError(f"unknown format version {version!r} (this mulfree reads version "
                         f"{FORMAT_VERSION})")
    _keys(doc, "model", {"format", "version", "input", "layers"}, {"name", "metadata"})
    inp = _obj(doc["input"], "input")
    _keys(inp, "input", {"shape", "bits"}, set())
    if not isinstance(inp["shape"], list):
        _fail("input.shape", f"expected a list, got {_describe(inp['shape'])}")
    layers_doc = doc["layers"]
    if not isinstance(layers_doc, list):
        _fail("layers", f"expected a list, got {_describe(layers_doc)}")
    layers = []
    for i, ldoc in enumerate(layers_doc):
        name = ldoc.get("name") if isinstance(ldoc, dict) else None
        label = f"layer {i}" + (f" '{name}'" if isinstance(name, str) else "")
        try:
            layers.append(_layer_from_dict(ldoc, i))
        except _FieldError as e:
            if e.field == "(layer)":
                raise ModelError(f"{label}: {e.msg}") from None
            raise e.in_layer(label) from None
    return Model(name=doc.get("name", "model"), input_shape=tuple(inp["shape"]),
                 input_bits=inp["bits"], layers=tuple(layers),
                 metadata=doc.get("metadata", {}))


def _layer_from_dict(ldoc: Any, index: int) -> Layer:
    if not isinstance(ldoc, dict):
        _fail("(layer)", f"expected an object, got {_describe(ldoc)}")
    ltype = ldoc.get("type")
    if not isinstance(ltype, str) or ltype not in _LAYER_TYPES:
        _fail("type", f"expected one of {', '.join(_LAYER_TYPES)}, got {_describe(ltype)}")
    name = ldoc.get("name", f"{ltype}{index}")
    if ltype == "flatten":
        _keys(ldoc, "(layer)", {"type"}, {"name"})
        return Flatten(name=name)
    if ltype == "maxpool":
        _keys(ldoc, "(layer)", {"type", "kernel"}, {"name", "stride"})
        return MaxPool(name=name, kernel=ldoc["kernel"], stride=ldoc.get("stride"))
    geometry = {"stride", "padding"} if ltype == "conv2d" else set()
    _keys(ldoc, "(layer)", {"type", "weights", "bias", "output"},
          {"name", "activation_codebook"} | geometry)
    w = _obj(ldoc["weights"], "weights")
    _keys(w, "weights", {"scheme", "bits", "codes"}, {"codebook", "products"})
    weights = Weights(scheme=w["scheme"], bits=w["bits"], codes=w["codes"],
                      codebook=w.get("codebook"), products=w.get("products"))
    o = _obj(ldoc["output"], "output")
    _keys(o, "output", {"kind"}, {"bits", "thresholds"})
    if not isinstance(o["kind"], str):
        _fail("output.kind", f"expected a string, got {_describe(o['kind'])}")
    output = Output(kind=o["kind"], bits=o.get("bits", 0), thresholds=o.get("thresholds"))
    kwargs = dict(name=name, weights=weights, bias=ldoc["bias"], output=output,
                  activation_codebook=ldoc.get("activation_codebook"))
    if ltype == "conv2d":
        return Conv2d(**kwargs, stride=ldoc.get("stride", 1), padding=ldoc.get("padding", 0))
    return Dense(**kwargs)


# -- writing -----------------------------------------------------------------------------

def _to_dict(model: Model) -> dict:
    layers = []
    for layer in model.layers:
        d: dict[str, Any] = {"type": _TYPE_NAMES[type(layer)], "name": layer.name}
        if isinstance(layer, MaxPool):
            d["kernel"] = list(layer.kernel)
            d["stride"] = list(layer.stride)
        elif isinstance(layer, (Dense, Conv2d)):
            if isinstance(layer, Conv2d):
                d["stride"] = list(layer.stride)
                d["padding"] = list(layer.padding)
            w = layer.weights
            wd: dict[str, Any] = {"scheme": w.scheme.value, "bits": w.bits}
            if w.codebook is not None:
                wd["codebook"] = w.codebook.tolist()
            if w.products is not None:
                wd["products"] = w.products.tolist()
            wd["codes"] = w.codes.tolist()
            d["weights"] = wd
            if layer.activation_codebook is not None:
                d["activation_codebook"] = layer.activation_codebook.tolist()
            d["bias"] = layer.bias.tolist()
            od: dict[str, Any] = {"kind": layer.output.kind.value}
            if layer.output.kind is OutputKind.THRESHOLDS:
                od["bits"] = layer.output.bits
                od["thresholds"] = layer.output.thresholds.tolist()
            d["output"] = od
        layers.append(d)
    doc: dict[str, Any] = {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "name": model.name,
        "input": {"shape": list(model.input_shape), "bits": model.input_bits},
        "layers": layers,
    }
    if model.metadata:
        doc["metadata"] = model.metadata
    return doc


def to_dict(model: Model) -> dict:
    """The JSON document of a model (plain lists and ints)."""
    return _to_dict(model)


def dumps(model: Model) -> str:
    """Deterministic JSON text: objects indented, each innermost list of numbers on one line."""
    return _emit(_to_dict(model), 0) + "\n"


def _emit(value: Any, indent: int) -> str:
    pad = "  " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad}{json.dumps(k)}: {_emit(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(value, list) and any(isinstance(v, (list, dict)) for v in value):
        items = [pad + _emit(v, indent + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def save(model: Model, path: str | os.PathLike) -> Path:
    """Write the model atomically (temporary name, then rename)."""
    return atomic_write_text(path, dumps(model))
