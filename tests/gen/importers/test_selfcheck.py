"""The import's self-check must fail where the imported model is wrong: a corrupted
threshold, input encoding or output decoding is found and named; the command then exits 1
and writes nothing."""

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("qonnx")

from onnx_graphs import mlp  # noqa: E402

from mulfree.cli.main import main  # noqa: E402
from mulfree.gen.importers import qonnx as qonnx_import  # noqa: E402
from mulfree.gen.importers.qonnx import check_import, import_graph  # noqa: E402
from mulfree.gen.importers.selfcheck import check_inputs  # noqa: E402
from mulfree.gen.model.format import Dense, Model, Output, OutputKind  # noqa: E402


def _with(model: Model, layers=None, **meta) -> Model:
    md = dict(model.metadata)
    md.update(meta)
    return Model(name=model.name, input_shape=model.input_shape, input_bits=model.input_bits,
                 layers=tuple(layers or model.layers), metadata=md)


def _corrupt_threshold(imp):
    first = imp.model.layers[0]
    t = first.output.thresholds.copy()
    t[0] = t[0] - 3                       # channel 0 reaches every code 3 sums too early
    bad = Dense(name=first.name, weights=first.weights, bias=first.bias,
                activation_codebook=first.activation_codebook,
                output=Output(OutputKind.THRESHOLDS, first.output.bits, t))
    return replace(imp, model=_with(imp.model, [bad, *imp.model.layers[1:]]))


def test_a_corrupted_threshold_is_found(tmp_path):
    path = mlp(tmp_path)
    imp = import_graph(path)
    assert check_import(path, imp).ok
    result = check_import(path, _corrupt_threshold(imp))
    assert not result.ok
    assert result.message.startswith("self-check FAILED at layer 0 'fc1' (graph tensor ")
    assert "sample" in result.message and "index [0, 0]" in result.message


def test_a_corrupted_input_encoding_is_found(tmp_path):
    path = mlp(tmp_path)
    imp = import_graph(path)
    enc = dict(imp.model.metadata["input_encoding"])
    enc["quantizer"] = dict(enc["quantizer"], scale=enc["quantizer"]["scale"] * 1.01)
    result = check_import(path, replace(imp, model=_with(imp.model, input_encoding=enc)))
    assert not result.ok and "FAILED at the input codes" in result.message


def test_a_corrupted_output_decoding_is_found(tmp_path):
    path = mlp(tmp_path)
    imp = import_graph(path)
    dec = dict(imp.model.metadata["output_decoding"])
    op = dict(dec["ops"][0])
    op["bias"] = [b + (0.01 if i == 1 else 0.0) for i, b in enumerate(op["bias"])]
    dec["ops"] = [op]
    result = check_import(path, replace(imp, model=_with(imp.model, output_decoding=dec)))
    assert not result.ok and "FAILED at the outputs" in result.message and "index [1]" in result.message


def test_import_command_exits_1_and_writes_nothing_on_a_mismatch(tmp_path, monkeypatch, capsys):
    path = mlp(tmp_path)
    real = qonnx_import.import_graph
    monkeypatch.setattr(qonnx_import, "import_graph",
                        lambda *a, **k: _corrupt_threshold(real(*a, **k)))
    out = tmp_path / "net.mf"
    assert main(["import", str(path), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "self-check FAILED at layer 0 'fc1'" in err and "nothing written" in err
    assert not out.exists() and not list(tmp_path.glob("*.mf*"))
    # --no-check skips it (and then writes the corrupted model: the user asked)
    assert main(["import", str(path), "-o", str(out), "--no-check"]) == 0 and out.exists()


def test_check_inputs_sit_on_rounding_ties(tmp_path):
    imp = import_graph(mlp(tmp_path))
    x = check_inputs(imp.model, random=8, ties=8)
    q = imp.model.metadata["input_encoding"]["quantizer"]
    y = x.reshape(16, -1) / np.float32(q["scale"])
    frac = np.abs(y - np.floor(y))
    # some ties have no float32 input at all (x / s skips them); most do
    assert np.mean(frac[8:] == 0.5) > 0.5 and np.mean(frac[:8] == 0.5) < 0.2
