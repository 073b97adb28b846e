"""The cost sweep behind ``mulfree compare``: every point synthesized, cached, in parallel.

A *point* is one design on one target: ``(mode, scheme, wbits, abits, target)``.

``runtime``
    one MAC lane (:class:`mulfree.hw.mac.MacLane`): product unit plus accumulator, the
    weight an input. The accumulator is as wide as ``ACC_TERMS`` products need.
``baked``
    a small dense layer with constant weights (``BAKED_IN`` inputs, ``BAKED_OUT`` outputs,
    weights drawn with a fixed seed from the scheme's codebook): PoT products become
    wiring, the others constant shift-adds, summed by balanced pairwise adder trees.

Schemes: ``uniform`` (the multiplier baseline every ratio is taken against), ``pot``,
``apot``, ``lut`` (the product from a table ``P[k][c] = W[k] * A[c]`` of a LUT-Q
codebook), ``binary`` (+-1, 1-bit codes) and ``ternary`` (0, +-1, 2-bit codes).

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
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from mulfree.gen.errors import InputError, MulfreeError
from mulfree.gen.fileio import atomic_write_text

from mulfree.boards.synth import (Flow, SynthResult, Target, design_key, emit_verilog,
    harness_verilog, synthesize, tool_versions)
from mulfree.boards.toolchain import ToolchainError

__all__ = ["MODES", "SCHEMES", "TARGETS", "Point", "Grid", "QUICK_GRID", "DEFAULT_GRID",
           "build_design", "evaluate_point", "Cache", "Progress", "SweepResult", "run_sweep",
           "ACC_TERMS", "LANE_CONTROL", "lane_codebook", "BAKED_IN", "BAKED_OUT",
           "TABLE_MAX_INDEX_BITS", "default_cache_dir"]

log = logging.getLogger(__name__)

MODES = ("runtime", "baked")
SCHEMES = ("uniform", "pot", "apot", "lut", "binary", "ternary")
TARGETS = tuple(t.value for t in Target)

# The runtime lane's accumulator holds the sum of this many products without overflow.
ACC_TERMS = 64
# How the runtime lane starts and ends a sum (``MacLane(control=...)``): the running sum
# restarts by a synchronous reset on the last product, free in FPGA flip-flops, and the
# finished sum goes to an output register; the same for every scheme.
LANE_CONTROL = "last"
# The baked layer: inputs x outputs, weights from a fixed seed.
BAKED_IN = 16
BAKED_OUT = 2
BAKED_SEED = 2024
# A runtime table lane indexes P[k][c] by {k, c}: past this many index bits the table
# belongs in block RAM, not LUTs, and the point is left out of the sweep.
TABLE_MAX_INDEX_BITS = 10
# Natural code widths of the fixed-codebook schemes.
_FIXED_WBITS = {"binary": 1, "ternary": 2}


def default_cache_dir() -> Path:
    """``$MULFREE_CACHE_DIR/compare`` or ``~/.cache/mulfree/compare``."""
    base = os.environ.get("MULFREE_CACHE_DIR")
    return Path(base) / "compare" if base else Path.home() / ".cache" / "mulfree" / "compare"


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
    modes: tuple[str, ...] = MODES
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
                  abits=(8,), modes=MODES, targets=("ice40", "generic"))
DEFAULT_GRID = Grid()


# ---------------------------------------------------------------------------------------
# Designs

def _codebook(scheme: str, wbits: int) -> np.ndarray:
    from mulfree.gen.model.examples import scheme_codebook

    return np.asarray(scheme_codebook(scheme, wbits), dtype=np.int64)


def _signed_width(lo: int, hi: int) -> int:
    w = 1
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w


def lane_codebook(scheme: str, wbits: int) -> np.ndarray | None:
    """The weight values a runtime lane of ``scheme`` holds: the quantizer's codebook
    (``gen.quant.weight_levels``; ``lut``: the seeded LUT-Q one), or ``None`` where the
    quantizer has none at this width (PoT past 6 bits)."""
    from mulfree.gen.errors import InputError as _Refused
    from mulfree.gen.train.quant import weight_levels

    if scheme == "lut":
        return _codebook("lut", wbits)
    try:
        return np.asarray(weight_levels(scheme, wbits), dtype=np.int64)
    except _Refused:
        return None


def _runtime_lane(scheme: str, wbits: int, abits: int, control: str = LANE_CONTROL):
    """One MAC lane (:class:`mulfree.hw.mac.MacLane`) for the scheme's codebook at
    ``wbits``: PoT and APoT units take the codebook's real exponents, and the accumulator
    holds ``ACC_TERMS`` products of the codebook exactly (the same rule for every scheme)."""
    from mulfree.hw.mac import MacLane, apot_max_exps

    kwargs = {}
    levels = lane_codebook(scheme, wbits)
    if scheme == "uniform":
        lane_scheme, lane_wbits = "uniform", wbits
    elif scheme == "pot":
        lane_scheme, lane_wbits = "pot", wbits
        if levels is not None:
            kwargs["max_exp"] = max(int(abs(v)).bit_length() - 1 for v in levels if v)
    elif scheme == "apot":
        lane_scheme, lane_wbits = "apot", wbits
        kwargs["max_exp"], kwargs["lo_max_exp"] = apot_max_exps(levels)
    elif scheme in ("ternary", "binary"):
        lane_scheme, lane_wbits = "pot", 1            # exponent 0 only: 0, +-1
        kwargs["max_exp"] = 0
    else:
        lane_scheme, lane_wbits = "table", wbits
        kwargs["table"] = np.multiply.outer(levels, np.arange(2**abits)).tolist()
    amax = 2**abits - 1
    if levels is None:
        # The probe lane only tells us the product's bounds; it is never elaborated.
        probe = MacLane(scheme=lane_scheme, weight_bits=lane_wbits, act_bits=abits,
                        acc_width=1, **kwargs)
        lo, hi = probe.unit.bounds
        probe._MustUse__silence = probe.unit._MustUse__silence = True
    else:
        lo, hi = int(min(levels.min(), 0)) * amax, int(max(levels.max(), 0)) * amax
    acc_width = _signed_width(ACC_TERMS * min(lo, 0), ACC_TERMS * max(hi, 0))
    lane = MacLane(scheme=lane_scheme, weight_bits=lane_wbits, act_bits=abits,
                   acc_width=acc_width, control=control, **kwargs)
    if lane_scheme in ("pot", "apot"):
        # These lanes use their unit's parameters, not the unit itself: no warning for it.
        lane.unit._MustUse__silence = True
    if scheme == "binary":
        return _BinaryLane(lane)
    return lane


def _binary_lane_class():
    from amaranth.hdl import Cat, Const, Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class BinaryLane(wiring.Component):
        """A ternary lane with the zero code unused: weights +-1 from a 1-bit code (the
        sign; the exponent field tied to exponent 0)."""

        def __init__(self, lane):
            self._lane = lane
            self._port = {"first": "first", "clear": "clear", "last": "last"}[lane.control]
            super().__init__({"weight": In(1), "act": In(lane.act.shape()), "valid": In(1),
                              self._port: In(1), "acc": Out(lane.acc.shape())})

        @property
        def control(self):
            return self._lane.control

        def elaborate(self, platform):
            m = Module()
            m.submodules.lane = lane = self._lane
            m.d.comb += [lane.weight.eq(Cat(Const(0, 1), self.weight)),
                         lane.act.eq(self.act), lane.valid.eq(self.valid),
                         getattr(lane, self._port).eq(getattr(self, self._port)),
                         self.acc.eq(lane.acc)]
            return m

    return BinaryLane


def _BinaryLane(lane):
    return _binary_lane_class()(lane)


def baked_weights(scheme: str, wbits: int) -> np.ndarray:
    """The baked layer's weight *values* ``[BAKED_OUT, BAKED_IN]`` (seeded, no all-zero
    rows so no output is constant), drawn from the same codebook as the runtime lane
    (:func:`lane_codebook`: the quantizer's)."""
    rng = np.random.default_rng([BAKED_SEED, SCHEMES.index(scheme), wbits])
    cb = lane_codebook(scheme, wbits)
    if cb is None:
        raise InputError(f"{scheme} has no {wbits}-bit codebook (the quantizer refuses it)")
    while True:
        w = cb[rng.integers(0, cb.size, (BAKED_OUT, BAKED_IN))]
        if (w != 0).any(axis=1).all():
            return w


def _csd(value: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``value``: ``[(sign, shift)]`` with the fewest terms."""
    digits, shift, v = [], 0, int(value)
    while v:
        if v & 1:
            d = 2 - (v & 3)          # +1 if v = 1 mod 4, else -1
            digits.append((d, shift))
            v -= d
        v >>= 1
        shift += 1
    return digits


def _baked_layer(scheme: str, wbits: int, abits: int):
    """The baked layer's arithmetic (see :func:`_baked_core`)."""
    return _baked_core(baked_weights(scheme, wbits), abits)


def signed_terms(weights: np.ndarray) -> list[list[tuple[int, int, int]]]:
    """Per output, the baked layer's terms ``(input, sign, shift)``: each weight as
    canonical signed digits (a PoT weight is one term, an APoT weight at most two)."""
    return [[(i, sign, shift) for i, v in enumerate(row) for sign, shift in _csd(int(v))]
            for row in weights]


def _baked_core(weights, abits):
    from amaranth.hdl import Module, Signal, signed, unsigned
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from mulfree.hw.adder_tree import sum_tree
    from mulfree.hw.product import shape_for

    n_out, n_in = weights.shape
    amax = 2**abits - 1
    per_out = signed_terms(weights)
    out_width = max(_signed_width(int(np.minimum(w, 0).sum() * amax),
                                  int(np.maximum(w, 0).sum() * amax)) for w in weights)

    class BakedCore(wiring.Component):
        """``y[j] = sum_i W[j][i] * a[i]`` with W constant, built the way
        :class:`mulfree.hw.engine.LayerEngine` builds its baked mode (without its stream
        buffers): each weight as canonical signed digits (a PoT weight one shifted copy
        of the activation, an APoT weight at most two), the positive and the negative
        terms of an output in two balanced pairwise trees
        (:func:`mulfree.hw.adder_tree.sum_tree`), meeting in one subtraction.
        Combinational."""

        def __init__(self):
            super().__init__({"a": In(unsigned(abits)).array(n_in),
                              "y": Out(signed(out_width)).array(n_out)})

        def elaborate(self, platform):
            m = Module()
            for j, terms in enumerate(per_out):
                pos = [(self.a[i] << sh, 0, amax << sh) for i, sg, sh in terms if sg > 0]
                neg = [(self.a[i] << sh, 0, amax << sh) for i, sg, sh in terms if sg < 0]
                total = None
                if pos:
                    total, lo, hi, _ = sum_tree(m, pos, name=f"pos{j}")
                if neg:
                    n, nlo, nhi, _ = sum_tree(m, neg, name=f"neg{j}")
                    if total is None:
                        total = -n
                    else:
                        d = Signal(shape_for(lo - nhi, hi - nlo), name=f"diff{j}")
                        m.d.comb += d.eq(total - n)
                        total = d
                m.d.comb += self.y[j].eq(0 if total is None else total)
            return m

    return BakedCore()


def build_design(mode: str, scheme: str, wbits: int, abits: int):
    """The Amaranth component measured at a point (the target does not change it)."""
    if mode == "runtime":
        return _runtime_lane(scheme, wbits, abits)
    return _baked_layer(scheme, wbits, abits)


# ---------------------------------------------------------------------------------------
# One point (runs in a worker: a local process or a Dask worker)

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


# ---------------------------------------------------------------------------------------
# Cache

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


# ---------------------------------------------------------------------------------------
# Progress

class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, one line per point
    otherwise (so logs of CI runs stay readable)."""

    def __init__(self, total: int, stream=None, enabled: bool = True, width: int = 28) -> None:
        self.total, self.width, self.enabled = total, width, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = self.cached = self.failed = 0
        self.start = time.monotonic()

    def update(self, label: str, *, cached: bool = False, failed: bool = False,
               detail: str = "") -> None:
        self.done += 1
        self.cached += cached
        self.failed += failed
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        frac = self.done / max(1, self.total)
        bar = "#" * int(frac * self.width) + "." * (self.width - int(frac * self.width))
        state = "cached" if cached else ("FAILED" if failed else detail)
        counts = f"{self.done}/{self.total}"
        if self.tty:
            line = (f"\r[{bar}] {counts} {self.cached} cached {self.failed} failed "
                    f"{elapsed:5.0f}s  {label}: {state}")
            self.stream.write(line[:160].ljust(160) if len(line) < 160 else line[:160])
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(f"[{bar}] {counts:>9} {elapsed:5.0f}s  {label}: {state}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self.done != self.total:
            self.stream.write("\n")
            self.stream.flush()


# ---------------------------------------------------------------------------------------
# The sweep

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
    from .estimate import estimate_lut

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


# ---------------------------------------------------------------------------------------
# Whole networks: a digits MLP per scheme, trained, checked and measured

# (scheme, weight bits) of the networks in the model table; each an MLP 64-32-10 on the
# digits data set, 2-bit hidden activations, 4-bit inputs, argmax output.
MODEL_SCHEMES = (("uniform", 4), ("pot", 4), ("apot", 4), ("lut", 4), ("ternary", 2),
                 ("binary", 1))
MODEL_HIDDEN = (32,)
MODEL_EPOCHS = 15
MODEL_TARGET = "ecp5"   # the default-folded networks overflow an iCE40UP5K (5.7k-6.5k LCs)


def _model_config(scheme: str, wbits: int):
    from mulfree.gen.train.trainer import TrainConfig

    return TrainConfig(arch="mlp", hidden=MODEL_HIDDEN, scheme=scheme, wbits=wbits, abits=2,
                       ibits=4, epochs=MODEL_EPOCHS, seed=0)


def _trained_model(scheme: str, wbits: int, root: Path) -> Path:
    """Train (once: the model file is cached by its configuration and the training code)
    and return the model file."""
    import hashlib
    import inspect

    from mulfree.gen.model import format as model_io
    from mulfree.gen.train import trainer as train_mod

    cfg = _model_config(scheme, wbits)
    h = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    h.update(inspect.getsource(train_mod).encode())
    path = root / "models" / f"digits-{scheme}-w{wbits}-{h.hexdigest()[:16]}.mf"
    if not path.exists():
        net, _history = train_mod.train(cfg)
        model = train_mod.to_model(train_mod.export(net), name="digits")
        path.parent.mkdir(parents=True, exist_ok=True)
        model_io.save(model, path)
    return path


def evaluate_network(model_path: str, *, pnr: bool = True,
                     known_keys: frozenset | None = None) -> dict:
    """Worker: accuracy of the model's golden integer network on the digits test set, and
    its runtime-mode network (default folding) synthesized for ``MODEL_TARGET``."""
    out = {"model_path": model_path, "key": None, "cached": False, "result": None,
           "error": None}
    try:
        from mulfree.gen.model import format as model_io
        from mulfree.gen.plan.network import build_network
        from mulfree.gen.train.trainer import evaluate_model

        model = model_io.load(model_path)
        out["accuracy"] = round(evaluate_model(model), 4)
        net, manifest = build_network(model, "runtime", None)
        out["cycles_per_inference"] = manifest.get("cycles_per_inference")
        flow = Flow(target=MODEL_TARGET, pnr=pnr)
        text = emit_verilog(net)
        out["key"] = key = design_key(text, flow)
        if known_keys is not None and key in known_keys:
            out["cached"] = True
            return out
        harness = harness_verilog(net) if flow.runs_pnr else None
        out["result"] = synthesize(text, flow, harness_text=harness).to_json()
    except MulfreeError as e:
        out["error"] = str(e)
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}"
    return out


def _call_network(args):
    path, kwargs = args
    return evaluate_network(path, **kwargs)


def model_table(*, cache_dir=None, jobs: int = 1, quiet: bool = False,
                pnr: bool = True) -> tuple[list[dict], str]:
    """Rows of the whole-network table (one per scheme in ``MODEL_SCHEMES``) and a note
    saying how they were made."""
    cache = Cache(cache_dir if cache_dir is not None else default_cache_dir())
    paths = []
    for scheme, wbits in MODEL_SCHEMES:
        if not quiet:
            print(f"mulfree compare: digits network, {scheme} {wbits}-bit weights: training "
                  f"(cached after the first time)", file=sys.stderr, flush=True)
        paths.append(str(_trained_model(scheme, wbits, cache.root)))
    kwargs = {"pnr": pnr, "known_keys": cache.keys()}
    bar = Progress(len(paths), enabled=not quiet)
    results = []
    if jobs > 1:
        ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux")
                                          else "spawn")
        pool = ctx.Pool(min(jobs, len(paths)), initializer=_init_worker)
        try:
            results = list(pool.imap(_call_network, [(p, kwargs) for p in paths]))
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
    else:
        results = [evaluate_network(p, **kwargs) for p in paths]
    rows = []
    for (scheme, wbits), res in zip(MODEL_SCHEMES, results):
        result = None
        if res["error"] is None:
            result = cache.get(res["key"]) if res["cached"] else None
            if result is None and res["result"] is None:
                res = evaluate_network(res["model_path"], pnr=pnr, known_keys=frozenset())
            if result is None and res["error"] is None:
                result = SynthResult.from_json(res["result"])
                cache.put(result)
        bar.update(f"digits {scheme} w{wbits}", cached=bool(res.get("cached")),
                   failed=res["error"] is not None,
                   detail=f"{result.report.lut} LUT" if result else "")
        r = result.report if result else None
        fmax = result.fmax_mhz if result else None
        cycles = res.get("cycles_per_inference")
        accuracy = res.get("accuracy")
        rows.append({
            "scheme": scheme, "wbits": wbits, "model": "MLP 64-32-10, 2-bit act.",
            "target": MODEL_TARGET,
            "logic": (r.lut + 2 * r.carry if MODEL_TARGET == "ecp5" else r.lut) if r else None,
            "lut": r.lut if r else None, "carry": r.carry if r else None,
            "ff": r.ff if r else None,
            "bram": r.bram if r else None, "fmax_mhz": fmax,
            "cycles_per_inference": cycles,
            "inferences_per_s": (round(fmax * 1e6 / cycles) if fmax and cycles else None),
            "accuracy": accuracy,
            "accuracy_pct": round(100 * accuracy, 1) if accuracy is not None else None,
            "error": res["error"],
        })
    bar.close()
    note = (f"Each network: `mulfree train --arch mlp --hidden {','.join(map(str, MODEL_HIDDEN))} "
            f"--scheme S --wbits W --abits 2 --ibits 4 --epochs {MODEL_EPOCHS} --seed 0` on the "
            f"digits data set; accuracy of the golden integer model on the test split; LUTs and "
            f"Fmax of its runtime-mode network (default folding, weights in ROM) on "
            f"{MODEL_TARGET}; inferences/s = Fmax / cycles per inference.")
    return rows, note
