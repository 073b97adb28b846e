"""`mulfree info`, `inputs` and `predict`, and the exit-code contract of the command line."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mulfree.gen.model import golden
from mulfree.cli.main import COMMANDS, main
from mulfree.gen.model.examples import example_model
from mulfree.gen.fileio import save_npy
from mulfree.gen.model.format import load, save

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "example.mf"


def mulfree(*args):
    """Run the real command line in a subprocess: exit code, stdout, stderr."""
    p = subprocess.run([sys.executable, "-m", "mulfree.cli", *map(str, args)],
                       capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def test_committed_example_is_the_generated_one():
    assert load(EXAMPLE) == example_model(0), "regenerate with scripts/make_example.py"


def test_info_table_and_json(capsys):
    assert main(["info", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "apot" in out and "acc w" in out
    assert main(["info", "--json", str(EXAMPLE)]) == 0
    info = json.loads(capsys.readouterr().out)
    fc1 = info["layers"][3]
    assert fc1["scheme"] == "apot" and fc1["parameters"] == 64 * 16
    bounds = golden.accumulator_bounds(load(EXAMPLE).layers[3])
    assert (fc1["acc_min"], fc1["acc_max"], fc1["acc_width"]) == (bounds.min, bounds.max, bounds.width)
    assert info["totals"]["parameters"] == 36 + 1024 + 160


def test_predict_matches_golden_and_writes_layer_outputs(tmp_path):
    x = np.random.default_rng(0).integers(0, 4, (6, 8, 8, 1))
    save_npy(tmp_path / "x.npy", x)
    code, out, err = mulfree("predict", EXAMPLE, tmp_path / "x.npy", "-o", tmp_path / "y.npy",
                             "--layer-outputs", tmp_path / "layers")
    assert code == 0, err
    want = golden.run(load(EXAMPLE), x)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want.output)
    np.testing.assert_array_equal(np.load(tmp_path / "layers" / "03_fc1.npy"), want.outputs[3])
    np.testing.assert_array_equal(np.load(tmp_path / "layers" / "00_conv1.acc.npy"), want.accumulators[0])


def test_predict_single_sample(tmp_path):
    x = np.zeros((8, 8, 1), np.int64)
    save_npy(tmp_path / "x.npy", x)
    assert main(["predict", str(EXAMPLE), str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]) == 0
    assert np.load(tmp_path / "y.npy").shape == (1, 10)


@pytest.mark.parametrize("text,message", [
    (None, "no such file"),
    ('{"format": "mulfree-model", "version": 9}', "unknown format version 9"),
    (EXAMPLE.read_text()[:500], "not valid JSON"),
])
def test_bad_model_exits_2_with_one_line(tmp_path, text, message):
    path = tmp_path / "m.mf"
    if text is not None:
        path.write_text(text)
    code, out, err = mulfree("info", path)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("x,message", [
    (np.zeros((2, 8, 8), np.int64), "expects inputs of shape [8, 8, 1]"),
    (np.full((2, 8, 8, 1), 4), "input code 4 at index [0, 0, 0, 0] is out of range"),
    (np.zeros((2, 8, 8, 1), np.float32), "must be integers"),
])
def test_bad_inputs_exit_2(tmp_path, x, message):
    save_npy(tmp_path / "x.npy", x)
    code, _, err = mulfree("predict", EXAMPLE, tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "y.npy").exists()


def test_not_an_npy_file(tmp_path):
    (tmp_path / "x.npy").write_text("hello")
    code, _, err = mulfree("predict", EXAMPLE, tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    assert code == 2 and "not a readable .npy array" in err


def test_usage_errors_exit_2():
    assert mulfree()[0] == 2
    assert mulfree("info")[0] == 2
    code, _, err = mulfree("frobnicate")
    assert code == 2 and "invalid choice" in err


def test_every_registered_command_has_help():
    code, out, _ = mulfree("--help")
    assert code == 0
    for command in COMMANDS:
        assert command.name in out


def test_inputs_writes_the_models_digits_codes(tmp_path):
    from mulfree.gen.train import datasets
    from mulfree.gen.train.evaluate import model_inputs

    model = example_model(0)            # 8x8x1 input codes of 2 bits, like a digits CNN
    save(model, tmp_path / "m.mf")
    code, out, err = mulfree("inputs", tmp_path / "m.mf", "-n", 5, "-o", tmp_path / "x.npy",
                             "--labels", tmp_path / "y.npy")
    assert code == 0, err
    data = datasets.load("digits")
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), model_inputs(model, data)[:5])
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), data.y_test[:5])
    assert "5 samples of 8x8x1 input codes (2 bits" in out
    # and they are what predict takes
    assert main(["predict", str(tmp_path / "m.mf"), str(tmp_path / "x.npy"), "-o",
                 str(tmp_path / "p.npy")]) == 0


@pytest.mark.parametrize("count, message", [("0", "--count: expected a positive integer"),
                                            ("100000", "split has 360 samples")])
def test_inputs_refuses_a_count_it_cannot_give(tmp_path, count, message):
    save(example_model(0), tmp_path / "m.mf")
    code, out, err = mulfree("inputs", tmp_path / "m.mf", "-n", count, "-o", tmp_path / "x.npy")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.npy").exists()
