"""Test accuracy of an integer model on a data set, through the golden model, with the
model's own input encoding.

A model trained here on digits takes the data set's pixels through the digits pixel
encoding (:func:`mulfree.gen.train.datasets.input_codes`); one trained on a ``.npz`` file
carries that file's rule as its ``metadata.input_encoding`` (origin ``dataset``,
:func:`mulfree.gen.train.datasets.feature_encoding`) and goes the imported models' way. An imported model takes the source
model's float inputs through its own encoding (``metadata.input_encoding``,
:mod:`mulfree.gen.model.encoding`): the data set's values, times ``scale`` when given,
plus ``offset``, laid out as the source model's input. A data set the model cannot take (another number of
values per sample, or values its input quantizer would clip or cannot represent) is
refused with one line saying why, never guessed at.
"""

from __future__ import annotations

import numpy as np

from . import datasets
from ..errors import InputError
from ..model.encoding import (encode_inputs, has_decoding, has_encoding, model_classes,
                              quant_range, source_input_shape, source_values)
from ..model.format import Model
from ..model.golden import run as golden_run

__all__ = ["model_inputs", "evaluate_model", "accuracy", "CLIP_LIMIT"]

CLIP_LIMIT = 0.01   # refuse a data set when more than this share of its values would clip


def model_inputs(model: Model, data: datasets.Dataset, split: str = "test",
                 scale: float | None = None, offset: float | None = None) -> np.ndarray:
    """The model's input codes for a split of the data set, by the model's own encoding
    (imported models: the data set's values times ``scale`` plus ``offset``)."""
    x = data.x_test if split == "test" else data.x_train
    for name, v in (("--data-scale", scale), ("--data-offset", offset)):
        if v is not None and not np.isfinite(v):
            raise InputError(f"{name} must be a finite number, got {v!r}")
    if has_encoding(model):
        return _encoded(model, data, x, 1.0 if scale is None else float(scale),
                        0.0 if offset is None else float(offset))
    if scale is not None or offset is not None:
        raise InputError(f"--data-scale and --data-offset apply to imported models (with an "
                         f"input encoding); '{model.name}' takes the {data.name} pixel codes "
                         f"of its own")
    if data.kind != "pixels":
        raise InputError(f"model '{model.name}' takes digits pixel codes; the {data.name} data "
                         f"set has other values (train on it with --dataset {data.source})")
    trained_on = model.metadata.get("dataset")
    if trained_on not in (None, data.name):
        raise InputError(f"model '{model.name}' was trained on the {trained_on} data set, not "
                         f"{data.name}")
    codes = datasets.input_codes(x, model.input_bits)
    if len(model.input_shape) == 1:
        codes = codes.reshape(codes.shape[0], -1)
    if codes.shape[1:] != tuple(model.input_shape):
        raise InputError(f"the model expects inputs of shape {list(model.input_shape)}; the "
                         f"{data.name} data set gives {list(codes.shape[1:])}")
    return codes


def _encoded(model: Model, data: datasets.Dataset, x: np.ndarray, scale: float,
             offset: float) -> np.ndarray:
    """The data set's samples as the source model's float inputs, then encoded."""
    shape = source_input_shape(model)
    sample = tuple(x.shape[1:])
    if int(np.prod(shape)) != int(np.prod(sample)):
        raise InputError(f"model '{model.name}' takes inputs of shape {list(shape)} "
                         f"({int(np.prod(shape))} values); the {data.name} data set has "
                         f"samples of shape {list(sample)}: it cannot take this data set")
    xf = np.asarray(x, np.float64) * scale + offset
    enc = model.metadata["input_encoding"]
    layout = enc.get("layout", "")
    if len(shape) == 3 and layout == "NCHW" and len(sample) == 3 and \
            shape == (sample[2], sample[0], sample[1]):
        xf = xf.transpose(0, 3, 1, 2)          # data sets hold [H, W, C] images
    xf = xf.reshape(xf.shape[0], *shape)
    _check_range(model, data, xf, f"x {scale:g} + {offset:g}")
    return encode_inputs(model, xf.astype(np.float32))


def _check_range(model: Model, data: datasets.Dataset, x: np.ndarray, how: str) -> None:
    enc = model.metadata["input_encoding"]
    q = enc.get("quantizer", {})
    hint = (f"(the values times --data-scale plus --data-offset must be what the source model "
            f"was trained on; now {how})")
    if enc.get("origin") == "dataset":     # a data set file's own rule: test values may clip
        return
    integer = enc.get("datatype") or (q if enc.get("origin") != "graph" else None)
    if integer and integer.get("kind") != "bipolar":
        s = float(integer.get("scale", 1.0))
        lo, hi = quant_range(int(integer["bits"]), bool(integer["signed"]), False)
        k = x / s
        if not np.all(k == np.round(k)) or k.min() < lo or k.max() > hi:
            raise InputError(f"model '{model.name}' takes integer codes {lo}..{hi} times {s:g} "
                             f"as input; the {data.name} data set's values (range "
                             f"{x.min():g}..{x.max():g}) are not such codes {hint}")
        return
    if q.get("kind") != "int" or enc.get("steps") or np.ndim(q.get("scale")) != 0:
        return
    if int(q["bits"]) == 1 and q["signed"]:
        return
    lo, hi = quant_range(int(q["bits"]), bool(q["signed"]), bool(q.get("narrow", False)))
    s, z = float(q["scale"]), float(q.get("zero_point", 0.0))
    a, b = sorted(((lo - z - 0.5) * s, (hi - z + 0.5) * s))
    outside = float(np.mean((x < a) | (x > b)))
    if outside > CLIP_LIMIT:
        raise InputError(f"model '{model.name}' quantizes its input over [{a:.4g}, {b:.4g}]; "
                         f"{outside:.0%} of the {data.name} data set's values (range "
                         f"{x.min():g}..{x.max():g}) fall outside it, so this is not the input "
                         f"it was trained on {hint}")


def evaluate_model(model: Model, data: datasets.Dataset | None = None,
                   scale: float | None = None, offset: float | None = None) -> float:
    """Test accuracy of the golden integer model: the model's class (for an imported
    model the argmax of its decoded outputs, see :func:`.encoding.model_classes`)."""
    data = data or datasets.load("digits")
    res = golden_run(model, model_inputs(model, data, scale=scale, offset=offset))
    if has_decoding(model):
        values = source_values(model, res)
        got = int(np.prod(values.shape[1:]))
        what = "outputs"
    else:
        got = int(np.prod(res.last_accumulators.shape[1:]))
        what = "accumulators"
    if got != data.classes:
        raise InputError(f"the model's last layer gives {got} {what}; classifying "
                         f"{data.name} needs {data.classes}")
    return float(np.mean(model_classes(model, res) == data.y_test))


accuracy = evaluate_model
