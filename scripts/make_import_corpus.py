#!/usr/bin/env python3
"""Make the import test corpus (issue 12, item 7): small QONNX graphs trained and exported
with Brevitas, plus inputs and reference outputs for public QONNX / FINN-ONNX graphs.

Writes tests/data/import/:
  brevitas/<name>/model.onnx     the graph as exported (weights inline, one file)
                  inputs.npy     a batch of inputs exactly as the source model takes them
                  out_torch.npy  the Brevitas/torch model's outputs on them
                  out_qonnx.npy  qonnx's executor's outputs (execute_onnx after cleanup_model)
                  meta.json      what the fixture is (see tests/data/import/README.md)
  public/<name>/  copies of small public graphs (SOURCES.md) + inputs.npy, out_qonnx.npy, meta.json
  shared/<name>/  inputs.npy, out_qonnx.npy, meta.json for the zoo models kept in ../shared/models

Environment (pinned; this exact set made the committed fixtures; the script refuses others
unless --any-version). Never install torch into the project's .venv; use a separate venv:

    python3 -m venv /work/venvs/brevitas
    /work/venvs/brevitas/bin/pip install torch==2.13.0 brevitas==0.13.4 onnx==1.19.1 \
        onnxoptimizer==0.4.2 onnxscript==0.7.2 onnxruntime==1.32.0 qonnx==1.0.0 \
        scikit-learn==1.9.1 numpy==2.4.6
    /work/venvs/brevitas/bin/python scripts/make_import_corpus.py            # everything
    /work/venvs/brevitas/bin/python scripts/make_import_corpus.py --only cnn_digits_w4a4

The public part needs no torch (onnx, onnxruntime, qonnx, numpy at the pins above):
    /work/venvs/brevitas/bin/python scripts/make_import_corpus.py --part public

Deterministic: every fixture is trained from its own seed on one thread with
torch.use_deterministic_algorithms; a rerun rewrites byte-identical files (checked:
`git status` stays clean after a rerun). Data sets need no network: scikit-learn's bundled
8x8 digits and scikit-learn's make_classification.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

PINNED = {
    "torch": "2.13.0",
    "brevitas": "0.13.4",
    "onnx": "1.19.1",
    "onnxoptimizer": "0.4.2",
    "onnxscript": "0.7.2",
    "onnxruntime": "1.32.0",
    "qonnx": "1.0.0",
    "scikit-learn": "1.9.1",
    "numpy": "2.4.6",
}
PUBLIC_PINNED = ("onnx", "onnxruntime", "qonnx", "numpy")

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "import"
N_SAMPLES = 16  # inputs saved per fixture


def say(msg: str) -> None:
    print(f"make_import_corpus: {msg}", flush=True)


def versions(names) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for n in names:
        try:
            out[n] = version(n).split("+")[0]
        except PackageNotFoundError:
            out[n] = "missing"
    return out


def check_versions(names, allow_any: bool) -> dict[str, str]:
    have = versions(names)
    bad = {n: v for n, v in have.items() if v != PINNED[n]}
    if bad and not allow_any:
        want = ", ".join(f"{n}=={PINNED[n]} (have {bad[n]})" for n in bad)
        print(f"make_import_corpus: needs {want}; see the header for the venv, "
              "or pass --any-version", file=sys.stderr)
        sys.exit(2)
    return have


# ---------------------------------------------------------------- writing files

def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_npy(path: Path, arr: np.ndarray) -> None:
    import io
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    write_atomic(path, buf.getvalue())


def save_json(path: Path, obj) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


# ---------------------------------------------------------------- qonnx side (no torch)

def op_counts(model) -> dict[str, int]:
    """Node op types with their count; a non-standard domain is kept after an '@'."""
    key = lambda n: n.op_type if n.domain in ("", "ai.onnx") else f"{n.op_type}@{n.domain}"  # noqa: E731
    return dict(sorted(collections.Counter(key(n) for n in model.graph.node).items()))


def qonnx_run(path: Path, x: np.ndarray) -> np.ndarray:
    """qonnx's executor on a batch, one sample at a time (the graphs have batch 1), after
    qonnx's cleanup, exactly as tests/gen/importers/test_import_corpus_fixtures.py runs it."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cleanup_model(ModelWrapper(str(path)))
    iname = model.graph.input[0].name
    oname = model.graph.output[0].name
    outs = []
    for i in range(x.shape[0]):
        outs.append(execute_onnx(model, {iname: x[i:i + 1]})[oname])
    return np.concatenate(outs, axis=0)


def cleaned_ops(path: Path) -> dict[str, int]:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return op_counts(cleanup_model(ModelWrapper(str(path))).model)


PASS_THROUGH = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Mul", "Div", "Add",
                "Sub", "Identity"}


def graph_input_encoding(model) -> dict:
    """What the graph itself says about its input: the first quantizer reached from the input
    through shape and constant-affine ops only (`path`), or qonnx's datatype annotation on
    the input, or nothing (then the user must declare it)."""
    from onnx import numpy_helper
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    iname = model.graph.input[0].name
    annot = None
    for qa in model.graph.quantization_annotation:
        if qa.tensor_name == iname:
            for kv in qa.quant_parameter_tensor_names:
                if kv.key == "finn_datatype":
                    annot = kv.value
    path, t, q = [], iname, None
    while True:
        users = [n for n in model.graph.node if t in n.input and n.op_type != "Shape"]
        if len(users) != 1:
            break
        n = users[0]
        if n.op_type in ("Quant", "BipolarQuant", "MultiThreshold"):
            q = n
            break
        if n.op_type not in PASS_THROUGH:
            path.append(n.op_type)
            break
        path.append(n.op_type)
        t = n.output[0]
    enc: dict = {"path_to_first_quantizer": path, "qonnx_datatype": annot}
    if q is not None and q.op_type == "Quant":
        attrs = {a.name: a.i for a in q.attribute}
        scale, zp, bits = (inits.get(q.input[k]) for k in (1, 2, 3))
        enc.update({
            "quant": "Quant", "bits": None if bits is None else float(bits),
            "signed": bool(attrs.get("signed", 1)), "narrow": bool(attrs.get("narrow", 0)),
            "scale": None if scale is None else np.asarray(scale, np.float64).ravel().tolist(),
            "zero_point": None if zp is None else np.asarray(zp, np.float64).ravel().tolist(),
        })
    elif q is not None and q.op_type == "BipolarQuant":
        scale = inits.get(q.input[1])
        enc.update({"quant": "BipolarQuant", "bits": 1, "signed": True,
                    "scale": None if scale is None else np.asarray(scale, np.float64).ravel().tolist()})
    elif q is not None:
        enc["quant"] = q.op_type
    # declared: a quantizer reached through shape/constant-affine ops only (the importer can
    # fold those), or a non-float qonnx datatype annotation on the input
    enc["declared_in_graph"] = q is not None or annot not in (None, "FLOAT32")
    return enc


def quantizers(model) -> list[dict]:
    """Every Quant / BipolarQuant / Trunc in graph order: on a weight (constant input) or an
    activation, its bits, signedness and whether its scale is per tensor or per channel."""
    from onnx import numpy_helper
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    consts = {o: numpy_helper.to_array(a.t) for n in model.graph.node if n.op_type == "Constant"
              for o in n.output for a in n.attribute if a.name == "value"}
    inits.update(consts)
    out = []
    for n in model.graph.node:
        if n.op_type not in ("Quant", "BipolarQuant", "Trunc"):
            continue
        attrs = {a.name: a.i for a in n.attribute if a.type == a.INT}
        scale = inits.get(n.input[1])
        q = {"op": n.op_type, "on": "weight" if n.input[0] in inits else "activation",
             "scale": None if scale is None else
             ("per-tensor" if np.size(scale) == 1 else f"per-channel({np.size(scale)})")}
        if n.op_type == "Quant":
            bits = inits.get(n.input[3])
            q.update(bits=None if bits is None else float(bits), signed=bool(attrs.get("signed", 1)),
                     narrow=bool(attrs.get("narrow", 0)))
        elif n.op_type == "BipolarQuant":
            q.update(bits=1, signed=True)
        else:
            bits = inits.get(n.input[4]) if len(n.input) > 4 else None
            q.update(bits=None if bits is None else float(bits))
        out.append(q)
    return out


def agreement(out_t: np.ndarray, out_q: np.ndarray) -> dict:
    """torch vs qonnx: max abs difference, argmax agreement (for class outputs)."""
    res: dict = {"shape_torch": list(out_t.shape), "shape_qonnx": list(out_q.shape)}
    if out_t.shape != out_q.shape:
        res["agree"] = False
        return res
    if out_t.dtype.kind in "iu":
        mism = np.nonzero((out_t != out_q).reshape(len(out_t), -1).any(1))[0]
        res.update({"max_abs_diff": float(np.abs(out_t.astype(np.int64) - out_q).max()),
                    "mismatch_idx": mism.tolist()})
    else:
        diff = np.abs(out_t.astype(np.float64) - out_q.astype(np.float64))
        flat_t, flat_q = out_t.reshape(len(out_t), -1), out_q.reshape(len(out_q), -1)
        mism = np.nonzero(flat_t.argmax(1) != flat_q.argmax(1))[0]
        res.update({"max_abs_diff": float(diff.max()),
                    "max_abs_out": float(np.abs(out_q).max()),
                    "argmax_mismatch_idx": mism.tolist()})
    res["agree"] = not mism.size
    return res


# ---------------------------------------------------------------- data (no network)

def digits_data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = d.images.astype(np.float32)  # 0..16 integers, 8x8
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=0.25, random_state=0,
                                          stratify=d.target)
    return xtr, xte, ytr.astype(np.int64), yte.astype(np.int64)


def tabular_data():
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split
    x, y = make_classification(n_samples=2400, n_features=16, n_informative=10,
                               n_redundant=2, n_classes=4, n_clusters_per_class=2,
                               class_sep=1.2, random_state=0)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    mu, sd = xtr.mean(0), xtr.std(0)
    f = lambda a: ((a - mu) / sd).astype(np.float32)  # noqa: E731
    return f(xtr), f(xte), ytr.astype(np.int64), yte.astype(np.int64)


# How each data set reaches a model's input, for the sidecar.
DATA_DOC = {
    "digits01": "scikit-learn load_digits (bundled, 8x8, pixels 0..16), x = pixel / 16 in [0, 1]; "
                "split train_test_split(test_size=0.25, random_state=0, stratify)",
    "digits01_signed": "scikit-learn load_digits, x = pixel / 8 - 1 in [-1, 1]; same split",
    "digits_int": "scikit-learn load_digits, x = raw pixel value, integers 0..16 as float32; same split",
    "tabular": "scikit-learn make_classification(n_samples=2400, n_features=16, n_informative=10, "
               "n_redundant=2, n_classes=4, n_clusters_per_class=2, class_sep=1.2, random_state=0), "
               "standardized with the training split's mean and std; split test_size=0.25, random_state=0",
}


def dataset(kind: str, layout: str):
    if kind == "tabular":
        xtr, xte, ytr, yte = tabular_data()
    else:
        xtr, xte, ytr, yte = digits_data()
        if kind == "digits01":
            xtr, xte = xtr / 16, xte / 16
        elif kind == "digits01_signed":
            xtr, xte = xtr / 8 - 1, xte / 8 - 1
        elif kind != "digits_int":
            raise ValueError(kind)
        if layout == "NCHW":
            xtr, xte = xtr[:, None], xte[:, None]
        else:
            xtr, xte = xtr.reshape(len(xtr), -1), xte.reshape(len(xte), -1)
    if layout == "N1F":
        xtr, xte = xtr[:, None, :], xte[:, None, :]
    return xtr.astype(np.float32), xte.astype(np.float32), ytr, yte


# ---------------------------------------------------------------- Brevitas models

@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    build: Callable            # () -> torch.nn.Module
    data: str                  # key of DATA_DOC
    layout: str                # "NF", "N1F" or "NCHW"
    dynamo: bool               # True: torch's default (dynamo) exporter; False: TorchScript
    doc: str
    weight_bits: tuple
    act_bits: tuple
    epochs: int = 30
    post: str | None = None    # "identity_tail" | "channels_last"
    raw_acc_check: bool = False
    user_declares: tuple = ()  # (("bits", 5), ...): the input encoding the graph does not state


def build_specs():
    import torch
    import brevitas.nn as qnn
    from brevitas.quant import (Int8ActPerTensorFloat, Int8WeightPerChannelFloat,
                                Int8WeightPerTensorFloat, Uint8ActPerTensorFloat)
    from brevitas.quant.binary import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
    nn = torch.nn

    def lin(i, o, bits, bias=True, per_channel=False):
        wq = Int8WeightPerChannelFloat if per_channel else Int8WeightPerTensorFloat
        return qnn.QuantLinear(i, o, bias=bias, weight_quant=wq, weight_bit_width=bits)

    def conv(i, o, bits, stride=1, padding=1, k=3, groups=1, bias=True):
        return qnn.QuantConv2d(i, o, k, stride=stride, padding=padding, groups=groups, bias=bias,
                               weight_bit_width=bits)

    def q_in(bits, signed=True):
        return qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat if signed else Uint8ActPerTensorFloat,
                                 bit_width=bits)

    def relu(bits, **kw):
        return qnn.QuantReLU(bit_width=bits, **kw)

    class Flatten(nn.Module):
        def forward(self, x):
            return x.flatten(1)

    class Tail(nn.Module):
        def __init__(self, body, kind):
            super().__init__()
            self.body, self.kind = body, kind

        def forward(self, x):
            y = self.body(x)
            if self.kind == "softmax":
                return torch.softmax(y, dim=1)
            if self.kind == "topk":
                return torch.topk(y, 1, dim=1).indices
            raise ValueError(self.kind)

    def mlp(din, hidden, dout, wbits, abits, bias=True, inq=None, per_channel=(), bn=True,
            act="relu", last_bn=False):
        layers = [] if inq is None else [inq]
        d = din
        for k, h in enumerate(hidden):
            layers.append(lin(d, h, wbits[k], bias=bias, per_channel=k in per_channel))
            if bn:
                layers.append(nn.BatchNorm1d(h))
            if act == "relu":
                layers.append(relu(abits[k]))
            elif act == "hardtanh":
                layers.append(qnn.QuantHardTanh(bit_width=abits[k], min_val=-1.0, max_val=1.0))
            d = h
        layers.append(lin(d, dout, wbits[len(hidden)], bias=bias,
                          per_channel=len(hidden) in per_channel))
        if last_bn:
            layers.append(nn.BatchNorm1d(dout))
        return nn.Sequential(*layers)

    def binary_mlp():
        bq = dict(weight_quant=SignedBinaryWeightPerTensorConst)
        return nn.Sequential(
            qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
            qnn.QuantLinear(64, 64, bias=False, **bq), nn.BatchNorm1d(64),
            qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
            qnn.QuantLinear(64, 64, bias=False, **bq), nn.BatchNorm1d(64),
            qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
            qnn.QuantLinear(64, 10, bias=False, **bq), nn.BatchNorm1d(10))

    def cnn(wb=4, ab=4, depthwise=False):
        layers = [q_in(8, signed=False),
                  conv(1, 8, wb), nn.BatchNorm2d(8), relu(ab)]
        if depthwise:  # depthwise 3x3 (groups = channels) then pointwise 1x1
            layers += [conv(8, 8, wb, groups=8, bias=False), nn.BatchNorm2d(8), relu(ab),
                       conv(8, 16, wb, stride=2, padding=0, k=1), nn.BatchNorm2d(16), relu(ab)]
        else:
            layers += [conv(8, 16, wb, stride=2), nn.BatchNorm2d(16), relu(ab)]
        layers += [nn.MaxPool2d(2), Flatten(), lin(16 * 2 * 2, 10, wb)]
        return nn.Sequential(*layers)

    class Residual(nn.Module):
        """conv -> relu -> (conv -> relu) + skip -> Add -> relu -> pool -> linear."""

        def __init__(self):
            super().__init__()
            self.q = q_in(8, signed=False)
            self.c1, self.b1, self.r1 = conv(1, 8, 4), nn.BatchNorm2d(8), relu(4)
            self.c2, self.b2, self.r2 = conv(8, 8, 4), nn.BatchNorm2d(8), relu(4)
            self.r3 = relu(4)
            self.pool, self.fc = nn.MaxPool2d(2), lin(8 * 4 * 4, 10, 4)

        def forward(self, x):
            a = self.r1(self.b1(self.c1(self.q(x))))
            b = self.r2(self.b2(self.c2(a)))
            y = self.r3(a + b)
            return self.fc(self.pool(y).flatten(1))

    class TruncPool(nn.Module):
        """conv -> relu -> TruncAvgPool2d (exports AveragePool + Trunc) -> linear."""

        def __init__(self):
            super().__init__()
            self.q = q_in(8, signed=False)
            self.c1, self.b1 = conv(1, 8, 4), nn.BatchNorm2d(8)
            self.r1 = relu(4, return_quant_tensor=True)
            self.pool = qnn.TruncAvgPool2d(kernel_size=4, stride=4)
            self.fc = lin(8 * 2 * 2, 10, 4)

        def forward(self, x):
            y = self.pool(self.r1(self.b1(self.c1(self.q(x)))))
            return self.fc(y.flatten(1))

    tab = dict(data="tabular", layout="NF")
    dig = dict(data="digits01", layout="NF")
    S = Spec
    return [
        S("mlp_tab_w4a4_gemm_bias", lambda: mlp(16, [32, 32], 4, (4, 4, 4), (4, 4), inq=q_in(8)),
          **tab, dynamo=True, weight_bits=(4, 4, 4), act_bits=(8, 4, 4),
          doc="Linear with bias -> Gemm (default dynamo exporter), BatchNorm1d, QuantReLU "
              "(Relu + unsigned Quant), signed 8-bit input QuantIdentity, per-tensor weight scales"),
        S("mlp_tab_w4a4_gemm_nobias", lambda: mlp(16, [32, 32], 4, (4, 4, 4), (4, 4), bias=False,
                                                  inq=q_in(8)),
          **tab, dynamo=True, weight_bits=(4, 4, 4), act_bits=(8, 4, 4),
          doc="Linear without bias -> Gemm with two inputs (dynamo exporter; qonnx's GemmToMatMul "
              "fails on it)"),
        S("mlp_tab_w4a4_matmul_nobias", lambda: mlp(16, [32, 32], 4, (4, 4, 4), (4, 4), bias=False,
                                                    inq=q_in(8)),
          **tab, dynamo=False, weight_bits=(4, 4, 4), act_bits=(8, 4, 4),
          doc="Linear without bias, dynamo=False (TorchScript) exporter -> Transpose + MatMul"),
        S("mlp_tab_w2a2_gemm_bias_ts", lambda: mlp(16, [32, 32], 4, (2, 2, 2), (2, 2), inq=q_in(8)),
          **tab, dynamo=False, weight_bits=(2, 2, 2), act_bits=(8, 2, 2),
          doc="Linear with bias, dynamo=False exporter -> Gemm; 2-bit weights and activations"),
        S("mlp_tab_w3a3_hardtanh", lambda: mlp(16, [32, 32], 4, (3, 3, 3), (3, 3), inq=q_in(8),
                                               act="hardtanh"),
          **tab, dynamo=True, weight_bits=(3, 3, 3), act_bits=(8, 3, 3),
          doc="QuantHardTanh (signed 3-bit activations; exports a signed Quant, no Clip node)"),
        S("mlp_digits_w1a1_bipolar", binary_mlp, data="digits01_signed", layout="NF", dynamo=True,
          weight_bits=(1, 1, 1), act_bits=(1, 1, 1), epochs=40,
          doc="binary network: BipolarQuant weights and activations (1 bit), bias-free Gemm, "
              "BatchNorm1d before every sign; input binarized by a BipolarQuant"),
        S("mlp_digits_w8a8_perchannel", lambda: mlp(64, [32, 32], 10, (8, 8, 8), (8, 8),
                                                    inq=q_in(8, signed=False),
                                                    per_channel=(0, 1, 2), last_bn=True),
          **dig, dynamo=True, weight_bits=(8, 8, 8), act_bits=(8, 8, 8), raw_acc_check=True,
          doc="8-bit per-channel weight scales on every layer, and a BatchNorm1d after the last "
              "Linear: the class is the argmax of scale[c] * acc[c] + bias[c] with a per-channel "
              "scale, so the raw-accumulator argmax differs on some inputs (counted in "
              "raw_accumulator_argmax; 4 of the saved inputs are such cases); unsigned 8-bit input"),
        S("mlp_tab_mixed_bits", lambda: mlp(16, [32, 24], 4, (2, 5, 6), (5, 7), inq=q_in(6),
                                            per_channel=(1,)),
          **tab, dynamo=True, weight_bits=(2, 5, 6), act_bits=(6, 5, 7),
          doc="different widths per layer (weights 2/5/6, activations 6/5/7), per-channel scales "
              "on the middle layer only"),
        S("mlp_digits_int_input", lambda: mlp(64, [32], 10, (4, 4), (4,)),
          data="digits_int", layout="NF", dynamo=True, weight_bits=(4, 4), act_bits=(None, 4),
          user_declares=(("bits", 5), ("signed", False), ("scale", 1.0),
                         ("why", "raw pixel values 0..16, integers")),
          doc="no Quant on the graph input: the input is an integer already (pixel values 0..16); "
              "the user must declare it (5 bits, unsigned, scale 1)"),
        S("mlp_tab_in16", lambda: mlp(16, [32], 4, (6, 6), (6,), inq=q_in(16)),
          **tab, dynamo=True, weight_bits=(6, 6), act_bits=(16, 6),
          doc="16-bit signed input Quant (hls4ml's default input width), 6-bit weights/activations"),
        S("mlp_tab_tail_softmax", lambda: Tail(mlp(16, [32], 4, (4, 4), (4,), inq=q_in(8)), "softmax"),
          **tab, dynamo=True, weight_bits=(4, 4), act_bits=(8, 4),
          doc="Softmax tail (the argmax does not need it)"),
        S("mlp_tab_tail_topk", lambda: Tail(mlp(16, [32], 4, (4, 4), (4,), inq=q_in(8)), "topk"),
          **tab, dynamo=True, weight_bits=(4, 4), act_bits=(8, 4),
          doc="TopK(k=1) tail as FINN's graphs end; the output is the class index (int64)"),
        S("mlp_tab_tail_identity", lambda: mlp(16, [32], 4, (4, 4), (4,), inq=q_in(8)),
          **tab, dynamo=True, weight_bits=(4, 4), act_bits=(8, 4), post="identity_tail",
          doc="Identity tail: appended with onnx.helper after export (neither torch exporter "
              "writes one on a single-output graph; Keras/tf2onnx and QKeras graphs have them)"),
        S("mlp_tab_noquant_between", lambda: nn.Sequential(q_in(8), lin(16, 32, 4), lin(32, 4, 4)),
          data="tabular", layout="N1F", dynamo=False, weight_bits=(4, 4), act_bits=(8, None),
          doc="two Linear layers with no activation quantizer between them; 3-D input (N,1,F) "
              "makes the exporter write Transpose -> MatMul -> Add -> MatMul -> Add (the chain the "
              "old importer folded into one layer, dropping the first MatMul)"),
        S("cnn_digits_w4a4", cnn, data="digits01", layout="NCHW", dynamo=True,
          weight_bits=(4, 4, 4), act_bits=(8, 4, 4), epochs=25,
          doc="CNN: 2 Conv (3x3, stride 1 and 2, padding 1) + BatchNorm2d + QuantReLU + MaxPool "
              "+ Reshape + Gemm, NCHW as exported (dynamo)"),
        S("cnn_digits_w4a4_ts", cnn, data="digits01", layout="NCHW", dynamo=False,
          weight_bits=(4, 4, 4), act_bits=(8, 4, 4), epochs=25,
          doc="the same CNN through the dynamo=False exporter (Flatten instead of Reshape)"),
        S("cnn_digits_w4a4_chanlast", cnn, data="digits01", layout="NCHW", dynamo=True,
          weight_bits=(4, 4, 4), act_bits=(8, 4, 4), epochs=25, post="channels_last",
          doc="the dynamo CNN after qonnx's ConvertToChannelsLastAndClean(make_input_channels_last="
              "True): channels-last Conv / MaxPool / BatchNormalization custom ops, NHWC input "
              "(the form hls4ml's channels-last QONNX graphs take)"),
        S("cnn_digits_depthwise", lambda: cnn(depthwise=True), data="digits01", layout="NCHW",
          dynamo=True, weight_bits=(4, 4, 4, 4), act_bits=(8, 4, 4, 4), epochs=25,
          doc="depthwise 3x3 Conv (group = channels = 8) then pointwise 1x1 stride-2 Conv"),
        S("cnn_digits_residual_add", Residual, data="digits01", layout="NCHW", dynamo=True,
          weight_bits=(4, 4, 4), act_bits=(8, 4, 4, 4), epochs=25,
          doc="unsupported on purpose: a residual Add of two branches (the importer must refuse "
              "it naming the Add node)"),
        S("cnn_digits_truncavgpool", TruncPool, data="digits01", layout="NCHW", dynamo=True,
          weight_bits=(4, 4), act_bits=(8, 4), epochs=25,
          doc="TruncAvgPool2d: AveragePool + Trunc (qonnx Trunc op) before the Linear layer"),
    ]


def train(model, xtr, ytr, epochs: int, seed: int):
    import torch
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    x, y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            if len(idx) < 2:
                continue
            opt.zero_grad()
            out = model(x[idx]).reshape(len(idx), -1)  # (N, 1, C) for the 3-D input
            loss = torch.nn.functional.cross_entropy(out, y[idx])
            loss.backward()
            opt.step()
    model.eval()


def logits_of(model):
    """The module producing the logits (a Tail wraps it)."""
    return getattr(model, "body", model)


def export(model, example, dynamo: bool):
    """Export with brevitas.export.export_qonnx exactly as a user does (the dynamo exporter is
    the default on torch 2.13: no keyword), then load it back with the weights inline."""
    import onnx
    from brevitas.export import export_qonnx
    with tempfile.TemporaryDirectory() as td:
        p = Path(td) / "model.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if dynamo:
                export_qonnx(model, args=example, export_path=str(p))
            else:
                export_qonnx(model, args=example, export_path=str(p), dynamo=False)
        side = sorted(x.name for x in Path(td).iterdir() if x.name != "model.onnx")
        m = onnx.load(str(p))  # pulls the side .onnx.data file in
    # torch's node metadata (stack traces with this machine's paths, FX node text) is not part
    # of the graph; dropping it keeps the files small and the same on every machine.
    for n in m.graph.node:
        del n.metadata_props[:]
    for coll in (m.graph.input, m.graph.output, m.graph.value_info, m.graph.initializer):
        for v in coll:
            del v.metadata_props[:]
    return m, side


def identity_tail(m):
    import onnx.helper as oh
    out = m.graph.output[0].name
    last = next(n for n in m.graph.node if out in n.output)
    pre = out + "_pre_identity"
    last.output[list(last.output).index(out)] = pre
    m.graph.node.append(oh.make_node("Identity", [pre], [out], name="tail_identity"))
    return m


def channels_last(path: Path):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames
    from qonnx.util.cleanup import cleanup_model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = cleanup_model(ModelWrapper(str(path)))
        w = w.transform(ConvertToChannelsLastAndClean(make_input_channels_last=True))
        # the transform names new tensors at random: rename all, as FINN's tidy-up does
        w = w.transform(GiveUniqueNodeNames()).transform(GiveReadableTensorNames())
    return w.model


def raw_accumulators(model, x):
    """Integer accumulators of the last QuantLinear (sum of int weight * int input, no bias,
    no scales), i.e. what a hardware that skips the output affine would compare."""
    import torch
    import brevitas.nn as qnn
    body = logits_of(model)
    last = [m for m in body.modules() if isinstance(m, qnn.QuantLinear)][-1]
    prev = [m for m in body.modules() if isinstance(m, (qnn.QuantReLU, qnn.QuantIdentity))][-1]
    got = {}
    h = prev.register_forward_hook(lambda mod, i, o: got.__setitem__("a", o))
    old = prev.return_quant_tensor
    prev.return_quant_tensor = True
    with torch.no_grad():
        body(torch.from_numpy(x))
    prev.return_quant_tensor = old
    h.remove()
    a = got["a"]
    xi = (a.value / a.scale).round().double()
    wi = last.quant_weight().int().double()
    return (xi @ wi.T).numpy()


def make_brevitas(spec: Spec, out: Path, seed: int, env: dict) -> dict:
    import torch
    import onnx
    torch.manual_seed(seed)
    np.random.seed(seed)
    xtr, xte, ytr, yte = dataset(spec.data, spec.layout)
    model = spec.build()
    train(logits_of(model), xtr, ytr, spec.epochs, seed)
    model.eval()
    with torch.no_grad():
        logits = logits_of(model)(torch.from_numpy(xte)).numpy()
    acc = float((logits.reshape(len(xte), -1).argmax(1) == yte).mean())

    pick = list(range(N_SAMPLES))
    raw = None
    if spec.raw_acc_check:
        acc_all = raw_accumulators(model, xte)
        differ = np.nonzero(acc_all.argmax(1) != logits.argmax(1))[0]
        # keep up to 4 samples where the raw-accumulator argmax differs among the saved ones
        pick = sorted(set(range(N_SAMPLES - min(4, len(differ)))) | set(differ[:4].tolist()))
        raw = {"test_samples": int(len(xte)), "raw_argmax_differs": int(len(differ)),
               "differs_at_test_idx": differ.tolist()}
    x = np.ascontiguousarray(xte[pick])
    with torch.no_grad():
        out_t = model(torch.from_numpy(x)).numpy()

    example = torch.from_numpy(x[:1])
    m, side = export(model, example, spec.dynamo)
    exported_ops = op_counts(m)
    if spec.post == "identity_tail":
        m = identity_tail(m)
    d = out / spec.name
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / "model.onnx.tmp"
    onnx.save(m, str(tmp))
    if spec.post == "channels_last":
        onnx.save(channels_last(tmp), str(tmp))
    os.replace(tmp, d / "model.onnx")
    m = onnx.load(str(d / "model.onnx"))
    layout = spec.layout
    x_graph = x
    if spec.post == "channels_last":  # the graph takes NHWC; same values, other order
        layout, x_graph = "NHWC", np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    out_q = qonnx_run(d / "model.onnx", x_graph)
    save_npy(d / "inputs.npy", x_graph)
    save_npy(d / "out_torch.npy", out_t)
    save_npy(d / "out_qonnx.npy", out_q)
    if spec.raw_acc_check:
        ra = raw_accumulators(model, x)
        raw["saved_inputs_raw_argmax_differs_idx"] = np.nonzero(
            ra.argmax(1) != out_t.argmax(1))[0].tolist()
    n_params = int(sum(p.numel() for p in model.parameters()))
    meta = {
        "name": spec.name,
        "kind": "brevitas",
        "description": spec.doc,
        "source": "scripts/make_import_corpus.py (trained here, exported with "
                  "brevitas.export.export_qonnx)",
        "exporter": "torch.onnx dynamo (torch's default; export_qonnx with no dynamo keyword)"
                    if spec.dynamo else "torch.onnx TorchScript (export_qonnx(..., dynamo=False))",
        "dynamo": spec.dynamo,
        "exporter_side_files": side,
        "post_export_edits": (["weights inlined from the side .onnx.data file"] if side else [])
                             + ["node metadata_props (torch stack traces) removed"]
                             + ({"identity_tail": ["Identity node appended at the output"],
                                 "channels_last": ["qonnx cleanup_model + ConvertToChannelsLastAndClean"
                                                   "(make_input_channels_last=True) + "
                                                   "GiveUniqueNodeNames + GiveReadableTensorNames"]}
                                .get(spec.post, [])),
        "files": {"model": "model.onnx", "inputs": "inputs.npy", "out_torch": "out_torch.npy",
                  "out_qonnx": "out_qonnx.npy"},
        "op_types": op_counts(m),
        "op_types_as_exported": exported_ops,
        "op_types_after_qonnx_cleanup": cleaned_ops(d / "model.onnx"),
        "opset": {o.domain or "ai.onnx": o.version for o in m.opset_import},
        "ir_version": m.ir_version,
        "input": {"name": m.graph.input[0].name, "graph_shape": [
            dd.dim_value for dd in m.graph.input[0].type.tensor_type.shape.dim],
            "layout": layout, "dtype": "float32", "batch_in_graph": 1,
            "data": DATA_DOC[spec.data]},
        "input_encoding": graph_input_encoding(m),
        "quantizers": quantizers(m),
        "output": {"name": m.graph.output[0].name, "shape_per_sample": list(out_t.shape[1:]),
                   "dtype": str(out_t.dtype),
                   "meaning": {"softmax": "class probabilities", "topk": "class index"}.get(
                       getattr(model, "kind", None), "logits")},
        "classes": int(len(np.unique(ytr))),
        "weight_bits": list(spec.weight_bits),
        "act_bits": list(spec.act_bits),
        "params": n_params,
        "train": {"seed": seed, "epochs": spec.epochs, "optimizer": "Adam lr=5e-3, batch 64"},
        "test_accuracy_torch": round(acc, 4),
        "test_samples": int(len(xte)),
        "saved_inputs_test_idx": pick,
        "saved_labels": yte[pick].tolist(),
        "torch_vs_qonnx": agreement(out_t, out_q),
        "env": env,
    }
    if spec.post == "channels_last":
        meta["input"]["note"] = ("inputs.npy is NHWC; out_torch.npy is the torch model on the same "
                                 "values in NCHW")
    if raw is not None:
        meta["raw_accumulator_argmax"] = raw
    if spec.user_declares:
        meta["input_encoding"]["user_must_declare"] = dict(spec.user_declares)
    save_json(d / "meta.json", meta)
    return meta


# ---------------------------------------------------------------- public graphs

# Committed copies (public/<name>/model.onnx; provenance in SOURCES.md) and the zoo models in
# ../shared/models (referenced, not copied). `inputs`: how the inputs are made.
PUBLIC = [
    dict(name="finn_tfc_w1a1_multithreshold", model="public/finn_tfc_w1a1_multithreshold/model.onnx",
         inputs="finn", classes=10,
         doc="FINN-ONNX TFC-w1a1 (MNIST MLP) from FINN's build_dataflow example: MultiThreshold, "
             "MatMul with bipolar weights, BatchNormalization, TopK tail; input UINT8 0..255"),
    dict(name="qonnx_fp8_floatquant", model="public/qonnx_fp8_floatquant/model.onnx",
         inputs="qonnx_fp8", classes=None,
         doc="qonnx's FloatQuant (FP8) test graph: FloatQuant on weights and activations, Gemm; "
             "refusal case (FloatQuant)"),
    dict(name="qonnx_mnist_conv_float", model="public/qonnx_mnist_conv_float/model.onnx",
         inputs="uniform01", classes=10,
         doc="float MNIST CNN (ONNX model zoo mnist-8 as kept in qonnx's tests): Conv, Add, Relu, "
             "MaxPool, Reshape, MatMul, no quantizers; refusal case (float graph)"),
    dict(name="qonnx_residual_block_float", model="public/qonnx_residual_block_float/model.onnx",
         inputs="uniform01", classes=None,
         doc="qonnx's residual_block_clean test graph: float Conv/Relu/MaxPool with a residual "
             "Add, no quantizers; refusal case"),
    dict(name="zoo_tfc_1w1a", model="shared:models/qonnx-tfc/TFC_1W1A.onnx", inputs="uniform01",
         classes=10, doc="QONNX zoo TFC_1W1A (MNIST MLP, BipolarQuant)"),
    dict(name="zoo_tfc_1w2a", model="shared:models/qonnx-tfc/TFC_1W2A.onnx", inputs="uniform01",
         classes=10, doc="QONNX zoo TFC_1W2A"),
    dict(name="zoo_tfc_2w2a", model="shared:models/qonnx-tfc/TFC_2W2A.onnx", inputs="uniform01",
         classes=10, doc="QONNX zoo TFC_2W2A"),
    dict(name="zoo_kwsmlp_w3a3", model="shared:models/qonnx-zoo/kwsmlp_w3a3.onnx", inputs="normal",
         classes=12, doc="QONNX zoo KWS MLP w3a3 (finn-examples), input 1x1x10x49 MFCC features"),
    dict(name="zoo_unsw_nb15_mlp_w2a2", model="shared:models/qonnx-zoo/unsw_nb15-mlp-w2a2.onnx",
         inputs="bipolar", classes=2,
         doc="QONNX zoo UNSW-NB15 MLP w2a2 (FINN tutorial): 600 bipolar inputs, one output"),
    dict(name="zoo_qkeras_jettagging", model="shared:models/qonnx-zoo/qkeras_jettagging.onnx",
         inputs="normal", classes=5,
         doc="QONNX zoo jet tagging (QKeras, converted by qonnx): no input Quant, Softmax tail"),
]

INPUT_DOC = {
    "finn": "FINN's own input.npy (4 MNIST test images, 0..255), kept as publisher_input.npy",
    "qonnx_fp8": "qonnx's own test_data/input.npy, kept as publisher_input.npy",
    "uniform01": "random, numpy RandomState(seed).rand in [0, 1) (no data set here)",
    "normal": "random, numpy RandomState(seed).randn (no data set here)",
    "bipolar": "random +1/-1, numpy RandomState(seed) (the graph declares a BIPOLAR input)",
}


def shared_dir() -> Path | None:
    for cand in (ROOT.parent / "shared", ROOT.parent.parent / "shared"):
        if (cand / "models").is_dir():
            return cand
    return None


def public_inputs(kind: str, shape, seed: int, d: Path) -> tuple[np.ndarray, np.ndarray | None]:
    rs = np.random.RandomState(seed)
    per = tuple(shape[1:])
    n = int(max(1, min(N_SAMPLES, 64_000 // (4 * np.prod(per)))))  # inputs.npy under 64 kB
    if kind in ("finn", "qonnx_fp8"):  # the publisher's own inputs and expected outputs
        return (np.load(d / "publisher_input.npy").astype(np.float32),
                np.load(d / "publisher_output.npy"))
    if kind == "uniform01":
        return rs.rand(n, *per).astype(np.float32), None
    if kind == "normal":
        return rs.randn(n, *per).astype(np.float32), None
    if kind == "bipolar":
        return (rs.randint(0, 2, size=(n, *per)) * 2 - 1).astype(np.float32), None
    raise ValueError(kind)


def make_public(entry: dict, out: Path, seed: int, env: dict) -> dict:
    import onnx
    d = out / "public" / entry["name"] if not entry["model"].startswith("shared:") \
        else out / "shared" / entry["name"]
    if entry["model"].startswith("shared:"):
        sh = shared_dir()
        if sh is None:
            raise SystemExit("make_import_corpus: ../shared/models not found beside the checkout")
        path = sh / entry["model"].split(":", 1)[1]
        model_ref = "../shared/" + entry["model"].split(":", 1)[1]
    else:
        path = out / entry["model"]
        model_ref = "model.onnx"
    m = onnx.load(str(path))
    shape = [dd.dim_value for dd in m.graph.input[0].type.tensor_type.shape.dim]
    x, reference = public_inputs(entry["inputs"], shape, seed, d)
    meta = {"name": entry["name"], "kind": "public", "description": entry["doc"],
            "model": model_ref,
            "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "source": "see SOURCES.md",
            "op_types": op_counts(m),
            "opset": {o.domain or "ai.onnx": o.version for o in m.opset_import},
            "ir_version": m.ir_version,
            "input": {"name": m.graph.input[0].name, "graph_shape": shape, "dtype": "float32",
                      "data": INPUT_DOC[entry["inputs"]]},
            "input_encoding": graph_input_encoding(m),
            "quantizers": quantizers(m),
            "classes": entry["classes"],
            "files": {"inputs": "inputs.npy", "out_qonnx": "out_qonnx.npy"},
            "env": env}
    if model_ref == "model.onnx":
        meta["files"] = {"model": "model.onnx", **meta["files"]}
    d.mkdir(parents=True, exist_ok=True)
    save_npy(d / "inputs.npy", x)
    try:
        meta["op_types_after_qonnx_cleanup"] = cleaned_ops(path)
        out_q = qonnx_run(path, x)
        meta["qonnx_executor"] = {"runs": True}
        save_npy(d / "out_qonnx.npy", out_q)
        meta["output"] = {"shape_per_sample": list(out_q.shape[1:]), "dtype": str(out_q.dtype)}
        if reference is not None:
            same = bool(np.array_equal(out_q.reshape(reference.shape), reference)) \
                if out_q.size == reference.size else False
            meta["publisher_reference"] = {"file": "publisher's expected output (kept beside)",
                                           "qonnx_matches": same,
                                           "max_abs_diff": float(np.abs(
                                               out_q.reshape(reference.shape).astype(np.float64)
                                               - reference).max()) if out_q.size == reference.size
                                           else None}
    except Exception as e:  # recorded: that the executor cannot run it is the finding
        meta["qonnx_executor"] = {"runs": False, "error": f"{type(e).__name__}: {e}"[:400]}
        meta["files"].pop("out_qonnx")
    save_json(d / "meta.json", meta)
    return meta


# ---------------------------------------------------------------- summary table

def table(out: Path) -> str:
    """Markdown tables of the corpus from its meta.json files (no torch needed)."""
    def bits(v):
        return "/".join("-" if b is None else str(b) for b in v)

    def ops(m):
        return ", ".join(f"{k.split('@')[0]}{'(cl)' if 'channels_last' in k else ''}"
                         f"{'' if n == 1 else ' x' + str(n)}" for k, n in m["op_types"].items())

    def scales(m):
        return ", ".join(sorted({q["scale"].split("(")[0] for q in m["quantizers"]
                                 if q["on"] == "weight" and q["scale"]}))

    rows = ["| fixture | exporter | nodes | w bits | a bits (input first) | w scales | params "
            "| inputs | acc | torch vs qonnx |", "|---|---|---|---|---|---|---|---|---|---|"]
    for p in sorted((out / "brevitas").glob("*/meta.json")):
        m = json.loads(p.read_text())
        a = m["torch_vs_qonnx"]
        agree = (f"argmax {len(m['saved_labels']) - len(a.get('argmax_mismatch_idx', a.get('mismatch_idx', [])))}"
                 f"/{len(m['saved_labels'])}, max abs {a['max_abs_diff']:.1e}")
        rows.append(f"| {m['name']} | {'dynamo' if m['dynamo'] else 'torchscript'} "
                    f"| {ops(m)} | {bits(m['weight_bits'])} | {bits(m['act_bits'])} | {scales(m)} "
                    f"| {m['params']} | {len(m['saved_labels'])} x {m['input']['layout']} "
                    f"{m['input']['graph_shape'][1:]} | {m['test_accuracy_torch']:.3f} | {agree} |")
    rows += ["", "| public graph | nodes | input | qonnx executor |", "|---|---|---|---|"]
    for p in sorted(out.glob("public/*/meta.json")) + sorted(out.glob("shared/*/meta.json")):
        m = json.loads(p.read_text())
        ex = m["qonnx_executor"]
        res = "runs" if ex["runs"] else f"fails: {ex['error'][:90]}"
        if "publisher_reference" in m:
            res += ("; equals the publisher's expected output" if m["publisher_reference"]["qonnx_matches"]
                    else f"; differs from the publisher's output by {m['publisher_reference']['max_abs_diff']:.1e}")
        rows.append(f"| {p.parent.parent.name}/{m['name']} | {ops(m)} | {m['input']['graph_shape']} | {res} |")
    return "\n".join(rows)


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=("all", "brevitas", "public"), default="all")
    ap.add_argument("--only", action="append", default=[], help="fixture name (repeatable)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--any-version", action="store_true",
                    help="run with versions other than the pinned ones (files will differ)")
    ap.add_argument("--table", action="store_true",
                    help="print the summary tables of the existing corpus and stop")
    args = ap.parse_args(argv)
    if args.table:
        print(table(args.out))
        return 0

    import onnxruntime
    onnxruntime.set_default_logger_severity(3)  # qonnx runs one node per session: no opset-1 warnings
    if args.part in ("all", "brevitas"):
        env = check_versions(PINNED, args.any_version)
        import torch
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        specs = build_specs()
        names = [s.name for s in specs]
        unknown = [o for o in args.only if o not in names and o not in [p["name"] for p in PUBLIC]]
        if unknown:
            print(f"make_import_corpus: unknown fixture {unknown[0]!r}; one of {', '.join(names)}",
                  file=sys.stderr)
            return 2
        for k, spec in enumerate(specs):
            if args.only and spec.name not in args.only:
                continue
            t0 = time.time()
            meta = make_brevitas(spec, args.out / "brevitas", 1000 + k, env)
            a = meta["torch_vs_qonnx"]
            say(f"{spec.name}: acc {meta['test_accuracy_torch']:.3f}, ops {meta['op_types']}, "
                f"torch vs qonnx max|d| {a.get('max_abs_diff')}, agree {a['agree']} "
                f"({time.time() - t0:.1f} s)")
    if args.part in ("all", "public"):
        env = check_versions(PUBLIC_PINNED, args.any_version)
        env = {k: env[k] for k in PUBLIC_PINNED}
        for k, entry in enumerate(PUBLIC):
            if args.only and entry["name"] not in args.only:
                continue
            meta = make_public(entry, args.out, 2000 + k, env)
            say(f"{entry['name']}: qonnx executor {meta['qonnx_executor']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
