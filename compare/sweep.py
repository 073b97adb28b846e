"""The cost sweep behind ``mulfree compare``: every point synthesized, cached, in parallel.

A *point* is one design (:mod:`.designs`) on one target: ``(mode, scheme, wbits, abits,
target)``.

Each point's result is cached under a key hashed from its emitted Verilog, the flow
options and the tool versions (:func:`mulfree.boards.synth.design_key`): a rerun only
synthesizes what changed, and an interrupted run keeps every point it finished. Cache
entries and every output file are written atomically. Workers are stateless: the parent
process owns the cache, so the same sweep runs in a local process pool (``jobs``) or on a
Dask distributed cluster (``scheduler``), whose workers need not share a file system.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable

from mulfree.boards.synth import (Flow, SynthResult, Target, design_key, emit_verilog,
                                  harness_verilog, synthesize, tool_versions)
from mulfree.boards.toolchain import ToolchainError
from mulfree.gen.errors import InputError, MulfreeError
from mulfree.gen.fileio import atomic_write_text, user_cache_dir

from .designs import DEFAULT_MODES, MODES, SCHEMES, TABLE_MAX_INDEX_BITS, build_design, lane_codebook
from .estimate import estimate_lut

__all__ = ["TARGETS", "Point", "Grid", "QUICK_GRID", "DEFAULT_GRID", "evaluate_point",
           "Cache", "Progress", "SweepResult", "run_sweep", "default_cache_dir"]

log = logging.getLogger(__name__)

TARGETS = tuple(t.value for t in Target)


# Natural code widths of the fixed-codebook schemes.
_FIXED_WBITS = {"binary": 1, "ternary": 2}


def default_cache_dir() -> Path:
    """``$MULFREE_CACHE_DIR/compare``, else ``$XDG_CACHE_HOME/mulfree/compare``, else
    ``~/.cache/mulfree/compare``."""
    return user_cache_dir("compare")


@dataclass(frozen=True, order=True)
class Point:
    """One design on one target."""

    mode: str
    scheme: str
    wbits: int
    abits: int
    target: str

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.scheme not in SCHEMES:
            raise ValueError(f"Scheme must be one of {', '.join(SCHEMES)}, not {self.scheme!r}")
        if self.target not in TARGETS:
            raise ValueError(f"Target must be one of {', '.join(TARGETS)}, not {self.target!r}")
        for name in ("wbits", "abits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 16:
                raise ValueError(f"{name} must be an integer from 1 to 16, not {v!r}")

    @property
    def design(self) -> tuple[str, str, int, int]:
        return (self.mode, self.scheme, self.wbits, self.abits)

    @property
    def label(self) -> str:
        return f"{self.mode} {self.scheme} w{self.wbits} a{self.abits} {self.target}"


@dataclass(frozen=True)
class Grid:
    """The sweep's axes; :meth:`points` drops combinations that mean nothing (binary and
    ternary appear once each at their own code width; runtime tables past
    ``TABLE_MAX_INDEX_BITS`` index bits)."""

    schemes: tuple[str, ...] = SCHEMES
    wbits: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)
    abits: tuple[int, ...] = (8,)
    modes: tuple[str, ...] = DEFAULT_MODES
    targets: tuple[str, ...] = TARGETS

    def __post_init__(self) -> None:
        for name, allowed in (("schemes", SCHEMES), ("modes", MODES), ("targets", TARGETS)):
            values = tuple(getattr(self, name))
            object.__setattr__(self, name, values)
            if not values:
                raise InputError(f"The grid needs at least one of {name}")
            for v in values:
                if v not in allowed:
                    raise InputError(f"{name[:-1].capitalize()} must be one of "
                                     f"{', '.join(allowed)}, not {v!r}")
        for name in ("wbits", "abits"):
            values = tuple(getattr(self, name))
            object.__setattr__(self, name, values)
            if not values:
                raise InputError(f"The grid needs at least one value of {name}")
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 16:
                    raise InputError(f"{name} must be integers from 1 to 16, not {v!r}")

    def points(self) -> list[Point]:
        out = set()
        for mode in self.modes:
            for scheme in self.schemes:
                wbits = (_FIXED_WBITS[scheme],) if scheme in _FIXED_WBITS else self.wbits
                for wb in wbits:
                    if scheme not in _FIXED_WBITS and wb < 2:
                        continue            # a 1-bit uniform/PoT/APoT code is degenerate
                    if lane_codebook(scheme, wb) is None:
                        continue            # PoT past 6 bits: the quantizer has no codebook
                    for ab in self.abits:
                        if (mode == "runtime" and scheme == "lut"
                                and wb + ab > TABLE_MAX_INDEX_BITS):
                            continue
                        for target in self.targets:
                            out.add(Point(mode, scheme, wb, ab, target))
        return sorted(out, key=_point_order)

    def skipped(self) -> list[tuple[str, int]]:
        """The ``(scheme, weight bits)`` the grid asks for but :meth:`points` leaves out
        because the quantizer has no codebook there (PoT past 6 bits)."""
        return sorted({(s, wb) for s in self.schemes if s not in _FIXED_WBITS
                       for wb in self.wbits if wb >= 2 and lane_codebook(s, wb) is None})

    def to_json(self) -> dict:
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}


def _point_order(p: Point):
    return (MODES.index(p.mode), TARGETS.index(p.target), SCHEMES.index(p.scheme), p.wbits,
            p.abits)

QUICK_GRID = Grid(schemes=("uniform", "pot", "apot", "lut", "ternary"), wbits=(2, 4),
                  abits=(8,), modes=DEFAULT_MODES, targets=("ice40", "generic"))

DEFAULT_GRID = Grid()


def evaluate_point(point: Point, *, pnr: bool = True, known_keys: frozenset | None = None,
                   freq: dict | None = None) -> dict:
    """Emit the point's design, and synthesize it unless its key is in ``known_keys``.

    Returns ``{"point", "key", "cached", "result" (SynthResult JSON or None),
    "error" (None or a message), "emit_s"}``. Never raises for a failing design or tool:
    the sweep goes on and the failure is reported.
    """
    out = {"point": asdict(point), "key": None, "cached": False, "result": None, "error": None,
           "emit_s": None}
    try:
        flow = Flow(target=point.target, pnr=pnr,
                    freq_mhz=(freq or {}).get(point.target))
        start = time.monotonic()
        component = build_design(*point.design)
        text = emit_verilog(component)
        key = design_key(text, flow)
        out["key"] = key
        if known_keys is not None and key in known_keys:
            out["cached"] = True
            out["emit_s"] = round(time.monotonic() - start, 2)
            return out
        harness = harness_verilog(component) if flow.runs_pnr else None
        out["emit_s"] = round(time.monotonic() - start, 2)
        out["result"] = synthesize(text, flow, harness_text=harness).to_json()
    except ToolchainError as e:
        out["error"] = str(e)
    except Exception as e:  # a bug in a design or in the flow: report it, keep sweeping
        out["error"] = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}"
    return out


class Cache:
    """Synthesis results by key, one JSON file each, written atomically (a crash leaves
    the old entry or none; an unreadable entry counts as a miss and is redone)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def keys(self) -> frozenset:
        if not self.root.is_dir():
            return frozenset()
        return frozenset(p.stem for p in self.root.glob("??/*.json"))

    def get(self, key: str) -> SynthResult | None:
        try:
            doc = json.loads(self._path(key).read_text())
            result = SynthResult.from_json(doc)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return result if result.key == key else None

    def put(self, result: SynthResult) -> None:
        atomic_write_text(self._path(result.key), json.dumps(result.to_json(), indent=1))


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal (every second too, so the
    elapsed time moves while the first points synthesize), one line per point otherwise
    (so logs of CI runs stay readable), plus one line when the sweep starts."""

    def __init__(self, total: int, stream=None, enabled: bool = True, width: int = 28) -> None:
        self.total, self.width, self.enabled = total, width, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = self.cached = self.failed = 0
        self.start = time.monotonic()
        self._label, self._state = "", f"synthesizing the first point(s) of {total}"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if not enabled:
            return
        if self.tty:
            self._draw()
            threading.Thread(target=self._tick, name="mulfree-compare-progress",
                             daemon=True).start()
        else:
            self._write(f"[{'.' * self.width}] {f'0/{total}':>9}     0s  started: "
                        f"{self._state}\n")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def _bar(self) -> str:
        frac = self.done / max(1, self.total)
        return "#" * int(frac * self.width) + "." * (self.width - int(frac * self.width))

    def _draw(self) -> None:
        elapsed = time.monotonic() - self.start
        label = f"{self._label}: " if self._label else ""
        line = (f"\r[{self._bar()}] {self.done}/{self.total} {self.cached} cached "
                f"{self.failed} failed {elapsed:5.0f}s  {label}{self._state}")
        self._write(line[:160].ljust(160))

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                if self.done < self.total:
                    self._draw()

    def update(self, label: str, *, cached: bool = False, failed: bool = False,
               detail: str = "") -> None:
        with self._lock:
            self.done += 1
            self.cached += cached
            self.failed += failed
            if not self.enabled:
                return
            state = "cached" if cached else ("FAILED" if failed else detail)
            if self.tty:
                self._label, self._state = label, state
                self._draw()
                if self.done == self.total:
                    self._write("\n")
            else:
                elapsed = time.monotonic() - self.start
                self._write(f"[{self._bar()}] {f'{self.done}/{self.total}':>9} "
                            f"{elapsed:5.0f}s  {label}: {state}\n")

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self.enabled and self.tty and self.done != self.total:
                self._write("\n")


@dataclass
class SweepResult:
    """Rows in point order, plus counts: ``synthesized`` ran the tools this time,
    ``cached`` came from the cache, ``failed`` did not synthesize (message in the row)."""

    rows: list[dict]
    synthesized: int = 0
    cached: int = 0
    failed: int = 0
    seconds: float = 0.0
    versions: dict = field(default_factory=dict)


def _row(point: Point, result: SynthResult | None, *, cached: bool, error: str | None,
         key: str | None) -> dict:
    row = {**asdict(point)}
    r = result.report if result else None
    row.update({
        "lut": r.lut if r else None, "ff": r.ff if r else None,
        "carry": r.carry if r else None, "dsp": r.dsp if r else None,
        "bram": r.bram if r else None, "cells": sum(r.cells.values()) if r else None,
        "fmax_mhz": result.fmax_mhz if result else None,
        "area_ge": result.area_ge if result else None,
        "placed_lc": _placed_logic(r) if r else None,
    })
    # `logic`: the count every ratio and plot uses. On ECP5 an adder bit sits in half a
    # CCU2C (which holds two LUT4), so LUT4 + 2 x CCU2C; elsewhere the LUT4 (or gate)
    # count itself (an iCE40 SB_CARRY sits beside its LUT and takes no LUT of its own).
    row["logic"] = (None if r is None else
                    r.lut + 2 * r.carry if point.target == "ecp5" else r.lut)
    est = estimate_lut(point)
    row["est_logic"] = est
    row["est_err_pct"] = (round(100.0 * (est - row["logic"]) / row["logic"], 1)
                          if est is not None and row["logic"] else None)
    row["seconds"] = result.seconds if result else None
    row["cached"] = cached
    row["key"] = key
    row["error"] = error
    return row


def _placed_logic(report) -> int | None:
    for name in ("ICESTORM_LC", "TRELLIS_COMB"):
        if name in report.placed:
            return report.placed[name]["used"]
    return None


def _init_worker() -> None:
    # Ctrl-C is the parent's to handle: it terminates the pool. A terminated worker must
    # die at once: a Python-level SIGTERM handler can be stuck behind the pool's queue
    # lock (seen as a hang under load), so SIGTERM keeps its default action. The cost is
    # that an interrupted point may leave its mulfree-synth-* temporary folder behind.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _call(args):
    point, kwargs = args
    return evaluate_point(point, **kwargs)


def run_sweep(points: Iterable[Point], *, cache_dir: str | os.PathLike | None = None,
              jobs: int = 1, scheduler: str | None = None, pnr: bool = True,
              progress: bool = True, stream=None, freq: dict | None = None,
              on_result: Callable[[dict], None] | None = None) -> SweepResult:
    """Evaluate every point, from the cache where possible, ``jobs`` at a time (or on the
    Dask cluster at ``scheduler``). Each finished point is stored in the cache at once, so
    an interrupted sweep (Ctrl-C, a crash) resumes where it stopped. ``on_result`` sees
    every row as it arrives (tests use it to interrupt a sweep)."""
    points = list(points)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise InputError(f"--jobs must be a positive integer, not {jobs!r}")
    cache = Cache(cache_dir if cache_dir is not None else default_cache_dir())
    known = cache.keys()
    kwargs = {"pnr": pnr, "known_keys": known, "freq": freq}
    bar = Progress(len(points), stream=stream, enabled=progress)
    rows: dict[Point, dict] = {}
    out = SweepResult(rows=[], versions=tool_versions())
    start = time.monotonic()

    def take(res: dict) -> None:
        point = Point(**res["point"])
        result, cached, error = None, res["cached"], res["error"]
        if error is None and cached:
            result = cache.get(res["key"])
            if result is None:          # vanished or unreadable since we listed it: redo
                res = evaluate_point(point, pnr=pnr, known_keys=frozenset(), freq=freq)
                cached, error = False, res["error"]
        if error is None and result is None:
            result = SynthResult.from_json(res["result"])
            cache.put(result)
        out.cached += bool(cached and error is None)
        out.synthesized += bool(not cached and error is None)
        out.failed += error is not None
        row = _row(point, result, cached=bool(cached), error=error, key=res["key"])
        rows[point] = row
        detail = "" if result is None else (
            f"{row['lut']} {'gates' if point.target == 'generic' else 'LUT'}"
            + (f", {row['fmax_mhz']:.0f} MHz" if row["fmax_mhz"] else "")
            + f" ({result.seconds:.0f}s)")
        bar.update(point.label, cached=bool(cached and error is None), failed=error is not None,
                   detail=detail)
        if error:
            log.warning("%s failed: %s", point.label, error.splitlines()[0] if error else "")
        if on_result is not None:
            on_result(row)

    try:
        if scheduler is not None:
            _run_dask(scheduler, points, kwargs, take)
        elif jobs == 1 or len(points) <= 1:
            for p in points:
                take(evaluate_point(p, **kwargs))
        else:
            ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux")
                                              else "spawn")
            pool = ctx.Pool(min(jobs, len(points)), initializer=_init_worker)
            try:
                for res in pool.imap_unordered(_call, [(p, kwargs) for p in points]):
                    take(res)
                pool.close()
            except BaseException:
                pool.terminate()
                raise
            finally:
                pool.join()
    finally:
        bar.close()
    out.rows = [rows[p] for p in points if p in rows]
    out.seconds = round(time.monotonic() - start, 1)
    return out


def _run_dask(scheduler, points: list[Point], kwargs: dict, take) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise MulfreeError("--scheduler needs Dask's distributed scheduler: "
                           "pip install 'dask[distributed]' (the mulfree[dask] extra)") from None
    try:
        client = Client(scheduler, timeout="20s") if isinstance(scheduler, str) else scheduler
    except (OSError, TimeoutError) as e:
        raise MulfreeError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
    own = isinstance(scheduler, str)
    try:
        futures = [client.submit(evaluate_point, p, pure=False, **kwargs) for p in points]
        try:
            for fut in as_completed(futures):
                take(fut.result())
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        if own:
            client.close()
