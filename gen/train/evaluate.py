"""Test accuracy of an integer model on a data set, through the golden model."""

from __future__ import annotations

import numpy as np

from . import datasets
from ..errors import InputError
from ..model.encoding import encode_inputs, has_encoding, source_input_shape
from ..model.format import Model
from ..model.golden import run as golden_run

__all__ = ["model_inputs", "evaluate_model", "accuracy"]


def model_inputs(model: Model, data: datasets.Dataset, split: str = "test") -> np.ndarray:
    x = data.x_test if split == "test" else data.x_train
    if has_encoding(model):             # the model's own rule (a data set file's, imported)
        shape = source_input_shape(model)
        if int(np.prod(shape)) != int(np.prod(x.shape[1:])):
            raise InputError(f"model '{model.name}' takes samples of shape {list(shape)}; the "
                             f"{data.name} data set's are {list(x.shape[1:])}")
        return encode_inputs(model, x.reshape(x.shape[0], *shape))
    if data.kind != "pixels":
        raise InputError(f"model '{model.name}' takes digits pixel codes; the {data.name} data "
                         f"set has other values (train on it with --dataset {data.source})")
    codes = datasets.input_codes(x, model.input_bits)
    if len(model.input_shape) == 1:
        codes = codes.reshape(codes.shape[0], -1)
    if codes.shape[1:] != tuple(model.input_shape):
        raise InputError(f"the model expects inputs of shape {list(model.input_shape)}; the "
                         f"{data.name} data set gives {list(codes.shape[1:])}")
    return codes


def evaluate_model(model: Model, data: datasets.Dataset | None = None) -> float:
    """Test accuracy of the golden integer model: argmax of the last accumulators."""
    data = data or datasets.load("digits")
    res = golden_run(model, model_inputs(model, data))
    acc = res.last_accumulators
    if acc.ndim != 2 or acc.shape[1] != data.classes:
        raise InputError(f"the model's last layer gives {list(acc.shape[1:])} accumulators; "
                         f"classifying {data.name} needs {data.classes}")
    return float(np.mean(np.argmax(acc, axis=1) == data.y_test))

accuracy = evaluate_model
