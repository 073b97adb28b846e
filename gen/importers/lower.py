"""Lowering a normalized QONNX graph to mulfree layers, in one walk over its nodes.

Every tensor the walk meets is one of three things:

- the float graph input (:class:`_Src`), with the elementwise steps applied to it so far
  (they become the model's input encoding);
- quantized activations (:class:`_Act`): codes of a mulfree tensor (the model input or a
  layer's output) whose float value is ``levels[code] * scale + offset``;
- a pending compute layer's pre-activation (:class:`_Lin`): integer accumulators of a
  dense or conv2d layer followed by a chain of monotone float operations (scales, biases,
  batch norm, ReLU, Clip) that a quantizer will turn into thresholds.

Each carries ``idx``, an integer array of the tensor's ONNX shape (batch 1 included)
holding, for every element, its flat index in the mulfree tensor it lives in (for the
float input: the source element). Reshape, Flatten, Transpose, Squeeze and Unsqueeze only
move ``idx`` around, so NCHW and NHWC graphs, Brevitas' flattening and FINN's
Unsqueeze/Squeeze all reduce to one check where a layer consumes the tensor: a dense
layer permutes its weight columns by ``idx``; a conv2d or max-pool needs ``idx`` to be the
(row, column, channel) order mulfree uses, and the model input takes whatever order its
first layer needs (recorded in the input encoding's ``order``).

Anything the walk cannot map exactly is refused with the node's name, its op type and
what would make it importable; nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np

from ..errors import ModelError
from ..model.format import (Conv2d, Dense, Flatten, MaxPool, Model, Output, OutputKind,
                            Weights, MAX_CODE_BITS)
from ..model.encoding import ROUNDING_MODES, apply_steps
from ..model.golden import accumulator_bounds
from .graph import CHANNELS_LAST, Graph, GraphImportError, attrs, label
from .output_fold import fold_argmax
from .thresholds import Affine, Chain, Clip, OutQuant, Relu, chain_direction, chain_value, \
    search_thresholds

__all__ = ["InputDecl", "Probe", "Lowered", "lower"]

MAX_WEIGHT = 2**15   # integer weights must fit a 16-bit two's complement codebook
IDENTITY_MIN_LEVELS = 17   # offset levels from this many on: identity codebook and a bias


@dataclass(frozen=True)
class InputDecl:
    """The user's declaration of a graph input that has no quantizer: integer codes of
    ``bits`` bits (two's complement if ``signed``) times ``scale``."""

    bits: int
    signed: bool = False
    scale: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or \
                not 1 <= self.bits <= MAX_CODE_BITS:
            raise ModelError(f"--input-bits must be 1 to {MAX_CODE_BITS}, got {self.bits!r}")
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ModelError(f"--input-scale must be a positive number, got {self.scale!r}")


@dataclass(frozen=True)
class Probe:
    """A graph tensor the imported model reproduces: layer ``layer``'s output (-1: the
    input codes) gathered by ``idx`` (the tensor's ONNX shape, batch included) has the
    value ``levels[code] * scale + offset`` (``scale`` per channel of that layer)."""

    layer: int
    tensor: str
    idx: np.ndarray
    levels: np.ndarray
    scale: np.ndarray
    offset: float
    node: str
    chain: Chain | None = None   # how a threshold layer's codes come from its accumulators


@dataclass(frozen=True)
class Lowered:
    model: Model
    probes: tuple[Probe, ...]
    notes: tuple[str, ...]


# -- the walk's tensor states -----------------------------------------------------------

@dataclass
class _Src:
    idx: np.ndarray
    steps: list = field(default_factory=list)
    decl: tuple | None = None  # (origin, quantizer dict, levels, scale) when known as codes


@dataclass
class _Act:
    idx: np.ndarray
    src: int | None            # mulfree layer index; -1 the model input; None: input, not laid out
    levels: np.ndarray         # int64 level of each code of the src tensor
    scale: np.ndarray          # scalar, or per channel of the src tensor
    offset: float = 0.0
    probe: str | None = None
    node: str = ""


@dataclass
class _Pending:
    kind: str                  # dense | conv
    ints: np.ndarray           # [out, in] or [out, kh, kw, C]
    levels: np.ndarray         # activation codebook of the input codes
    in_shape: tuple
    out_shape: tuple
    node: str
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    name: str = ""             # the mulfree layer's name, given when first built


@dataclass
class _Lin:
    idx: np.ndarray
    pend: _Pending
    ops: list


def _canonical(layout: str, h: int, w: int, c: int) -> np.ndarray:
    """``idx`` of an [H, W, C] mulfree map seen as an ONNX tensor of ``layout``."""
    hwc = np.arange(h * w * c).reshape(h, w, c)
    return (hwc.transpose(2, 0, 1) if layout == "NCHW" else hwc)[None]


def _weights_for(ints: np.ndarray) -> Weights:
    values = set(np.unique(ints).tolist())
    if values <= {-1, 1}:
        return Weights("binary", 1, (ints > 0).astype(np.int64), codebook=np.array([-1, 1]))
    if values <= {-1, 0, 1}:
        return Weights("ternary", 2, ints + 1, codebook=np.array([-1, 0, 1]))
    lo, hi = int(ints.min()), int(ints.max())
    bits = max(hi.bit_length() if hi > 0 else 0, (~lo).bit_length() if lo < 0 else 0) + 1
    k = np.arange(2**bits)
    cb = np.where(k >= 2 ** (bits - 1), k - 2**bits, k)
    return Weights("uniform", bits, ints & (2**bits - 1), codebook=cb)


def _pad_levels(levels: np.ndarray) -> np.ndarray:
    """A codebook of ``2**bits`` entries: unreachable codes repeat the last level."""
    n = levels.shape[-1]
    bits = max(1, (n - 1).bit_length())
    pad = np.repeat(levels[..., -1:], 2**bits - n, axis=-1)
    return np.concatenate([levels, pad], axis=-1).astype(np.int64)


def _offset_codes(p: "_Pending", weights: Weights, bias: np.ndarray):
    """The layer's activation codebook and bias. Levels that are the codes plus a constant
    ``k`` (signed inputs: codes = x + 2**(N-1), so k = -2**(N-1); a zero point) become the
    identity codebook ``A[c] = c`` with ``k * sum_i W[j, i]`` added to each bias: the same
    accumulators, and the hardware multiplies codes directly instead of decoding them
    through a table. Done for more than ``IDENTITY_MIN_LEVELS - 1`` levels, where a decode
    table is large (a 16-bit input: 7128 against 94509 estimated logic cells on the
    iCE40UP5K for tests/data/import/brevitas/mlp_tab_in16, ``bench/import_corpus.py
    --codebooks``); a few levels stay a small product table. Under zero padding a padded
    tap contributes 0, not ``k * W``, so a padded convolution keeps the offset codebook
    (exact, with a decode)."""
    levels = np.asarray(p.levels, np.int64)
    k = int(levels[0])
    padded = p.kind == "conv" and any(p.padding)
    if k == 0 or padded or levels.size < IDENTITY_MIN_LEVELS or \
            not np.array_equal(levels, np.arange(levels.size) + k):
        return _pad_levels(levels), bias
    n = 2 ** max(1, (levels.size - 1).bit_length())
    w = weights.codebook[weights.codes].reshape(weights.codes.shape[0], -1)
    return np.arange(n), np.asarray(bias, np.int64) + k * w.sum(axis=1)


def _scalar(v) -> float | None:
    a = np.asarray(v, np.float64)
    return float(a.ravel()[0]) if a.size and np.all(a == a.ravel()[0]) else None


class _Lowering:
    def __init__(self, graph: Graph, decl: InputDecl | None, last: str, name: str):
        self.g = graph
        self.decl = decl
        self.last = last
        self.name = name
        self.layers: list = []
        self.shapes: list[tuple] = []
        self.source_nodes: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self.state: dict[str, object] = {}
        self.probes: list[Probe] = []
        self.notes: list[str] = []
        self.encoding: dict = {}
        self.input_shape: tuple | None = None
        self.input_levels: np.ndarray | None = None
        self.input_probes: list[tuple] = []
        self.input_label = ""

    # -- helpers -------------------------------------------------------------------
    def fail(self, node, msg: str):
        raise GraphImportError(f"{label(node)}: {msg}")

    def out_shape(self, node, i: int = 0) -> tuple:
        s = self.g.shape(node.output[i])
        if s is None:
            self.fail(node, f"the shape of its output '{node.output[i]}' could not be inferred "
                            f"(static shapes are needed)")
        return s

    def const(self, node, i: int, what: str) -> np.ndarray:
        if len(node.input) <= i or not node.input[i]:
            self.fail(node, f"has no {what} input")
        v = self.g.const(node.input[i])
        if v is None:
            self.fail(node, f"its {what} '{node.input[i]}' must be a constant")
        return np.asarray(v)

    def new_name(self, kind: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{kind}{self.counts[kind]}"

    def append(self, layer, shape: tuple, node_label: str) -> int:
        self.layers.append(layer)
        self.shapes.append(tuple(shape))
        self.source_nodes[layer.name] = node_label
        return len(self.layers) - 1

    def src_shape(self, src: int) -> tuple:
        return self.input_shape if src == -1 else self.shapes[src]

    # -- placing activations where a layer reads them ---------------------------------
    def place_flat(self, act: _Act, node) -> tuple[_Act, np.ndarray]:
        """The activation as a flat mulfree vector; returns it and, per ONNX feature
        (last axis), the mulfree column it is."""
        if any(d != 1 for d in act.idx.shape[:-1]):
            self.fail(node, f"multiplies a tensor of shape {list(act.idx.shape)} by a matrix; "
                            f"only [1, features] (any number of leading 1s) is supported "
                            f"(flatten the tensor first)")
        feats = act.idx.shape[-1]
        if act.src is None:
            self.fix_input(act, (feats,), act.idx.ravel())
            act = replace(act, idx=np.arange(feats).reshape(act.idx.shape), src=-1)
        elif len(self.src_shape(act.src)) == 3:
            shape = self.src_shape(act.src)
            name = self.new_name("flatten")
            src = self.append(Flatten(name=name), (int(np.prod(shape)),), "(flatten before "
                              f"{label(node)})")
            act = replace(act, src=src)
        size = int(np.prod(self.src_shape(act.src)))
        cols = act.idx.ravel()
        if size != feats or not np.array_equal(np.sort(cols), np.arange(size)):
            self.fail(node, f"its input reads {feats} of the {size} values of the tensor it "
                            f"comes from, not each once (a slice, gather or broadcast); not "
                            f"supported")
        return act, cols

    def place_spatial(self, act: _Act, layout: str, node) -> tuple[_Act, tuple]:
        """The activation as a mulfree [H, W, C] map read in ``layout`` by the node."""
        shape = act.idx.shape
        if len(shape) != 4 or shape[0] != 1:
            self.fail(node, f"needs a 4-D input [1, C, H, W] or [1, H, W, C], got "
                            f"{list(shape)} (2-D convolution and pooling only)")
        h, w, c = (shape[2], shape[3], shape[1]) if layout == "NCHW" else shape[1:]
        want = _canonical(layout, h, w, c)
        if act.src is None:
            order = np.empty(h * w * c, np.int64)
            order[want.ravel()] = act.idx.ravel()
            self.fix_input(act, (h, w, c), order)
            return replace(act, idx=want, src=-1), (h, w, c)
        if self.src_shape(act.src) != (h, w, c) or not np.array_equal(act.idx, want):
            self.fail(node, f"its input is not a feature map in {layout} order of the layer "
                            f"before it (a reshape or transpose in between, or a dense layer's "
                            f"output reshaped into a map): not supported")
        return act, (h, w, c)

    def fix_input(self, act: _Act, shape: tuple, order: np.ndarray) -> None:
        """Lay the model input out as ``shape``: input code i is source element order[i]."""
        self.input_shape = tuple(int(v) for v in shape)
        self.input_levels = act.levels
        if not np.array_equal(order, np.arange(order.size)):
            self.encoding["order"] = [int(v) for v in order]
        where = np.empty(order.size, np.int64)
        where[order] = np.arange(order.size)
        for tensor, idx, levels, scale, offset, node in self.input_probes:
            self.probes.insert(0, Probe(-1, tensor, where[idx], levels, scale, offset, node))

    def integer_act(self, act: _Act, node, padded: bool) -> tuple[np.ndarray, float, float]:
        """(integer levels, scale, leftover offset) of an activation a layer consumes: the
        offset goes into the levels when it is a whole number of half steps, else the
        caller folds it into the layer's bias (impossible under zero padding)."""
        s = _scalar(act.scale)
        if s is None:
            self.fail(node, "its input has per-channel scales; a layer needs one scale for "
                            "all its inputs (quantize its input per tensor)")
        if s == 0:
            self.fail(node, "its input has scale 0")
        levels, b = act.levels.astype(np.int64), act.offset
        if b != 0:
            ratio = Fraction(b) / Fraction(s)
            for k in (1, 2):
                if (ratio * k).denominator == 1:
                    levels, s, b = k * levels + int(ratio * k), s / k, 0.0
                    break
        if b != 0 and padded:
            self.fail(node, f"its input values are levels * {s:g} + {b:g}; with zero padding "
                            f"the offset cannot be folded into the bias (use a quantizer with "
                            f"zero point 0 before it)")
        if np.abs(levels).max(initial=0) >= 2**31:
            self.fail(node, "its input levels exceed 2**31")
        return levels, s, b

    def weights(self, node, i: int):
        name = node.input[i]
        qc = self.g.qconst(name)
        if qc is None:
            if self.g.const(name) is None:
                self.fail(node, f"multiplies two computed tensors ('{node.input[0]}' and "
                                f"'{name}'); the weights must be constants")
            self.fail(node, f"its weight '{name}' is a float constant with non-integer values; "
                            f"mulfree needs quantized weights (a Quant or BipolarQuant on the "
                            f"weight, as Brevitas and QKeras export, or integer values)")
        if np.abs(qc.q).max(initial=0) >= MAX_WEIGHT:
            self.fail(node, f"its integer weights reach {int(np.abs(qc.q).max())}, more than "
                            f"16 bits")
        return qc

    # -- the walk --------------------------------------------------------------------
    def run(self) -> Lowered:
        g = self.g
        graph = g.model.graph
        inputs = [i for i in graph.input if i.name not in g.init]
        if len(inputs) != 1:
            raise GraphImportError(f"the graph has {len(inputs)} inputs "
                                   f"({', '.join(i.name for i in inputs)}); only single-input "
                                   f"graphs are supported")
        if len(graph.output) != 1:
            raise GraphImportError(f"the graph has {len(graph.output)} outputs "
                                   f"({', '.join(o.name for o in graph.output)}); only "
                                   f"single-output graphs are supported")
        x = inputs[0]
        self.input_label = x.name
        shape = g.shape(x.name)
        if shape is None or shape[0] != 1:
            raise GraphImportError(f"graph input '{x.name}': its shape must be static with "
                                   f"batch 1, got {g.model.get_tensor_shape(x.name)}")
        if x.type.tensor_type.elem_type != 1:
            raise GraphImportError(f"graph input '{x.name}': only float32 inputs are supported")
        self.encoding = {"source_shape": list(shape[1:]), "layout": _layout_name(shape),
                         "origin": "graph", "steps": []}
        idx = np.arange(int(np.prod(shape))).reshape(shape)
        self.state[x.name] = self.initial_state(x.name, idx)
        dt = _datatype(g.model, x.name)
        if dt is not None:  # the graph promises integer inputs (FINN): the check keeps to them
            self.encoding["datatype"] = {"kind": dt[0], "bits": dt[1], "signed": dt[2]}
        for node in g.nodes:
            dyn = [i for i in node.input if i in self.state]
            if not dyn:
                if all(not i or g.const(i) is not None for i in node.input):
                    continue  # a constant: evaluated where it is used
                missing = [i for i in node.input if i and g.const(i) is None]
                self.fail(node, f"reads '{missing[0]}', which is neither computed from the "
                                f"graph input nor a constant")
            for i in dyn:
                users = [u for u in g.consumers.get(i, []) if u.op_type != "Shape"]
                if len(users) > 1:
                    names = ", ".join(label(u) for u in users)
                    self.fail(node, f"tensor '{i}' feeds {len(users)} nodes ({names}): "
                                    f"branches and residual connections are not supported "
                                    f"(mulfree networks are chains of layers)")
            handler = _HANDLERS.get(node.op_type)
            if handler is None or (node.domain not in ("", CHANNELS_LAST)
                                   and node.op_type not in _QUANT_NAMES):
                self.fail(node, _unsupported_hint(node))
            handler(self, node)
        out = graph.output[0].name
        if out not in self.state:
            raise GraphImportError(f"the graph output '{out}' is not computed from the input")
        return self.finish(self.state[out], out)

    def initial_state(self, name: str, idx: np.ndarray) -> _Src:
        """The float input; with the user's declaration (``--input-bits``) or an integer
        data type annotated on the input (FINN), it also knows the codes it takes, used
        where a layer reads the input with no quantizer of the graph's own between."""
        decl = self.decl
        if decl is not None:
            if decl.bits == 1 and decl.signed:
                levels = np.array([-1, 1])
            else:
                lo = -(2 ** (decl.bits - 1)) if decl.signed else 0
                levels = np.arange(lo, lo + 2**decl.bits)
            q = {"kind": "int", "scale": float(decl.scale), "zero_point": 0.0,
                 "bits": decl.bits, "signed": decl.signed, "narrow": False, "rounding": "ROUND"}
            return _Src(idx, decl=("declared", q, levels, float(decl.scale)))
        dt = _datatype(self.g.model, name)
        if dt is not None:
            kind, bits, signed = dt
            if kind == "bipolar":
                return _Src(idx, decl=("datatype", {"kind": "bipolar"}, np.array([-1, 1]), 1.0))
            lo = -(2 ** (bits - 1)) if signed else 0
            q = {"kind": "int", "scale": 1.0, "zero_point": 0.0, "bits": bits, "signed": signed,
                 "narrow": False, "rounding": "ROUND"}
            return _Src(idx, decl=("datatype", q, np.arange(lo, lo + 2**bits), 1.0))
        return _Src(idx)

    def materialize(self, x: _Src, node) -> _Act:
        """The float input as codes where a layer reads it: its declared (or annotated)
        codes, through the elementwise steps the graph applies before the layer."""
        if x.decl is None:
            self.fail(node, f"takes the graph input '{self.input_label}' without a quantizer: "
                            f"declare its encoding with --input-bits N [--input-signed] "
                            f"[--input-scale S]")
        origin, q, levels, scale = x.decl
        v = (levels.astype(np.float32) * np.float32(scale))[None, :]
        for step in x.steps:
            if np.ndim(step["value"]) != 0:
                self.fail(node, "the graph applies per-element constants to its input before "
                                "this layer, and the input has no quantizer: not supported")
            v = apply_steps(v, [step], v.shape[1])
        v = v[0].astype(np.float64)
        base, step_ = v[0], (v[1] - v[0] if v.size > 1 else 1.0)
        if step_ == 0 or not np.allclose(v, base + np.arange(v.size) * step_, rtol=1e-6, atol=0):
            self.fail(node, "the steps the graph applies to its input make its levels uneven; "
                            "not supported without an input quantizer")
        self.encoding.update(origin=origin, quantizer=q, steps=[])
        return _Act(x.idx, None, np.arange(v.size), np.asarray(step_), float(base),
                    node="(declared input)" if origin == "declared" else "(input data type)")

    # -- handlers: quantizers ----------------------------------------------------------
    def quant_params(self, node) -> OutQuant:
        a = attrs(node)
        if node.op_type == "BipolarQuant":
            s = self.const(node, 1, "scale")
            return OutQuant("bipolar", scale=np.asarray(s, np.float64))
        if node.op_type == "Trunc":
            return self.trunc_params(node)
        s, z, b = (self.const(node, i, w) for i, w in ((1, "scale"), (2, "zero point"),
                                                       (3, "bit width")))
        bits = np.ravel(b)
        if bits.size != 1 or bits[0] != round(float(bits[0])) or not 1 <= bits[0] <= MAX_CODE_BITS:
            self.fail(node, f"bit width {np.ravel(b).tolist()} is not an integer 1 to "
                            f"{MAX_CODE_BITS} (wider activations cannot be codes)")
        rounding = str(a.get("rounding_mode", "ROUND")).upper()
        if rounding not in ROUNDING_MODES:
            self.fail(node, f"rounding mode {rounding!r} is not one of {', '.join(ROUNDING_MODES)}")
        zf = np.asarray(z, np.float64)
        if not np.all(zf == np.round(zf)):
            self.fail(node, f"its zero point {zf.ravel()[:4].tolist()} is not an integer, so "
                            f"its levels are not integers")
        return OutQuant("int", scale=np.asarray(s, np.float64), zero_point=zf,
                        bits=int(bits[0]), signed=bool(a.get("signed", 1)),
                        narrow=bool(a.get("narrow", 0)), rounding=rounding)

    def trunc_params(self, node) -> OutQuant:
        """qonnx's ``Trunc`` (version 2: scale, zero point, input bits, output scale,
        output bits), as Brevitas' TruncAvgPool exports it."""
        a = attrs(node)
        version = max((o.version for o in self.g.model.model.opset_import
                       if o.domain == node.domain), default=1)
        if len(node.input) != 6 or version < 2:
            self.fail(node, "only qonnx's Trunc of opset 2 (six inputs, with an output scale) "
                            "is supported, as Brevitas exports it")
        s, z, _, out_s, out_b = (np.asarray(self.const(node, i, w), np.float64) for i, w in
                                 ((1, "scale"), (2, "zero point"), (3, "input bit width"),
                                  (4, "output scale"), (5, "output bit width")))
        if any(v.size != 1 for v in (s, z, out_s, out_b)):
            self.fail(node, "per-channel truncation parameters are not supported")
        ts = float(2.0 ** np.round(np.log2(float(out_s) / float(s))))
        bits = float(out_b)
        zf = float(z)
        if bits != round(bits) or not 1 <= bits <= MAX_CODE_BITS or zf != round(zf) or \
                (zf / ts) != round(zf / ts):
            self.fail(node, "its output bit width must be an integer 1 to 16 and its zero point "
                            "a whole number of truncation steps")
        rounding = str(a.get("rounding_mode", "FLOOR")).upper()
        if rounding not in ROUNDING_MODES:
            self.fail(node, f"rounding mode {rounding!r} is not one of {', '.join(ROUNDING_MODES)}")
        return OutQuant("trunc", scale=s, zero_point=np.asarray(zf), bits=int(bits),
                        signed=bool(a.get("signed", 1)), narrow=bool(a.get("narrow", 0)),
                        rounding=rounding, trunc_scale=ts, out_scale=float(out_s))

    def h_quant(self, node) -> None:
        if node.op_type == "MultiThreshold":
            return self.h_multithreshold(node)
        x = self.state.pop(node.input[0])
        if node.op_type == "Trunc" and not isinstance(x, _Lin):
            self.fail(node, "truncates a tensor that is not a sum pooling or layer output; only "
                            "Trunc after AveragePool (Brevitas TruncAvgPool) or a layer is "
                            "supported")
        q = self.quant_params(node)
        if isinstance(x, _Src):
            self.check_not_declared(x, node)
            self.state[node.output[0]] = self.input_quant(x, q, node)
        elif isinstance(x, _Lin):
            self.state[node.output[0]] = self.finish_layer(x, q, node)
        else:
            self.state[node.output[0]] = self.requantize(x, q, node)

    def check_not_declared(self, x: _Src, node) -> None:
        if x.decl is not None and x.decl[0] == "declared":
            self.fail(node, "quantizes the graph input itself, so --input-bits (for graphs "
                            "whose input has no quantizer) does not apply: drop it")

    def input_quant(self, x: _Src, q: OutQuant, node) -> _Act:
        s, z = _scalar(q.scale), _scalar(q.zero_point)
        if s is None or z is None:
            self.fail(node, "the input quantizer has per-channel scales or zero points; the "
                            "first layer needs one input scale (quantize the input per tensor)")
        if q.kind == "bipolar":
            self.encoding["quantizer"] = {"kind": "bipolar"}
        else:
            self.encoding["quantizer"] = {"kind": "int", "scale": s, "zero_point": z,
                                          "bits": q.bits, "signed": q.signed,
                                          "narrow": q.narrow, "rounding": q.rounding}
        self.encoding["steps"] = x.steps
        levels = q.levels()[0]
        self.input_probes.append((node.output[0], x.idx, levels, np.asarray(s), 0.0, label(node)))
        return _Act(x.idx, None, levels, np.asarray(s), probe=node.output[0], node=label(node))

    def h_multithreshold(self, node) -> None:
        x = self.state.pop(node.input[0])
        a = attrs(node)
        t = np.asarray(self.const(node, 1, "thresholds"), np.float64)
        if t.ndim != 2:
            self.fail(node, f"thresholds must be a 2-D constant [channels, steps], got shape "
                            f"{list(t.shape)}")
        out_scale, out_bias = float(a.get("out_scale", 1.0)), float(a.get("out_bias", 0.0))
        layout = a.get("data_layout") or {2: "NC", 3: "NWC", 4: "NCHW"}.get(x.idx.ndim, "NC")
        axis = layout.index("C") if "C" in layout else 1
        coord = np.indices(x.idx.shape)[axis]          # the channel of every element
        if t.shape[0] not in (1, x.idx.shape[axis]):
            self.fail(node, f"{t.shape[0]} threshold rows for {x.idx.shape[axis]} channels")
        row = np.zeros_like(coord) if t.shape[0] == 1 else coord
        levels = np.arange(t.shape[1] + 1)
        if isinstance(x, _Src):
            self.check_not_declared(x, node)
            n = int(np.prod(self.encoding["source_shape"]))
            per_src = np.empty((n, t.shape[1]))
            per_src[x.idx.ravel()] = t[row.ravel()]
            rows = per_src[:1] if np.all(per_src == per_src[:1]) else per_src
            self.encoding["quantizer"] = {"kind": "thresholds",
                                          "thresholds": rows.astype(np.float32).tolist()}
            self.encoding["steps"] = x.steps
            act = _Act(x.idx, None, levels, np.asarray(out_scale), out_bias,
                       probe=node.output[0], node=label(node))
            self.input_probes.append((node.output[0], x.idx, levels, np.asarray(out_scale),
                                      out_bias, label(node)))
        elif isinstance(x, _Lin):
            ch = x.idx % x.pend.out_shape[-1]
            rows = np.full(x.pend.out_shape[-1], -1)
            for c_, r_ in zip(ch.ravel(), row.ravel()):
                if rows[c_] not in (-1, r_):
                    self.fail(node, "its channel axis does not match the layer's channels")
                rows[c_] = r_
            q = OutQuant("thresholds", thresholds=t[rows])
            act = self.finish_layer(x, q, node)
            act = replace(act, levels=levels, scale=np.asarray(out_scale), offset=out_bias)
            self.probes[-1] = replace(self.probes[-1], levels=levels, scale=np.asarray(out_scale),
                                      offset=out_bias)
        else:
            if t.shape[0] != 1:
                self.fail(node, "per-channel thresholds on quantized activations without a "
                                "layer between are not supported")
            v = (x.levels * float(_scalar(x.scale) or 0) + x.offset).astype(np.float32)
            if _scalar(x.scale) is None:
                self.fail(node, "its input has per-channel scales")
            new = (v[:, None] >= t[0].astype(np.float32)).sum(axis=1)
            act = replace(x, levels=new, scale=np.asarray(out_scale), offset=out_bias,
                          probe=node.output[0], node=label(node))
            self.add_probe(x, node, new, np.asarray(out_scale), out_bias)
        self.state[node.output[0]] = act

    def requantize(self, x: _Act, q: OutQuant, node) -> _Act:
        """A quantizer on quantized activations with no layer between: the codes stay,
        their levels change (the value of each code goes through the quantizer)."""
        s = _scalar(x.scale)
        if s is None or _scalar(q.scale) is None or _scalar(q.zero_point) is None:
            self.fail(node, "re-quantizing activations with per-channel scales is not supported")
        f32 = np.float32
        v = (x.levels.astype(f32) * f32(s) + f32(x.offset)).astype(f32)
        q32 = replace(q, scale=np.asarray(q.scale, f32), zero_point=np.asarray(q.zero_point, f32))
        codes = q32.codes(v[None, :])[0]
        new_levels = q.levels()[0][codes]
        scale = np.asarray(_scalar(q.scale))
        self.add_probe(x, node, new_levels, scale, 0.0)
        return _Act(x.idx, x.src, new_levels, scale, 0.0, probe=node.output[0], node=label(node))

    def add_probe(self, x: _Act, node, levels, scale, offset) -> None:
        if x.src is None:
            self.input_probes.append((node.output[0], x.idx, levels, scale, offset, label(node)))
        else:
            self.probes.append(Probe(x.src, node.output[0], x.idx, levels, scale, offset,
                                     label(node)))

    def finish_layer(self, lin: _Lin, q: OutQuant, node) -> _Act:
        """The pending layer with thresholds reproducing the chain and quantizer."""
        p = lin.pend
        out = p.out_shape[-1]
        q = self.per_channel_quant(q, lin, node)
        direction = chain_direction(lin.ops, out)
        flip = direction < 0
        ints = np.where(flip.reshape((-1,) + (1,) * (p.ints.ndim - 1)), -p.ints, p.ints)
        weights = _weights_for(ints)
        layer = self.make_layer(p, weights, np.zeros(out, np.int64), Output(OutputKind.ACC))
        bounds = accumulator_bounds(layer, p.in_shape)
        sign = np.where(flip, -1, 1)[:, None]

        def code_at(acc: np.ndarray) -> np.ndarray:
            return q.codes(chain_value(lin.ops, sign * acc))

        n = q.n_codes
        bits = max(1, (n - 1).bit_length())
        t = search_thresholds(code_at, bounds.low, bounds.high, n, 2**bits - 1)
        layer = self.make_layer(p, weights, np.zeros(out, np.int64),
                                Output(OutputKind.THRESHOLDS, bits, t))
        index = self.append(layer, p.out_shape, p.node)
        lv = q.levels()
        if lv.shape[0] > 1:
            lv_s = _scalar(lv[:, 0])
            if lv_s is None or not np.all(lv == lv[:1]):
                self.fail(node, "per-channel zero points are not supported on activations")
            lv = lv[:1]
        scale = q.value_scale
        s1 = _scalar(scale)
        scale = np.asarray(s1) if s1 is not None else np.broadcast_to(scale.ravel(), (out,))
        act = _Act(lin.idx, index, lv[0], scale, 0.0, probe=node.output[0], node=label(node))
        chain = Chain(tuple(lin.ops), q, np.where(flip, -1, 1),
                      np.maximum(np.abs(bounds.low), np.abs(bounds.high)))
        self.probes.append(Probe(index, node.output[0], lin.idx, lv[0], scale, 0.0, label(node),
                                 chain))
        return act

    def per_channel_quant(self, q: OutQuant, lin: _Lin, node) -> OutQuant:
        """The quantizer's parameters as one entry per layer channel."""
        if q.kind == "thresholds":
            return q
        names = ("scale", "zero_point") if q.kind == "int" else ("scale",)
        return replace(q, **{n: self.per_channel(np.asarray(getattr(q, n), np.float64), lin,
                                                 node, n) for n in names})

    def per_channel(self, k: np.ndarray, lin: _Lin, node, what: str) -> np.ndarray:
        """A constant broadcast against a pending layer's output, as one value per channel
        (it must not vary within a channel)."""
        out = lin.pend.out_shape[-1]
        try:
            b = np.broadcast_to(k, np.broadcast_shapes(k.shape, lin.idx.shape))
        except ValueError:
            self.fail(node, f"its {what} of shape {list(k.shape)} does not broadcast against "
                            f"{list(lin.idx.shape)}")
        if b.shape != lin.idx.shape:
            self.fail(node, f"its {what} of shape {list(k.shape)} would broadcast the tensor "
                            f"{list(lin.idx.shape)} to {list(b.shape)}")
        ch = (lin.idx % out).ravel()
        vals = np.full(out, np.nan)
        flat = b.ravel().astype(np.float64)
        vals[ch] = flat
        if not np.array_equal(vals[ch], flat):
            self.fail(node, f"its {what} varies within a channel (one value per output channel "
                            f"or per tensor is supported)")
        return vals

    def make_layer(self, p: _Pending, weights: Weights, bias: np.ndarray, output: Output):
        if not p.name:  # one name per pending layer, however often it is rebuilt
            p.name = self.new_name("fc" if p.kind == "dense" else "conv")
        name = p.name
        codebook, bias = _offset_codes(p, weights, bias)
        if p.kind == "dense":
            return Dense(name=name, weights=weights, bias=bias,
                         activation_codebook=codebook, output=output)
        return Conv2d(name=name, weights=weights, bias=bias, activation_codebook=codebook,
                      output=output, stride=p.stride, padding=p.padding)

    # -- handlers: compute -------------------------------------------------------------
    def h_matmul(self, node) -> None:
        if node.input[0] not in self.state:
            self.fail(node, "multiplies a constant by a computed tensor; only activations "
                            "times constant weights (x @ W) is supported")
        x = self.state.pop(node.input[0])
        qc = self.weights(node, 1)
        if qc.q.ndim != 2:
            self.fail(node, f"its weight has shape {list(qc.q.shape)}; a 2-D matrix is needed")
        s_w = qc.scale[0]
        if not np.all(qc.scale == s_w[None, :]):
            self.fail(node, "its weight scales vary along the input axis; only one scale per "
                            "output (per-channel) or per tensor can be folded")
        feats, out = qc.q.shape
        if isinstance(x, _Src):
            x = self.materialize(x, node)
        if x.idx.shape[-1] != feats:
            self.fail(node, f"{x.idx.shape[-1]} inputs against a weight of {feats} rows")
        oshape = x.idx.shape[:-1] + (out,)
        if isinstance(x, _Lin):
            self.state[node.output[0]] = self.fold_linear(x, qc.q, s_w, node, oshape)
            return
        act, cols = self.place_flat(x, node)
        levels, s_in, b = self.integer_act(act, node, padded=False)
        ints = np.zeros((out, feats), np.int64)
        ints[:, cols] = qc.q.T
        m = s_in * s_w
        c = b * (qc.q.astype(np.float64) * s_w[None, :]).sum(axis=0)
        size = int(np.prod(self.src_shape(act.src)))
        pend = _Pending("dense", ints, levels, (size,), (out,), label(node))
        self.state[node.output[0]] = _Lin(np.arange(out).reshape(oshape), pend,
                                          [Affine(np.asarray(m, np.float64), c)])

    def fold_linear(self, x: _Lin, q2: np.ndarray, s2: np.ndarray, node, oshape) -> _Lin:
        """x @ W2 where x is a dense layer's pre-activation with no quantizer between: the
        two layers are one integer layer W2^T W1, exactly, when the first one's scale is
        one number (a per-channel scale would make the product's entries non-integer)."""
        p = x.pend
        single = len(x.ops) == 1 and isinstance(x.ops[0], Affine)
        m = _scalar(x.ops[0].scale) if single else None
        if p.kind != "dense" or not single or m is None:
            self.fail(node, f"multiplies the output of {p.node} with no quantizer between "
                            f"them, and that output has per-channel scales, a non-linearity "
                            f"or a convolution, so the two cannot be folded into one integer "
                            f"layer exactly: put a quantizer (e.g. QuantIdentity) between them")
        j = x.idx.ravel()
        w2 = np.zeros((p.out_shape[-1], q2.shape[1]), np.int64)
        w2[j] = q2
        ints = w2.T @ p.ints
        if np.abs(ints).max(initial=0) >= MAX_WEIGHT:
            self.fail(node, f"folding it with {p.node} (no quantizer between) gives integer "
                            f"weights up to {int(np.abs(ints).max())}, more than 16 bits: put a "
                            f"quantizer between them")
        c = s2 * (x.ops[0].bias @ w2.astype(np.float64))
        pend = replace(p, ints=ints, out_shape=(q2.shape[1],), node=f"{p.node} and {label(node)}")
        self.notes.append(f"{p.node} and {label(node)} have no quantizer between them: folded "
                          f"exactly into one layer (integer weights W2^T W1)")
        return _Lin(np.arange(q2.shape[1]).reshape(oshape), pend,
                    [Affine(np.asarray(m * s2, np.float64), c)])

    def h_conv(self, node) -> None:
        x = self.state.pop(node.input[0])
        a = attrs(node)
        layout = "NHWC" if node.domain == CHANNELS_LAST else "NCHW"
        if isinstance(x, _Src):
            x = self.materialize(x, node)
        if isinstance(x, _Lin):
            self.fail(node, f"convolves the output of {x.pend.node} with no quantizer between "
                            f"them: put a quantizer between them")
        qc = self.weights(node, 1)
        if qc.q.ndim != 4:
            self.fail(node, f"its weight has shape {list(qc.q.shape)}; only 2-D convolution "
                            f"(a 4-D weight) is supported")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            self.fail(node, f"dilations {a['dilations']} are not supported (only 1)")
        auto = a.get("auto_pad", "NOTSET")
        if auto not in ("NOTSET", "VALID"):
            self.fail(node, f"auto_pad {auto} is not supported: export with explicit pads")
        pads = list(a.get("pads", [0, 0, 0, 0])) if auto == "NOTSET" else [0, 0, 0, 0]
        if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
            self.fail(node, f"pads {pads} are not symmetric; mulfree pads top=bottom and "
                            f"left=right")
        strides = tuple(a.get("strides", [1, 1]))
        group = int(a.get("group", 1))
        w = qc.q if layout == "NHWC" else qc.q.transpose(0, 2, 3, 1)     # [O, kh, kw, C/g]
        scale = qc.scale if layout == "NHWC" else qc.scale.transpose(0, 2, 3, 1)
        s_w = scale[:, 0, 0, 0]
        if not np.all(scale == s_w[:, None, None, None]):
            self.fail(node, "its weight scales vary within an output channel; only per-channel "
                            "or per-tensor scales can be folded")
        act, (h, wd, c) = self.place_spatial(x, layout, node)
        out, kh, kw, cg = w.shape
        if cg * group != c or out % group:
            self.fail(node, f"group {group} with {c} input channels and a weight of shape "
                            f"{list(qc.q.shape)} do not match")
        ints = np.zeros((out, kh, kw, c), np.int64)
        og = out // group
        for gi in range(group):
            ints[gi * og:(gi + 1) * og, :, :, gi * cg:(gi + 1) * cg] = w[gi * og:(gi + 1) * og]
        if group > 1:
            self.notes.append(f"{label(node)}: group {group} convolution imported as a full "
                              f"convolution whose weights across groups are 0")
        padded = pads[0] > 0 or pads[1] > 0
        levels, s_in, b = self.integer_act(act, node, padded=padded)
        oh = (h + 2 * pads[0] - kh) // strides[0] + 1
        ow = (wd + 2 * pads[1] - kw) // strides[1] + 1
        want = (1, out, oh, ow) if layout == "NCHW" else (1, oh, ow, out)
        if self.out_shape(node) != want:
            self.fail(node, f"its output shape {list(self.out_shape(node))} is not the "
                            f"{list(want)} mulfree computes")
        c_ = b * (ints.astype(np.float64).reshape(out, -1).sum(axis=1)) * s_w
        if len(node.input) > 2 and node.input[2]:
            bias = np.asarray(self.const(node, 2, "bias"), np.float64)
            if bias.shape not in ((out,), ()):
                self.fail(node, f"its bias has shape {list(bias.shape)}, expected [{out}]")
            c_ = c_ + bias
        pend = _Pending("conv", ints, levels, (h, wd, c), (oh, ow, out), label(node),
                        stride=(int(strides[0]), int(strides[1])),
                        padding=(int(pads[0]), int(pads[1])))
        self.state[node.output[0]] = _Lin(_canonical(layout, oh, ow, out), pend,
                                          [Affine(np.asarray(s_in * s_w, np.float64), c_)])

    def h_maxpool(self, node) -> None:
        x = self.state.pop(node.input[0])
        a = attrs(node)
        layout = "NHWC" if node.domain == CHANNELS_LAST else "NCHW"
        if len(node.output) > 1 and node.output[1] and self.g.consumers.get(node.output[1]):
            self.fail(node, "its indices output is used; not supported")
        if isinstance(x, _Src) and x.decl is not None:
            x = self.materialize(x, node)
        if not isinstance(x, _Act):
            what = "the float graph input" if isinstance(x, _Src) else \
                f"the output of {x.pend.node} before its quantizer"
            self.fail(node, f"pools {what}; mulfree pools quantized activations (put the "
                            f"pooling after the activation quantizer)")
        s = _scalar(x.scale)
        if s is None or s <= 0 or np.any(np.diff(x.levels) < 0):
            self.fail(node, "pools activations whose value does not grow with their code "
                            "(a negative scale); not supported")
        kernel = tuple(int(v) for v in a.get("kernel_shape", []))
        strides = tuple(int(v) for v in a.get("strides", [1] * len(kernel)))
        if len(kernel) != 2:
            self.fail(node, f"kernel {list(kernel)}: only 2-D pooling is supported")
        if any(a.get("pads", [0, 0, 0, 0])) or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            self.fail(node, "padded max-pooling is not supported (pads must be 0)")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            self.fail(node, "dilated max-pooling is not supported")
        act, (h, w, c) = self.place_spatial(x, layout, node)
        oh, ow = (h - kernel[0]) // strides[0] + 1, (w - kernel[1]) // strides[1] + 1
        want = (1, c, oh, ow) if layout == "NCHW" else (1, oh, ow, c)
        if self.out_shape(node) != want:
            self.fail(node, f"its output shape {list(self.out_shape(node))} is not the "
                            f"{list(want)} mulfree computes (ceil_mode is not supported)")
        name = self.new_name("pool")
        index = self.append(MaxPool(name=name, kernel=kernel, stride=strides), (oh, ow, c),
                            label(node))
        idx = _canonical(layout, oh, ow, c)
        self.state[node.output[0]] = replace(act, idx=idx, src=index, probe=node.output[0],
                                             node=label(node))
        self.probes.append(Probe(index, node.output[0], idx, act.levels, np.asarray(s),
                                 act.offset, label(node)))

    def h_avgpool(self, node) -> None:
        """Average pooling on quantized activations: a sum over each window is a conv2d
        layer whose weights are 1 from a channel to itself (0 elsewhere); the 1 / window
        goes into the float chain, and the quantizer or Trunc after it into thresholds."""
        x = self.state.pop(node.input[0])
        a = attrs(node)
        layout = "NHWC" if node.domain == CHANNELS_LAST else "NCHW"
        if not isinstance(x, _Act):
            self.fail(node, "averages a tensor that is not quantized activations; put the "
                            "pooling after the activation quantizer")
        act, (h, w, c) = self.place_spatial(x, layout, node)
        if node.op_type == "GlobalAveragePool":
            kernel, strides = (h, w), (1, 1)
        else:
            kernel = tuple(int(v) for v in a.get("kernel_shape", []))
            strides = tuple(int(v) for v in a.get("strides", [1, 1]))
            if len(kernel) != 2:
                self.fail(node, f"kernel {list(kernel)}: only 2-D pooling is supported")
            if any(a.get("pads", [0, 0, 0, 0])) or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
                self.fail(node, "padded average pooling is not supported (pads must be 0)")
        levels, s, b = self.integer_act(act, node, padded=False)
        oh, ow = (h - kernel[0]) // strides[0] + 1, (w - kernel[1]) // strides[1] + 1
        want = (1, c, oh, ow) if layout == "NCHW" else (1, oh, ow, c)
        if self.out_shape(node) != want:
            self.fail(node, f"its output shape {list(self.out_shape(node))} is not the "
                            f"{list(want)} mulfree computes (ceil_mode is not supported)")
        ints = np.zeros((c, kernel[0], kernel[1], c), np.int64)
        ints[np.arange(c), :, :, np.arange(c)] = 1
        pend = _Pending("conv", ints, levels, (h, w, c), (oh, ow, c), label(node),
                        stride=strides, padding=(0, 0), name=self.new_name("avgpool"))
        m = np.full(c, s / (kernel[0] * kernel[1]))
        self.state[node.output[0]] = _Lin(_canonical(layout, oh, ow, c), pend,
                                          [Affine(m, np.full(c, b))])

    # -- handlers: layout and elementwise ----------------------------------------------
    def h_layout(self, node) -> None:
        x = self.state.pop(node.input[0])
        if node.op_type == "Transpose":
            perm = attrs(node).get("perm")
            idx = np.transpose(x.idx, perm)
        else:
            shape = self.out_shape(node)
            if int(np.prod(shape)) != x.idx.size:
                self.fail(node, f"reshapes {x.idx.size} values into {list(shape)}")
            idx = x.idx.reshape(shape)
        if idx.shape[0] != 1:
            self.fail(node, f"moves the batch axis (output shape {list(idx.shape)}); the batch "
                            f"must stay the first axis, of size 1")
        self.state[node.output[0]] = replace(x, idx=idx)

    def operands(self, node) -> tuple[object, np.ndarray, bool]:
        """(state, constant, state_first) of a binary node with one constant operand."""
        a, b = node.input[0], node.input[1]
        if a in self.state and b in self.state:
            self.fail(node, f"combines two computed tensors ('{a}' and '{b}'), a residual or "
                            f"skip connection; mulfree networks are chains of layers, so only "
                            f"a constant second operand is supported")
        first = a in self.state
        k = self.g.const(b if first else a)
        if k is None:
            self.fail(node, f"its operand '{b if first else a}' is not a constant")
        return self.state.pop(a if first else b), np.asarray(k, np.float64), first

    def h_arith(self, node) -> None:
        x, k, first = self.operands(node)
        op = node.op_type
        if op == "Div" and not first:
            self.fail(node, "divides a constant by a computed tensor; not supported")
        if isinstance(x, _Src):
            self.state[node.output[0]] = self.input_step(x, k, op, first, node)
            return
        if isinstance(x, _Lin):
            kk = self.per_channel(k, x, node, "constant")
            one, zero = np.ones_like(kk), np.zeros_like(kk)
            if op == "Div" and np.any(kk == 0):
                self.fail(node, "divides by zero")
            if op == "Mul":
                a_, b_ = kk, zero
            elif op == "Div":
                a_, b_ = one / kk, zero
            elif op == "Add":
                a_, b_ = one, kk
            else:
                a_, b_ = (one, -kk) if first else (-one, kk)
            ops = list(x.ops)
            if ops and isinstance(ops[-1], Affine):
                last = ops.pop()
                ops.append(Affine(a_ * last.scale, a_ * last.bias + b_))
            else:
                ops.append(Affine(a_, b_))
            self.state[node.output[0]] = replace(x, ops=ops)
            return
        kv = _scalar(k)
        if kv is None:
            self.fail(node, f"applies a per-element or per-channel {op} to quantized "
                            f"activations; only a per-tensor constant can be folded there")
        s, off = np.asarray(x.scale, np.float64), x.offset
        if op == "Mul":
            s, off = s * kv, off * kv
        elif op == "Div":
            s, off = s / kv, off / kv
        elif op == "Add":
            off = off + kv
        elif first:
            off = off - kv
        else:
            s, off = -s, kv - off
        self.state[node.output[0]] = replace(x, scale=s, offset=float(off), probe=None)

    def input_step(self, x: _Src, k: np.ndarray, op: str, first: bool, node) -> _Src:
        """An elementwise step on the float input, its constant in source element order."""
        try:
            b = np.broadcast_to(k, np.broadcast_shapes(k.shape, x.idx.shape))
        except ValueError:
            self.fail(node, f"its constant of shape {list(k.shape)} does not broadcast")
        if b.shape != x.idx.shape:
            self.fail(node, f"its constant of shape {list(k.shape)} broadcasts the input to "
                            f"{list(b.shape)}")
        n = int(np.prod(self.encoding["source_shape"]))
        per = np.empty(n, np.float32)
        per[x.idx.ravel()] = b.ravel().astype(np.float32)
        value = float(per[0]) if np.all(per == per[0]) else [float(v) for v in per]
        name = {"Mul": "mul", "Div": "div", "Add": "add", "Sub": "sub" if first else "rsub"}[op]
        return replace(x, steps=x.steps + [{"op": name, "value": value}])

    def h_relu_clip(self, node) -> None:
        x = self.state.pop(node.input[0])
        if node.op_type == "Relu":
            lo, hi = 0.0, None
        else:
            a = attrs(node)
            lo, hi = a.get("min"), a.get("max")
            if len(node.input) > 1 and node.input[1]:
                lo = float(np.ravel(self.const(node, 1, "min"))[0])
            if len(node.input) > 2 and node.input[2]:
                hi = float(np.ravel(self.const(node, 2, "max"))[0])
        if isinstance(x, _Lin):
            op = Relu() if node.op_type == "Relu" else Clip(lo, hi)
            self.state[node.output[0]] = replace(x, ops=x.ops + [op])
            return
        if isinstance(x, _Src):
            self.fail(node, f"applies {node.op_type} to the float graph input; put it after "
                            f"the input quantizer or declare the input encoding")
        s = _scalar(x.scale)
        if s is None or s <= 0:
            self.fail(node, f"{node.op_type} on activations with per-channel or negative scales")
        v = x.levels * s + x.offset
        clipped = np.clip(v, -np.inf if lo is None else lo, np.inf if hi is None else hi)
        new = (clipped - x.offset) / s
        if not np.all(new == np.round(new)):
            self.fail(node, f"{node.op_type} bounds fall between the quantized levels; not "
                            f"supported on quantized activations")
        self.state[node.output[0]] = replace(x, levels=np.round(new).astype(np.int64), probe=None)

    def h_identity(self, node) -> None:
        self.state[node.output[0]] = self.state.pop(node.input[0])

    # -- the end -------------------------------------------------------------------------
    def finish(self, st, out_name: str) -> Lowered:
        decoding: dict = {}
        if isinstance(st, _Src):
            raise GraphImportError("the graph has no layer mulfree can compute (no MatMul, "
                                   "Gemm or Conv on quantized activations)")
        if isinstance(st, _Lin):
            decoding = self.finish_acc(st)
        else:
            if st.src is None or st.src == -1 or not self.layers:
                raise GraphImportError("the graph has no layer mulfree can compute (its output "
                                       "is the quantized input)")
            if st.src != len(self.layers) - 1:
                raise GraphImportError("the graph output is not the last layer's output")
            scale = np.asarray(st.scale, np.float64)
            values = st.levels[None, :] * (scale.reshape(-1, 1) if scale.ndim else scale) + st.offset
            decoding = {"from": "codes", "values": values.tolist(), "acc_argmax_is_class": False}
            decoding["source_shape"] = list(st.idx.shape[1:])
            order = st.idx.ravel()
            if not np.array_equal(order, np.arange(order.size)):
                decoding["order"] = [int(v) for v in order]
        if "quantizer" not in self.encoding:
            raise GraphImportError(f"the graph input '{self.input_label}' reaches no quantizer")
        if self.input_shape is None:
            raise GraphImportError("the graph input is not read by any layer")
        in_bits = max(1, (len(self.input_levels) - 1).bit_length())
        metadata = {"input_encoding": self.encoding, "output_decoding": decoding,
                    "source_nodes": self.source_nodes}
        if self.notes:
            metadata["import_notes"] = list(self.notes)
        model = Model(name=self.name, input_shape=self.input_shape, input_bits=in_bits,
                      layers=tuple(self.layers), metadata=metadata)
        return Lowered(model, tuple(self.probes), tuple(self.notes))

    def finish_acc(self, lin: _Lin) -> dict:
        """The last layer emits accumulators (or their argmax); the float ops after them
        travel in the decoding. Where the output affine folds into integers exactly
        (:func:`.output_fold.fold_argmax`), the accumulators are scaled and biased so that
        their argmax is the model's class."""
        p = lin.pend
        out = p.out_shape[-1]
        kind = OutputKind.ARGMAX if self.last == "argmax" else OutputKind.ACC
        ops = lin.ops
        single = len(ops) == 1 and isinstance(ops[0], Affine)
        ints, bias = p.ints, np.zeros(out, np.int64)
        dec_ops = [_op_dict(op, out) for op in ops]
        exact = False
        why = "a ReLU or Clip follows the last layer's affine" if not single else ""
        if single:
            m = np.broadcast_to(np.asarray(ops[0].scale, np.float64), (out,))
            c = np.broadcast_to(np.asarray(ops[0].bias, np.float64), (out,))
            fold = fold_argmax(ints, m, c, free_only=self.last != "argmax")
            if fold.ok:
                ints, bias, exact = fold.ints, fold.bias, True
                dec_ops = [{"op": "affine", "scale": fold.scale.tolist(),
                            "bias": fold.offset.tolist()}]
            why = fold.why
        if self.last == "argmax" and not exact:
            raise GraphImportError(f"--last argmax: the hardware's argmax cannot be made equal "
                                   f"to the model's class exactly ({why}); import with --last "
                                   f"acc (the default): the host then takes the class from the "
                                   f"decoded logits")
        if not exact:
            self.notes.append(f"the last layer emits accumulators whose plain argmax is not "
                              f"always the model's class ({why}); mulfree predict --float and "
                              f"mulfree eval take the class from the decoded logits")
        weights = _weights_for(ints)
        layer = self.make_layer(p, weights, bias, Output(kind))
        self.append(layer, p.out_shape, p.node)
        dec = {"source_shape": list(lin.idx.shape[1:]), "from": "acc", "ops": dec_ops,
               "acc_argmax_is_class": bool(exact)}
        order = lin.idx.ravel()
        if not np.array_equal(order, np.arange(order.size)):
            dec["order"] = [int(v) for v in order]
        return dec


def _op_dict(op, out: int) -> dict:
    if isinstance(op, Affine):
        return {"op": "affine",
                "scale": np.broadcast_to(np.asarray(op.scale, np.float64), (out,)).tolist(),
                "bias": np.broadcast_to(np.asarray(op.bias, np.float64), (out,)).tolist()}
    if isinstance(op, Relu):
        return {"op": "relu"}
    return {"op": "clip", "min": op.lo, "max": op.hi}


def _layout_name(shape: tuple) -> str:
    return {2: "NC", 3: "NCW", 4: "NCHW"}.get(len(shape), f"{len(shape)}-D")


def _datatype(model, name: str):
    """(kind, bits, signed) of an integer data type annotated on the input, else None."""
    try:
        dt = model.get_tensor_datatype(name)
    except Exception:
        return None
    s = str(dt.name) if hasattr(dt, "name") else str(dt)
    if s == "BIPOLAR":
        return ("bipolar", 1, True)
    if s == "BINARY":
        return ("int", 1, False)
    for prefix, signed in (("UINT", False), ("INT", True)):
        if s.startswith(prefix) and s[len(prefix):].isdigit():
            bits = int(s[len(prefix):])
            if 1 <= bits <= MAX_CODE_BITS:
                return ("int", bits, signed)
    return None


_QUANT_NAMES = ("Quant", "BipolarQuant", "MultiThreshold", "Trunc")

_HANDLERS = {
    "Quant": _Lowering.h_quant, "BipolarQuant": _Lowering.h_quant,
    "MultiThreshold": _Lowering.h_quant, "Trunc": _Lowering.h_quant,
    "AveragePool": _Lowering.h_avgpool, "GlobalAveragePool": _Lowering.h_avgpool,
    "MatMul": _Lowering.h_matmul, "Conv": _Lowering.h_conv, "MaxPool": _Lowering.h_maxpool,
    "Reshape": _Lowering.h_layout, "Flatten": _Lowering.h_layout,
    "Transpose": _Lowering.h_layout, "Squeeze": _Lowering.h_layout,
    "Unsqueeze": _Lowering.h_layout,
    "Mul": _Lowering.h_arith, "Div": _Lowering.h_arith, "Add": _Lowering.h_arith,
    "Sub": _Lowering.h_arith,
    "Relu": _Lowering.h_relu_clip, "Clip": _Lowering.h_relu_clip,
    "Identity": _Lowering.h_identity, "Dropout": _Lowering.h_identity,
}

_HINTS = {
    "FloatQuant": "minifloat quantization has no integer form; quantize with an integer "
                  "Quant (Brevitas Int*Quant) instead",
    "Concat": "joins branches; mulfree networks are chains of layers",
    "BatchNormalization": "its parameters must be constants after a MatMul, Gemm or Conv",
    "Gemm": "transA Gemm or a Gemm qonnx could not convert; export Linear layers as MatMul/Gemm "
            "with a constant weight",
}


def _unsupported_hint(node) -> str:
    hint = _HINTS.get(node.op_type)
    if node.domain not in ("", CHANNELS_LAST) and node.op_type not in _QUANT_NAMES:
        hint = hint or f"custom op of domain '{node.domain}'"
    supported = ("supported: Quant, BipolarQuant, Trunc, MultiThreshold, MatMul, Gemm, Conv, "
                 "MaxPool, AveragePool, BatchNormalization, Mul/Div/Add/Sub by constants, Relu, "
                 "Clip, Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Identity; Softmax, "
                 "TopK, ArgMax at the output")
    return f"not supported ({hint}; {supported})" if hint else f"not supported ({supported})"


def lower(graph: Graph, *, name: str, decl: InputDecl | None = None,
          last: str = "acc") -> Lowered:
    """The mulfree model of a normalized graph (see :func:`.passes.normalize`)."""
    if last not in ("acc", "argmax"):
        raise ModelError(f"--last must be acc or argmax, got {last!r}")
    return _Lowering(graph, decl, last, name).run()
