"""The public models (TFC from qonnx, the QONNX model zoo's KWS, UNSW-NB15 and jet tagging
graphs in ../shared/models) imported unedited and cross-checked against qonnx's own
executor, a reference nobody here wrote: every hidden activation, the outputs, the class."""

import warnings
from pathlib import Path

import numpy as np
import pytest

from mulfree.cli.main import main
from mulfree.gen.errors import ModelError
from mulfree.gen.model import golden
from mulfree.gen.model.encoding import decode_outputs, encode_inputs
from mulfree.gen.model.format import load

pytest.importorskip("qonnx")

from mulfree.gen.importers.qonnx import InputDecl, check_import, import_graph, import_qonnx  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]


def _shared() -> Path | None:
    for cand in (ROOT.parent / "shared", ROOT.parent.parent / "shared"):
        if (cand / "models").is_dir():
            return cand / "models"
    return None


SHARED = _shared()
needs_shared = pytest.mark.skipif(SHARED is None, reason="../shared/models is not beside the checkout")
TFC = ["TFC_1W1A", "TFC_1W2A", "TFC_2W2A"]
ZOO = {"kwsmlp_w3a3": None, "unsw_nb15-mlp-w2a2": None,
       "qkeras_jettagging": InputDecl(16, True, 2**-10)}   # hls4ml's default input, fixed<16,6>


def _qonnx_run(path: Path, x: np.ndarray) -> tuple[dict, np.ndarray]:
    """qonnx's executor on a batch (as the old test did: shapes re-inferred for the batch)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    w = ModelWrapper(str(path))
    w.set_tensor_shape(w.graph.input[0].name, list(x.shape))
    for vi in list(w.graph.value_info):
        w.graph.value_info.remove(vi)
    w = w.transform(InferShapes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctx = execute_onnx(w, {w.graph.input[0].name: x}, return_full_exec_context=True)
    return ctx, ctx[w.graph.output[0].name]


@needs_shared
@pytest.mark.parametrize("name", TFC)
def test_tfc_matches_qonnx_executor_bit_for_bit(name):
    path = SHARED / "qonnx-tfc" / f"{name}.onnx"
    imp = import_graph(path)
    model = imp.model
    rng = np.random.default_rng(7)
    x = rng.random((256, 1, 28, 28)).astype(np.float32)
    x[:128] = x[:128] > 0.7            # sparse binary images, like MNIST strokes
    x[128:144] = 0.5                   # exactly on the input quantizer's rounding tie
    codes = encode_inputs(model, x)
    ours = golden.run(model, codes)
    ctx, out = _qonnx_run(path, x)
    hidden = [p for p in imp.probes if p.layer >= 0]
    assert len(hidden) == 3
    for p in hidden:
        got = p.levels[ours.outputs[p.layer].reshape(256, -1)[:, p.idx.ravel()]] * p.scale
        np.testing.assert_array_equal(got, ctx[p.tensor].reshape(256, -1), err_msg=p.tensor)
    logits = decode_outputs(model, ours)
    np.testing.assert_allclose(logits, out, rtol=1e-5, atol=1e-5)
    assert np.array_equal(logits.argmax(1), out.argmax(1))
    assert check_import(path, imp).ok


@needs_shared
def test_tfc_shapes_and_schemes():
    model = import_qonnx(SHARED / "qonnx-tfc" / "TFC_2W2A.onnx")
    assert model.input_shape == (784,) and model.input_bits == 2
    assert [l.out_features for l in model.layers] == [64, 64, 64, 10]
    assert {l.weights.scheme.value for l in model.layers} == {"ternary"}
    assert model.layers[-1].output.kind.value == "acc"
    # TFC's output affine is one scale and one bias for all classes: folded for free, so
    # the plain argmax of the accumulators is the class.
    assert model.metadata["output_decoding"]["acc_argmax_is_class"]
    binary = import_qonnx(SHARED / "qonnx-tfc" / "TFC_1W1A.onnx")
    assert binary.input_bits == 1 and binary.layers[0].weights.scheme.value == "binary"
    assert binary.layers[0].activation_codebook.tolist() == [-1, 1]


@needs_shared
@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_models_import_unedited_and_agree_with_qonnx(name):
    path = SHARED / "qonnx-zoo" / f"{name}.onnx"
    imp = import_graph(path, decl=ZOO[name])
    result = check_import(path, imp, seed=3)
    assert result.ok, result.message
    x = np.random.default_rng(5).normal(0, 1, (24, *imp.model.metadata["input_encoding"]
                                                ["source_shape"])).astype(np.float32)
    if ZOO[name] is not None:     # a declared input takes values on its grid
        x = np.round(x * 1024) / 1024
    if name.startswith("unsw"):   # the graph declares a bipolar input
        x = np.where(x >= 0, 1.0, -1.0).astype(np.float32)
    _, out = _qonnx_run(path, x)
    got = decode_outputs(imp.model, golden.run(imp.model, encode_inputs(imp.model, x)))
    np.testing.assert_allclose(got, out, rtol=1e-5, atol=1e-5 * max(1, np.abs(out).max()))
    if out.shape[1] > 1:
        assert np.array_equal(got.argmax(1), out.argmax(1))


@needs_shared
def test_sixteen_bit_input_imports_in_seconds():
    """hls4ml's default 16-bit input: thresholds by search, not enumeration of 2**24+ sums.
    (The time is measured by bench/import_corpus.py, not asserted here.)"""
    model = import_qonnx(SHARED / "qonnx-zoo" / "qkeras_jettagging.onnx",
                         decl=InputDecl(16, True, 2**-10))
    assert model.input_bits == 16
    from mulfree.gen.model.golden import accumulator_bounds
    b = accumulator_bounds(model.layers[0])
    assert b.max - b.min > 2**22   # more sums than the old enumeration would take


@needs_shared
def test_import_command_round_trips(tmp_path, capsys):
    out = tmp_path / "tfc.mf"
    assert main(["import", str(SHARED / "qonnx-tfc" / "TFC_1W2A.onnx"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "4 layers" in text and "self-check passed" in text
    assert load(out) == import_qonnx(SHARED / "qonnx-tfc" / "TFC_1W2A.onnx")


def test_not_onnx_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match="not an ONNX model"):
        import_qonnx(bad)
    with pytest.raises(ModelError, match="no such file"):
        import_qonnx(tmp_path / "missing.onnx")


def test_unsupported_node_names_it(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    node = helper.make_node("Sigmoid", ["x"], ["y"], name="my_sigmoid")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "sig.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ModelError, match=r"node 'my_sigmoid' \(Sigmoid\): not supported \(supported: Quant"):
        import_qonnx(path)
