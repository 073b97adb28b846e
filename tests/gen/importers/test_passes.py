"""Each normalization pass of our own on the smallest graph that shows its pattern: the
graph it leaves computes the same as the one it got (qonnx's executor on both), and the
qonnx transformation it stands in for is shown missing or wrong where the docstring says so."""

import copy
import warnings

import numpy as np
import pytest

pytest.importorskip("qonnx")

from onnx_graphs import QONNX, GraphBuilder  # noqa: E402

from mulfree.gen.importers import passes  # noqa: E402
from mulfree.gen.importers.graph import GraphImportError  # noqa: E402


def _wrap(builder: GraphBuilder, out: str, out_shape=None):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ModelWrapper(builder.model(out, out_shape)).transform(InferShapes())


def _run(model, x: np.ndarray) -> np.ndarray:
    from qonnx.core.onnx_exec import execute_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.concatenate([execute_onnx(model, {model.graph.input[0].name: x[i:i + 1]})
                               [model.graph.output[0].name] for i in range(len(x))])


def _ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


X = np.random.default_rng(0).normal(0, 1, (12, 4)).astype(np.float32)


def test_unify_quant_domains_moves_brevitas_and_finn_ops_to_qonnx():
    b = GraphBuilder([1, 4])
    q = b.node("Quant", [b.in_name, b.const(0.5), b.const(0.0), b.const(4.0)],
               domain="onnx.brevitas", signed=1, narrow=0, rounding_mode="ROUND")
    t = b.node("MultiThreshold", [q, b.const([[0.0, 1.0]])], domain="finn.custom_op.general",
               out_dtype="UINT2")
    from qonnx.core.modelwrapper import ModelWrapper

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = passes.unify_quant_domains(ModelWrapper(b.model(t)))
    assert [n.domain for n in m.graph.node] == [QONNX, QONNX]
    assert any(o.domain == QONNX for o in m.model.opset_import)


def _gemm_without_bias():
    b = GraphBuilder([1, 4])
    w = b.qweight(np.arange(12).reshape(3, 4) % 5 - 2, 0.25, 4)
    y = b.node("Gemm", [b.in_name, w], name="fc", transB=1)
    return b, y


def test_gemm_add_zero_bias_lets_qonnx_convert_a_gemm_without_bias():
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul

    b, y = _gemm_without_bias()
    model = _wrap(b, y)
    want = _run(model, X)
    with pytest.raises(IndexError):          # qonnx's own pass reads the missing bias
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            copy.deepcopy(model).transform(GemmToMatMul())
    fixed = passes.gemm_add_zero_bias(copy.deepcopy(model))
    gemm = next(n for n in fixed.graph.node if n.op_type == "Gemm")
    assert len(gemm.input) == 3 and np.array_equal(fixed.get_initializer(gemm.input[2]),
                                                    np.zeros(3))
    converted = passes.gemm_to_matmul(copy.deepcopy(model))
    assert "Gemm" not in _ops(converted) and "MatMul" in _ops(converted)
    assert next(n for n in converted.graph.node if n.op_type == "MatMul").name == "fc"
    np.testing.assert_allclose(_run(converted, X), want, rtol=1e-6, atol=1e-6)  # float32 sums


def _channels_last_bn():
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.core.modelwrapper import ModelWrapper

    b = GraphBuilder([1, 2, 2, 3])
    rng = np.random.default_rng(1)
    params = [b.const(v) for v in (rng.uniform(0.5, 2, 3), rng.normal(0, 1, 3),
                                   rng.normal(0, 1, 3), rng.uniform(0.5, 2, 3))]
    y = b.node("BatchNormalization", [b.in_name, *params],
               domain="qonnx.custom_op.channels_last", epsilon=1e-5)
    from onnx import helper

    m = b.model(y, [1, 2, 2, 3])
    m.opset_import.append(helper.make_opsetid("qonnx.custom_op.channels_last", 13))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ModelWrapper(m).transform(InferShapes())


def test_channels_last_batchnorm_to_affine_scales_the_last_axis():
    from qonnx.transformation.batchnorm_to_affine import BatchNormToAffine

    model = _channels_last_bn()
    x = np.random.default_rng(2).normal(0, 1, (5, 2, 2, 3)).astype(np.float32)
    want = _run(model, x)
    mine = passes.channels_last_batchnorm_to_affine(copy.deepcopy(model))
    assert _ops(mine) == ["Mul", "Add"]
    np.testing.assert_allclose(_run(mine, x), want, rtol=1e-6, atol=1e-6)
    # qonnx's pass shapes the constants [1, C, 1, 1] whatever the domain: wrong here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            theirs = _run(copy.deepcopy(model).transform(BatchNormToAffine()), x)
        except Exception:
            theirs = None
    assert theirs is None or not np.allclose(theirs, want, atol=1e-3)


def test_batchnorm_with_computed_parameters_is_refused_by_name():
    b = GraphBuilder([1, 3])
    g = b.node("Relu", [b.const(np.ones(3))])
    y = b.node("BatchNormalization", [b.in_name, g, *(b.const(np.ones(3)) for _ in range(3))],
               name="my_bn")
    model = _wrap(b, y)
    with pytest.raises(GraphImportError, match=r"node 'my_bn' \(BatchNormalization\): its "
                                               r"scale, bias, mean and variance must be constants"):
        passes.batchnorm_to_affine(model)


@pytest.mark.parametrize("signed,zero_point,removed", [(False, 0.0, True), (True, 0.0, False),
                                                       (False, 1.0, False)])
def test_drop_relu_before_unsigned_quant(signed, zero_point, removed):
    b = GraphBuilder([1, 4])
    r = b.node("Relu", [b.in_name])
    y = b.quant(r, 0.25, 3, signed=signed, zero_point=zero_point)
    model = _wrap(b, y)
    x = np.linspace(-3, 3, 4 * 25).reshape(25, 4).astype(np.float32)
    x[0] = [-0.125, 0.125, -1e-9, 0.0]      # rounding ties and tiny negatives
    want = _run(model, x)
    out = passes.drop_relu_before_unsigned_quant(copy.deepcopy(model))
    assert ("Relu" not in _ops(out)) == removed
    np.testing.assert_array_equal(_run(out, x), want)


def test_relu_with_a_second_consumer_stays():
    b = GraphBuilder([1, 4])
    r = b.node("Relu", [b.in_name])
    y = b.node("Add", [b.quant(r, 0.25, 3, signed=False), r])
    out = passes.drop_relu_before_unsigned_quant(_wrap(b, y))
    assert "Relu" in _ops(out)


@pytest.mark.parametrize("tail,want", [
    (["Softmax"], [{"op": "softmax", "axis": -1}]),
    (["Identity", "Softmax"], [{"op": "identity"}, {"op": "softmax", "axis": -1}]),
    (["TopK"], [{"op": "topk", "k": 1, "axis": -1, "largest": True, "output": "indices"}]),
    (["ArgMax"], [{"op": "argmax", "axis": 1, "keepdims": True}]),
])
def test_strip_output_tail_returns_what_it_removed(tail, want):
    b = GraphBuilder([1, 4])
    y = b.quant(b.in_name, 0.25, 4)
    shape = [1, 4]
    for op in tail:
        if op == "TopK":
            y = b.node("TopK", [y, b.const([1], np.int64)], outputs=2, axis=-1)[1]
            shape = [1, 1]
        elif op == "ArgMax":
            y = b.node("ArgMax", [y], axis=1, keepdims=1)
            shape = [1, 1]
        else:
            y = b.node(op, [y], **({"axis": -1} if op == "Softmax" else {}))
    model = _wrap(b, y, shape)
    out, got = passes.strip_output_tail(model)
    assert got == want
    assert _ops(out) == ["Quant"] and out.graph.output[0].name == out.graph.node[0].output[0]


def test_normalize_runs_qonnx_passes_and_ours():
    b, y = _gemm_without_bias()
    r = b.node("Relu", [y])
    s = b.node("Softmax", [b.quant(r, 0.5, 2, signed=False)], axis=-1)
    norm = passes.normalize(_wrap(b, s))
    assert _ops(norm.model) == ["Quant", "MatMul", "Mul", "Add", "Quant"] or \
        "Gemm" not in _ops(norm.model) and "Relu" not in _ops(norm.model)
    assert norm.tail == [{"op": "softmax", "axis": -1}]
