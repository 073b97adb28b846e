"""The tables mode on every simulator: a trained sparse digits network's emitted Verilog on
Icarus and Verilator, and the component in Amaranth's simulator, against the golden model
on random inputs and on digits test images, under random idle and back-pressure; the
manifest's latency and one inference per cycle measured without stalls; a corrupted
expected value is caught."""

import numpy as np
import pytest

from mulfree.gen.train import datasets
from mulfree.gen.train.config import TrainConfig
from mulfree.gen.train.evaluate import model_inputs
from mulfree.gen.train.export import export, to_model
from mulfree.gen.train.trainer import train
from mulfree.sim.runner import simulate

from simhelpers import options, random_inputs

DATA = datasets.load("digits")


@pytest.fixture(scope="module")
def sparse_model():
    cfg = TrainConfig(hidden=(16,), fan_in=(4, 5), scheme="pot", wbits=3, abits=2, ibits=2,
                      epochs=10, train_subset=600, seed=0)
    net, _ = train(cfg, DATA)
    return to_model(export(net), name="digits-sparse")


def _inputs(model):
    """Random codes and digits test images, mixed."""
    return np.concatenate([random_inputs(model, 12, seed=3), model_inputs(model, DATA)[:12]])


def _check(res):
    assert res.ok, res.mismatch.describe() if res.mismatch else "watchdog timeout"


@pytest.mark.parametrize("simulator", ["icarus", "verilator", "amaranth"])
def test_tables_mode_bit_exact(sparse_model, simulator):
    x = _inputs(sparse_model)
    _check(simulate(sparse_model, x, options(simulator, mode="tables", seed=2)))
    res = simulate(sparse_model, x, options(simulator, mode="tables", idle=0, backpressure=0))
    _check(res)
    assert res.latency_measured == res.latency_manifest
    assert res.cycles_per_inference_measured == res.cycles_per_inference_manifest == 1


def test_tables_mode_sums_and_options_on_icarus(sparse_model):
    fold = {"input_values_per_beat": 16,
            "tables": {"limit": 8, "register_every": 2, "sum_pipeline_every": 1}}
    res = simulate(sparse_model, _inputs(sparse_model),
                   options("icarus", mode="tables", fold=fold, seed=4))
    _check(res)
    assert any(r.get("sum_neurons") for r in res.manifest["layers"])


@pytest.mark.parametrize("simulator", ["icarus", "amaranth"])
def test_tables_mode_mismatch_is_caught(sparse_model, simulator):
    def corrupt(expected):
        expected[5, 0] = (expected[5, 0] + 1) % 10
        return expected

    res = simulate(sparse_model, _inputs(sparse_model),
                   options(simulator, mode="tables", seed=2), expected_hook=corrupt)
    assert not res.ok and res.mismatch is not None and res.mismatch.sample == 5
