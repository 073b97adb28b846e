"""Normalizing a QONNX graph before it is lowered: qonnx's own transformations where they
do the job, and a few small passes of our own for what qonnx lacks or gets wrong.

Each pass of our own is one function ``ModelWrapper -> ModelWrapper`` (the tail pass also
returns what it removed), with a test on the smallest graph that shows its pattern
(``tests/gen/importers/test_passes.py``). :func:`normalize` runs them in order:

1. :func:`unify_quant_domains` (what qonnx's ``cleanup_model`` does inline).
2. qonnx: ``InferShapes``, ``GiveUniqueParameterTensors``, ``FoldConstants`` (keeping the
   quantizers), ``FoldTransposeIntoQuantInit``, ``RemoveUnusedTensors``, ``RemoveStaticGraphInputs``.
3. :func:`gemm_add_zero_bias`, then qonnx's ``GemmToMatMul`` (which fails on a Gemm
   without bias) and the folding of step 2 again.
4. :func:`channels_last_batchnorm_to_affine`, then qonnx's ``BatchNormToAffine`` (which
   assumes channels first).
5. :func:`drop_relu_before_unsigned_quant`.
6. :func:`strip_output_tail` (Softmax, TopK, ArgMax, Identity at the output).

Passes not used on purpose: qonnx's ``RemoveIdentityOps`` removes a Mul or Add whose
constant is within 1e-5 of 1 or 0 (not exactly), which would change a model silently;
``ConvertDivToMul`` changes float32 rounding on the input path (the input encoding must
replay the graph's own arithmetic bit for bit); ``ExtractBiasFromConv`` shapes the bias
channels-first even for channels-last convolutions. The lowering handles Mul by 1, Div
and Conv biases itself.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .graph import CHANNELS_LAST, QUANT_DOMAINS, GraphImportError, attrs, label

__all__ = ["unify_quant_domains", "qonnx_cleanup", "gemm_add_zero_bias", "gemm_to_matmul",
           "channels_last_batchnorm_to_affine", "batchnorm_to_affine",
           "drop_relu_before_unsigned_quant", "strip_output_tail", "normalize", "Normalized",
           "QUANT_OPS"]

QUANT_OPS = ("Quant", "BipolarQuant", "Trunc", "MultiThreshold")
QONNX = "qonnx.custom_op.general"


def _quiet(model, transformation):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.transform(transformation)


def _consumers(model, name: str) -> list:
    return [n for n in model.graph.node if name in n.input]


def _producer(model, name: str):
    return next((n for n in model.graph.node if name in n.output), None)


def unify_quant_domains(model):
    """Quant, BipolarQuant, Trunc and MultiThreshold from any exporter's domain
    (``onnx.brevitas``, ``finn.custom_op.general``) into qonnx's, so that qonnx's shape
    inference and executor know them. qonnx's ``cleanup_model`` does the same inline
    ("temporary fix for QONNX op domains") but not for MultiThreshold."""
    for n in model.graph.node:
        if n.op_type in QUANT_OPS and n.domain in QUANT_DOMAINS:
            n.domain = QONNX
    if not any(o.domain == QONNX for o in model.model.opset_import):
        if any(n.domain == QONNX for n in model.graph.node):
            from onnx import helper

            model.model.opset_import.append(helper.make_opsetid(QONNX, 1))
    return model


def _fold(model):
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    model = _quiet(model, InferShapes())
    model = _quiet(model, FoldConstants(exclude_op_types=list(QUANT_OPS)))
    return _quiet(model, FoldTransposeIntoQuantInit())


def qonnx_cleanup(model):
    """qonnx's clean-up, without its renaming (error messages name the user's nodes):
    shapes, unique parameters, constant folding that keeps the quantizers, transposes
    folded into quantized initializers, unused tensors and static inputs removed."""
    from qonnx.transformation.general import (GiveUniqueParameterTensors, RemoveStaticGraphInputs,
                                              RemoveUnusedTensors, SortGraph)
    from qonnx.transformation.infer_shapes import InferShapes

    _batch_one(model)
    model = _quiet(model, InferShapes())
    model = _quiet(model, GiveUniqueParameterTensors())
    model = _fold(model)
    model = _quiet(model, RemoveUnusedTensors())
    model = _quiet(model, RemoveStaticGraphInputs())
    return _quiet(model, SortGraph())


def _batch_one(model) -> None:
    """A symbolic or missing batch size on the graph input becomes 1 (shapes then infer)."""
    inits = {t.name for t in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_value = 1


def gemm_add_zero_bias(model):
    """Give every ``Gemm`` without a ``C`` input a zero bias. qonnx's ``GemmToMatMul``
    reads ``n.input[2]`` unconditionally and fails on the bias-free Gemm that Brevitas
    exports for ``Linear(bias=False)`` on current torch."""
    for n in model.graph.node:
        if n.op_type != "Gemm" or (len(n.input) > 2 and n.input[2]):
            continue
        shape = model.get_tensor_shape(n.input[1])
        if shape is None or len(shape) != 2:
            raise GraphImportError(f"{label(n)}: the shape of its weight '{n.input[1]}' is "
                                   f"unknown (a 2-D constant or quantized constant is needed)")
        trans_b = attrs(n).get("transB", 0)
        out = int(shape[0] if trans_b else shape[1])
        name = model.make_new_valueinfo_name()
        model.set_initializer(name, np.zeros(out, np.float32))
        if len(n.input) > 2:
            n.input[2] = name
        else:
            n.input.append(name)
    return model


def gemm_to_matmul(model):
    """qonnx's ``GemmToMatMul`` (a Gemm becomes Transpose/MatMul/Mul/Add), after
    :func:`gemm_add_zero_bias`, then the constants it creates folded."""
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul

    gemms = [(n.name, n.input[0], n.output[0]) for n in model.graph.node if n.op_type == "Gemm"]
    if not gemms:
        return model
    model = gemm_add_zero_bias(model)
    model = _quiet(model, GemmToMatMul())
    # GemmToMatMul leaves its nodes unnamed: name them after the Gemm, so that messages
    # name the node of the user's file.
    for name, inp, out in gemms:
        for n in model.graph.node:
            if n.name:
                continue
            reads = n.input[0] if n.input else ""
            if n.op_type == "MatMul" and (reads == inp or (_producer(model, reads) is not None
                                                            and _producer(model, reads).input[0] == inp)):
                n.name = name or f"Gemm -> {out}"
            elif n.op_type == "Add" and n.output[0] == out:
                n.name = f"{name or 'Gemm'} (bias)"
    return _fold(model)


def _bn_params(model, n) -> tuple[np.ndarray, ...]:
    vals = [model.get_initializer(i) for i in n.input[1:5]]
    if len(n.input) < 5 or any(v is None for v in vals):
        raise GraphImportError(f"{label(n)}: its scale, bias, mean and variance must be "
                               f"constants (initializers)")
    return tuple(np.asarray(v, np.float32) for v in vals)


def channels_last_batchnorm_to_affine(model):
    """A channels-last ``BatchNormalization`` (qonnx's ``channels_last`` domain, the form
    ``ConvertToChannelsLastAndClean`` writes) becomes ``Mul`` and ``Add`` by per-channel
    constants on the last axis. qonnx's ``BatchNormToAffine`` ignores the domain and shapes
    its constants ``[1, C, 1, 1]``, which is wrong for channels-last data."""
    from onnx import helper
    from qonnx.transformation.infer_shapes import InferShapes

    g = model.graph
    changed = False
    for n in list(g.node):
        if n.op_type != "BatchNormalization" or n.domain != CHANNELS_LAST:
            continue
        changed = True
        gamma, beta, mean, var = _bn_params(model, n)
        eps = np.float32(attrs(n).get("epsilon", 1e-5))
        a = (gamma / np.sqrt(var + eps)).astype(np.float32)
        b = (beta - a * mean).astype(np.float32)
        an, bn, mid = (model.make_new_valueinfo_name() for _ in range(3))
        model.set_initializer(an, a)
        model.set_initializer(bn, b)
        idx = list(g.node).index(n)
        g.node.insert(idx, helper.make_node("Add", [mid, bn], [n.output[0]],
                                            name=(n.name or "bn") + "_add"))
        g.node.insert(idx, helper.make_node("Mul", [n.input[0], an], [mid],
                                            name=(n.name or "bn") + "_mul"))
        g.node.remove(n)
    return _quiet(model, InferShapes()) if changed else model


def batchnorm_to_affine(model):
    """qonnx's ``BatchNormToAffine`` for channels-first batch norm (also removing FINN's
    Unsqueeze/Squeeze around it), after checking every parameter is a constant."""
    from qonnx.transformation.batchnorm_to_affine import BatchNormToAffine

    bns = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    if not bns:
        return model
    for n in bns:
        _bn_params(model, n)
        if model.get_tensor_shape(n.input[0]) is None:
            raise GraphImportError(f"{label(n)}: the shape of its input is unknown")
    return _quiet(model, BatchNormToAffine())


def drop_relu_before_unsigned_quant(model):
    """Remove a ``Relu`` whose only consumer is an unsigned ``Quant`` with zero point 0
    (every Brevitas ``QuantReLU`` exports this way). The Quant clips at 0 before rounding,
    so ``Quant(Relu(x)) == Quant(x)`` for every x and every rounding mode: exact. qonnx
    has no such pass."""
    g = model.graph
    outputs = {o.name for o in g.output}
    for n in list(g.node):
        if n.op_type != "Relu" or n.output[0] in outputs:
            continue
        users = _consumers(model, n.output[0])
        if len(users) != 1:
            continue
        q = users[0]
        if q.op_type != "Quant" or q.input[0] != n.output[0] or attrs(q).get("signed", 1):
            continue
        zp = model.get_initializer(q.input[2]) if len(q.input) > 2 else None
        if zp is None or np.any(np.asarray(zp) != 0):
            continue
        q.input[0] = n.input[0]
        g.node.remove(n)
    return model


TAIL_OPS = ("Softmax", "LogSoftmax", "Identity", "TopK", "ArgMax")


def strip_output_tail(model):
    """Remove the nodes after a network's last quantity that the hardware's argmax does
    not need (``Softmax``, ``LogSoftmax``, ``Identity``, ``TopK``, ``ArgMax`` at the graph
    output) and return them, outermost last, as the decoding's ``tail``: ``predict
    --float`` applies them again. qonnx has no such pass (FINN's ``InsertTopK`` is the
    reverse)."""
    from onnx import TensorProto

    g = model.graph
    tail: list[dict] = []
    while len(g.output) == 1:
        out = g.output[0]
        n = _producer(model, out.name)
        if n is None or n.op_type not in TAIL_OPS or not n.input or \
                model.get_initializer(n.input[0]) is not None:
            break
        a = attrs(n)
        if n.op_type == "TopK":
            k = model.get_initializer(n.input[1]) if len(n.input) > 1 else None
            which = list(n.output).index(out.name)
            others = [o for j, o in enumerate(n.output) if j != which and o]
            if k is None or any(_consumers(model, o) for o in others):
                break
            op = {"op": "topk", "k": int(np.ravel(k)[0]), "axis": int(a.get("axis", -1)),
                  "largest": bool(a.get("largest", 1)),
                  "output": "values" if which == 0 else "indices"}
        elif n.op_type == "ArgMax":
            if a.get("select_last_index", 0):
                break
            op = {"op": "argmax", "axis": int(a.get("axis", 0)),
                  "keepdims": bool(a.get("keepdims", 1))}
        elif n.op_type in ("Softmax", "LogSoftmax"):
            op = {"op": n.op_type.lower(), "axis": int(a.get("axis", -1))}
        else:
            op = {"op": "identity"}
        if len(_consumers(model, n.input[0])) != 1:
            break
        tail.insert(0, op)
        src = n.input[0]
        g.node.remove(n)
        shape = model.get_tensor_shape(src)
        for vi in [v for v in g.value_info if v.name == src]:
            g.value_info.remove(vi)   # a graph output is not also an intermediate tensor
        out.name = src
        out.type.tensor_type.elem_type = TensorProto.FLOAT
        out.type.tensor_type.ClearField("shape")
        if shape is not None:
            for d in shape:
                out.type.tensor_type.shape.dim.add().dim_value = int(d)
    return model, tail


@dataclass
class Normalized:
    """The normalized graph (a qonnx ``ModelWrapper``) and the output tail it dropped."""

    model: object
    tail: list


def normalize(model) -> Normalized:
    """The passes above, in order, on a graph loaded by :func:`.graph.load_graph`."""
    from qonnx.transformation.infer_shapes import InferShapes

    model = unify_quant_domains(model)
    try:
        model = qonnx_cleanup(model)
        model = gemm_to_matmul(model)
        model = channels_last_batchnorm_to_affine(model)
        model = batchnorm_to_affine(model)
    except GraphImportError:
        raise
    except Exception as e:  # qonnx's transformations assert and raise on odd graphs
        raise GraphImportError(f"qonnx could not normalize the graph ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:200] if str(e) else 'no message'})") from None
    model = drop_relu_before_unsigned_quant(model)
    model, tail = strip_output_tail(model)
    model = _quiet(model, InferShapes())
    return Normalized(model, tail)
