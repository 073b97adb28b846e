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
