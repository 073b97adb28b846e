"""QONNX import, cross-checked against QONNX's own executor (a reference nobody here wrote)
on the public TFC models: every hidden layer's quantized output must match exactly."""

import warnings
from pathlib import Path

import numpy as np
import pytest

from mulfree.gen.model import golden
from mulfree.cli.main import main
from mulfree.gen.errors import ModelError
from mulfree.gen.model.format import load
from mulfree.gen.importers.qonnx import encode_inputs, import_qonnx, output_logits

MODELS = Path(__file__).resolve().parents[4] / "shared" / "models" / "qonnx-tfc"
TFC = ["TFC_1W1A", "TFC_1W2A", "TFC_2W2A"]
pytestmark = pytest.mark.skipif(not MODELS.is_dir(), reason=f"{MODELS} not present")


def _qonnx_run(path: Path, x: np.ndarray) -> dict:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    w = ModelWrapper(str(path))
    w.set_tensor_shape(w.graph.input[0].name, list(x.shape))
    for vi in list(w.graph.value_info):  # re-infer every shape for this batch size
        w.graph.value_info.remove(vi)
    w = w.transform(InferShapes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctx = execute_onnx(w, {w.graph.input[0].name: x}, return_full_exec_context=True)
    consts = {i.name for i in w.graph.initializer}
    acts = [n.output[0] for n in w.graph.node if n.op_type in ("Quant", "BipolarQuant")
            and n.input[0] not in consts]
    return {"acts": [ctx[a].reshape(len(x), -1) for a in acts],
            "out": ctx[w.graph.output[0].name]}


@pytest.mark.parametrize("name", TFC)
def test_tfc_matches_qonnx_executor_bit_for_bit(name):
    pytest.importorskip("qonnx")
    path = MODELS / f"{name}.onnx"
    model = import_qonnx(path)
    rng = np.random.default_rng(7)
    x = rng.random((256, 1, 28, 28)).astype(np.float32)
    x[:128] = x[:128] > 0.7            # sparse binary images, like MNIST strokes
    x[128:144] = 0.5                   # exactly on the input quantizer's rounding tie
    codes = encode_inputs(model, x)
    ours = golden.run(model, codes)
    ref = _qonnx_run(path, x)
    # Input quantization and every hidden layer's activations, as values.
    np.testing.assert_array_equal(model.layers[0].activation_codebook[codes], ref["acts"][0])
    for i, want in enumerate(ref["acts"][1:]):
        got = model.layers[i + 1].activation_codebook[ours.outputs[i]]
        np.testing.assert_array_equal(got, want, err_msg=f"layer {i} of {name}")
    logits = output_logits(model, ours.output)
    np.testing.assert_allclose(logits, ref["out"], rtol=1e-5, atol=1e-5)
    assert np.array_equal(logits.argmax(1), ref["out"].argmax(1))


def test_tfc_shapes_and_schemes():
    model = import_qonnx(MODELS / "TFC_2W2A.onnx")
    assert model.input_shape == (784,) and model.input_bits == 2
    assert [l.out_features for l in model.layers] == [64, 64, 64, 10]
    assert {l.weights.scheme.value for l in model.layers} == {"ternary"}
    assert model.layers[-1].output.kind.value == "acc"
    binary = import_qonnx(MODELS / "TFC_1W1A.onnx")
    assert binary.input_bits == 1 and binary.layers[0].weights.scheme.value == "binary"
    assert binary.layers[0].activation_codebook.tolist() == [-1, 1]


def test_import_command_round_trips(tmp_path, capsys):
    out = tmp_path / "tfc.mf"
    assert main(["import", str(MODELS / "TFC_1W2A.onnx"), "-o", str(out)]) == 0
    assert "4 layers" in capsys.readouterr().out
    assert load(out) == import_qonnx(MODELS / "TFC_1W2A.onnx")


def test_not_onnx_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match="not an ONNX model"):
        import_qonnx(bad)
    with pytest.raises(ModelError, match="no such file"):
        import_qonnx(tmp_path / "missing.onnx")


def test_unsupported_node_names_it(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import helper, TensorProto

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ModelError, match=r"node 0 \(Relu -> y\): not supported"):
        import_qonnx(path)
