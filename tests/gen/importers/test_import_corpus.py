"""Every graph of the import corpus (tests/data/import: Brevitas exports, public QONNX and
FINN-ONNX graphs, the zoo models in ../shared) through the command line as a user runs it:
`mulfree import` unedited (self-check on the saved inputs), then `mulfree predict --float`
against qonnx's executor's saved outputs: the class on every sample, the values to float32
rounding. The graphs mulfree cannot take are refused with exit 2, the node named, nothing
written."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qonnx")

from mulfree.cli.main import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data" / "import"
METAS = sorted(DATA.glob("*/*/meta.json"))
IDS = [f"{p.parent.parent.name}/{p.parent.name}" for p in METAS]

# Inputs without a quantizer: the declaration (meta.json's user_must_declare where it has
# one; the jet tagger takes hls4ml's default fixed<16,6> input).
DECLARE = {"shared/zoo_qkeras_jettagging": ["--input-bits", "16", "--input-signed",
                                            "--input-scale", str(2**-10)]}
REFUSED = {
    "brevitas/cnn_digits_residual_add": r"node 'node_conv2d_1' \(Conv\): tensor '_symbolic_2' "
                                        r"feeds 2 nodes .*branches and residual connections",
    "public/qonnx_fp8_floatquant": r"\(FloatQuant\): not supported \(minifloat quantization",
    "public/qonnx_mnist_conv_float": r"node 'Convolution28' \(Conv\): takes the graph input "
                                     r"'Input3' without a quantizer: declare its encoding with "
                                     r"--input-bits",
    "public/qonnx_residual_block_float": r"node 'Conv_0' \(Conv\): takes the graph input",
}


def _shared() -> Path | None:
    for cand in (ROOT.parent / "shared", ROOT.parent.parent / "shared"):
        if (cand / "models").is_dir():
            return cand
    return None


def _case(meta_path: Path):
    meta = json.loads(meta_path.read_text())
    ref = meta.get("model", "model.onnx")
    if ref.startswith("../shared/"):
        shared = _shared()
        if shared is None:
            pytest.skip("../shared/models is not beside this checkout")
        model = shared / ref[len("../shared/"):]
    else:
        model = meta_path.parent / ref
    case = f"{meta_path.parent.parent.name}/{meta_path.parent.name}"
    declare = list(DECLARE.get(case, []))
    must = meta.get("input_encoding", {}).get("user_must_declare")
    if must:
        declare = ["--input-bits", str(must["bits"]), "--input-scale", str(must["scale"])] + \
            (["--input-signed"] if must["signed"] else [])
    return case, model, declare


@pytest.mark.parametrize("meta_path", METAS, ids=IDS)
def test_corpus_graph(meta_path, tmp_path, capsys):
    case, model, declare = _case(meta_path)
    inputs = meta_path.parent / "inputs.npy"
    net, out = tmp_path / "net.mf", tmp_path / "y.npy"
    if case in REFUSED:
        assert main(["import", str(model), "-o", str(net)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        import re
        assert re.search(REFUSED[case], err), err
        assert not net.exists()
        return
    x = np.load(inputs)
    if declare:   # a declared input takes values on its grid: the reference runs on those
        from mulfree.gen.importers.selfcheck import reference_run
        scale = float(declare[declare.index("--input-scale") + 1])
        x = (np.round(x / scale) * scale).astype(np.float32)
        np.save(tmp_path / "x.npy", x)
        inputs = tmp_path / "x.npy"
        want = reference_run(model, x, [])["<output>"]
    else:
        want = np.load(meta_path.parent / "out_qonnx.npy")
    assert main(["import", str(model), "-o", str(net), "--check-inputs", str(inputs)]
                + declare) == 0, capsys.readouterr().err
    assert "self-check passed" in capsys.readouterr().out
    assert main(["predict", str(net), str(inputs), "--float", "-o", str(out)]) == 0
    got = np.load(out)
    assert got.shape == want.shape
    if want.dtype.kind in "iu":
        np.testing.assert_array_equal(got, want)
        return
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)
    if want.ndim == 2 and want.shape[1] > 1:
        np.testing.assert_array_equal(got.argmax(1), want.argmax(1))


def test_mlp_noquant_between_keeps_its_first_layer(tmp_path):
    """The silent wrong of the old chain matcher: this graph imported with exit 0 as one
    dense layer of 32 inputs, its first MatMul (16 -> 32) dropped."""
    from mulfree.gen.importers.qonnx import import_qonnx

    model = import_qonnx(DATA / "brevitas" / "mlp_tab_noquant_between" / "model.onnx")
    assert model.input_shape == (16,) and model.layers[0].in_features == 16
