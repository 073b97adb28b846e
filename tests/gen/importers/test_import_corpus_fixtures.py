"""The import test corpus (tests/data/import, made by scripts/make_import_corpus.py) is
consistent: every graph loads with onnx, qonnx's executor reproduces the saved outputs, and
the Brevitas/torch outputs agree with qonnx's. Needs onnx and qonnx (the test extra), not torch.
"""
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data" / "import"
METAS = sorted(DATA.glob("*/*/meta.json"))
IDS = [f"{p.parent.parent.name}/{p.parent.name}" for p in METAS]
ALLOWED = {"model.onnx", "inputs.npy", "out_torch.npy", "out_qonnx.npy", "meta.json",
           "publisher_input.npy", "publisher_output.npy", "LICENSE.txt"}


def _shared() -> Path | None:
    """shared/ beside the checkout (CI: ../shared; a worktree under /work/wt: ../../shared)."""
    for cand in (ROOT.parent / "shared", ROOT.parent.parent / "shared"):
        if (cand / "models").is_dir():
            return cand
    return None


def _model_path(meta_path: Path, meta: dict) -> Path:
    ref = meta.get("model", "model.onnx")
    if ref.startswith("../shared/"):
        shared = _shared()
        if shared is None:
            pytest.skip("../shared/models is not beside this checkout")
        return shared / ref[len("../shared/"):]
    return meta_path.parent / ref


def _qonnx_run(path: Path, x: np.ndarray) -> np.ndarray:
    """As the generator runs it: cleanup_model, then one sample at a time (batch 1 graphs)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cleanup_model(ModelWrapper(str(path)))
    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    return np.concatenate([execute_onnx(model, {iname: x[i:i + 1]})[oname]
                           for i in range(len(x))], axis=0)


def compare_outputs(got: np.ndarray, want: np.ndarray, what: str, skip_idx=()) -> None:
    """Equal shapes; integer outputs equal; float outputs within float32 rounding of the
    largest magnitude and with the same argmax per sample (samples in skip_idx excepted)."""
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {got.shape} != {want.shape}")
    keep = np.setdiff1d(np.arange(len(got)), np.asarray(skip_idx, dtype=np.int64))
    g, w = got[keep].reshape(len(keep), -1), want[keep].reshape(len(keep), -1)
    if want.dtype.kind in "iu" or got.dtype.kind in "iu":
        bad = np.nonzero((g != w).any(1))[0]
        if bad.size:
            raise AssertionError(f"{what}: sample {keep[bad[0]]} differs: {g[bad[0]]} != {w[bad[0]]}")
        return
    tol = 1e-5 * max(1.0, float(np.abs(w).max()))
    diff = np.abs(g.astype(np.float64) - w)
    if diff.max() > tol:
        i, j = np.unravel_index(diff.argmax(), diff.shape)
        raise AssertionError(f"{what}: sample {keep[i]} index {j}: {g[i, j]} != {w[i, j]} "
                             f"(tolerance {tol:.2e})")
    bad = np.nonzero(g.argmax(1) != w.argmax(1))[0]
    if bad.size:
        raise AssertionError(f"{what}: argmax of sample {keep[bad[0]]} differs")


def _load(meta_path: Path) -> dict:
    return json.loads(meta_path.read_text())


def test_corpus_is_there():
    assert len(METAS) >= 25, f"expected the whole corpus under {DATA}, found {len(METAS)} fixtures"


@pytest.mark.parametrize("meta_path", METAS, ids=IDS)
def test_fixture_loads_and_qonnx_reproduces_its_outputs(meta_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("qonnx")
    meta = _load(meta_path)
    path = _model_path(meta_path, meta)
    if "model_sha256" in meta:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == meta["model_sha256"], path
    model = onnx.load(str(path))
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer), \
        f"{path}: weights must be inline"
    x = np.load(meta_path.parent / "inputs.npy", allow_pickle=False)
    assert x.dtype == np.float32 and x.shape[1:] == tuple(meta["input"]["graph_shape"][1:])
    run = meta.get("qonnx_executor", {"runs": True})
    if not run["runs"]:  # a recorded finding: qonnx's executor cannot run this graph
        with pytest.raises(Exception) as err:
            _qonnx_run(path, x)
        assert type(err.value).__name__ == run["error"].split(":")[0]
        return
    want = np.load(meta_path.parent / "out_qonnx.npy", allow_pickle=False)
    compare_outputs(_qonnx_run(path, x), want, f"{meta['name']}: qonnx now vs saved")


@pytest.mark.parametrize("meta_path", [p for p in METAS if p.parent.parent.name == "brevitas"],
                         ids=[i for i in IDS if i.startswith("brevitas/")])
def test_torch_outputs_agree_with_qonnx(meta_path):
    meta = _load(meta_path)
    torch_out = np.load(meta_path.parent / "out_torch.npy", allow_pickle=False)
    qonnx_out = np.load(meta_path.parent / "out_qonnx.npy", allow_pickle=False)
    agree = meta["torch_vs_qonnx"]
    known = agree.get("argmax_mismatch_idx", agree.get("mismatch_idx", []))
    compare_outputs(qonnx_out, torch_out, f"{meta['name']}: qonnx vs torch", skip_idx=known)
    assert agree["agree"] == (not known)


def test_compare_outputs_fails_on_changed_outputs():
    want = np.array([[0.1, 2.0, -1.0], [3.0, 0.5, 0.25]], np.float32)
    compare_outputs(want + np.float32(1e-6), want, "rounding")  # within float32 tolerance
    swapped = want.copy()
    swapped[1, [0, 1]] = swapped[1, [1, 0]]
    nudged = want.copy()
    nudged[0, 2] += 1e-3
    for bad in (swapped, nudged, want[:1]):
        with pytest.raises(AssertionError):
            compare_outputs(bad, want, "changed")
    with pytest.raises(AssertionError):
        compare_outputs(np.array([[1], [2]]), np.array([[1], [3]]), "class index")
    compare_outputs(swapped, want, "skipped", skip_idx=[1])


def test_every_file_is_described():
    readme = (DATA / "README.md").read_text()
    sources = (DATA / "SOURCES.md").read_text()
    total = 0
    for folder in sorted(p for p in DATA.glob("*/*") if p.is_dir()):
        assert (folder / "meta.json").is_file(), f"{folder} has no meta.json"
        meta = _load(folder / "meta.json")
        listed = set(meta["files"].values()) | {"meta.json"}
        for f in folder.iterdir():
            assert f.name in ALLOWED, f"unexpected file {f}"
            if f.suffix in (".onnx", ".npy") and not f.name.startswith("publisher_"):
                assert f.name in listed, f"{f} is not listed in its meta.json"
            total += f.stat().st_size
        assert meta["name"] == folder.name
        assert folder.name in (readme if folder.parent.name == "brevitas" else sources), \
            f"{folder.name} is not described in README.md / SOURCES.md"
    assert total < 3_000_000, f"corpus is {total} bytes, keep it under 3 MB"


def test_corpus_covers_the_import_patterns():
    metas = [_load(p) for p in METAS if p.parent.parent.name == "brevitas"]
    ops = {op.split("@")[0] for m in metas for op in m["op_types"]}
    need = {"Quant", "BipolarQuant", "Trunc", "Gemm", "MatMul", "Transpose", "Add", "Conv",
            "MaxPool", "AveragePool", "Reshape", "Flatten", "BatchNormalization", "Relu",
            "Softmax", "TopK", "Identity"}
    assert need <= ops, f"missing node patterns: {sorted(need - ops)}"
    wbits = {b for m in metas for b in m["weight_bits"] if b}
    assert set(range(1, 9)) <= wbits | {b for m in metas for b in m["act_bits"] if b}
    assert {True, False} <= {m["dynamo"] for m in metas}, "both torch exporters"
    acts = [q for m in metas for q in m["quantizers"] if q["on"] == "activation"]
    assert {True, False} <= {q.get("signed") for q in acts}, "signed and unsigned activations"
    assert {"per-tensor", "per-channel"} <= {str(q["scale"]).split("(")[0]
                                             for m in metas for q in m["quantizers"]
                                             if q["on"] == "weight"}
    assert any(not m["input_encoding"]["declared_in_graph"] for m in metas)
    assert {"NF", "N1F", "NCHW", "NHWC"} <= {m["input"]["layout"] for m in metas}
    raw = [m["raw_accumulator_argmax"] for m in metas if "raw_accumulator_argmax" in m]
    assert raw and raw[0]["saved_inputs_raw_argmax_differs_idx"], \
        "the per-channel output fixture must hold inputs where the raw-accumulator argmax differs"
