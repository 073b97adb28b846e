"""The model description: round trip, and a clear error for every class of bad file."""

import copy
import json
import random

import numpy as np
import pytest

from mulfree.gen.model import format as M
from mulfree.gen.errors import ModelError
from mulfree.gen.model.examples import example_model, random_dense


@pytest.fixture(scope="module")
def doc():
    return M.to_dict(example_model(0))


def test_save_then_load_is_identical(tmp_path):
    m = example_model(3)
    path = M.save(m, tmp_path / "m.mf")
    again = M.load(path)
    assert again == m
    assert M.dumps(again) == path.read_text()


def test_save_is_atomic_and_leaves_no_temporary(tmp_path, monkeypatch):
    m = example_model(0)
    target = tmp_path / "m.mf"
    target.write_text("old")
    monkeypatch.setattr(M, "_to_dict", lambda model: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        M.save(m, target)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["m.mf"]


def test_hand_written_model_loads():
    text = """{"format": "mulfree-model", "version": 1,
      "input": {"shape": [3], "bits": 2},
      "layers": [{"type": "dense", "name": "fc",
                  "weights": {"scheme": "pot", "bits": 3, "codebook": [0, 1, -2, 4],
                              "codes": [[0, 1, 2], [3, 3, 1]]},
                  "activation_codebook": [0, 1, 2, 3], "bias": [0, -1],
                  "output": {"kind": "thresholds", "bits": 1, "thresholds": [[1], [2]]}}]}"""
    m = M.loads(text)
    assert m.output_shape == (2,) and m.io[0].out_bits == 1


def _mutate(doc, path, value):
    d = copy.deepcopy(doc)
    target = d
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(d)


_DELETE = object()

# (where, new value, expected fragment of the message): one per class of bad input.
BAD = [
    (("version",), 2, "unknown format version 2"),
    (("format",), "onnx", "not a mulfree model"),
    (("input", "bits"), 0, "field 'input.bits': expected an integer >= 1, got 0"),
    (("input", "shape"), [8, 8], "field 'input.shape': expected [features] or [height, width, channels]"),
    (("layers", 0, "weights", "codebook", 1), 3, "layer 0 'conv1', field 'weights.codebook': value 3 is not allowed by scheme 'pot' (expected 0 or +-2**e)"),
    (("layers", 3, "weights", "codes", 0, 0), 99, "layer 3 'fc1', field 'weights.codes': code 99 at index [0, 0] is out of range (expected 0 <= code < 15)"),
    (("layers", 3, "weights", "codes", 0, 0), -1, "layer 3 'fc1', field 'weights.codes': code -1 at index [0, 0] is out of range"),
    (("layers", 3, "weights", "codes", 1), [0, 1], "layer 3 'fc1', field 'weights.codes': ragged list"),
    (("layers", 3, "weights", "codes"), [[0] * 63] * 16, "layer 3 'fc1', field 'weights.codes': expected 64 inputs per row, got 63"),
    (("layers", 3, "bias"), [0] * 5, "layer 3 'fc1', field 'bias': expected shape [16], got [5]"),
    (("layers", 3, "bias", 0), 1.5, "layer 3 'fc1', field 'bias': expected integers in a 1-dimensional list, got the number 1.5"),
    (("layers", 3, "output", "thresholds", 0), [5, 3, 9], "layer 3 'fc1', field 'output.thresholds': channel 0 is not non-decreasing: T[0] = 5 > T[1] = 3"),
    (("layers", 3, "output", "thresholds", 0), [1, 2], "layer 3 'fc1', field 'output.thresholds': ragged list"),
    (("layers", 3, "output", "bits"), 3, "layer 3 'fc1', field 'output.thresholds': expected shape [*, 7], got [16, 3]"),
    (("layers", 3, "activation_codebook"), [0, 1], "layer 3 'fc1', field 'activation_codebook': expected 4 entries (one per input code), got 2"),
    (("layers", 3, "output", "kind"), "softmax", "layer 3 'fc1', field 'output.kind': expected one of thresholds, acc, argmax, got 'softmax'"),
    (("layers", 3, "weights", "scheme"), "fp32", "layer 3 'fc1', field 'weights.scheme': expected one of uniform"),
    (("layers", 3, "weights", "bits"), 2, "layer 3 'fc1', field 'weights.codebook': 15 entries do not fit 2-bit codes"),
    (("layers", 3, "type"), "lstm", "layer 3 'fc1', field 'type': expected one of dense, conv2d, maxpool, flatten, got the string 'lstm'"),
    (("layers", 3, "extra"), 1, "layer 3 'fc1': unknown field 'extra'"),
    (("layers", 3, "bias"), _DELETE, "layer 3 'fc1': missing field 'bias'"),
    (("layers", 2), {"type": "maxpool", "kernel": 2}, "layer 3 'fc1': a dense layer needs a flat input"),
    (("layers", 0, "stride"), [0, 1], "layer 0 'conv1', field 'stride': expected an integer >= 1, got 0"),
    (("layers", 0, "padding"), 1, None),
    (("layers", 1, "kernel"), [9, 9], "layer 1 'pool1': kernel [9, 9] does not fit input [8, 8]"),
    (("layers", 4, "weights", "products", 0), [1, 2], "layer 4 'fc2', field 'weights.products': ragged list"),
    (("layers", 4, "weights", "products", 0, 0), 2**40, "layer 4 'fc2', field 'weights.products': value 1099511627776 is out of range"),
    (("layers", 4, "weights", "bits"), 1, "layer 4 'fc2', field 'weights.products': 4 rows do not fit 1-bit codes"),
    (("layers", 1, "name"), "fc1", "layer 3 'fc1', field 'name': duplicate layer name"),
    (("metadata",), {"scale": "x", "bad": [1, {"n": None}]}, None),
]


@pytest.mark.parametrize("path,value,message", [b for b in BAD if b[2] is not None])
def test_bad_model_messages(doc, path, value, message):
    with pytest.raises(ModelError) as e:
        M.loads(_mutate(doc, path, value), source="m.mf")
    assert str(e.value).startswith("m.mf: ")
    assert message in str(e.value)


def test_accepted_mutations(doc):
    for path, value, message in BAD:
        if message is None:
            M.loads(_mutate(doc, path, value))


@pytest.mark.parametrize("text,message", [
    ('{"format": "mulfree-model", "version": 1, "input": {"shape": [1], "bits": NaN}}',
     "NaN is not allowed"),
    ('{"format": "mulfree-model", "version": 1, "metadata": {"scale": Infinity}}',
     "Infinity is not allowed"),
    ('{"format": "mulfree-model", "version": 1, "inp', "not valid JSON"),
    ("", "not valid JSON"),
    ("[1, 2, 3]", "not a mulfree model"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
    ('{"format": "mulfree-model", "version": "1"}', "unknown format version '1'"),
    ('{"format": "mulfree-model", "version": true}', "unknown format version True"),
    ("[" * 100000, "nested too deeply"),
])
def test_non_model_files(text, message):
    with pytest.raises(ModelError, match=message.replace("(", r"\(")):
        M.loads(text)


def test_truncated_file_is_rejected(tmp_path):
    text = M.dumps(example_model(0))
    for cut in (1, 10, len(text) // 3, len(text) // 2, len(text) - 3):
        with pytest.raises(ModelError, match="not valid JSON"):
            M.loads(text[:cut])


def test_nan_in_arrays_from_python_is_rejected():
    rng = np.random.default_rng(0)
    layer = random_dense(rng, 4, 2)
    with pytest.raises(ModelError, match="NaN"):
        M.Dense(name="x", weights=layer.weights, bias=np.array([np.nan, 0.0]),
                output=layer.output, activation_codebook=layer.activation_codebook)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        M.load(tmp_path / "nope.mf")
    with pytest.raises(ModelError, match="is a directory"):
        M.load(tmp_path)


def test_layers_after_a_raw_output_are_rejected(doc):
    d = copy.deepcopy(doc)
    d["layers"].append({"type": "flatten", "name": "late"})
    with pytest.raises(ModelError, match="layer 5 'late': layer 4 'fc2' outputs 'acc', so it must be the last layer"):
        M.loads(json.dumps(d))


def test_pot_scheme_rejects_three_in_codebook():
    rng = np.random.default_rng(0)
    layer = random_dense(rng, 4, 2, scheme="pot")
    with pytest.raises(ModelError, match="value 3 is not allowed by scheme 'pot'"):
        M.Weights("pot", 4, layer.weights.codes, codebook=[0, 1, 3])


# -- fuzzing: random and mutated files produce only ModelError -------------------------------

def _random_json(rnd: random.Random, depth=0):
    kinds = ["int", "float", "str", "null", "bool", "list", "dict"] if depth < 4 else ["int", "str"]
    k = rnd.choice(kinds)
    if k == "int":
        return rnd.choice([0, 1, -1, 2, 7, 2**31, -(2**63), 10**30, rnd.randint(-100, 100)])
    if k == "float":
        return rnd.choice([0.5, -1e300, 1e-9, 3.0])
    if k == "str":
        return rnd.choice(["", "dense", "pot", "thresholds", "acc", "x" * 50, "table"])
    if k == "null":
        return None
    if k == "bool":
        return rnd.random() < 0.5
    if k == "list":
        return [_random_json(rnd, depth + 1) for _ in range(rnd.randint(0, 4))]
    return {rnd.choice(["type", "weights", "codes", "bias", "kind", "bits", "shape", "name",
                        "codebook", "output", "stride"]): _random_json(rnd, depth + 1)
            for _ in range(rnd.randint(0, 4))}


def _mutate_random(rnd: random.Random, node):
    """Replace, delete or duplicate one random node of a JSON document."""
    if isinstance(node, dict) and node:
        key = rnd.choice(list(node))
        action = rnd.random()
        if action < 0.15:
            del node[key]
        elif action < 0.45:
            node[key] = _random_json(rnd)
        else:
            _mutate_random(rnd, node[key])
    elif isinstance(node, list) and node:
        i = rnd.randrange(len(node))
        action = rnd.random()
        if action < 0.15:
            node.pop(i)
        elif action < 0.25:
            node.append(copy.deepcopy(node[i]))
        elif action < 0.5 or not isinstance(node[i], (list, dict)):
            node[i] = _random_json(rnd) if rnd.random() < 0.5 else rnd.choice([-1, 0, 1, 3, 99, 1.5, None])
        else:
            _mutate_random(rnd, node[i])


def _check_only_model_errors(text):
    try:
        M.loads(text)
    except ModelError as e:
        assert str(e) and "\n" not in str(e)


def test_fuzz_mutated_models(doc):
    rnd = random.Random(1234)
    for _ in range(800):
        d = copy.deepcopy(doc)
        for _ in range(rnd.randint(1, 3)):
            _mutate_random(rnd, d)
        _check_only_model_errors(json.dumps(d))


def test_fuzz_random_and_corrupted_text(doc):
    rnd = random.Random(99)
    text = json.dumps(doc)
    for i in range(400):
        if i % 2:
            _check_only_model_errors(json.dumps({"format": "mulfree-model", "version": 1,
                                                 "input": _random_json(rnd),
                                                 "layers": _random_json(rnd)}))
        else:
            b = bytearray(text.encode())
            for _ in range(rnd.randint(1, 5)):
                b[rnd.randrange(len(b))] = rnd.randrange(256)
            cut = rnd.randrange(len(b) + 1) if rnd.random() < 0.3 else len(b)
            _check_only_model_errors(bytes(b[:cut]))


def test_documented_example_loads_and_computes_what_the_page_says():
    from pathlib import Path

    from mulfree.gen.model import golden

    page = (Path(__file__).resolve().parents[3] / "docs" / "model-format.md").read_text()
    text = page.split("```json\n", 1)[1].split("```", 1)[0]
    m = M.loads(text)
    result = golden.run(m, np.array([[2, 1, 3]]))
    assert result.accumulators[0][0, 0] == -5 and result.output[0, 0] == 0
