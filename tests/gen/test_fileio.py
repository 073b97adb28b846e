import os

import numpy as np
import pytest

from mulfree.gen.errors import InputError
from mulfree.gen.fileio import atomic_write_text, load_npy, save_npy


def test_written_files_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a" / "b.txt", "hi")
    finally:
        os.umask(old)
    assert path.read_text() == "hi" and (path.stat().st_mode & 0o777) == 0o644


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "x.npy"
    save_npy(target, np.arange(3))

    class Boom:
        def __array__(self, *a, **k):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_npy(target, Boom())
    assert load_npy(target).tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]


def test_pickled_npy_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="holds Python objects"):
        load_npy(tmp_path / "obj.npy")


# -- the writer's targets, the pre-checks, names and confined paths (issue 15) ---------

from mulfree.gen.errors import OutputError  # noqa: E402
from mulfree.gen.fileio import (atomic_write_bytes, check_output_dir,  # noqa: E402
                                check_output_file, confined, safe_name, user_cache_dir)


def test_the_writer_refuses_what_is_not_a_regular_file(tmp_path):
    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for name, why in (("d", "is a directory"), ("fifo", "is a pipe"),
                      ("dangling", "symbolic link to a missing file")):
        with pytest.raises(OutputError, match=why):
            atomic_write_bytes(tmp_path / name, b"x")
        with pytest.raises(OutputError, match=why):
            check_output_file(tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "dangling", "fifo"]


def test_the_writer_writes_through_a_link_to_a_file(tmp_path):
    (tmp_path / "real.txt").write_text("old")
    (tmp_path / "link.txt").symlink_to("real.txt")
    atomic_write_text(tmp_path / "link.txt", "new")
    assert (tmp_path / "link.txt").is_symlink() and (tmp_path / "real.txt").read_text() == "new"


def test_a_long_name_fails_as_itself_not_as_its_temporary(tmp_path):
    with pytest.raises(OutputError, match="file name too long"):
        atomic_write_text(tmp_path / ("y" * 256), "x")
    atomic_write_text(tmp_path / ("y" * 250), "x")        # fits; its temporary is shorter
    assert [p.name for p in tmp_path.iterdir()] == ["y" * 250]


def test_output_dir_checks(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output_dir(tmp_path / "f")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output_dir(tmp_path / "f" / "sub")
    check_output_dir(tmp_path / "new" / "sub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]   # nothing made, no probe left


@pytest.mark.parametrize("name, want", [("../../../x", "x"), ("fc1", "fc1"), ("a b/c", "a_b_c"),
                                        ("..", "_"), ("", "_"), ("-rf", "rf"),
                                        (".hidden", "hidden"), ("x\x1b[2J", "x_2J"),
                                        ("y" * 100, "y" * 64)])
def test_safe_name(name, want):
    assert safe_name(name) == want


def test_confined(tmp_path):
    (tmp_path / "b").mkdir()
    assert confined(tmp_path / "b", "x.bin", "report") == (tmp_path / "b" / "x.bin").resolve()
    for bad in ("../x", "/etc/hostname", "", "a/../../x", None, 5):
        with pytest.raises(InputError):
            confined(tmp_path / "b", bad, "report")
    (tmp_path / "b" / "l").symlink_to(tmp_path)
    with pytest.raises(InputError, match="points outside"):
        confined(tmp_path / "b", "l/secret", "report")


def test_user_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MULFREE_CACHE_DIR", str(tmp_path / "c"))
    assert user_cache_dir("sim") == tmp_path / "c" / "sim"
    monkeypatch.delenv("MULFREE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert user_cache_dir("sim") == tmp_path / "x" / "mulfree" / "sim"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert user_cache_dir("sim") == tmp_path / "h" / ".cache" / "mulfree" / "sim"


def test_load_npy_checks_the_header_before_reading(tmp_path, monkeypatch):
    from mulfree.gen import limits
    from mulfree.gen.errors import LimitError

    np.save(tmp_path / "a.npy", np.zeros((10, 10), np.int64))
    monkeypatch.setattr(limits, "_max", 50)
    with pytest.raises(LimitError, match="100 values, over the limit of 50"):
        load_npy(tmp_path / "a.npy")
    monkeypatch.setattr(limits, "_max", None)
    assert load_npy(tmp_path / "a.npy").shape == (10, 10)
