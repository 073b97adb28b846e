"""FINN's CNV topology with random weights (mulfree.gen.model.cnv, scripts/make_cnv.py)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mulfree.gen.model import golden
from mulfree.gen.model.cnv import CNV_FULL, CNV_SMALL, CnvShape, cnv_model, cnv_weight_count
from mulfree.gen.model.format import Conv2d, Dense, MaxPool, load

ROOT = Path(__file__).resolve().parents[3]


def test_full_cnv_has_finns_shapes():
    # FINN's CNV: 3x3 convs 64, 64, pool, 128, 128, pool, 256, 256; dense 512, 512, 10
    assert cnv_weight_count(CNV_FULL) == 1_542_848
    assert CNV_FULL.final_side == 1


@pytest.mark.parametrize("bits", [1, 2])
def test_small_cnv_layers_and_codes_vary(bits):
    m = cnv_model(CNV_SMALL, wbits=bits, abits=bits, seed=3)
    kinds = [type(layer).__name__ for layer in m.layers]
    assert kinds == ["Conv2d", "Conv2d", "MaxPool", "Conv2d", "Conv2d", "MaxPool", "Conv2d",
                     "Conv2d", "Flatten", "Dense", "Dense", "Dense"]
    assert sum(layer.weights.codes.size for layer in m.layers
               if isinstance(layer, (Conv2d, Dense))) == cnv_weight_count(CNV_SMALL)
    x = np.random.default_rng(9).integers(0, 256, (16, 8, 8, 3))
    res = golden.run(m, x)
    for layer, out in zip(m.layers, res.outputs):
        if isinstance(layer, (Conv2d, Dense)) and layer.output.kind.value == "thresholds":
            # thresholds from calibration quantiles: no layer's codes are all one value
            assert len(np.unique(out)) == 2**bits, layer.name
    assert m.layers[-1].output.kind.value == "argmax"
    assert isinstance(m.layers[2], MaxPool)


def test_cnv_is_deterministic_in_its_seed():
    a, b = cnv_model(CNV_SMALL, seed=5), cnv_model(CNV_SMALL, seed=5)
    assert all(np.array_equal(x.weights.codes, y.weights.codes) for x, y in
               zip(a.layers, b.layers) if hasattr(x, "weights"))
    c = cnv_model(CNV_SMALL, seed=6)
    assert not np.array_equal(a.layers[0].weights.codes, c.layers[0].weights.codes)


def test_cnv_bad_arguments():
    with pytest.raises(ValueError, match="w3a1"):
        cnv_model(CNV_SMALL, wbits=3)
    with pytest.raises(ValueError, match="too small"):
        CnvShape(image=16)
    with pytest.raises(ValueError, match="pairs"):
        CnvShape(conv=(4, 4, 8))


def test_make_cnv_script_writes_a_loadable_model(tmp_path):
    out = tmp_path / "small.mf"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_cnv.py"), "--small",
                        "--bits", "2", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = load(out)
    assert m.name == "cnv-w2a2" and m.input_shape == (8, 8, 3)
