"""An imported CNN (Brevitas: two convolutions with batch norm and ReLU, max-pool, a dense
layer; tests/data/import/brevitas/cnn_digits_w4a4) all the way down: `mulfree import`,
`mulfree verilog`, then `mulfree sim --simulator verilator --float` on the source model's
own float inputs: the RTL equals the golden model bit for bit, and the golden model's
decoded outputs equal qonnx's executor's."""

from pathlib import Path

import numpy as np
import pytest

from mulfree.cli.main import main

from simhelpers import CACHE

pytest.importorskip("qonnx")

ROOT = Path(__file__).resolve().parents[2]
CNN = ROOT / "tests" / "data" / "import" / "brevitas" / "cnn_digits_w4a4"


@pytest.mark.slow   # about a minute: Verilog emission and a Verilator build
def test_imported_cnn_import_verilog_verilator_bit_exact(tmp_path, capsys):
    net = tmp_path / "cnn.mf"
    assert main(["import", str(CNN / "model.onnx"), "-o", str(net), "--name", "cnn"]) == 0
    out = capsys.readouterr().out
    assert "conv1 uniform, conv2 uniform, pool1, flatten1, fc1 uniform" in out
    assert "self-check passed" in out
    assert main(["verilog", str(net), "-o", str(tmp_path / "rtl")]) == 0
    assert list((tmp_path / "rtl").glob("*.v"))
    capsys.readouterr()
    code = main(["sim", str(net), "--simulator", "verilator", "--inputs", str(CNN / "inputs.npy"),
                 "--float", "--cache-dir", str(CACHE)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS: all 160 outputs of 16 samples match the golden model bit for bit" in out
    assert main(["predict", str(net), str(CNN / "inputs.npy"), "--float",
                 "-o", str(tmp_path / "y.npy")]) == 0
    got, want = np.load(tmp_path / "y.npy"), np.load(CNN / "out_qonnx.npy")
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
