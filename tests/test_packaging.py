"""Packaging: every subpackage folder is listed, and the wheel installs only `mulfree.*`."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_FOLDERS = ("hw", "gen", "sim", "boards", "compare", "cli")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_top_level_layout():
    for name in (*TOP_FOLDERS, "tests"):
        assert (ROOT / name).is_dir(), f"required folder {name}/ is missing"
    assert (ROOT / "README.md").is_file() and (ROOT / "pyproject.toml").is_file()


def test_every_package_folder_is_packaged():
    cfg = _pyproject()
    listed = set(cfg["packages"])
    mapping = cfg["package-dir"]
    for top in TOP_FOLDERS:
        assert mapping[f"mulfree.{top}"] == top
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            name = ".".join(("mulfree", top, *rel))
            assert name in listed, f"{init.parent} is a package but {name} is not in pyproject's packages"


def test_imports_under_one_name():
    import mulfree.boards  # noqa: F401
    import mulfree.cli  # noqa: F401
    import mulfree.compare  # noqa: F401
    import mulfree.gen
    import mulfree.hw  # noqa: F401
    import mulfree.sim  # noqa: F401
    assert Path(mulfree.gen.__file__).parent == ROOT / "gen"


@pytest.mark.slow
def test_wheel_contents(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("mulfree-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for top in TOP_FOLDERS:
        assert f"mulfree/{top}/__init__.py" in names
    tops = {n.split("/")[0] for n in names}
    assert tops <= {"mulfree", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}, tops
    assert not any(n.startswith(("hw/", "sim/", "gen/", "boards/", "tests/")) for n in names)
