"""Signed cache entries: the simulator runs only what this user's mulfree built.

A cache entry is compiled code the simulator runs (a Verilator model; an Icarus ``.vvp``
file, which can name VPI modules to load) or Verilog compiled into one (Verilog can call
``$system``). An entry found anywhere else (a checkout that ships its own cache folder, a
shared ``--cache-dir``, a copy from another machine) must never be run, even when its
folder name is the right hash: folder names are computable by anyone.

So every entry mulfree completes gets a stamp: an HMAC-SHA256, under a key private to
the user (:func:`key_path`, mode 0600, made on first use), over the entry's name and
every file in it (relative path, and contents; a symbolic link by its target text). Before
an entry is used its stamp is checked against its files as they are at that moment; an
entry without a valid stamp is deleted and rebuilt (:func:`valid`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from mulfree.gen.errors import MulfreeError
from mulfree.gen.fileio import user_cache_dir

__all__ = ["STAMP", "key_path", "sign", "valid"]

STAMP = "mulfree-signature"


def key_path() -> Path:
    """The user's signing key: ``<user cache folder>/sim.key``."""
    return user_cache_dir("sim.key")


def _key() -> bytes:
    path = key_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise MulfreeError(f"{path}: the simulator cache's signing key must be a file of yours "
                           f"that only you can read (chmod 600 {path}, or delete it to make "
                           f"a new one)")
    data = path.read_bytes()
    if len(data) < 32:
        raise MulfreeError(f"{path}: the signing key is truncated; delete it to make a new one")
    return data


def _digest(folder: Path, name: str, key: bytes) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    mac.update(name.encode() + b"\0")
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for fname in sorted(files + [d for d in dirs if os.path.islink(os.path.join(root, d))]):
            path = Path(root) / fname
            rel = path.relative_to(folder).as_posix()
            if rel == STAMP:
                continue
            mac.update(len(rel).to_bytes(8, "little") + rel.encode())
            if path.is_symlink():
                target = os.readlink(path).encode()
                mac.update(b"L" + len(target).to_bytes(8, "little") + target)
                continue
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            mac.update(b"F" + h.digest())
    return mac.hexdigest()


def sign(folder: Path, name: str) -> None:
    """Stamp a completed entry (call it last, when nothing more is written into it)."""
    (folder / STAMP).write_text(_digest(folder, name, _key()) + "\n")


def valid(folder: Path, name: str) -> bool:
    """Whether ``folder`` is an entry this user's mulfree completed, unchanged since."""
    try:
        stamp = (folder / STAMP).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(stamp, _digest(folder, name, _key()))
