"""The file system at mulfree's edges: safe writes, checked reads, names and folders.

Writes. Every file mulfree writes goes to a temporary name in the destination folder
first and is renamed into place, so an interrupted or failed run leaves the old file or
nothing. The writer replaces only a regular file: a directory, a pipe, a terminal, a
device (``-o /dev/stdout``, ``-o /dev/null``) or a socket is refused, never replaced; a
symbolic link to a regular file is written through (its target is replaced, the link
stays) and a link to nothing is refused. Every ``OSError`` of a write becomes an
:class:`OutputError` naming the path the user gave and the reason.

Checks before long work. :func:`check_output_file` and :func:`check_output_dir` make every
check that can be made before a command trains, synthesizes or simulates: the path is not
a directory (or a file), its folder can be created and written (probed with a temporary
file that is removed at once), no name in it is too long.

Names and paths from files. :func:`safe_name` is the one way a name read from a file
(a layer's, a model's) becomes part of a file name; :func:`confined` resolves a path read
from a report and refuses it unless it stays inside its folder.

Reads. :func:`load_npy` reads the ``.npy`` header first and refuses pickles, sizes past
:mod:`.limits` and headers that claim more data than the file holds, before allocating.
"""

from __future__ import annotations

import errno
import io
import math
import os
import re
import stat
import tempfile
from pathlib import Path

import numpy as np

from . import limits
from .errors import InputError, OutputError

__all__ = ["atomic_write_bytes", "atomic_write_text", "save_npy", "load_npy",
           "check_output_file", "check_output_dir", "make_dir", "safe_name", "confined",
           "user_cache_dir", "reason"]


def reason(e: OSError) -> str:
    """An OSError's reason in lower case, without the path ("no space left on device")."""
    text = e.strerror or str(e) or type(e).__name__
    return text[:1].lower() + text[1:]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a pipe"),
          (stat.S_ISCHR, "a character device (a terminal, /dev/null, ...)"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _label(path: Path, option: str | None) -> str:
    return f"{option} {path}" if option else str(path)


def _destination(path: Path, option: str | None = None) -> Path:
    """The regular file a write of ``path`` replaces: ``path`` itself, or the target of a
    symbolic link; refuses everything else (see the module doc)."""
    try:
        lst = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return path      # the folder checks name the component that is not a folder
    except OSError as e:
        raise OutputError(f"{_label(path, option)}: {reason(e)}") from None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise OutputError(f"{_label(path, option)}: is a symbolic link to a missing file "
                          f"({os.readlink(path)}); mulfree writes through links to existing "
                          f"files only") from None
    except OSError as e:
        raise OutputError(f"{_label(path, option)}: {reason(e)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{_label(path, option)}: is a directory (expected a file name)")
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{_label(path, option)}: is {_kind(st.st_mode)}, not a regular "
                          f"file; mulfree writes its outputs to files only (written to a "
                          f"temporary name and renamed), and does not replace this")
    return Path(os.path.realpath(path)) if stat.S_ISLNK(lst.st_mode) else path


def _existing_ancestor(path: Path) -> Path:
    p = path
    while True:
        try:
            os.stat(p)
            return p
        except FileNotFoundError:
            if p.parent == p:
                return p
            p = p.parent
        except NotADirectoryError:
            p = p.parent
        except OSError as e:
            raise OutputError(f"{p}: {reason(e)}") from None


def _first_non_dir(path: Path) -> Path | None:
    """The first component of ``path`` that exists and is not a directory."""
    for p in reversed((path, *path.parents)):
        try:
            if not stat.S_ISDIR(os.stat(p).st_mode):
                return p
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            return None
    return None


def make_dir(folder: str | os.PathLike, label: str | None = None) -> Path:
    """``mkdir -p folder``, every failure as an :class:`OutputError` naming ``label``
    (default: the folder) and the reason."""
    folder = Path(folder)
    label = label or str(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        bad = _first_non_dir(folder)
        where = f"{bad} is a file, not a folder" if bad is not None else "not a folder"
        raise OutputError(f"{label}: cannot create the folder: {where}") from None
    except OSError as e:
        raise OutputError(f"{label}: cannot create the folder {folder}: {reason(e)}") from None
    return folder


def _name_lengths(path: Path, label: str) -> None:
    anchor = _existing_ancestor(path.parent if path.parent != path else path)
    try:
        name_max = os.pathconf(anchor if anchor.is_dir() else anchor.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            raise OutputError(f"{label}: file name too long ({len(os.fsencode(part))} bytes "
                              f"in one name, at most {name_max})")


def _probe(folder: Path, label: str) -> None:
    """Create and remove a temporary file in the nearest existing ancestor of ``folder``
    (the folder itself when it exists): the write will be allowed there."""
    anchor = _existing_ancestor(folder)
    if not anchor.is_dir():
        raise OutputError(f"{label}: {anchor} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".mulfree-probe.", dir=anchor)
    except OSError as e:
        raise OutputError(f"{label}: cannot write in {anchor}: {reason(e)}") from None
    os.close(fd)
    os.unlink(tmp)


def check_output_file(path: str | os.PathLike, option: str | None = "-o") -> Path:
    """Every check of an output file that can be made before the work that produces it;
    raises :class:`OutputError` (``option`` and the path, and the reason)."""
    raw = os.fspath(path)
    path = Path(path)
    label = _label(path, option)
    if raw == "" or raw.endswith(os.sep):
        raise OutputError(f"{label}: expected a file name, not a folder")
    _name_lengths(path, label)
    dest = _destination(path, option)
    _probe(dest.parent, label)
    return path


def check_output_dir(path: str | os.PathLike, option: str | None = "-o") -> Path:
    """As :func:`check_output_file`, for an output folder (created later if missing)."""
    path = Path(path)
    label = _label(path, option)
    if os.fspath(path) == "":
        raise OutputError(f"{label}: expected a folder name")
    _name_lengths(path, label)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as e:
        raise OutputError(f"{label}: {reason(e)}") from None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{label}: is {_kind(st.st_mode) if not stat.S_ISREG(st.st_mode) else 'a file'}"
                          f", not a folder")
    _probe(path, label)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a
    rename; returns ``path``. Raises :class:`OutputError` on any failure, after removing
    the temporary file."""
    path = Path(path)
    dest = _destination(path)
    make_dir(dest.parent, str(path))
    # A short temporary name: a long final name must not fail as a longer temporary one.
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name[:32]}.", suffix=".tmp", dir=dest.parent)
    except OSError as e:
        raise OutputError(f"{path}: cannot write in {dest.parent}: {reason(e)}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the mode a plain open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            what = "file name too long" if e.errno == errno.ENAMETOOLONG else reason(e)
            raise OutputError(f"{path}: cannot write: {what}") from None
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return atomic_write_bytes(path, buf.getvalue())


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """Load a .npy file without pickle; raise :class:`InputError` on anything else, and
    :class:`~.errors.LimitError` when its header claims more values than the limit, before
    reading them."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            try:
                version = fmt.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = fmt.read_array_header_1_0(f)
                else:
                    shape, fortran, dtype = fmt.read_array_header_2_0(f)
            except (ValueError, EOFError, SyntaxError, TypeError) as e:
                raise InputError(f"{path}: not a readable .npy array ({e})") from None
            if dtype.hasobject:
                raise InputError(f"{path}: holds Python objects (pickled), which mulfree does "
                                 f"not load; save plain integer arrays")
            count = math.prod(shape)
            limits.check(count, f"{path} (shape {list(shape)})")
            have = os.fstat(f.fileno()).st_size - f.tell()
            if count * dtype.itemsize > have:
                raise InputError(f"{path}: the header claims shape {list(shape)} of {dtype} "
                                 f"({count * dtype.itemsize:,} bytes) but the file holds "
                                 f"{have:,} bytes after it (truncated?)")
            f.seek(0)
            return fmt.read_array(f, allow_pickle=False)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a .npy file") from None
    except (ValueError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npy array ({e})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read: {reason(e)}") from None


_UNSAFE = re.compile(r"(?:[^A-Za-z0-9._+-]|\.\.+)+")


def safe_name(name: object, max_len: int = 64) -> str:
    """``name`` (read from a file: a layer's, a model's) as one safe file-name component:
    letters, digits and ``._+-`` only (each run of anything else, and of two or more
    dots, becomes one ``_``), not starting with ``.``, ``_`` or ``-`` (never ``.`` or
    ``..``, never a hidden file, never an option), at most ``max_len`` characters, never
    empty."""
    text = _UNSAFE.sub("_", str(name)).lstrip("._-")
    return text[:max_len] or "_"


def confined(folder: str | os.PathLike, relative: object, what: str) -> Path:
    """``folder / relative`` resolved (links followed); refuses it with an
    :class:`InputError` unless it lies inside ``folder``. ``what`` names where the
    path came from (e.g. "report.json's 'bitstream'")."""
    if not isinstance(relative, str) or not relative or "\0" in relative:
        raise InputError(f"{what}: expected a file name, got {relative!r}")
    base = Path(folder).resolve()
    target = (base / relative).resolve()
    if target == base or base not in target.parents:
        raise InputError(f"{what} {relative!r} points outside {folder}; refusing it")
    return target


def user_cache_dir(sub: str) -> Path:
    """``$MULFREE_CACHE_DIR/sub``, else ``$XDG_CACHE_HOME/mulfree/sub``, else
    ``~/.cache/mulfree/sub``: mulfree's caches, never in the current folder."""
    base = os.environ.get("MULFREE_CACHE_DIR")
    if base:
        return Path(base) / sub
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return root / "mulfree" / sub
