"""Bad input and faults at the edges, through the real command line (issue 15).

Each case runs ``mulfree`` in a subprocess and checks the contract: exit code 2 (130 on
Ctrl-C), exactly one line on stderr besides progress lines (which end in `` ...``), no
traceback, nothing written outside the named output, no temporary files left. The kinds:
model files, arrays, options, the file system, signals, concurrency. Most cases fail in
about a second (the interpreter's start-up); the slow ones are marked.
"""

from __future__ import annotations

import fcntl
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "example.mf"


@dataclass
class Result:
    code: int
    out: str
    err: str
    seconds: float

    @property
    def errors(self) -> list[str]:
        """stderr without the progress lines."""
        return [l for l in self.err.splitlines() if l.strip() and not l.endswith(" ...")]


def mulfree(*args, cwd=None, env=None, stdin=None, preexec_fn=None, timeout=120) -> Result:
    start = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "mulfree.cli", *map(str, args)],
                       capture_output=True, text=True, errors="replace", cwd=cwd,
                       env={**os.environ, **(env or {})}, preexec_fn=preexec_fn,
                       timeout=timeout, stdin=subprocess.DEVNULL if stdin is None else stdin)
    return Result(p.returncode, p.stdout, p.stderr, time.monotonic() - start)


def fails(r: Result, *fragments: str, code: int = 2) -> str:
    """The contract for a refused run; returns the error line."""
    assert r.code == code, (r.code, r.err)
    assert "Traceback" not in r.err, r.err
    assert len(r.errors) == 1, r.err
    for f in fragments:
        assert f in r.errors[0], (f, r.errors[0])
    return r.errors[0]


def leftovers(*folders: Path) -> list[Path]:
    """Temporary files (the writer's, the probe's) under the folders."""
    out = []
    for folder in folders:
        for p in Path(folder).rglob("*"):
            if p.name.endswith(".tmp") or ".mulfree-probe" in p.name:
                out.append(p)
    return out


def tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def dense_doc(name="tiny", layer="d0", n_in=4, n_out=3) -> dict:
    return {"format": "mulfree-model", "version": 1, "name": name,
            "input": {"shape": [n_in], "bits": 2},
            "layers": [{"type": "dense", "name": layer,
                        "weights": {"scheme": "uniform", "bits": 2, "codebook": [0, 1, -2, -1],
                                    "codes": [[(i + j) % 4 for i in range(n_in)]
                                              for j in range(n_out)]},
                        "activation_codebook": [0, 1, 2, 3], "bias": [0] * n_out,
                        "output": {"kind": "acc"}}]}


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "tiny.mf"
    path.write_text(json.dumps(dense_doc()))
    np.save(tmp_path / "x.npy", np.arange(8).reshape(2, 4) % 4)
    return path


# -- model files ------------------------------------------------------------------------

def test_a_5000_digit_integer_is_refused(tmp_path):
    text = json.dumps(dense_doc()).replace('"bias": [0, 0, 0]', '"bias": [' + "9" * 5000 + ", 0, 0]")
    (tmp_path / "m.mf").write_text(text)
    fails(mulfree("info", tmp_path / "m.mf"), "m.mf", "5,000 digits")


def test_duplicate_json_keys_are_refused(tmp_path):
    text = json.dumps(dense_doc()).replace('"name": "tiny"', '"name": "tiny", "name": "other"')
    (tmp_path / "m.mf").write_text(text)
    fails(mulfree("info", tmp_path / "m.mf"), "duplicate key 'name'")


def _conv_doc(side: int) -> dict:
    return {"format": "mulfree-model", "version": 1, "name": "big",
            "input": {"shape": [side, side, 1], "bits": 1},
            "layers": [{"type": "conv2d", "name": "c",
                        "weights": {"scheme": "binary", "bits": 1, "codebook": [-1, 1],
                                    "codes": [[[[0]]]]},
                        "activation_codebook": [0, 1], "bias": [0], "output": {"kind": "acc"}}]}


def test_a_small_file_claiming_a_huge_map_is_refused_at_once(tmp_path):
    (tmp_path / "m.mf").write_text(json.dumps(_conv_doc(20000)))
    assert (tmp_path / "m.mf").stat().st_size < 400
    r = mulfree("info", tmp_path / "m.mf")
    line = fails(r, "m.mf", "400,000,000 values", "limit of 67,108,864", "--max-elements")
    assert r.seconds < 20, line      # was 48 s and 2.3 GB
    r = mulfree("verilog", tmp_path / "m.mf", "-o", tmp_path / "v")
    fails(r, "400,000,000 values")
    assert not (tmp_path / "v").exists()


def test_max_elements_moves_the_limit_either_way(tmp_path):
    (tmp_path / "m.mf").write_text(json.dumps(_conv_doc(40)))     # a 1,600-value map
    assert mulfree("info", tmp_path / "m.mf").code == 0
    fails(mulfree("info", tmp_path / "m.mf", "--max-elements", "1000"),
          "1,600 values", "limit of 1,000")
    fails(mulfree("--max-elements", "1000", "info", tmp_path / "m.mf"), "limit of 1,000")
    r = mulfree("info", tmp_path / "m.mf", env={"MULFREE_MAX_ELEMENTS": "1000"})
    fails(r, "limit of 1,000")
    r = mulfree("info", tmp_path / "m.mf", "--max-elements", "5000",
                env={"MULFREE_MAX_ELEMENTS": "1000"})
    assert r.code == 0, r.err        # the option wins over the environment
    fails(mulfree("info", tmp_path / "m.mf", "--max-elements", "0"), "--max-elements")


def test_control_characters_in_names_are_escaped(tmp_path):
    doc = dense_doc(name="a\x1b[31mRED\x1b[0m", layer="x\x1b]0;title\x07")
    (tmp_path / "m.mf").write_text(json.dumps(doc))
    r = mulfree("info", tmp_path / "m.mf")
    assert r.code == 0 and "\x1b" not in r.out and "\x07" not in r.out
    assert "a\\x1b[31mRED" in r.out and "x\\x1b]0;title\\x07" in r.out
    # and in an error message naming the layer
    doc["layers"][0]["bias"] = [0]
    (tmp_path / "bad.mf").write_text(json.dumps(doc))
    line = fails(mulfree("info", tmp_path / "bad.mf"), "\\x1b]0;title\\x07")
    assert "\x1b" not in line


def test_layer_names_cannot_write_outside_the_layer_folder(tmp_path):
    doc = dense_doc(layer="../../../escaped")
    (tmp_path / "m.mf").write_text(json.dumps(doc))
    np.save(tmp_path / "x.npy", np.zeros((2, 4), np.int64))
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    before = tree(tmp_path)
    r = mulfree("predict", tmp_path / "m.mf", tmp_path / "x.npy", "-o", work / "y.npy",
                "--layer-outputs", work / "layers")
    assert r.code == 0, r.err
    new = tree(tmp_path) - before
    assert new == {"a/b/y.npy", "a/b/layers", "a/b/layers/00_escaped.npy",
                   "a/b/layers/00_escaped.acc.npy"}, new


# -- arrays -----------------------------------------------------------------------------

def test_a_bool_array_is_not_codes(tiny, tmp_path):
    np.save(tmp_path / "b.npy", np.ones((2, 4), bool))
    fails(mulfree("predict", tiny, tmp_path / "b.npy", "-o", tmp_path / "y.npy"),
          "must be integers, got booleans")
    assert not (tmp_path / "y.npy").exists()


def test_uint64_codes_are_shown_as_they_are(tiny, tmp_path):
    np.save(tmp_path / "u.npy", np.full((2, 4), 2**64 - 1, np.uint64))
    fails(mulfree("predict", tiny, tmp_path / "u.npy", "-o", tmp_path / "y.npy"),
          "input code 18446744073709551615 at index [0, 0]")


def _npy_with_header(path: Path, shape, payload: bytes) -> None:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<i8", "fortran_order": False,
                                                 "shape": shape})
        f.write(payload)


def test_an_npy_header_claiming_a_trillion_rows_is_refused_before_reading(tiny, tmp_path):
    _npy_with_header(tmp_path / "h.npy", (10**12, 4), b"\0" * 64)
    r = mulfree("predict", tiny, tmp_path / "h.npy", "-o", tmp_path / "y.npy")
    fails(r, "h.npy", "4,000,000,000,000 values", "--max-elements")


def test_a_truncated_npy_is_refused(tiny, tmp_path):
    _npy_with_header(tmp_path / "t.npy", (100, 4), b"\0" * 64)
    fails(mulfree("predict", tiny, tmp_path / "t.npy", "-o", tmp_path / "y.npy"),
          "header claims shape [100, 4]", "truncated")


def test_a_pickled_npy_is_refused_and_not_run(tiny, tmp_path):
    np.save(tmp_path / "p.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    fails(mulfree("predict", tiny, tmp_path / "p.npy", "-o", tmp_path / "y.npy"),
          "Python objects")


def test_quantize_refuses_a_weight_matrix_of_the_wrong_inner_size(tmp_path):
    a = {"arch": np.array("mlp"), "layer0.W": np.ones((16, 64)), "layer1.W": np.ones((10, 17)),
         "layer1.b": np.zeros(10)}
    for k in ("gamma", "beta", "mean", "var"):
        a[f"layer0.bn_{k}"] = np.ones(16)
    np.savez(tmp_path / "f.npz", **a)
    fails(mulfree("quantize", tmp_path / "f.npz", "--scheme", "pot", "-o", tmp_path / "q.mf"),
          "layer1.W has shape [10, 17]", "16 values")
    assert not (tmp_path / "q.mf").exists()


# -- options ----------------------------------------------------------------------------

@pytest.mark.parametrize("args, fragment", [
    (["build", "{m}", "--board", "icebreaker", "--baud", "0"], "argument --baud"),
    (["build", "{m}", "--board", "icebreaker", "--attempts", "-2"], "argument --attempts"),
    (["build", "{m}", "--board", "icebreaker", "--pll-attempts", "-1"],
     "argument --pll-attempts"),
    (["build", "{m}", "--board", "icebreaker", "--clock-mhz", "0"], "argument --clock-mhz"),
    (["build", "{m}", "--board", "icebreaker", "--clock-mhz", "500", "-o", "{t}/b"],
     "the iCE40 PLL cannot make 500 MHz from the 12 MHz board clock (above its 275 MHz "
     "maximum); the nearest it can make: 270 MHz"),
    (["run", "--port", "/dev/null", "{m}", "{t}/x.npy", "--board", "icebreaker",
      "--clock-mhz", "14"], "(below its 16 MHz minimum); the nearest it can make: 16.125 MHz"),
    (["train", "--scheme", "pot", "--seed", "-1", "-o", "{t}/n.mf"], "argument --seed"),
    (["train", "--scheme", "pot", "--hidden", "", "-o", "{t}/n.mf"], "argument --hidden"),
    (["train", "--scheme", "pot", "--hidden", "16,,8", "-o", "{t}/n.mf"], "argument --hidden"),
    (["train", "--scheme", "table", "--table-entries", "0", "-o", "{t}/n.mf"],
     "argument --table-entries"),
    (["train", "--scheme", "pot", "--lr", "nan", "-o", "{t}/n.mf"], "argument --lr"),
    (["train", "--scheme", "pot", "--alpha", "inf", "-o", "{t}/n.mf"], "argument --alpha"),
    (["train", "--scheme", "pot", "--epochs", "0", "-o", "{t}/n.mf"], "argument --epochs"),
    (["train", "--scheme", "pot", "--lut-prune", "-0.5", "-o", "{t}/n.mf"],
     "argument --lut-prune"),
    (["run", "--port", "/dev/null", "{m}", "{t}/x.npy", "--board", "icebreaker", "--timeout",
      "-1"], "argument --timeout"),
    (["run", "--port", "/dev/null", "{m}", "{t}/x.npy", "--baud", "0"], "argument --baud"),
    (["sim", "{m}", "--clock-mhz", "-5"], "argument --clock-mhz"),
    (["sim", "{m}", "--clock-mhz", "nan"], "argument --clock-mhz"),
    (["sim", "{m}", "--seed", "-3"], "argument --seed"),
    (["sim", "{m}", "--random", "0"], "argument --random"),
    (["sim", "{m}", "--layer", "-1"], "argument --layer"),
    (["compare", "-j", "0", "-o", "{t}/c"], "argument -j/--jobs"),
    (["inputs", "{m}", "-n", "0", "-o", "{t}/x2.npy"], "argument -n/--count"),
    (["info", "{m}", "--max-elements", "-5"], "argument --max-elements"),
])
def test_nonsense_values_are_refused_naming_the_option(tiny, tmp_path, args, fragment):
    args = [a.format(m=tiny, t=tmp_path) for a in args]
    before = tree(tmp_path)
    r = mulfree(*args)
    fails(r, fragment)
    assert tree(tmp_path) == before


def test_work_bounded_by_options_is_checked_against_the_limit(tiny, tmp_path):
    r = mulfree("train", "--scheme", "pot", "--hidden", "1000000", "-o", tmp_path / "n.mf")
    fails(r, "--hidden 1000000", "over the limit")
    assert r.seconds < 30           # was 6 GB
    fails(mulfree("sim", tiny, "--random", "100000000", "--simulator", "amaranth"),
          "--random 100000000", "over the limit")


@pytest.mark.slow
def test_the_device_fit_of_a_200000_output_layer_refuses_quickly(tmp_path):
    from mulfree.gen.model.format import Dense, Model, Output, Weights, save

    n_out, n_in = 200_000, 16
    w = Weights(scheme="pot", bits=2, codebook=[0, 1, -1, 2],
                codes=np.arange(n_out * n_in).reshape(n_out, n_in) % 4)
    layer = Dense(name="wide", weights=w, bias=np.zeros(n_out, int), output=Output(kind="acc"),
                  activation_codebook=[0, 1, 2, 3])
    save(Model(name="wide", input_shape=(n_in,), input_bits=2, layers=(layer,)),
         tmp_path / "w.mf")
    r = mulfree("verilog", tmp_path / "w.mf", "-o", tmp_path / "v", "--device", "ice40up5k")
    # 6.4 Mbit of weights: refused by the memory check before any pricing
    fails(r, "fits no memory arrangement on the iCE40UP5K", "largest layer 'wide'")
    assert r.seconds < 40, r.seconds        # was over two minutes (load alone is ~6 s)


# -- the file system --------------------------------------------------------------------

def test_output_is_a_directory(tiny, tmp_path):
    (tmp_path / "d").mkdir()
    fails(mulfree("predict", tiny, tmp_path / "x.npy", "-o", tmp_path / "d"), "is a directory")
    assert not leftovers(tmp_path)


def test_output_under_a_file(tiny, tmp_path):
    (tmp_path / "f").write_text("x")
    fails(mulfree("predict", tiny, tmp_path / "x.npy", "-o", tmp_path / "f" / "y.npy"),
          "is a file, not a folder")
    assert (tmp_path / "f").read_text() == "x"


def test_output_name_too_long(tiny, tmp_path):
    fails(mulfree("predict", tiny, tmp_path / "x.npy", "-o", tmp_path / ("y" * 300 + ".npy")),
          "file name too long")
    assert not leftovers(tmp_path)


def test_output_in_a_folder_that_cannot_be_written(tiny, tmp_path):
    if os.geteuid() == 0:
        if not Path("/sys").is_dir():
            pytest.skip("root writes anywhere and there is no /sys to refuse it")
        target = Path("/sys/mulfree-test/y.npy")      # read-only even for root
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        target = ro / "y.npy"
    fails(mulfree("predict", tiny, tmp_path / "x.npy", "-o", target), "cannot write in",
          "permission denied")
    assert not target.exists()


def test_a_full_disk_leaves_the_old_file_and_no_temporary(tiny, tmp_path):
    """The write itself fails (past the pre-checks): RLIMIT_FSIZE stands in for a full
    disk (SIGXFSZ ignored, so the write returns EFBIG)."""
    (tmp_path / "y.npy").write_bytes(b"old")

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    r = mulfree("predict", tiny, tmp_path / "x.npy", "-o", tmp_path / "y.npy",
                preexec_fn=small_files)
    fails(r, "y.npy: cannot write: file too large")
    assert (tmp_path / "y.npy").read_bytes() == b"old"
    assert not leftovers(tmp_path)


def test_a_fifo_is_refused_not_replaced(tiny, tmp_path):
    os.mkfifo(tmp_path / "pipe")
    fails(mulfree("predict", tiny, tmp_path / "x.npy", "-o", tmp_path / "pipe"),
          "is a pipe, not a regular file")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)


def test_dev_stdout_is_refused_not_replaced(tiny, tmp_path):
    # /dev/stdout itself, through a link of our own (a regression must not replace the
    # machine's /dev/stdout): stdout is a pipe here
    (tmp_path / "stdout").symlink_to("/proc/self/fd/1")
    r = mulfree("predict", tiny, tmp_path / "x.npy", "-o", tmp_path / "stdout")
    fails(r, "is a pipe, not a regular file")
    assert os.readlink(tmp_path / "stdout") == "/proc/self/fd/1"


def test_a_symlink_is_written_through_and_kept(tiny, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "y.npy").write_bytes(b"old")
    (tmp_path / "link.npy").symlink_to(tmp_path / "real" / "y.npy")
    r = mulfree("predict", tiny, tmp_path / "x.npy", "-o", tmp_path / "link.npy")
    assert r.code == 0, r.err
    assert (tmp_path / "link.npy").is_symlink()
    assert np.load(tmp_path / "real" / "y.npy").shape == (2, 3)
    assert not leftovers(tmp_path)


def test_a_dangling_symlink_is_refused(tiny, tmp_path):
    (tmp_path / "link.npy").symlink_to(tmp_path / "nowhere" / "y.npy")
    fails(mulfree("predict", tiny, tmp_path / "x.npy", "-o", tmp_path / "link.npy"),
          "symbolic link to a missing file")
    assert not (tmp_path / "nowhere").exists()


def test_a_broken_pipe_on_stdout_is_one_line():
    # the reader is gone before the first write (`| head -0`): every run sees the broken
    # pipe (reading a line first raced the writer, whose 3 kB fit the pipe in one write)
    read_end, write_end = os.pipe()
    os.close(read_end)
    p = subprocess.Popen([sys.executable, "-m", "mulfree.cli", "info", "--json", EXAMPLE],
                         stdout=write_end, stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    err = p.stderr.read()
    code = p.wait(timeout=60)
    r = Result(code, "", err, 0.0)
    fails(r, "<stdout>: broken pipe")


def test_train_checks_its_output_before_training(tmp_path):
    (tmp_path / "d").mkdir()
    r = mulfree("train", "--scheme", "pot", "-o", tmp_path / "d")
    fails(r, "--output", "is a directory")
    assert r.seconds < 10                  # no 60 epochs first
    r = mulfree("train", "--scheme", "pot", "--epochs", "2", "--save-float", tmp_path / "d",
                "-o", tmp_path / "n.mf")
    fails(r, "--save-float", "is a directory")
    assert not (tmp_path / "n.mf").exists()


@pytest.mark.parametrize("command", [
    ["build", "{m}", "--board", "icebreaker", "-o", "{f}"],
    ["build", "{m}", "--board", "icebreaker", "--out", "{f}"],
    ["compare", "--quick", "-o", "{f}"],
    ["verilog", "{m}", "-o", "{f}"],
    ["sim", "{m}", "--cache-dir", "{f}", "--simulator", "amaranth"],
    ["sim", "{m}", "--waves", "{d}", "--simulator", "amaranth"],
    ["predict", "{m}", "{t}/x.npy", "-o", "{t}/y.npy", "--layer-outputs", "{f}"],
    ["inputs", "{m}", "-n", "2", "-o", "{t}/x2.npy", "--labels", "{d}"],
])
def test_bad_output_folders_fail_before_the_work(tiny, tmp_path, command):
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    args = [a.format(m=tiny, t=tmp_path, f=tmp_path / "f", d=tmp_path / "d") for a in command]
    before = tree(tmp_path)
    r = mulfree(*args)
    fails(r)
    assert r.seconds < 15, r.seconds       # compare -o FILE used to synthesize for 18 s
    assert tree(tmp_path) == before and (tmp_path / "f").read_text() == "x"


def _report_folder(tmp_path: Path, report) -> Path:
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "report.json").write_text(report if isinstance(report, str) else json.dumps(report))
    return folder


def test_program_confines_the_bitstream_path_to_its_folder(tmp_path):
    folder = _report_folder(tmp_path, {"board": "icebreaker",
                                       "bitstream": "../../../../etc/hostname"})
    fails(mulfree("program", folder, "--dry-run"), "'bitstream'", "points outside")
    (tmp_path / "secret.bin").write_bytes(b"x")
    (folder / "link.bin").symlink_to(tmp_path / "secret.bin")
    (folder / "report.json").write_text(json.dumps({"board": "icebreaker",
                                                    "bitstream": "link.bin"}))
    fails(mulfree("program", folder, "--dry-run"), "points outside")


@pytest.mark.parametrize("report, fragment", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ({"board": ["icebreaker"], "bitstream": "x.bin"}, "field 'board'"),
    ({"board": "icebreaker", "bitstream": 5}, "field 'bitstream'"),
])
def test_program_with_a_malformed_report(tmp_path, report, fragment):
    fails(mulfree("program", _report_folder(tmp_path, report), "--dry-run"), fragment)


def test_run_with_a_malformed_report(tiny, tmp_path):
    folder = _report_folder(tmp_path, {"framing": {"input": 3}, "uart": {"baud": 9600}})
    r = mulfree("run", "--port", tmp_path / "no-port", tiny, tmp_path / "x.npy",
                "--build", folder, "-o", tmp_path / "y.npy")
    fails(r, "malformed 'framing' or 'uart'")
    assert not (tmp_path / "y.npy").exists()


# -- signals ----------------------------------------------------------------------------

def test_ctrl_c_exits_130_with_one_line_and_no_leftovers(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "mulfree.cli", "train", "--scheme", "pot",
                          "--hidden", "128", "--epochs", "400", "-o", tmp_path / "n.mf"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = p.stderr.readline()           # the training stage's line, 2 s into training
    assert "training" in first, first
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    r = Result(p.returncode, out, first + err, 0.0)
    fails(r, "mulfree train: interrupted", code=130)
    assert sorted(os.listdir(tmp_path)) == []


# -- concurrency -------------------------------------------------------------------------

def test_a_second_build_into_a_locked_folder_is_refused(tiny, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)     # as a running build holds it
        r = mulfree("build", tiny, "--board", "icebreaker", "-o", folder)
        fails(r, "another 'mulfree build' is writing this folder")
    finally:
        os.close(fd)
    assert os.listdir(folder) == []


@pytest.mark.slow
def test_two_builds_into_one_folder(tiny, tmp_path):
    folder = tmp_path / "out"
    first = subprocess.Popen([sys.executable, "-m", "mulfree.cli", "build", tiny, "--board",
                              "icebreaker", "-o", folder],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = first.stderr.readline()    # the first build has started (and holds the lock)
        assert "mulfree build" in line, line
        second = mulfree("build", tiny, "--board", "icebreaker", "-o", folder)
        fails(second, "another 'mulfree build' is writing this folder")
        out, err = first.communicate(timeout=600)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
    assert (folder / "report.json").is_file() and not leftovers(folder)


# -- the simulator cache ------------------------------------------------------------------

@pytest.mark.slow
def test_the_sim_cache_is_the_users_and_a_foreign_one_is_rebuilt(tiny, tmp_path):
    """Default location: not the current folder. A cache entry copied from elsewhere (the
    right folder name, but not signed with this user's key) or altered is rebuilt."""
    pytest.importorskip("cocotb")
    if not any((Path(d) / "iverilog").exists() for d in os.environ["PATH"].split(os.pathsep)):
        pytest.skip("Icarus Verilog is not installed")
    cwd = tmp_path / "checkout"
    cwd.mkdir()
    mine = tmp_path / "mine"
    env = {"MULFREE_CACHE_DIR": str(mine), "MULFREE_SIM_CACHE": ""}
    args = ("sim", tiny, "--simulator", "icarus", "--random", "3")
    r = mulfree(*args, cwd=cwd, env=env)
    assert r.code == 0 and "PASS" in r.out, r.err
    assert os.listdir(cwd) == []                   # nothing in the current folder
    entries = [p for p in (mine / "sim").iterdir() if p.name.startswith("icarus-")
               and p.is_dir()]
    assert len(entries) == 1
    r = mulfree(*args, cwd=cwd, env=env)
    assert "build: cached" in r.out, r.out
    # altered: the compiled simulator is replaced by something else
    (entries[0] / "sim.vvp").write_text("#! /bin/false\n")
    r = mulfree(*args, cwd=cwd, env=env)
    assert r.code == 0 and "build: cached" not in r.out and "PASS" in r.out, r.out + r.err
    # foreign: the whole cache, used by another user (another key)
    other = {"MULFREE_CACHE_DIR": str(tmp_path / "other"),
             "MULFREE_SIM_CACHE": str(mine / "sim")}
    r = mulfree(*args, cwd=cwd, env=other)
    assert r.code == 0 and "build: cached" not in r.out, r.out


def test_running_out_of_memory_is_one_line(tmp_path):
    """Past a raised limit, an allocation the machine cannot make is a MemoryError: one
    line, exit 2 (RLIMIT_AS stands in for a small machine)."""
    (tmp_path / "m.mf").write_text(json.dumps(_conv_doc(20000)))

    def small_memory():
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    r = mulfree("info", tmp_path / "m.mf", "--max-elements", "10000000000",
                preexec_fn=small_memory)
    fails(r, "out of memory")
