"""The golden-model scoreboard: every output of every sample compared, bit for bit.

Used by every backend (cocotb on Icarus or Verilator, Amaranth's simulator), so a
mismatch reads the same whichever simulator found it.
"""

from __future__ import annotations

from dataclasses import dataclass, asdict
from pathlib import Path

import numpy as np

__all__ = ["Mismatch", "compare", "parse_output_log", "score"]


@dataclass(frozen=True)
class Mismatch:
    """The first output that differs from the golden model (in sample, then index order)."""

    sample: int
    layer: int
    layer_name: str
    index: tuple[int, ...]
    expected: int
    got: int | None          # None: the value was undefined (X/Z) or never produced
    reason: str = "value"    # "value", "undefined" or "missing"
    total: int = 1           # how many outputs differ in all

    def describe(self) -> str:
        where = (f"sample {self.sample}, layer {self.layer} '{self.layer_name}', "
                 f"index {list(self.index)}")
        if self.reason == "missing":
            got = "nothing (the network produced no such output)"
        elif self.reason == "undefined":
            got = "an undefined value (X)"
        else:
            got = str(self.got)
        return (f"first mismatch at {where}: expected {self.expected}, got {got} "
                f"({self.total} differing output{'s' if self.total != 1 else ''})")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["index"] = list(self.index)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Mismatch":
        d = dict(d)
        d["index"] = tuple(d["index"])
        return cls(**d)


def compare(expected: np.ndarray, got: np.ndarray, *, layer: int, layer_name: str) -> Mismatch | None:
    """Compare ``expected [N, *shape]`` (integers) with ``got`` (``[M, *shape]`` object
    or integer array, ``None`` for undefined values; M < N means outputs are missing)."""
    expected = np.asarray(expected)
    n = expected.shape[0]
    shape = expected.shape[1:]
    exp_flat = expected.reshape(n, -1)
    got = np.asarray(got, dtype=object).reshape(got.shape[0], -1) if len(got) else \
        np.empty((0, exp_flat.shape[1]), object)
    m = min(n, got.shape[0])
    first = None
    total = 0
    if m:
        g = got[:m]
        undefined = np.vectorize(lambda v: v is None, otypes=[bool])(g)
        values = np.where(undefined, 0, g).astype(np.int64)
        bad = undefined | (values != exp_flat[:m])
        total = int(bad.sum())
        if total:
            s, i = (int(v) for v in np.argwhere(bad)[0])
            first = (s, i, "undefined" if undefined[s, i] else "value",
                     None if undefined[s, i] else int(values[s, i]))
    if got.shape[0] < n:
        total += (n - got.shape[0]) * exp_flat.shape[1]
        if first is None:
            first = (got.shape[0], 0, "missing", None)
    if first is None:
        return None
    s, i, reason, value = first
    index = tuple(int(v) for v in np.unravel_index(i, shape)) if shape else ()
    return Mismatch(sample=s, layer=layer, layer_name=layer_name, index=index,
                    expected=int(exp_flat[s, i]), got=value, reason=reason, total=total)


def parse_output_log(path: Path) -> tuple[list[int], list[int | None]]:
    """``cycle payload`` lines from the wrapper: (cycles, words; None for X/Z words)."""
    cycles, words = [], []
    if not path.exists():
        return cycles, words
    for line in path.read_text().split("\n"):
        parts = line.split()
        if len(parts) != 2:
            continue
        cycles.append(int(parts[0]))
        try:
            words.append(int(parts[1], 16))
        except ValueError:
            words.append(None)
    return cycles, words


def score(cfg: dict, words: list[int | None]) -> Mismatch | None:
    from .contract import StreamGeometry

    geo = StreamGeometry(**cfg["output"])
    expected = np.load(cfg["expected"], allow_pickle=False)
    n = expected.shape[0]
    count = int(np.prod(expected.shape[1:]))
    whole = len(words) - len(words) % geo.beats
    got = geo.unpack(words[:whole], count)
    got = got.reshape((got.shape[0], *expected.shape[1:]))
    return compare(expected, got[:n], layer=cfg["layer"], layer_name=cfg["layer_name"])
