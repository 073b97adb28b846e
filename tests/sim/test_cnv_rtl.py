"""A scaled-down CNV (the full topology's layer kinds and order: conv, conv, pool, conv,
conv, pool, conv, conv, flatten, three dense layers; fewer channels, an 8x8x3 8-bit image)
end to end: written by scripts/make_cnv.py, fitted to the ECP5-85F, emitted as Verilog
and run on Verilator, bit for bit against the golden model (bench/cnv.py does the full
CNV)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mulfree.cli.main import main

from simhelpers import CACHE

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow   # about a minute: a device fit, Verilog emission and a Verilator build
def test_small_cnv_make_fit_verilog_verilator_bit_exact(tmp_path, capsys):
    net = tmp_path / "cnv.mf"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_cnv.py"), "--small",
                        "-o", str(net)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert main(["verilog", str(net), "-o", str(tmp_path / "rtl"), "--device",
                 "lfe5u-85f"]) == 0
    out = capsys.readouterr().out
    assert "fitted to LFE5U-85F" in out
    code = main(["sim", str(net), "--simulator", "verilator", "--device", "lfe5u-85f",
                 "--random", "3", "--idle", "0.2", "--backpressure", "0.2",
                 "--cache-dir", str(CACHE)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS: all 3 outputs of 3 samples match the golden model bit for bit" in out
    # without stalls the RTL runs at the manifest's pace, which the link FIFOs
    # (gen/plan/links.py) bring to the fit's slowest stage
    manifest = json.loads((tmp_path / "rtl" / "manifest.json").read_text())
    cycles = manifest["cycles_per_inference"]
    assert cycles == manifest["device_fit"]["cycles_per_inference"]
    assert manifest["link_fifos"]
    code = main(["sim", str(net), "--simulator", "verilator", "--device", "lfe5u-85f",
                 "--random", "4", "--idle", "0", "--backpressure", "0",
                 "--cache-dir", str(CACHE)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"cycles per inference: {cycles} (manifest); measured {cycles}.0 with 0%" in out
