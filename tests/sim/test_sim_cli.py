"""`mulfree sim` from the command line: report, exit codes, --layer."""

import numpy as np

from mulfree.cli.main import main
from mulfree.gen.fileio import save_npy
from mulfree.gen.model.format import save
from mulfree.sim import runner

from simhelpers import CACHE, random_inputs, scheme_model


def _model_file(tmp_path):
    model = scheme_model("pot", seed=11)
    path = tmp_path / "net.mf"
    save(model, path)
    return model, path


def test_cli_pass_prints_speeds_and_exits_0(tmp_path, capsys):
    model, path = _model_file(tmp_path)
    x = tmp_path / "x.npy"
    save_npy(x, random_inputs(model, 5))
    code = main(["sim", str(path), "--inputs", str(x), "--simulator", "icarus",
                 "--cache-dir", str(CACHE), "--clock-mhz", "100"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS: all 25 outputs of 5 samples" in out
    assert "cycles per inference:" in out and "latency:" in out
    assert "at 100 MHz:" in out and "cycles/s" in out


def test_cli_layer_alone(tmp_path, capsys):
    _, path = _model_file(tmp_path)
    code = main(["sim", str(path), "--random", "4", "--simulator", "amaranth", "--layer", "1",
                 "--cache-dir", str(CACHE)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "layer 1 alone" in out


def test_cli_mismatch_exits_1_with_location(tmp_path, capsys, monkeypatch):
    _, path = _model_file(tmp_path)
    real = runner._prepare

    def corrupted(model, x, layer):
        m, xin, expected, idx, name = real(model, x, layer)
        expected = expected.copy()
        expected[2, 3] = -12345
        return m, xin, expected, idx, name

    monkeypatch.setattr(runner, "_prepare", corrupted)
    code = main(["sim", str(path), "--random", "4", "--simulator", "icarus",
                 "--cache-dir", str(CACHE)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "FAIL: first mismatch at sample 2, layer 1 'out', index [3]: expected -12345" in out


def test_cli_bad_option_exits_2(tmp_path, capsys):
    _, path = _model_file(tmp_path)
    assert main(["sim", str(path), "--layer", "9", "--simulator", "amaranth"]) == 2
    assert "--layer 9" in capsys.readouterr().err
