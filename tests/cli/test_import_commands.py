"""The commands around an imported model: `import` (options, exit codes, nothing written on
failure), `predict --float`, `sim --float`, and `eval`/`inputs` with the model's own input
encoding (refusing a data set the model cannot take)."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qonnx")

from mulfree.cli.main import main  # noqa: E402
from mulfree.gen.model.format import load  # noqa: E402
from mulfree.gen.train import datasets  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "import" / "brevitas"


@pytest.fixture(scope="module")
def digits_cnn(tmp_path_factory):
    """The Brevitas CNN trained on digits as pixel / 16 (tests/data/import)."""
    out = tmp_path_factory.mktemp("cnn") / "cnn.mf"
    assert main(["import", str(DATA / "cnn_digits_w4a4" / "model.onnx"), "-o", str(out),
                 "--no-check", "--name", "cnn"]) == 0
    return out


def test_import_option_errors_exit_2_with_one_line(tmp_path, capsys):
    model = DATA / "mlp_digits_int_input" / "model.onnx"
    net = tmp_path / "n.mf"
    assert main(["import", str(model), "-o", str(net), "--input-signed"]) == 2
    assert "give --input-bits N too" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["import", str(model), "-o", str(net), "--input-bits", "17"])
    assert e.value.code == 2 and "expected an integer 1 to 16" in capsys.readouterr().err
    assert main(["import", str(model), "-o", str(net)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "declare its encoding with --input-bits N" in err
    assert not net.exists()
    assert main(["import", str(model), "-o", str(net), "--input-bits", "5"]) == 0
    assert net.exists()


def test_predict_float_equals_the_executor(tmp_path, capsys):
    d = DATA / "mlp_tab_tail_softmax"
    net, y = tmp_path / "n.mf", tmp_path / "y.npy"
    assert main(["import", str(d / "model.onnx"), "-o", str(net), "--no-check"]) == 0
    assert main(["predict", str(net), str(d / "inputs.npy"), "--float", "-o", str(y)]) == 0
    assert "source-model outputs" in capsys.readouterr().out
    got, want = np.load(y), np.load(d / "out_qonnx.npy")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # float inputs of the wrong shape: one line, exit 2
    np.save(tmp_path / "bad.npy", np.zeros((3, 15), np.float32))
    assert main(["predict", str(net), str(tmp_path / "bad.npy"), "--float", "-o", str(y)]) == 2
    assert "takes float inputs of shape [16]" in capsys.readouterr().err


def test_predict_float_refuses_a_model_without_encoding(tmp_path, capsys):
    example = ROOT / "examples" / "example.mf"
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 8, 1), np.float32))
    assert main(["predict", str(example), str(tmp_path / "x.npy"), "--float",
                 "-o", str(tmp_path / "y.npy")]) == 2
    assert "has no metadata.input_encoding" in capsys.readouterr().err
    assert not (tmp_path / "y.npy").exists()


def test_eval_uses_the_models_own_encoding(digits_cnn, capsys):
    """`mulfree eval` used to feed every model the digits pixel codes (71-94 % for models of
    96-98 %). Now an imported model takes the data set's values through its own encoding;
    raw pixels (0..16) into an input quantizer covering [0, 1.07] are refused, not guessed,
    and with --data-scale 1/16 (how the model was trained) the accuracy is the model's."""
    from mulfree.gen.importers.selfcheck import reference_run
    from mulfree.gen.model import golden
    from mulfree.gen.model.encoding import encode_inputs, model_classes
    from mulfree.gen.train.evaluate import evaluate_model

    assert main(["eval", str(digits_cnn)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fall outside it" in err and "--data-scale" in err
    assert main(["eval", str(digits_cnn), "--data-scale", "0.0625", "--json"]) == 0
    model = load(digits_cnn)
    data = datasets.load("digits")
    assert evaluate_model(model, data, scale=1 / 16) > 0.95
    # eval's classes are qonnx's executor's on every test sample; the old way (the pixel
    # codes as input codes, the raw accumulators' argmax) is not.
    x = (data.x_test[:, :, :, 0] / 16.0).astype(np.float32)[:, None]
    want = reference_run(DATA / "cnn_digits_w4a4" / "model.onnx", x, [])["<output>"].argmax(1)
    got = model_classes(model, golden.run(model, encode_inputs(model, x)))
    np.testing.assert_array_equal(got, want)
    old = datasets.input_codes(data.x_test, model.input_bits)
    raw = golden.run(model, old.reshape(len(old), *model.input_shape)).last_accumulators
    assert np.any(raw.argmax(1) != want)


def test_eval_refuses_a_data_set_of_another_shape(tmp_path, capsys):
    net = tmp_path / "tab.mf"
    assert main(["import", str(DATA / "mlp_tab_w4a4_gemm_bias" / "model.onnx"), "-o", str(net),
                 "--no-check"]) == 0
    assert main(["eval", str(net)]) == 2
    err = capsys.readouterr().err
    assert "takes inputs of shape [16] (16 values); the digits data set has samples of shape " \
           "[8, 8, 1]: it cannot take this data set" in err


def test_inputs_shares_evals_encoding(digits_cnn, tmp_path):
    from mulfree.gen.train.evaluate import model_inputs

    x = tmp_path / "x.npy"
    assert main(["inputs", str(digits_cnn), "--data-scale", "0.0625", "-n", "7", "-o", str(x)]) == 0
    model = load(digits_cnn)
    np.testing.assert_array_equal(np.load(x), model_inputs(model, datasets.load("digits"),
                                                           scale=1 / 16)[:7])
    assert main(["inputs", str(digits_cnn), "-n", "7", "-o", str(tmp_path / "no.npy")]) == 2
    assert not (tmp_path / "no.npy").exists()


def test_sim_float_needs_inputs(digits_cnn, capsys):
    assert main(["sim", str(digits_cnn), "--float", "--simulator", "amaranth"]) == 2
    assert "--float describes the inputs of --inputs" in capsys.readouterr().err
