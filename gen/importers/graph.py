"""Reading an ONNX/QONNX graph for import: loading, node labels, constant values and
quantized constants (integer weights and their scales).

qonnx and onnx are optional dependencies (``pip install 'mulfree[import]'``); they are
imported here, on first use, and a missing one is a one-line error.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..model.encoding import int_quant_codes, quant_range

__all__ = ["GraphImportError", "require_qonnx", "load_graph", "label", "attrs", "Graph",
           "QUANT_DOMAINS", "CHANNELS_LAST", "is_quant", "QConst"]

# Domains Brevitas, QKeras (through qonnx) and FINN write their quantizers in.
QUANT_DOMAINS = ("qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general",
                 "finn", "qonnx")
CHANNELS_LAST = "qonnx.custom_op.channels_last"


class GraphImportError(ModelError):
    """A graph mulfree cannot import; the message names the node and what would make it
    importable."""


def require_qonnx():
    """The qonnx package (and onnx), or a one-line error saying how to install them."""
    try:
        import onnx  # noqa: F401
        import qonnx  # noqa: F401
    except ImportError as e:
        raise ModelError(f"importing QONNX graphs needs the onnx and qonnx packages "
                         f"({e.name} is missing): .venv/bin/pip install 'mulfree[import]'") from None
    import qonnx.core.modelwrapper
    return qonnx


def load_graph(path: str | os.PathLike):
    """The ONNX file as a qonnx ``ModelWrapper``; a missing or unreadable file is a
    :class:`ModelError`."""
    require_qonnx()
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    try:
        proto = onnx.load(str(path))
    except Exception as e:  # onnx raises DecodeError and friends for non-ONNX files
        raise ModelError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    if not proto.graph.node:
        raise ModelError(f"{path}: the ONNX graph has no nodes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ModelWrapper(proto)


def label(node) -> str:
    """How messages name a node: its name as in the user's file, and its op type."""
    if node.name:
        return f"node '{node.name}' ({node.op_type})"
    return f"{node.op_type} node -> '{node.output[0]}'"


def attrs(node) -> dict:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def is_quant(node, op_type: str) -> bool:
    return node.op_type == op_type and (node.domain in QUANT_DOMAINS or node.domain == "")


class QConst:
    """A quantized constant: integer values ``q`` and a scale broadcast to ``q``'s shape,
    so that the float value is ``q * scale``."""

    def __init__(self, q: np.ndarray, scale: np.ndarray):
        self.q = np.asarray(q, np.int64)
        self.scale = np.broadcast_to(np.asarray(scale, np.float64), self.q.shape)

    def map(self, fn) -> "QConst":
        return QConst(fn(self.q), fn(np.array(self.scale)))


class Graph:
    """A normalized graph with the look-ups the lowering needs."""

    def __init__(self, model):
        self.model = model
        g = model.graph
        self.nodes = list(g.node)
        self.init = {t.name for t in g.initializer}
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)
        self._const: dict[str, np.ndarray | None] = {}

    def shape(self, name: str) -> tuple[int, ...] | None:
        s = self.model.get_tensor_shape(name)
        if s is None or any(not isinstance(d, int) or d < 1 for d in s):
            return None
        return tuple(int(d) for d in s)

    def initializer(self, name: str) -> np.ndarray | None:
        if name not in self.init:
            return None
        return np.asarray(self.model.get_initializer(name))

    def const(self, name: str) -> np.ndarray | None:
        """The value of a tensor computable from initializers alone (quantizers on
        constants included, in float32 as QONNX computes them), else None."""
        if name in self._const:
            return self._const[name]
        self._const[name] = None  # guards against cycles in a malformed graph
        value = self._eval_const(name)
        self._const[name] = value
        return value

    def _eval_const(self, name: str) -> np.ndarray | None:
        if not name:
            return None
        v = self.initializer(name)
        if v is not None:
            return v
        node = self.producer.get(name)
        if node is None or node.output[0] != name:
            return None
        op = node.op_type
        if op in ("Quant", "BipolarQuant"):
            qc = self.qconst(name)
            if qc is None:
                return None
            return (qc.q.astype(np.float32) * qc.scale.astype(np.float32)).astype(np.float32)
        args = [self.const(i) for i in node.input if i]
        if any(a is None for a in args):
            return None
        a = attrs(node)
        try:
            if op == "Identity":
                return args[0]
            if op == "Transpose":
                return np.transpose(args[0], a.get("perm"))
            if op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
                shape = self.shape(name)
                return None if shape is None else np.reshape(args[0], shape)
            ops = {"Mul": np.multiply, "Div": np.divide, "Add": np.add, "Sub": np.subtract,
                   "Pow": np.power, "Sqrt": np.sqrt, "Neg": np.negative}
            if op in ops:
                return np.asarray(ops[op](*args))
            if op == "Cast":
                return args[0]
        except (ValueError, TypeError):
            return None
        return None

    def qconst(self, name: str) -> QConst | None:
        """The integers and scale of a quantized constant: a ``Quant``/``BipolarQuant`` of
        an initializer (through Transpose/Reshape/Identity), or an initializer whose
        values are all integers (FINN's weights; scale 1). None otherwise."""
        node = self.producer.get(name)
        if node is None:
            v = self.initializer(name)
            if v is None or v.dtype.kind not in "fiu" or not np.all(np.isfinite(v)):
                return None
            if v.dtype.kind == "f" and not np.all(v == np.round(v)):
                return None
            return QConst(v.astype(np.int64), np.ones(()))
        op = node.op_type
        a = attrs(node)
        if op in ("Identity",):
            return self.qconst(node.input[0])
        if op == "Transpose":
            inner = self.qconst(node.input[0])
            return None if inner is None else inner.map(lambda x: np.transpose(x, a.get("perm")))
        if op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
            inner, shape = self.qconst(node.input[0]), self.shape(name)
            return None if inner is None or shape is None else inner.map(lambda x: x.reshape(shape))
        if is_quant(node, "BipolarQuant"):
            w, s = self.const(node.input[0]), self.const(node.input[1])
            if w is None or s is None:
                return None
            return QConst(np.where(w.astype(np.float32) >= 0, 1, -1), s)
        if is_quant(node, "Quant"):
            w, s, z, b = (self.const(i) for i in node.input[:4])
            if any(v is None for v in (w, s, z, b)):
                return None
            bits = np.ravel(b)
            if bits.size != 1 or bits[0] != int(bits[0]) or not 1 <= bits[0] <= 32:
                return None
            bits_i = int(bits[0])
            signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
            zf = np.asarray(z, np.float64)
            if not np.all(zf == np.round(zf)):
                return None
            f32 = np.float32
            codes = int_quant_codes(np.asarray(w, f32), np.asarray(s, f32), np.asarray(z, f32),
                                    bits_i, signed, narrow, a.get("rounding_mode", "ROUND"))
            if bits_i == 1 and signed:
                q = 2 * codes - 1
            else:
                q = codes + quant_range(bits_i, signed, narrow)[0]
            return QConst(q - zf.astype(np.int64), s)
        return None

    def dynamic_inputs(self, node) -> list[str]:
        return [i for i in node.input if i and self.const(i) is None]
