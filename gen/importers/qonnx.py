"""Import quantized MLPs from QONNX (Brevitas exports) into the mulfree model description.

Supported graphs are chains: optional reshape and input scaling (Mul/Add/Sub/Div by
constants), an input ``Quant``/``BipolarQuant``, then per layer ``MatMul`` with quantized
constant weights, an optional affine (``BatchNormalization`` or constant Mul/Add/Sub/Div),
and either an activation quantizer (becomes integer thresholds) or the graph output (the
last layer emits its accumulators; the float affine that turns them into the network's
logits travels in ``metadata.output_affine``). Anything else is rejected with the node
that could not be mapped.

Thresholds are found by enumeration: every accumulator value a channel can reach is pushed
through the float affine and the output quantizer exactly as QONNX defines them (clip,
then round half to even; bipolar ``x >= 0 -> +1``), and ``T[t]`` is the first value that
reaches code ``t``. So the integer network reproduces the quantized float network on
every input, ties included, up to float32 rounding in the reference executor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..model.golden import accumulator_bounds
from ..model.format import Dense, Model, Output, OutputKind, Weights

__all__ = ["import_qonnx", "encode_inputs", "output_logits", "ImportError_"]

MAX_ENUMERATION = 1 << 22  # accumulator values per channel we are willing to enumerate


class ImportError_(ModelError):
    """A QONNX graph mulfree cannot map; the message names the node."""


@dataclass(frozen=True)
class _Quant:
    """A QONNX integer quantizer: q = round_half_even(clip(x / scale + zeropt)) - zeropt."""

    scale: np.ndarray
    zeropt: float
    bits: int
    signed: bool
    narrow: bool
    bipolar: bool

    @property
    def qmin(self) -> int:
        if self.bipolar:
            return -1
        if self.signed:
            return -(2 ** (self.bits - 1)) + (1 if self.narrow else 0)
        return 0

    @property
    def qmax(self) -> int:
        if self.bipolar:
            return 1
        if self.signed:
            return 2 ** (self.bits - 1) - 1
        return 2**self.bits - (2 if self.narrow else 1)

    def levels(self) -> np.ndarray:
        """The integers q the quantizer can produce, in code order."""
        if self.bipolar:
            return np.array([-1, 1])
        return np.arange(self.qmin, self.qmax + 1)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Integer levels q for float x (the value is q * scale)."""
        y = x / self.scale + self.zeropt
        if self.bipolar:
            return np.where(y >= 0, 1, -1)
        y = np.clip(y, self.qmin, self.qmax)
        return (np.round(y) - self.zeropt).astype(np.int64)

    def codes(self, x: np.ndarray) -> np.ndarray:
        q = self.quantize(x)
        return (q + 1) // 2 if self.bipolar else q - self.qmin

    def describe(self) -> dict:
        return {"bits": self.bits, "signed": self.signed, "narrow": self.narrow,
                "bipolar": self.bipolar, "scale": np.ravel(self.scale).tolist(),
                "zeropt": self.zeropt}


def _require_onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ModelError("importing QONNX needs the onnx package: "
                         ".venv/bin/pip install 'mulfree[import]'") from None
    return onnx, numpy_helper


class _Graph:
    def __init__(self, path: Path):
        onnx, numpy_helper = _require_onnx()
        try:
            self.model = onnx.load(str(path))
        except FileNotFoundError:
            raise ModelError(f"{path}: no such file") from None
        except Exception as e:  # onnx raises DecodeError and friends for non-ONNX files
            raise ModelError(f"{path}: not an ONNX model ({type(e).__name__})") from None
        g = self.model.graph
        self.helper = onnx.helper
        self.consts = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
        for n in g.node:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        self.consts[n.output[0]] = numpy_helper.to_array(a.t).astype(np.float64)
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        inputs = [i.name for i in g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise ImportError_(f"expected one graph input, got {inputs}")
        self.input = inputs[0]
        self.outputs = {o.name for o in g.output}

    def attrs(self, node) -> dict:
        return {a.name: self.helper.get_attribute_value(a) for a in node.attribute}

    def const(self, name: str) -> np.ndarray | None:
        """The value of a tensor computable from constants alone, else None."""
        if name in self.consts:
            return self.consts[name]
        node = self.producer.get(name)
        if node is None:
            return None
        args = [self.const(i) for i in node.input]
        if any(a is None for a in args):
            return None
        ops = {"Pow": np.power, "Mul": np.multiply, "Div": np.divide, "Add": np.add,
               "Sub": np.subtract, "Sqrt": np.sqrt, "Identity": lambda x: x}
        if node.op_type in ops:
            return ops[node.op_type](*args)
        if node.op_type == "Transpose":
            return np.transpose(args[0], self.attrs(node).get("perm"))
        if node.op_type in ("Quant", "BipolarQuant"):
            q = self.quantizer(node)
            return q.quantize(args[0]) * q.scale
        return None

    def quantizer(self, node) -> _Quant:
        if node.op_type == "BipolarQuant":
            scale = self.const(node.input[1])
            return _Quant(scale, 0.0, 1, True, False, True)
        a = self.attrs(node)
        scale, zeropt, bits = (self.const(i) for i in node.input[1:4])
        if scale is None or zeropt is None or bits is None:
            raise ImportError_(f"node {node.name or node.output[0]} (Quant): scale, zero point "
                               f"and bit width must be constants")
        rounding = a.get("rounding_mode", b"ROUND")
        rounding = rounding.decode() if isinstance(rounding, bytes) else rounding
        if rounding.upper() not in ("ROUND", "HALF_EVEN"):
            raise ImportError_(f"node {node.output[0]} (Quant): rounding mode {rounding!r} is "
                               f"not supported (expected ROUND)")
        if np.any(zeropt != 0):
            raise ImportError_(f"node {node.output[0]} (Quant): a non-zero zero point is not "
                               f"supported")
        bits_i = int(np.ravel(bits)[0])
        signed = bool(a.get("signed", 1))
        return _Quant(scale, 0.0, bits_i, signed, bool(a.get("narrow", 0)),
                      bits_i == 1 and signed)

    def weight(self, name: str) -> tuple[np.ndarray, np.ndarray, _Quant]:
        """Integer weights [out, in], per-output-channel scale [out], and the quantizer,
        for the MatMul operand `name` ([in, out] after any Transpose)."""
        transposed = False
        node = self.producer.get(name)
        while node is not None and node.op_type in ("Transpose", "Identity"):
            if node.op_type == "Transpose":
                transposed = not transposed
            name = node.input[0]
            node = self.producer.get(name)
        if node is None or node.op_type not in ("Quant", "BipolarQuant"):
            raise ImportError_(f"MatMul weight {name!r} is not a quantized constant "
                               f"(expected Quant or BipolarQuant of an initializer)")
        w = self.const(node.input[0])
        if w is None or w.ndim != 2:
            raise ImportError_(f"MatMul weight {name!r}: expected a 2-D constant")
        q = self.quantizer(node)
        ints = q.quantize(w)
        scale = np.broadcast_to(q.scale, w.shape)
        # Oriented [out, in]: without a Transpose the operand is already [in, out].
        if not transposed:
            ints, scale = ints.T, scale.T
        if not np.all(scale == scale[:, :1]):
            raise ImportError_(f"MatMul weight {name!r}: per-input-channel scales cannot be "
                               f"folded into integer thresholds")
        return ints.astype(np.int64), scale[:, 0].astype(np.float64), q


def _weights_for(ints: np.ndarray) -> Weights:
    values = set(np.unique(ints).tolist())
    if values <= {-1, 1}:
        cb = np.array([-1, 1])
        return Weights("binary", 1, (ints > 0).astype(np.int64), codebook=cb)
    if values <= {-1, 0, 1}:
        cb = np.array([-1, 0, 1])
        return Weights("ternary", 2, ints + 1, codebook=cb)
    lo, hi = int(ints.min()), int(ints.max())
    bits = max((hi).bit_length(), (~lo).bit_length() if lo < 0 else 0) + 1
    k = np.arange(2**bits)
    cb = np.where(k >= 2 ** (bits - 1), k - 2**bits, k)
    return Weights("uniform", bits, ints & (2**bits - 1), codebook=cb)


def _thresholds(layer_acc_only: Dense, m: np.ndarray, c: np.ndarray, q: _Quant,
                where: str) -> tuple[np.ndarray, int]:
    """Integer thresholds reproducing ``codes(q, m * acc + c)`` for every reachable acc,
    for channels with m >= 0 (negative slopes are flipped by the caller)."""
    bounds = accumulator_bounds(layer_acc_only)
    n_levels = len(q.levels())
    out_bits = max(1, (n_levels - 1).bit_length())
    thresholds = np.empty((m.size, 2**out_bits - 1), np.int64)
    for j in range(m.size):
        lo, hi = int(bounds.low[j]), int(bounds.high[j])
        if hi - lo + 1 > MAX_ENUMERATION:
            raise ImportError_(f"{where}: channel {j} reaches {hi - lo + 1} accumulator values, "
                               f"too many to enumerate thresholds")
        acc = np.arange(lo, hi + 1)
        codes = q.codes(m[j] * acc + c[j]) if m[j] != 0 else np.full(acc.size, q.codes(np.array([c[j]]))[0])
        if np.any(np.diff(codes) < 0):
            raise ImportError_(f"{where}: channel {j}'s output is not monotone in its accumulator")
        for t in range(1, 2**out_bits):
            reached = np.flatnonzero(codes >= t)
            thresholds[j, t - 1] = acc[reached[0]] if reached.size else hi + 1
    return thresholds, out_bits


def _activation_codebook(q: _Quant) -> np.ndarray:
    levels = q.levels()
    bits = max(1, (len(levels) - 1).bit_length())
    pad = np.full(2**bits - len(levels), levels[-1])  # unreachable codes: any value
    return np.concatenate([levels, pad]).astype(np.int64)


def import_qonnx(path: str | os.PathLike, name: str | None = None) -> Model:
    """Read a QONNX MLP and return the equivalent integer model."""
    path = Path(path)
    g = _Graph(path)
    t = g.input
    in_affine = [1.0, 0.0]            # float input x -> a * x + b before the input quantizer
    act_q: _Quant | None = None       # quantizer that produced the current tensor
    input_q: _Quant | None = None
    layers: list[Dense] = []
    pending = None                    # (ints, w_scale, act_q) of the layer being built
    m = c = None                      # the pending layer's affine: y = m * acc + c
    visited = 0
    while True:
        nodes = [n for n in g.consumers.get(t, []) if n.op_type != "Shape"]
        if not nodes:
            break
        if len(nodes) > 1:
            raise ImportError_(f"tensor {t!r} feeds {len(nodes)} nodes; only chains are supported")
        n = nodes[0]
        op, label = n.op_type, f"node {visited} ({n.op_type} -> {n.output[0]})"
        visited += 1
        other = [i for i in n.input if i != t]
        k = g.const(other[0]) if len(other) == 1 and op in ("Mul", "Div", "Add", "Sub") else None
        if op in ("Reshape", "Flatten", "Identity"):
            if pending is not None:
                raise ImportError_(f"{label}: reshaping between MatMul and its quantizer is not supported")
        elif op in ("Mul", "Div", "Add", "Sub") and k is not None:
            if op in ("Div", "Sub") and n.input[0] != t:
                raise ImportError_(f"{label}: only tensor {op.lower()} constant is supported")
            if pending is None and act_q is None:  # input scaling
                a, b = in_affine
                if np.size(k) != 1:
                    raise ImportError_(f"{label}: only scalar input scaling is supported")
                k = float(np.ravel(k)[0])
                in_affine = {"Mul": [a * k, b * k], "Div": [a / k, b / k], "Add": [a, b + k],
                             "Sub": [a, b - k]}[op]
            elif pending is not None:
                kk = np.ravel(k) if np.size(k) > 1 else float(np.ravel(k)[0])
                if op == "Mul":
                    m, c = m * kk, c * kk
                elif op == "Div":
                    m, c = m / kk, c / kk
                elif op == "Add":
                    c = c + kk
                else:
                    c = c - kk
            else:
                raise ImportError_(f"{label}: arithmetic on quantized activations is not supported")
        elif op in ("Quant", "BipolarQuant"):
            q = g.quantizer(n)
            if np.size(q.scale) != 1:
                raise ImportError_(f"{label}: per-channel activation scales are not supported")
            if pending is None:
                if act_q is not None:
                    raise ImportError_(f"{label}: two activation quantizers in a row")
                input_q = act_q = q
            else:
                layers.append(_finish_layer(len(layers), pending, m, c, q))
                pending, act_q = None, q
        elif op == "MatMul":
            if act_q is None:
                raise ImportError_(f"{label}: MatMul on unquantized activations (expected a "
                                   f"Quant or BipolarQuant before it)")
            if n.input[0] != t:
                raise ImportError_(f"{label}: expected activations as the first MatMul operand")
            ints, w_scale, _ = g.weight(n.input[1])
            pending = (ints, act_q)
            m = w_scale * float(np.ravel(act_q.scale)[0])
            c = np.zeros_like(m)
        elif op == "BatchNormalization" and pending is not None:
            gamma, beta, mean, var = (g.const(i) for i in n.input[1:5])
            if any(v is None for v in (gamma, beta, mean, var)):
                raise ImportError_(f"{label}: batch-norm parameters must be constants")
            eps = float(g.attrs(n).get("epsilon", 1e-5))
            inv = gamma / np.sqrt(var + eps)
            m, c = m * inv, (c - mean) * inv + beta
        else:
            raise ImportError_(f"{label}: not supported by the QONNX importer (supported: "
                               f"Reshape, Flatten, Mul/Div/Add/Sub by constants, Quant, "
                               f"BipolarQuant, MatMul, BatchNormalization)")
        t = n.output[0]
    if t not in g.outputs:
        raise ImportError_(f"the chain ends at {t!r}, which is not the graph output")
    metadata: dict = {"source": f"QONNX import of {path.name}",
                      "input_encoding": {"affine": in_affine, "quant": input_q.describe()}}
    if pending is not None:
        layers.append(_finish_layer(len(layers), pending, m, c, None))
        metadata["output_affine"] = {"scale": np.ravel(m).tolist(), "bias": np.ravel(c).tolist(),
                                     "note": "logits = scale * acc + bias (float, for people)"}
    if not layers:
        raise ImportError_("no MatMul layers found")
    if input_q is None:
        raise ImportError_("no input quantizer found")
    n_in = layers[0].in_features
    return Model(name=name or path.stem, input_shape=(n_in,),
                 input_bits=max(1, (len(input_q.levels()) - 1).bit_length()),
                 layers=tuple(layers), metadata=metadata)


def _finish_layer(index: int, pending, m, c, out_q: _Quant | None) -> Dense:
    ints, act_q = pending
    out = ints.shape[0]
    m = np.broadcast_to(np.asarray(m, np.float64), (out,)).copy()
    c = np.broadcast_to(np.asarray(c, np.float64), (out,)).copy()
    name = f"fc{index + 1}"
    act_cb = _activation_codebook(act_q)
    if out_q is None:
        return Dense(name=name, weights=_weights_for(ints), bias=np.zeros(out, np.int64),
                     activation_codebook=act_cb, output=Output(OutputKind.ACC))
    # A negative slope would make the output decrease with acc: negate those channels.
    flip = m < 0
    ints = np.where(flip[:, None], -ints, ints)
    m = np.where(flip, -m, m)
    weights = _weights_for(ints)
    acc_only = Dense(name=name, weights=weights, bias=np.zeros(out, np.int64),
                     activation_codebook=act_cb, output=Output(OutputKind.ACC))
    thresholds, out_bits = _thresholds(acc_only, m, c, out_q, f"layer {index} '{name}'")
    return Dense(name=name, weights=weights, bias=np.zeros(out, np.int64),
                 activation_codebook=act_cb,
                 output=Output(OutputKind.THRESHOLDS, out_bits, thresholds))


def _quant_from_metadata(d: dict) -> _Quant:
    return _Quant(np.array(d["scale"], np.float64), float(d["zeropt"]), int(d["bits"]),
                  bool(d["signed"]), bool(d["narrow"]), bool(d["bipolar"]))


def encode_inputs(model: Model, x: np.ndarray) -> np.ndarray:
    """Float inputs (as the QONNX graph takes them) to the integer model's input codes."""
    enc = model.metadata.get("input_encoding")
    if not enc:
        raise ModelError(f"model {model.name!r} has no metadata.input_encoding (not imported?)")
    a, b = enc["affine"]
    q = _quant_from_metadata(enc["quant"])
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    return q.codes(a * x + b)


def output_logits(model: Model, acc: np.ndarray) -> np.ndarray:
    """The float logits of an imported model from its last layer's accumulators."""
    aff = model.metadata.get("output_affine")
    if not aff:
        raise ModelError(f"model {model.name!r} has no metadata.output_affine")
    return np.asarray(acc) * np.array(aff["scale"]) + np.array(aff["bias"])
