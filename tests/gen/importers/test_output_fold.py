"""The class the hardware reports is the model's class: the last layer's affine folded into
integers (exactly, against a reference in exact rational arithmetic), or, where it cannot
be, the decoding says so and every class-taking path uses the decoded logits."""

from fractions import Fraction
from itertools import product
from pathlib import Path

import numpy as np
import pytest

from mulfree.gen.importers.output_fold import fold_argmax

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data" / "import"


def _exact_class(m, c, acc) -> int:
    """argmax_j (m[j] acc[j] + c[j]) in rationals, ties to the lowest index."""
    vals = [Fraction(float(a)) * int(x) + Fraction(float(b)) for a, b, x in zip(m, c, acc)]
    return max(range(len(vals)), key=lambda j: (vals[j], -j))


@pytest.mark.parametrize("seed", range(12))
def test_fold_is_exact_on_every_input(seed):
    rng = np.random.default_rng(seed)
    out, n_in = rng.integers(2, 5), 3
    ints = rng.integers(-3, 4, (out, n_in))
    # scales in power-of-two ratios (so integers exist), biases anywhere: ties and near-ties
    m = 0.375 * 2.0 ** rng.integers(-2, 2, out) * (1 if seed % 3 else 1)
    c = np.round(rng.normal(0, 1, out) * 8) / 16 if seed % 2 else rng.normal(0, 1, out)
    fold = fold_argmax(ints, m, c)
    assert fold.ok, fold.why
    levels = np.arange(-2, 3)
    for x in product(levels, repeat=n_in):
        acc = ints @ np.array(x)
        acc2 = fold.ints @ np.array(x) + fold.bias
        assert int(np.argmax(acc2)) == _exact_class(m, c, acc), (x, acc, acc2)


def test_raw_argmax_differs_where_the_fold_does_not():
    """The old behaviour (argmax of the raw accumulators) gets these wrong."""
    ints = np.array([[1, 0], [0, 1]])
    m, c = np.array([1.0, 1.0]), np.array([0.0, 0.5])
    fold = fold_argmax(ints, m, c)
    x = np.array([2, 2])               # equal accumulators: the bias decides, class 1
    assert int(np.argmax(ints @ x)) == 0 and _exact_class(m, c, ints @ x) == 1
    assert int(np.argmax(fold.ints @ x + fold.bias)) == 1


def test_free_fold_only_changes_the_bias():
    ints = np.array([[1, -1], [2, 0], [0, 3]])
    fold = fold_argmax(ints, np.full(3, 0.25), np.array([0.5, -0.25, 1.0]), free_only=True)
    assert fold.ok and np.array_equal(fold.ints, ints)
    assert fold.bias.tolist() == [2, -1, 4]
    assert not fold_argmax(ints, np.full(3, 0.25), np.array([0.1, 0.0, 0.0]), free_only=True).ok


def test_per_channel_float_scales_cannot_fold():
    ints = np.array([[1, 2], [3, 4]])
    fold = fold_argmax(ints, np.array([0.0123456789, 0.0234567891]), np.zeros(2))
    assert not fold.ok and "more than 16 bits" in fold.why


def _perchannel():
    pytest.importorskip("qonnx")
    path = DATA / "brevitas" / "mlp_digits_w8a8_perchannel"
    return path / "model.onnx", np.load(path / "inputs.npy"), np.load(path / "out_qonnx.npy")


def test_per_channel_output_scales_class_is_the_models():
    """Per-channel weight scales and a batch norm after the last layer: the raw
    accumulators' argmax differs from the model's class on saved inputs 12-15 (what
    `mulfree eval` used to report). The imported model says so, and its class (taken
    from the decoded logits) is the executor's on every saved input."""
    from mulfree.gen.importers.qonnx import import_qonnx
    from mulfree.gen.model import golden
    from mulfree.gen.model.encoding import encode_inputs, model_classes

    path, x, want = _perchannel()
    model = import_qonnx(path)
    assert model.metadata["output_decoding"]["acc_argmax_is_class"] is False
    res = golden.run(model, encode_inputs(model, x))
    raw = np.argmax(res.last_accumulators, axis=1)
    assert np.any(raw != want.argmax(1))                   # the old behaviour: wrong
    np.testing.assert_array_equal(model_classes(model, res), want.argmax(1))


def test_last_argmax_is_refused_where_it_cannot_be_exact():
    from mulfree.gen.importers.graph import GraphImportError
    from mulfree.gen.importers.qonnx import import_qonnx

    path, _, _ = _perchannel()
    with pytest.raises(GraphImportError, match="--last argmax: the hardware's argmax cannot be "
                                               "made equal to the model's class exactly"):
        import_qonnx(path, last="argmax")


def test_last_argmax_hardware_class_equals_the_executors(tmp_path):
    """Per-tensor scale and float biases (Brevitas' default Linear): --last argmax folds the
    biases' fractions into integer ranks; the golden model's argmax output (what the
    hardware reports) is the executor's class on every checked input."""
    from mulfree.gen.importers.qonnx import check_import, import_graph
    from mulfree.gen.model import golden
    from mulfree.gen.model.encoding import encode_inputs
    from mulfree.gen.importers.selfcheck import check_inputs, reference_run

    path = DATA / "brevitas" / "mlp_tab_w4a4_gemm_bias" / "model.onnx"
    imp = import_graph(path, last="argmax")
    assert imp.model.layers[-1].output.kind.value == "argmax"
    assert check_import(path, imp).ok
    x = check_inputs(imp.model, random=200, ties=0, seed=4)
    want = reference_run(path, x, [])["<output>"].argmax(1)
    got = golden.run(imp.model, encode_inputs(imp.model, x)).output[:, 0]
    np.testing.assert_array_equal(got, want)
