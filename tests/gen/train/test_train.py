"""Training on digits: smoke tests with accuracy floors (subsets, few epochs), the integer
model equal to the fake-quantized float network on every test sample, determinism, the
train / quantize / eval commands and their errors."""

import json
from dataclasses import replace

import numpy as np
import pytest

from mulfree.gen.train import datasets
from mulfree.cli.main import main
from mulfree.gen.errors import InputError, MulfreeError
from mulfree.gen.model.golden import run
from mulfree.gen.model.format import Conv2d, Dense, MaxPool, OutputKind, dumps, load
from mulfree.gen.train.config import TrainConfig
from mulfree.gen.train.evaluate import evaluate_model, model_inputs
from mulfree.gen.train.export import export, reference_forward, to_model
from mulfree.gen.train.post import float_net_to_npz, post_quantize
from mulfree.gen.train.trainer import float_accuracy, train

DATA = datasets.load("digits")
SMALL = dict(train_subset=700, epochs=12, hidden=(32,))


def _check_exact(cfg):
    net, _ = train(cfg, DATA)
    q = export(net)
    model = to_model(q)
    x = model_inputs(model, DATA)
    res = run(model, x)
    gold = []
    for layer, out in zip(model.layers, res.outputs):
        if isinstance(layer, MaxPool):
            gold[-1] = out
        elif isinstance(layer, (Dense, Conv2d)):
            gold.append(out)
    for folded in (False, True):
        outs, logits = reference_forward(q, x, folded=folded)
        for i, (a, b) in enumerate(zip(outs, gold)):
            assert np.array_equal(a, b), f"layer {i} codes differ (folded={folded})"
        # the last layer: integer accumulators times the scale are the float logits
        assert np.array_equal(np.argmax(logits, 1), np.argmax(res.last_accumulators, 1))
    acc = evaluate_model(model, DATA)
    assert acc == pytest.approx(float(np.mean(np.argmax(logits, 1) == DATA.y_test)))
    return model, acc, net


@pytest.mark.parametrize("scheme,wbits,abits,extra,floor", [
    ("uniform", 4, 2, {}, 0.88),
    ("pot", 4, 2, {}, 0.88),
    ("apot", 4, 2, {}, 0.88),
    ("binary", 1, 2, {}, 0.80),
    ("ternary", 2, 2, {"ibits": 2}, 0.80),
    ("lut", 3, 2, {}, 0.88),
    ("lut", 3, 2, {"lut_pot": True}, 0.85),
    ("lut", 3, 2, {"lut_prune": 0.5}, 0.85),
    ("uniform", 2, 1, {"act": "bipolar"}, 0.80),
    ("pot", 3, 2, {"act": "learned"}, 0.85),
    ("table", 4, 2, {"ibits": 2, "table_entries": 40}, 0.80),
])
def test_mlp_qat_smoke_and_exact(scheme, wbits, abits, extra, floor):
    cfg = TrainConfig(scheme=scheme, wbits=wbits, abits=abits, **{**SMALL, **extra})
    model, acc, _ = _check_exact(cfg)
    assert acc >= floor, acc
    assert model.layers[-1].output.kind is OutputKind.ARGMAX
    if scheme == "table":
        for layer in model.layers:
            if isinstance(layer, Dense):
                assert layer.weights.products.size <= 40


def test_cnn_qat_smoke_and_exact():
    cfg = TrainConfig(arch="cnn", scheme="pot", wbits=4, abits=2, channels=(4, 8),
                      train_subset=500, epochs=6, output="acc")
    model, acc, _ = _check_exact(cfg)
    assert acc >= 0.6
    assert any(isinstance(l, MaxPool) for l in model.layers)
    assert model.layers[-1].output.kind is OutputKind.ACC


def test_same_seed_same_bytes():
    cfg = TrainConfig(scheme="ternary", wbits=2, **SMALL, seed=3)
    a = dumps(to_model(export(train(cfg, DATA)[0])))
    b = dumps(to_model(export(train(cfg, DATA)[0])))
    assert a == b
    c = dumps(to_model(export(train(replace(cfg, seed=4), DATA)[0])))
    assert c != a


def test_post_training_quantization_from_npz():
    net, _ = train(TrainConfig(scheme="float", **SMALL), DATA)
    arrays = float_net_to_npz(net)
    f_acc = float_accuracy(net, DATA)
    for scheme, bits in (("uniform", 8), ("apot", 5), ("lut", 4)):
        cfg = TrainConfig(scheme=scheme, wbits=bits, abits=4, **SMALL)
        qnet = post_quantize(arrays, cfg, DATA)
        model = to_model(export(qnet))
        assert evaluate_model(model, DATA) >= f_acc - 0.08


def test_config_errors():
    with pytest.raises(InputError, match="empty layer"):
        TrainConfig(hidden=(0,))
    with pytest.raises(InputError, match="1-bit"):
        TrainConfig(scheme="binary", wbits=2)
    with pytest.raises(InputError, match="1 to 6"):
        TrainConfig(scheme="pot", wbits=9)
    with pytest.raises(InputError, match="more than the 16 representable"):
        TrainConfig(scheme="table", wbits=4, abits=2, ibits=2, table_entries=320)
    with pytest.raises(InputError, match="at least 2"):
        TrainConfig(scheme="table", wbits=4, abits=2, ibits=4, table_entries=20)
    with pytest.raises(InputError, match="only applies"):
        TrainConfig(scheme="pot", table_entries=40)
    with pytest.raises(InputError, match="only apply to --scheme lut"):
        TrainConfig(scheme="ternary", wbits=2, lut_prune=0.3)
    with pytest.raises(InputError, match="bipolar"):
        TrainConfig(act="bipolar", abits=2)


# -- the command line ----------------------------------------------------------------------

def _main(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_train_eval_quantize(tmp_path, capsys):
    m1, m2 = tmp_path / "a.mf", tmp_path / "b.mf"
    f = tmp_path / "f.npz"
    args = ["train", "--dataset", "digits", "--arch", "mlp", "--hidden", "16", "--scheme",
            "ternary", "--wbits", "2", "--abits", "2", "--ibits", "2", "--epochs", "15",
            "--seed", "1"]
    code, out, err = _main(capsys, *args, "-o", m1, "--save-float", f)
    assert code == 0, err
    assert "integer test accuracy" in out
    code, _, err = _main(capsys, *args, "-o", m2)
    assert code == 0, err
    assert m1.read_bytes() == m2.read_bytes()          # byte-identical from the seed
    code, out, _ = _main(capsys, "eval", m1, "--dataset", "digits", "--json")
    assert code == 0
    acc = json.loads(out)["accuracy"]
    assert acc == pytest.approx(evaluate_model(load(m1), DATA)) and acc > 0.8
    assert load(m1).metadata["accuracy"] == pytest.approx(acc, abs=1e-6)
    code, out, _ = _main(capsys, "eval", m1)
    assert "test accuracy" in out
    code, out, err = _main(capsys, "quantize", f, "--scheme", "pot", "--wbits", "4",
                           "--abits", "3", "-o", tmp_path / "q.mf")
    assert code == 0, err
    assert load(tmp_path / "q.mf").layers[0].weights.scheme.value == "pot"


def test_cli_errors(tmp_path, capsys):
    code, _, err = _main(capsys, "train", "--scheme", "pot", "--wbits", "9", "-o",
                         tmp_path / "x.mf")
    assert code == 2 and "1 to 6" in err
    code, _, err = _main(capsys, "train", "--scheme", "table", "--wbits", "3",
                         "--table-entries", "320", "--abits", "2", "--ibits", "2",
                         "-o", tmp_path / "x.mf")
    assert code == 2 and "representable" in err
    code, _, err = _main(capsys, "eval", tmp_path / "missing.mf")
    assert code == 2 and "no such file" in err
    bad = tmp_path / "bad.npz"
    np.savez(bad, arch=np.array("mlp"), **{"layer0.W": np.full((4, 64), np.nan),
                                            "layer0.b": np.zeros(4)})
    code, _, err = _main(capsys, "quantize", bad, "--scheme", "pot", "--wbits", "4",
                         "-o", tmp_path / "x.mf")
    assert code == 2 and "NaN" in err
    empty = tmp_path / "empty.npz"
    np.savez(empty, arch=np.array("mlp"))
    code, _, err = _main(capsys, "quantize", empty, "--scheme", "pot", "-o", tmp_path / "x.mf")
    assert code == 2 and "no layers" in err
    assert not (tmp_path / "x.mf").exists()


def test_cnn_float_npz_round_trip():
    net, _ = train(TrainConfig(arch="cnn", scheme="float", channels=(4, 8), train_subset=400,
                               epochs=4), DATA)
    arrays = float_net_to_npz(net)
    assert arrays["layer0.W"].shape == (4, 3, 3, 1) and "layer0.pool" in arrays
    cfg = TrainConfig(arch="cnn", scheme="pot", wbits=4, abits=4, channels=(4, 8))
    model = to_model(export(post_quantize(arrays, cfg, DATA)))
    assert [type(l).__name__ for l in model.layers] == ["Conv2d", "MaxPool", "Conv2d",
                                                        "MaxPool", "Flatten", "Dense"]
    assert evaluate_model(model, DATA) >= float_accuracy(net, DATA) - 0.15


@pytest.mark.parametrize("arrays,match", [
    ({"arch": np.array("rnn")}, "mlp or cnn"),
    ({"arch": np.array("mlp"), "layer0.W": np.zeros((4, 64, 1)), "layer0.b": np.zeros(4)},
     "2 dimensions"),
    ({"arch": np.array("mlp"), "layer0.W": np.zeros((4, 64)), "layer0.b": np.zeros(3)},
     "bias of 4"),
    ({"arch": np.array("mlp"), "layer0.W": np.zeros((4, 64)),
      "layer1.W": np.zeros((10, 4)), "layer1.b": np.zeros(10)}, "bn_gamma"),
    ({"arch": np.array("mlp"), "layer0.W": np.zeros((0, 64)), "layer0.b": np.zeros(0)},
     "empty"),
])
def test_bad_float_models(arrays, match):
    with pytest.raises(MulfreeError, match=match):
        post_quantize(arrays, TrainConfig(scheme="pot", wbits=4), DATA)


def test_gradual_schedule():
    from mulfree.gen.train.config import stages

    s = stages(TrainConfig(scheme="pot", wbits=4, abits=2))
    assert [(w, b, a, q) for w, b, a, q, _ in s] == [
        ("float", 4, 2, False), ("pot", 6, 4, True), ("pot", 5, 3, True), ("pot", 4, 2, True)]
    assert sum(share for *_, share in s) == pytest.approx(1.0)
    assert [w for w, *_ in stages(TrainConfig(scheme="binary", wbits=1))] == \
        ["float", "uniform", "ternary", "binary"]
    assert [w for w, *_ in stages(TrainConfig(scheme="pot", wbits=4, gradual=False))] == \
        ["float", "pot"]
