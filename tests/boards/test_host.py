"""The host path without a board: ``mulfree run`` talks through a pseudo-terminal to the
harness running in Amaranth's simulator; ``mulfree program`` reports missing programmers."""

import json
import os

import numpy as np
import pytest

from mulfree.boards.build import first_fold
from mulfree.boards.harness import Harness
from mulfree.boards.host import BoardLink, LinkError
from mulfree.boards.network import frame_format, frames_for, network_for
from mulfree.boards.registry import get_board
from mulfree.boards.simboard import SimulatedBoard
from mulfree.gen.model import golden
from mulfree.cli.main import main
from mulfree.gen.model.examples import random_dense
from mulfree.gen.fileio import load_npy, save_npy
from mulfree.gen.model.format import Model, save
from mulfree.gen.plan.folds import load_fold


@pytest.fixture
def model_file(tmp_path):
    rng = np.random.default_rng(5)
    l1 = random_dense(rng, 10, 6, scheme="pot", in_bits=2, out_bits=2, name="fc1")
    l2 = random_dense(rng, 6, 5, scheme="table", wbits=2, in_bits=2, output="acc", name="fc2")
    model = Model(name="host-test", input_shape=(10,), input_bits=2, layers=(l1, l2))
    path = tmp_path / "m.mf"
    save(model, path)
    return model, path


def _serve(model, mode="runtime", fold=None):
    net, manifest, _ = network_for(model, mode=mode, fold=fold)
    frames = frame_format(model, net, manifest, {"mode": mode, "fold": fold})
    return SimulatedBoard(Harness(net, frames, clk_freq=1e6, baud=125000)).serve_pty()


def test_mulfree_run_through_a_pty(model_file, tmp_path, capsys, caplog, monkeypatch):
    model, path = model_file
    monkeypatch.chdir(tmp_path)     # no default build folder to read
    x = np.random.default_rng(0).integers(0, 4, (6, 10))
    save_npy(tmp_path / "x.npy", x)
    # the board runs what `mulfree build m.mf --board icebreaker` builds first by default
    board = get_board("icebreaker")
    dev, stop, thread = _serve(model, fold=first_fold(board, load_fold("device:ice40up5k"),
                                                      model=model))
    try:
        rc = main(["run", "--port", dev, str(path), str(tmp_path / "x.npy"), "--board",
                   "icebreaker", "-o", str(tmp_path / "y.npy"), "--timeout", "10"])
    finally:
        stop.set()
        thread.join(10)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "6 of 6 samples match the golden model bit for bit" in out
    # streamed through the receive FIFO, with the rate against the link's ceiling
    assert "6 inferences in " in out and "/s over the link (streamed, " in out
    assert "frames in flight; the link's ceiling at 115200 baud: " in out
    assert "fingerprint" not in caplog.text      # the same fold on both sides
    np.testing.assert_array_equal(load_npy(tmp_path / "y.npy"), golden.run(model, x).output)


def test_run_detects_a_board_built_from_another_model(model_file, tmp_path):
    model, _ = model_file
    rng = np.random.default_rng(9)
    other = Model(name="other", input_shape=(16,), input_bits=2,
                  layers=(random_dense(rng, 16, 3, output="argmax"),))
    frames = frames_for(model, "runtime", None)
    dev, stop, thread = _serve(other)
    try:
        with BoardLink(dev, frames, timeout=5) as link:
            with pytest.raises(LinkError, match="it was built from another model"):
                link.identify()
    finally:
        stop.set()
        thread.join(10)


def test_run_without_a_board_times_out(model_file, tmp_path, capsys):
    model, path = model_file
    save_npy(tmp_path / "x.npy", np.zeros(10, np.int64))
    master, slave = os.openpty()
    try:
        rc = main(["run", "--port", os.ttyname(slave), str(path), str(tmp_path / "x.npy"),
                   "--fold", "auto", "--timeout", "0.3"])
    finally:
        os.close(master)
        os.close(slave)
    assert rc == 2
    assert "no answer from the board within 0.3 s" in capsys.readouterr().err


def test_program_without_a_programmer(tmp_path, capsys, monkeypatch):
    (tmp_path / "icebreaker.bin").write_bytes(b"\0")
    (tmp_path / "report.json").write_text(json.dumps({"board": "icebreaker",
                                                      "bitstream": "icebreaker.bin"}))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["program", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no programmer for icebreaker found: install one of iceprog, openFPGALoader" in err
    fake = tmp_path / "openFPGALoader"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    assert main(["program", str(tmp_path), "--dry-run"]) == 0
    assert f"{fake} -b ice40_generic {tmp_path / 'icebreaker.bin'}" in capsys.readouterr().out


def test_program_and_build_errors(tmp_path, capsys):
    assert main(["program", str(tmp_path)]) == 2
    assert "no report.json" in capsys.readouterr().err
    assert main(["build", "examples/example.mf", "--board", "nope"]) == 2
    assert "unknown board 'nope'; known boards: icebreaker, ulx3s-85f" in capsys.readouterr().err
