"""Your own data: `mulfree train --dataset FILE.npz` and `mulfree eval --dataset FILE.npz`.

A data set made here (separable Gaussian classes), scikit-learn's wine and breast cancer
sets, images; the input encoding in the model's metadata gives the training's codes
through mulfree.gen.model.encoding (what `predict --float` applies); one clear line and
exit 2 for every malformed file."""

import numpy as np
import pytest

from mulfree.cli.main import main
from mulfree.gen.errors import InputError
from mulfree.gen.model.encoding import encode_inputs
from mulfree.gen.model.format import load
from mulfree.gen.train import datasets
from mulfree.gen.train.config import TrainConfig
from mulfree.gen.train.evaluate import evaluate_model, model_inputs
from mulfree.gen.train.export import export, to_model
from mulfree.gen.train.trainer import train


def gaussians(path, *, classes=3, features=5, n=600, seed=0, images=False):
    """Separable Gaussian classes: class k centred at 4*k on every feature, unit spread."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in (("train", n), ("test", n // 3)):
        y = np.arange(count) % classes
        x = rng.normal(0, 1, (count, features)) + 4.0 * y[:, None]
        if images:
            x = x.reshape(count, 1, features, 1).repeat(2, axis=1)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    np.savez(path, **arrays)
    return path


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_gaussian_classes_train_and_eval(tmp_path, capsys):
    data = gaussians(tmp_path / "blobs.npz")
    code, out, err = _cli(capsys, "train", "--dataset", data, "--hidden", "8", "--scheme",
                          "pot", "--wbits", "3", "--abits", "2", "--ibits", "3", "--epochs",
                          "20", "-o", tmp_path / "n.mf")
    assert code == 0, err
    model = load(tmp_path / "n.mf")
    assert model.name.startswith("blobs-5-8-3-") and model.input_shape == (5,)
    assert model.metadata["dataset"] == "blobs"
    enc = model.metadata["input_encoding"]
    assert enc["quantizer"]["kind"] == "int" and enc["source_shape"] == [5]
    code, out, _ = _cli(capsys, "eval", tmp_path / "n.mf", "--dataset", data, "--json")
    assert code == 0
    import json
    assert json.loads(out)["accuracy"] >= 0.95
    # the encoding in the metadata is the training's: the golden codes are the same
    ds = datasets.load(str(data))
    np.testing.assert_array_equal(encode_inputs(model, ds.x_test), ds.codes(ds.x_test, 3))
    np.testing.assert_array_equal(model_inputs(model, ds), ds.codes(ds.x_test, 3))


def test_encoding_rule():
    x = np.array([[0.0, 5.0, 1.0], [3.0, 5.0, 2.0], [1.5, 5.0, 3.0]])
    enc = datasets.feature_encoding(x, 2)
    q = enc["quantizer"]
    assert q["scale"] == [1.0, 1.0, 2 / 3] and q["bits"] == 2 and not q["signed"]
    ds = datasets.Dataset("t", x, np.array([0, 1, 0]), x, np.array([0, 1, 0]), 2,
                          kind="features")
    # per feature: min -> 0, max -> 3, half way rounds half to even; a constant feature 0
    np.testing.assert_array_equal(ds.codes(x, 2), [[0, 0, 0], [3, 0, 2], [2, 0, 3]])
    # outside the training range: clipped
    np.testing.assert_array_equal(ds.codes(np.array([[-9.0, 6.0, 99.0]]), 2), [[0, 1, 3]])


def test_images_per_channel(tmp_path):
    data = datasets.load(str(gaussians(tmp_path / "img.npz", images=True)))
    assert data.image_shape == (2, 5, 1)
    enc = data.encoding(2)
    assert enc["layout"] == "NHWC" and len(enc["quantizer"]["scale"]) == 10
    assert len(set(enc["quantizer"]["scale"])) == 1        # one channel: one range
    net, _ = train(TrainConfig(hidden=(8,), scheme="pot", wbits=3, ibits=2, epochs=15), data)
    model = to_model(export(net))
    assert model.input_shape == (10,)
    with pytest.raises(InputError, match="--arch cnn needs images|too small"):
        train(TrainConfig(arch="cnn", scheme="pot", wbits=3, epochs=1), data)


@pytest.mark.parametrize("name,loader,floor", [
    ("wine", "load_wine", 0.9), ("breast_cancer", "load_breast_cancer", 0.9)])
def test_scikit_learn_sets(tmp_path, capsys, name, loader, floor):
    import sklearn.datasets
    from sklearn.model_selection import train_test_split

    d = getattr(sklearn.datasets, loader)()
    xtr, xte, ytr, yte = train_test_split(d.data, d.target, test_size=0.25, random_state=0,
                                          stratify=d.target)
    path = tmp_path / f"{name}.npz"
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    code, out, err = _cli(capsys, "train", "--dataset", path, "--hidden", "16", "--scheme",
                          "pot", "--wbits", "3", "--abits", "2", "--ibits", "4", "-o",
                          tmp_path / "n.mf")
    assert code == 0, err
    acc = evaluate_model(load(tmp_path / "n.mf"), datasets.load(str(path)))
    assert acc >= floor


def test_digits_stays_the_default(tmp_path, capsys):
    code, out, err = _cli(capsys, "train", "--hidden", "8", "--scheme", "pot", "--epochs", "3",
                          "-o", tmp_path / "d.mf")
    assert code == 0, err
    model = load(tmp_path / "d.mf")
    assert model.name.startswith("digits-") and "input_encoding" not in model.metadata
    blobs = gaussians(tmp_path / "blobs.npz")
    code, _, err = _cli(capsys, "eval", tmp_path / "d.mf", "--dataset", blobs)
    assert code == 2 and "takes digits pixel codes" in err


def _bad(tmp_path, **arrays):
    base = {"x_train": np.zeros((6, 3)), "y_train": np.array([0, 1, 2, 0, 1, 2]),
            "x_test": np.zeros((3, 3)), "y_test": np.array([0, 1, 2])}
    base.update(arrays)
    base = {k: v for k, v in base.items() if v is not None}
    path = tmp_path / "bad.npz"
    np.savez(path, **base)
    return path


@pytest.mark.parametrize("arrays,match", [
    ({"y_test": None}, "missing array 'y_test'"),
    ({"x_train": np.array([["a", "b", "c"]] * 6)}, "x_train must hold numbers, got an array of <U1"),
    ({"y_train": np.array([0.0, 1, 2, 0, 1, 2])}, "y_train must be integer class labels, got an array of float64"),
    ({"x_test": np.array([[0, np.nan, 0]] * 3)}, r"x_test contains NaN or infinity \(first at index \[0, 1\]\)"),
    ({"x_train": np.full((6, 3), np.inf)}, "x_train contains NaN or infinity"),
    ({"y_test": np.array([0, 1, 3])}, r"label 3 at y_test\[2\] is out of range \(the training split has classes 0..2\)"),
    ({"y_train": np.array([0, 1, -1, 0, 1, 2])}, r"label -1 at y_train\[2\] is out of range"),
    ({"y_train": np.array([0, 1, 2])}, "y_train has 3 labels but x_train has 6 samples"),
    ({"x_test": np.zeros((3, 4))}, r"x_train samples have shape \[3\] but x_test samples \[4\]"),
    ({"x_train": np.zeros((6, 3, 2))}, r"must be features \[N, F\] or images \[N, H, W, C\]"),
    ({"y_train": np.zeros(6, np.int64)}, "one class only"),
    ({"x_train": np.zeros((0, 3)), "y_train": np.zeros(0, np.int64)}, "x_train is empty"),
])
def test_malformed_files(tmp_path, capsys, arrays, match):
    path = _bad(tmp_path, **arrays)
    with pytest.raises(InputError, match=match):
        datasets.load(str(path))
    out = tmp_path / "n.mf"
    code, _, err = _cli(capsys, "train", "--dataset", path, "--scheme", "pot", "-o", out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_unreadable_files(tmp_path, capsys):
    (tmp_path / "text.npz").write_text("not a zip")
    pickled = tmp_path / "obj.npz"
    np.savez(pickled, x_train=np.array([{"a": 1}], dtype=object), y_train=np.array([0]),
             x_test=np.zeros((1, 1)), y_test=np.array([0]))
    for path, match in ((tmp_path / "text.npz", "not a readable .npz archive"),
                        (pickled, "not a readable .npz archive without pickled objects"),
                        (tmp_path / "none.npz", "no such file")):
        code, _, err = _cli(capsys, "train", "--dataset", path, "--scheme", "pot", "-o",
                            tmp_path / "m.mf")
        assert code == 2 and match in err, err
    code, _, err = _cli(capsys, "train", "--dataset", "mnist", "--scheme", "pot", "-o",
                        tmp_path / "m.mf")
    assert code == 2 and "unknown data set 'mnist'" in err


def test_predict_float_and_inputs_apply_the_stored_rule(tmp_path, capsys):
    """One rule: `predict --float` on the file's float samples and `inputs --dataset FILE`
    give the codes and outputs the training's rule gives; a malformed file given to eval
    or inputs is one line, exit 2."""
    data = gaussians(tmp_path / "blobs.npz", n=120)
    code, _, err = _cli(capsys, "train", "--dataset", data, "--hidden", "4", "--scheme", "pot",
                        "--wbits", "3", "--ibits", "3", "--epochs", "3", "-o", tmp_path / "n.mf")
    assert code == 0, err
    ds = datasets.load(str(data))
    np.save(tmp_path / "xf.npy", ds.x_test)
    assert _cli(capsys, "inputs", tmp_path / "n.mf", "--dataset", data, "-o",
                tmp_path / "codes.npy")[0] == 0
    codes = np.load(tmp_path / "codes.npy")
    np.testing.assert_array_equal(codes, ds.codes(ds.x_test, 3))
    assert _cli(capsys, "predict", tmp_path / "n.mf", tmp_path / "codes.npy", "-o",
                tmp_path / "y.npy")[0] == 0
    assert _cli(capsys, "predict", tmp_path / "n.mf", tmp_path / "xf.npy", "--float", "-o",
                tmp_path / "yf.npy")[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "yf.npy"), np.load(tmp_path / "y.npy"))
    bad = _bad(tmp_path, y_test=np.array([0, 1, 7]))
    for cmd in (["eval", tmp_path / "n.mf"], ["inputs", tmp_path / "n.mf", "-o",
                                               tmp_path / "x.npy"]):
        code, _, err = _cli(capsys, *cmd, "--dataset", bad)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "y_test[2]" in err, err
    assert not (tmp_path / "x.npy").exists()
