"""A model's own input encoding and output decoding, as its metadata describes them.

The integer network takes codes and gives integers. An imported model also says, in its
metadata, how the source model's float inputs become those codes and how the last layer's
integers become the source model's outputs, so a user can work in the source model's
terms (``mulfree predict --float``, ``sim --float``, ``eval``, ``inputs``). Nothing in the
hardware or in the golden model reads these fields.

``metadata.input_encoding`` (written by :mod:`mulfree.gen.importers`)::

    {"source_shape": [1, 8, 8],          # one sample as the source model takes it
     "layout": "NCHW",                   # for people: NC, NCHW, NHWC, ...
     "origin": "graph",                  # graph | declared (--input-bits) | datatype
     "steps": [{"op": "mul", "value": 2.0}, {"op": "sub", "value": 1.0}],
     "quantizer": {"kind": "int", "scale": 0.5, "zero_point": 0.0, "bits": 8,
                   "signed": false, "narrow": false, "rounding": "ROUND"},
     "order": [0, 8, 16, ...]}           # optional: input code i is source element order[i]

The float input (flattened, source order) goes through ``steps`` in float32, one
elementwise operation at a time, exactly as QONNX's executor computes the graph; values
are a number or one number per source element. The quantizer is then QONNX's own:

- ``int``: ``y = x / scale + zero_point``, clipped to the integer range of ``bits``
  (``signed``, ``narrow``), rounded by ``rounding`` (``ROUND`` is half to even, like
  ``np.round``); the code is ``y - min``. One signed bit is bipolar: ``y >= 0 -> +1``.
- ``bipolar``: QONNX's ``BipolarQuant``, code ``x >= 0``.
- ``thresholds``: FINN's ``MultiThreshold``, code ``sum_t (x >= T[t])``; one row of
  thresholds for every element, or one row per source element.

``metadata.output_decoding``::

    {"source_shape": [10],              # the source model's output (before the tail)
     "order": [...],                    # optional: output element i is last-layer value order[i]
     "from": "acc",                     # acc: the accumulators; codes: the output codes
     "ops": [{"op": "affine", "scale": [...], "bias": [...]}],   # from: acc, per channel
     "values": [[...]],                 # from: codes: the value of each code (per channel, or one row)
     "tail": [{"op": "softmax", "axis": -1}],
     "acc_argmax_is_class": true}

``ops`` apply per output channel in order (``affine`` is ``scale * v + bias``; ``relu``;
``clip`` with ``min``/``max``) in float64; ``tail`` is what the source graph computes after
its last quantity (``softmax``, ``topk`` with ``k``/``largest``/``output``, ``argmax``,
``identity``). ``acc_argmax_is_class`` says whether the plain argmax of the last layer's
accumulators is the source model's class on every input (the importer makes it so where the
output affine can be folded into integers exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError, ModelError
from .format import Model
from .golden import GoldenResult

__all__ = ["ROUNDING_MODES", "round_mode", "quant_range", "int_quant_codes",
           "bipolar_codes", "threshold_codes", "has_encoding", "has_decoding",
           "source_input_shape", "encode_inputs", "decode_outputs", "source_values",
           "model_classes", "apply_steps"]

ROUNDING_MODES = ("ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN")


def round_mode(mode: str):
    """QONNX's rounding functions (``qonnx.custom_op.general.intquant.resolve_rounding_mode``)."""
    m = str(mode).upper()
    if m in ("ROUND", "HALF_EVEN"):
        return np.round
    if m == "CEIL":
        return np.ceil
    if m == "FLOOR":
        return np.floor
    if m == "UP":
        return lambda x: np.sign(x) * np.ceil(np.abs(x))
    if m == "DOWN":
        return np.fix
    if m == "HALF_UP":
        return lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5)
    if m == "HALF_DOWN":
        return lambda x: np.sign(x) * np.ceil(np.abs(x) - 0.5)
    raise ModelError(f"rounding mode {mode!r} is not one of {', '.join(ROUNDING_MODES)}")


def quant_range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    """The integer range of a QONNX ``Quant`` (``min_int``, ``max_int``)."""
    if signed:
        return -(2 ** (bits - 1)) + (1 if narrow else 0), 2 ** (bits - 1) - 1
    return 0, 2**bits - (2 if narrow else 1)


def int_quant_codes(x: np.ndarray, scale, zero_point, bits: int, signed: bool,
                    narrow: bool, rounding: str = "ROUND") -> np.ndarray:
    """Codes of QONNX's ``Quant`` for ``x``, computed in ``x``'s float type as QONNX does:
    ``y = x / scale + zero_point``, clip, round; the code is ``y - min`` (bipolar for one
    signed bit: ``y >= 0``)."""
    dt = x.dtype
    y = x / np.asarray(scale, dt)
    y = y + np.asarray(zero_point, dt)
    if bits == 1 and signed:
        return (y >= 0).astype(np.int64)
    lo, hi = quant_range(bits, signed, narrow)
    y = np.clip(y, lo, hi)
    return (round_mode(rounding)(y) - lo).astype(np.int64)


def bipolar_codes(x: np.ndarray) -> np.ndarray:
    """Codes of QONNX's ``BipolarQuant``: 1 where ``x >= 0`` (the value +scale), else 0."""
    return (x >= 0).astype(np.int64)


def threshold_codes(x: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """FINN's ``MultiThreshold`` count: ``sum_t (x >= T[..., t])`` (``thresholds`` broadcast
    against ``x[..., None]``)."""
    return (x[..., None] >= thresholds).sum(axis=-1).astype(np.int64)


# -- input encoding ------------------------------------------------------------------

def has_encoding(model: Model) -> bool:
    return isinstance(model.metadata.get("input_encoding"), dict)


def has_decoding(model: Model) -> bool:
    return isinstance(model.metadata.get("output_decoding"), dict)


def _get(d: dict, key: str, where: str):
    if key not in d:
        raise ModelError(f"metadata.{where} has no field '{key}'")
    return d[key]


def _encoding(model: Model) -> dict:
    enc = model.metadata.get("input_encoding")
    if not isinstance(enc, dict):
        raise InputError(f"model '{model.name}' has no metadata.input_encoding, so it takes "
                         f"input codes only (it was not imported from a float graph)")
    return enc


def source_input_shape(model: Model) -> tuple[int, ...]:
    """One sample's shape as the source model takes it (without the batch axis)."""
    return tuple(int(v) for v in _get(_encoding(model), "source_shape", "input_encoding"))


def _per_element(value, n: int, dt, where: str) -> np.ndarray:
    v = np.asarray(value, dt)
    if v.ndim == 0:
        return v
    if v.shape != (n,):
        raise ModelError(f"metadata.input_encoding.{where}: expected a number or {n} numbers, "
                         f"got shape {list(v.shape)}")
    return v


def apply_steps(x: np.ndarray, steps: list, n: int) -> np.ndarray:
    """The float32 elementwise steps on ``x`` ``[N, n]`` (source order)."""
    f32 = np.float32
    for i, step in enumerate(steps):
        op = step.get("op")
        k = _per_element(step.get("value"), n, f32, f"steps[{i}].value")
        if op == "mul":
            x = x * k
        elif op == "div":
            x = x / k
        elif op == "add":
            x = x + k
        elif op == "sub":
            x = x - k
        elif op == "rsub":
            x = k - x
        else:
            raise ModelError(f"metadata.input_encoding.steps[{i}]: unknown op {op!r}")
        x = x.astype(f32, copy=False)
    return x


def _quantize(x: np.ndarray, q: dict, n: int) -> np.ndarray:
    kind = q.get("kind")
    if kind == "int":
        scale = _per_element(q["scale"], n, x.dtype, "quantizer.scale")
        zp = _per_element(q.get("zero_point", 0.0), n, x.dtype, "quantizer.zero_point")
        return int_quant_codes(x, scale, zp, int(q["bits"]), bool(q["signed"]),
                               bool(q.get("narrow", False)), q.get("rounding", "ROUND"))
    if kind == "bipolar":
        return bipolar_codes(x)
    if kind == "thresholds":
        t = np.asarray(q["thresholds"], x.dtype)
        if t.ndim != 2 or t.shape[0] not in (1, n):
            raise ModelError(f"metadata.input_encoding.quantizer.thresholds: expected 1 or {n} "
                             f"rows, got shape {list(t.shape)}")
        return threshold_codes(x, t)
    raise ModelError(f"metadata.input_encoding.quantizer: unknown kind {kind!r}")


def encode_inputs(model: Model, x: np.ndarray) -> np.ndarray:
    """Float inputs as the source model takes them (``[N, *source shape]`` or one sample)
    to the integer model's input codes ``[N, *input shape]``, through the model's own
    encoding, in float32 as QONNX's executor computes it."""
    enc = _encoding(model)
    shape = source_input_shape(model)
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise InputError(f"float inputs must be numbers, got an array of {x.dtype}")
    if x.shape == shape:
        x = x[None]
    if x.shape[1:] != shape:
        raise InputError(f"model '{model.name}' takes float inputs of shape {list(shape)} "
                         f"(or a batch [N, {', '.join(map(str, shape))}]) as its source model "
                         f"did, got {list(x.shape)}")
    if x.dtype.kind == "f" and x.size and not np.all(np.isfinite(x)):
        raise InputError("float inputs contain NaN or infinity")
    n = int(np.prod(shape))
    xf = x.reshape(x.shape[0], n).astype(np.float32)
    xf = apply_steps(xf, list(enc.get("steps", [])), n)
    codes = _quantize(xf, _get(enc, "quantizer", "input_encoding"), n)
    order = enc.get("order")
    if order is not None:
        codes = codes[:, np.asarray(order, np.int64)]
    return codes.reshape(x.shape[0], *model.input_shape)


# -- output decoding -----------------------------------------------------------------

def _decoding(model: Model) -> dict:
    dec = model.metadata.get("output_decoding")
    if not isinstance(dec, dict):
        raise InputError(f"model '{model.name}' has no metadata.output_decoding: its outputs "
                         f"are the integer network's (not imported from a float graph)")
    return dec


@dataclass(frozen=True)
class _Ops:
    ops: list

    def apply(self, v: np.ndarray, channel: np.ndarray) -> np.ndarray:
        v = v.astype(np.float64)
        for i, op in enumerate(self.ops):
            kind = op.get("op")
            if kind == "affine":
                v = np.asarray(op["scale"], np.float64)[channel] * v + \
                    np.asarray(op["bias"], np.float64)[channel]
            elif kind == "relu":
                v = np.maximum(v, 0.0)
            elif kind == "clip":
                lo = -np.inf if op.get("min") is None else float(op["min"])
                hi = np.inf if op.get("max") is None else float(op["max"])
                v = np.clip(v, lo, hi)
            else:
                raise ModelError(f"metadata.output_decoding.ops[{i}]: unknown op {kind!r}")
        return v


def source_values(model: Model, result: GoldenResult) -> np.ndarray:
    """The source model's last quantity before its tail (its logits, or its quantized
    outputs), ``[N, *source output shape]``, from a golden-model run."""
    dec = _decoding(model)
    shape = tuple(int(v) for v in _get(dec, "source_shape", "output_decoding"))
    src = dec.get("from", "acc")
    last = result.last_accumulators if src == "acc" else result.output
    n = last.shape[0]
    flat = last.reshape(n, -1)
    order = dec.get("order")
    if order is not None:
        flat = flat[:, np.asarray(order, np.int64)]
    channels = int(last.shape[-1])
    channel = (np.arange(flat.shape[1]) if order is None else np.asarray(order)) % channels
    if src == "acc":
        out = _Ops(list(dec.get("ops", []))).apply(flat, channel)
    elif src == "codes":
        values = np.asarray(_get(dec, "values", "output_decoding"), np.float64)
        table = values[0] if values.shape[0] == 1 else None
        out = table[flat] if table is not None else values[channel[None, :], flat]
    else:
        raise ModelError(f"metadata.output_decoding.from: expected acc or codes, got {src!r}")
    if int(np.prod(shape)) != out.shape[1]:
        raise ModelError(f"metadata.output_decoding.source_shape {list(shape)} does not match "
                         f"the last layer's {out.shape[1]} values")
    return out.reshape(n, *shape)


def _softmax(v: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(v - v.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _tail(v: np.ndarray, tail: list) -> np.ndarray:
    for i, op in enumerate(tail):
        kind = op.get("op")
        axis = int(op.get("axis", -1))  # counts the batch axis, as in the graph
        if kind == "identity":
            continue
        if kind in ("softmax", "logsoftmax"):
            v = _softmax(v.astype(np.float64), axis)
            v = np.log(v) if kind == "logsoftmax" else v
        elif kind == "topk":
            k = int(op.get("k", 1))
            key = -v if op.get("largest", True) else v
            idx = np.argsort(key, axis=axis, kind="stable")
            idx = np.take(idx, np.arange(k), axis=axis)
            v = idx.astype(np.int64) if op.get("output", "indices") == "indices" else \
                np.take_along_axis(v, idx, axis=axis)
        elif kind == "argmax":
            v = np.argmax(v, axis=axis)
            if op.get("keepdims", True):
                v = np.expand_dims(v, axis)
            v = v.astype(np.int64)
        else:
            raise ModelError(f"metadata.output_decoding.tail[{i}]: unknown op {kind!r}")
    return v


def decode_outputs(model: Model, result: GoldenResult) -> np.ndarray:
    """What the source model outputs (its last quantity, then its tail such as Softmax or
    TopK), ``[N, *source output shape]``, from a golden-model run."""
    v = source_values(model, result)
    return _tail(v, list(_decoding(model).get("tail", [])))


def model_classes(model: Model, result: GoldenResult) -> np.ndarray:
    """The class of each sample: the argmax of the source model's last quantity along
    its last axis (ties to the lowest index), ``[N]``. A model without output decoding
    (trained here) gives the argmax of its last accumulators."""
    if not has_decoding(model):
        acc = result.last_accumulators
        return np.argmax(acc.reshape(acc.shape[0], -1), axis=1)
    v = source_values(model, result)
    return np.argmax(v.reshape(v.shape[0], -1), axis=1)
