"""Sparse fan-in training: every neuron reads at most F inputs, as zero weights in the
model, for every scheme and both connection rules; the integer model equals the float
reference; the options' errors."""

from dataclasses import replace

import numpy as np
import pytest

from mulfree.cli.main import main
from mulfree.gen.errors import InputError
from mulfree.gen.model.format import Dense, dumps, load
from mulfree.gen.model.golden import product_table
from mulfree.gen.train import datasets
from mulfree.gen.train.config import TrainConfig
from mulfree.gen.train.export import export, to_model
from mulfree.gen.train.net import build, choose_connections, prune_schedule, random_mask
from mulfree.gen.train.quant import kmeans_assign, kmeans_step, lutq_init
from mulfree.gen.train.trainer import train

from mulfree.gen.model.golden import run
from mulfree.gen.train.evaluate import evaluate_model, model_inputs
from mulfree.gen.train.export import reference_forward

DATA = datasets.load("digits")
SMALL = dict(train_subset=600, epochs=10, hidden=(24,))


def _check_exact(cfg):
    """Train; the golden model's codes equal the fake-quantized float network's on every
    test sample (as tests/gen/train/test_train.py checks for dense models)."""
    net, _ = train(cfg, DATA)
    q = export(net)
    model = to_model(q)
    x = model_inputs(model, DATA)
    res = run(model, x)
    gold = [out for layer, out in zip(model.layers, res.outputs) if isinstance(layer, Dense)]
    for folded in (False, True):
        outs, logits = reference_forward(q, x, folded=folded)
        for i, (a, b) in enumerate(zip(outs, gold)):
            assert np.array_equal(a, b), f"layer {i} codes differ (folded={folded})"
        assert np.array_equal(np.argmax(logits, 1), np.argmax(res.last_accumulators, 1))
    return model, evaluate_model(model, DATA), net


def _fan_ins(model):
    """Per dense layer, the inputs each neuron reads (non-constant product rows)."""
    out = []
    for layer in model.layers:
        if isinstance(layer, Dense):
            p = product_table(layer)
            rows = p[layer.weights.codes]                     # [out, in, codes]
            out.append((rows != rows[..., :1]).any(axis=2).sum(axis=1))
    return out


@pytest.mark.parametrize("scheme,wbits,extra", [
    ("uniform", 3, {}),
    ("pot", 3, {}),
    ("pot", 1, {}),
    ("apot", 3, {}),
    ("binary", 1, {}),
    ("ternary", 2, {}),
    ("lut", 3, {}),
    ("lut", 3, {"lut_pot": True}),
    ("table", 4, {"ibits": 2, "table_entries": 40}),
])
@pytest.mark.parametrize("rule", ["learned", "random"])
def test_every_scheme_keeps_the_fan_in_and_is_exact(scheme, wbits, extra, rule):
    cfg = TrainConfig(scheme=scheme, wbits=wbits, abits=2, fan_in=(5, 4), fan_in_rule=rule,
                      **{**SMALL, **extra})
    model, acc, net = _check_exact(cfg)
    fans = _fan_ins(model)
    assert fans[0].max() <= 5 and fans[1].max() <= 4
    # the connections are the masks: nothing outside them is read
    for layer, l in zip([l for l in model.layers if isinstance(l, Dense)], net.compute()):
        p = product_table(layer)
        rows = p[layer.weights.codes]
        assert not (rows != rows[..., :1]).any(axis=2)[~l.mask].any()
    assert acc > 0.3
    if scheme == "binary":      # the missing connections need a zero: a ternary codebook
        assert model.layers[1].weights.scheme.value == "ternary"


def test_dense_models_are_unchanged_by_the_option():
    cfg = TrainConfig(scheme="pot", wbits=3, **SMALL)
    assert "fan_in" not in cfg.to_dict() and "fan_in_rule" not in cfg.to_dict()
    a = to_model(export(train(cfg, DATA)[0]))
    # a fan-in at least each layer's width is dense: the same model but its configuration
    b = to_model(export(train(replace(cfg, fan_in=(64, 24)), DATA)[0]))
    assert b.metadata["config"]["fan_in"] == [64, 24]
    assert dumps(a) != dumps(b)
    for la, lb in zip(a.layers, b.layers):
        if isinstance(la, Dense):
            assert np.array_equal(la.weights.codes, lb.weights.codes)
            assert np.array_equal(la.output.thresholds, lb.output.thresholds) \
                if la.output.thresholds is not None else True


def test_random_rule_is_fixed_per_seed():
    cfg = TrainConfig(scheme="pot", wbits=3, fan_in=(6,), fan_in_rule="random", **SMALL)
    rng = np.random.default_rng(0)
    a = [l.mask for l in build(cfg, rng).compute()]
    b = [l.mask for l in build(cfg, np.random.default_rng(5)).compute()]
    c = [l.mask for l in build(replace(cfg, seed=1), rng).compute()]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))     # the connection rng: the seed
    assert not np.array_equal(a[0], c[0])
    assert all((m.sum(axis=1) == 6).all() for m in a)
    m = random_mask(np.random.default_rng(3), 5, 8, 8)
    assert m.all()


def test_learned_rule_keeps_the_largest_weights():
    cfg = TrainConfig(scheme="float", fan_in=(2,), **SMALL)
    net = build(cfg, np.random.default_rng(0))
    layer = net.compute()[0]
    w = layer.W.copy()
    assert layer.mask.all()                     # every connection before pruning
    assert not choose_connections(net, 0.0)
    assert choose_connections(net, 0.5)         # half way: 2 + 62 / 2 = 33 inputs left
    assert (layer.mask.sum(axis=1) == 33).all()
    assert choose_connections(net, 1.0)
    top = np.sort(np.argsort(-np.abs(w), axis=1)[:, :2], axis=1)
    assert np.array_equal(np.sort(np.flatnonzero(layer.mask[0])), top[0])
    assert (layer.W[~layer.mask] == 0).all() and (layer.W[layer.mask] == w[layer.mask]).all()
    assert not choose_connections(net)          # done
    assert prune_schedule(0, 100) == 0.0 and prune_schedule(70, 100) == 1.0
    assert 0 < prune_schedule(20, 100) < prune_schedule(40, 100) < 1


def test_lutq_mask_pins_zero():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 10))
    mask = rng.random((6, 10)) < 0.4
    w = w * mask
    d = lutq_init(w, 4, mask=mask)
    assert d[0] == 0
    a, d2 = kmeans_step(w, d, mask=mask)
    assert d2[0] == 0 and (a[~mask] == 0).all()
    assert (kmeans_assign(w, d2, mask=mask)[~mask] == 0).all()


@pytest.mark.parametrize("kw,match", [
    ({"fan_in": (0,)}, "positive"),
    ({"fan_in": (3, 3, 3)}, "one per dense layer"),
    ({"fan_in": (3,), "arch": "cnn"}, "mlp"),
    ({"fan_in": (3,), "fan_in_rule": "magic"}, "fan-in-rule"),
])
def test_config_errors(kw, match):
    with pytest.raises(InputError, match=match):
        TrainConfig(**{**SMALL, **kw})


def test_cli(tmp_path, capsys):
    out = tmp_path / "n.mf"
    code = main(["train", "--hidden", "16", "--fan-in", "6,4", "--scheme", "pot", "--wbits",
                 "3", "--abits", "2", "--ibits", "2", "--epochs", "8", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    model = load(out)
    assert "-f6_4-" in model.name
    assert model.metadata["config"]["fan_in"] == [6, 4]
    fans = _fan_ins(model)
    assert fans[0].max() <= 6 and fans[1].max() <= 4
    code = main(["train", "--hidden", "16", "--fan-in", "6,4,4", "--scheme", "pot",
                 "-o", str(tmp_path / "x.mf")])
    err = capsys.readouterr().err
    assert code == 2 and "one per dense layer" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.mf").exists()
