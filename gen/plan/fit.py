"""The device fitter: the fastest fold (PE, SIMD per layer) whose estimate fits a device.

``fold="device:NAME"`` (``--device NAME``) asks for it. The fitter

1. plans the network once (fully serial) to get every stage's parameters;
2. lists each dense/conv2d layer's candidates: ``pe`` a divisor of its output channels,
   ``simd`` a divisor of its taps, and (when the weight ROM has more than one word and
   the device has block RAM) the ROM in logic or in block RAM; layers the fold names
   explicitly keep their given ``pe``/``simd`` (and ``rom``);
3. prices every candidate with the resource model (:mod:`mulfree.gen.plan.cost`) and times it
   with the engine's own formulas (:attr:`ComputeSpec.period`, as ``_timing`` does);
4. finds the smallest cycles per inference (the slowest stage's period) for which some
   choice fits: estimated logic cells of the network plus the board harness within
   :data:`UTILIZATION` of the device's cells, flip-flops likewise, block RAMs within the
   device. For a given period the cheapest choice comes from a dynamic program over the
   stages (state: the beat width entering a stage and the block RAMs used so far, kept
   as a Pareto front), and the period is found by bisection over the candidates' periods
   (a larger period only admits more choices). Among equally fast folds the one with the
   fewest estimated cells wins; ties go to the first candidate in (pe, simd, rom) order,
   so the result is deterministic.

5. with ``clock_mhz`` in the fold (``mulfree build`` adds the board clock), also keeps
   every stage's estimated Fmax (:func:`mulfree.gen.plan.cost.stage_fmax_mhz`, a logic-level
   model of the longest path) at or above that clock, and unless the fold sets
   ``pipeline`` solves with and without it and keeps the one with fewer cycles (without
   on a tie). The estimate is a model: ``mulfree build`` checks the result with nextpnr
   and refits on a miss (:func:`mulfree.boards.build.build_fitted`).

A bigger device of the same family never gets a slower fold (its budget admits every
fold the smaller one does), and a faster clock never gets fewer cycles (it admits fewer
candidates). When not even the cheapest fold fits, :class:`InputError` says so with the
device, the estimate and the budget; when folds fit but none is estimated to reach the
clock, :class:`TimingFitError` says so with the best estimate.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from mulfree.hw.argmax import ArgMaxSpec
from mulfree.hw.compute import ComputeSpec

from .. import progress
from ..errors import InputError
from .cost import HARNESS, StageCost, stage_cost, stage_fmax_mhz
from .devices import Device, get_device
from .folds import divisors
from .stages import plan_stages

__all__ = ["UTILIZATION", "FitResult", "TimingFitError", "fit_fold", "budget"]

# Share of the device's logic cells (and flip-flops) the estimate may fill, harness
# included: nextpnr needs room to place and route (iCE40 designs above about 90% of the
# cells often fail to route or lose much Fmax), and the estimate is off by up to about
# 15% (bench/fold_fit.py).
UTILIZATION = 0.80


class TimingFitError(InputError):
    """Folds fit the device, but none is estimated to reach the asked clock;
    ``fastest_mhz`` is the best estimate among them."""

    def __init__(self, message: str, fastest_mhz: float) -> None:
        super().__init__(message)
        self.fastest_mhz = fastest_mhz


@dataclass(frozen=True)
class FitResult:
    device: Device
    layers: dict          # name -> {"pe", "simd", "rom"}
    input_values_per_beat: int
    cycles_per_inference: int
    cells: int            # estimated, network + harness
    ffs: int
    bram: int
    budget: dict
    pipeline: bool = False
    clock_mhz: float | None = None          # the clock the fit had to meet (None: any)
    fmax_estimate_mhz: float | None = None  # the timing model's, over the fitted engines

    def to_json(self) -> dict:
        d = self.device
        return {
            "device": d.to_json(),
            "utilization_budget": UTILIZATION,
            "harness_reserve": dict(HARNESS[d.family]),
            "fitted_layers": self.layers,
            "input_values_per_beat": self.input_values_per_beat,
            "cycles_per_inference": self.cycles_per_inference,
            "pipeline": self.pipeline,
            "clock_mhz": self.clock_mhz,
            "fmax_estimate_mhz": self.fmax_estimate_mhz,
            "estimate": {"cells": self.cells, "ffs": self.ffs, "bram": self.bram},
            "capacity": {"cells": d.cells, "ffs": d.ffs, "bram": d.bram_count},
            "budget": self.budget,
            "use": {"cells": round(self.cells / d.cells, 3), "ffs": round(self.ffs / d.ffs, 3),
                    "bram": round(self.bram / d.bram_count, 3) if d.bram_count else 0.0},
        }


def budget(device: Device) -> dict:
    return {"cells": int(UTILIZATION * device.cells), "ffs": int(UTILIZATION * device.ffs),
            "bram": device.bram_count}


def _stage_period(spec) -> int:
    if isinstance(spec, ArgMaxSpec):
        return spec.group // spec.in_beat + 1
    return spec.period


def _with_beat(spec, beat: int):
    window = getattr(spec, "window", None)
    if window is not None:
        # a conv2d layer's window generator takes the input beats
        return dataclasses.replace(spec, in_beat=beat,
                                   window=dataclasses.replace(window, in_beat=beat))
    return dataclasses.replace(spec, in_beat=beat)


def fit_fold(model, device: Device | str, fold: dict, mode: str = "runtime") -> FitResult:
    """Fit ``model`` to ``device``; ``fold`` is a normalized fold (``load_fold``) whose
    listed layers are kept as given. With ``fold["clock_mhz"]`` every fitted engine's
    estimated Fmax (:func:`mulfree.gen.plan.cost.stage_fmax_mhz`) must reach that clock, and
    unless the fold asks for ``pipeline`` the fitter tries it both ways and keeps the one
    with fewer cycles (without, on a tie). Returns the fitted layers and the estimate."""
    device = get_device(device)
    if mode != "runtime":
        raise InputError(f"fold: a device fit ('{device.name}') folds runtime weights; baked "
                         f"mode is fully parallel (use --mode runtime, or --fold parallel)")
    clock = fold.get("clock_mhz")
    pipelines = [True] if fold.get("pipeline") else ([False, True] if clock else [False])
    best = None
    with progress.stage(f"fitting the fold to the {device.part}") as st:
        # A lower bound first (every weight ROM priced in block RAM, at no block RAM):
        # a model far too large is refused in seconds, before every ROM is priced.
        bound = _Problem(model, device, {**fold, "pipeline": pipelines[0]}, bound=True,
                         report=st.update)
        if not bound.fits(None):
            raise InputError(_no_fit_message(model, device, bound.options, bound.reserve,
                                             bound.limit, lower_bound=True))
        for pipeline in pipelines:
            problem = _Problem(model, device, {**fold, "pipeline": pipeline},
                               report=st.update)
            if not problem.fits(None):
                raise InputError(_no_fit_message(model, device, problem.options,
                                                 problem.reserve, problem.limit))
            st.update("searching the folds")
            result = problem.fit(clock)
            if result is not None and (best is None or
                                       result.cycles_per_inference < best.cycles_per_inference):
                best = result
    if best is None:
        fastest = max(_Problem(model, device, {**fold, "pipeline": p}).fmax_bound()
                      for p in pipelines)
        raise TimingFitError(f"model '{model.name}': no fold that fits the {device.part} "
                             f"({device.name}) is estimated to reach {clock:g} MHz (the "
                             f"shortest path of any fitting fold is estimated at "
                             f"{fastest:.1f} MHz); give a fold file, or a slower clock",
                             fastest)
    return best


class _Problem:
    """One device fit with ``pipeline`` fixed: every stage's candidates, priced and timed."""

    def __init__(self, model, device: Device, fold: dict, bound: bool = False,
                 report=None) -> None:
        """``bound``: price every weight ROM as block RAM and count no block RAM (a lower
        bound on every candidate's cells, since the model's weights are non-negative);
        ``report(text)`` hears which layer is being priced."""
        self.model, self.device = model, device
        family = device.family
        base = {k: v for k, v in fold.items() if k not in ("device", "clock_mhz")}
        pinned = dict(fold.get("layers", {}))
        base["layers"] = {name: entry for name, entry in pinned.items()}
        base["default"] = "serial"
        stages, rows, _ = plan_stages(model, "runtime", base)
        names = iter(r["name"] for r in rows if "pe" in r)
        self.pipeline = bool(fold.get("pipeline"))
        self.reserve = HARNESS[family]
        self.limit = budget(device)
        has_bram = family != "gowin" and device.bram_count > 0

        # The input beat: as given, else any divisor of the input size up to 64 bits wide
        # (a wider beat means fewer input beats, which bound the first layer's period; the
        # harness pays about a cell and a flip-flop per bit of it).
        n_in = stages[0].in_count
        if "input_values_per_beat" in fold:
            self.firsts = [stages[0].in_beat]
        else:
            self.firsts = [v for v in divisors(n_in) if v * model.input_bits <= 64] or [1]
        # Per stage: {beat in: [(period, cells, ffs, bram, beat out, choice, fmax)]}, fmax
        # the timing model's estimate; a pinned layer's is infinite (the user's choice is
        # kept whatever the clock), and so is a max-pool's (not modelled).
        options = []
        beats_in = set(self.firsts)
        for spec in stages:
            per_beat = {}
            if isinstance(spec, ComputeSpec):
                name = next(names)
                if report is not None:
                    report(f"{'bounding' if bound else 'pricing'} layer '{name}'")
                entry = pinned.get(name)
                free = False
                if isinstance(entry, dict):
                    pes, simds = [spec.pe], [spec.simd]
                    roms = [entry["rom"]] if entry.get("rom") in ("block", "logic") else None
                elif entry in ("serial", "parallel", "auto"):
                    pes, simds, roms = [spec.pe], [spec.simd], None
                else:
                    pes, simds, roms = divisors(spec.out_channels), divisors(spec.taps), None
                    free = True
                for beat in sorted(beats_in):
                    opts = []
                    for pe in pes:
                        for simd in simds:
                            cand = dataclasses.replace(_with_beat(spec, beat), pe=pe,
                                                       simd=simd, out_beat=pe, rom_style=None)
                            styles = roms
                            if styles is None:
                                multi = cand.nf * cand.sf > 1
                                styles = ["logic", "block"] if multi and has_bram else \
                                    (["logic"] if multi else [None])
                            if bound:
                                styles = list(dict.fromkeys(
                                    "block" if s == "logic" else s for s in styles))
                            for rom in styles:
                                c = cand if rom is None else \
                                    dataclasses.replace(cand, rom_style=rom)
                                cost = stage_cost(c, family)
                                fmax = stage_fmax_mhz(c, family) if free and not bound \
                                    else math.inf
                                opts.append((c.period, cost.cells(family), cost.ff,
                                             0 if bound else cost.bram,
                                             pe, (name, pe, simd, rom), fmax))
                    per_beat[beat] = opts
            else:
                for beat in sorted(beats_in):
                    c = _with_beat(spec, beat)
                    cost: StageCost = stage_cost(c, family)
                    out = 1 if isinstance(spec, ArgMaxSpec) else c.out_beat
                    per_beat[beat] = [(_stage_period(c), cost.cells(family), cost.ff,
                                       cost.bram, out, None, stage_fmax_mhz(c, family))]
            options.append(per_beat)
            beats_in = {o[4] for opts in per_beat.values() for o in opts}
        self.options = options
        self.periods = sorted({o[0] for pb in options for opts in pb.values() for o in opts})

    def solve(self, period: int, clock: float | None):
        """The cheapest choice with every stage's period at most ``period`` and (with a
        ``clock``) every estimated Fmax at least ``clock``; None if there is none."""
        limit, bits = self.limit, self.model.input_bits
        cell_cap = limit["cells"] - self.reserve["cells"]
        ff_cap = limit["ffs"] - self.reserve["ff"]
        bram_cap = limit["bram"] - self.reserve["bram"]
        # state: beat -> list of (bram, cells, ffs, picks, fmax) Pareto-minimal in
        # (bram, cells, ffs)
        states = {v: [(0, v * bits, v * bits, (("in", v),), math.inf)] for v in self.firsts}
        for per_beat in self.options:
            nxt: dict[int, list] = {}
            for beat, front in states.items():
                for per, cells, ffs, bram, out, choice, fmax in per_beat.get(beat, ()):
                    if per > period or (clock is not None and fmax < clock):
                        continue
                    for b0, c0, f0, picks, m0 in front:
                        b, c, f = b0 + bram, c0 + cells, f0 + ffs
                        if b > bram_cap or c > cell_cap or f > ff_cap:
                            continue
                        nxt.setdefault(out, []).append(
                            (b, c, f, picks + ((choice,) if choice else ()), min(m0, fmax)))
            states = {beat: _pareto(front) for beat, front in nxt.items()}
            if not states:
                return None
        return min((s for front in states.values() for s in front),
                   key=lambda s: (s[1], s[0]), default=None)

    def fits(self, clock: float | None) -> bool:
        return self.solve(self.periods[-1], clock) is not None

    def fmax_bound(self) -> float:
        """The highest estimated Fmax of any fold that fits (bisection over the clock)."""
        lo, hi = 0.0, 1000.0
        for _ in range(30):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.fits(mid) else (lo, mid)
        return lo

    def fit(self, clock: float | None) -> FitResult | None:
        periods = self.periods
        if self.solve(periods[-1], clock) is None:
            return None
        lo, hi = 0, len(periods) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self.solve(periods[mid], clock) is not None:
                hi = mid
            else:
                lo = mid + 1
        bram, cells, ffs, picks, fmax = self.solve(periods[lo], clock)
        layers = {}
        in_vpb = picks[0][1]
        for name, pe, simd, rom in picks[1:]:
            entry = {"pe": pe, "simd": simd}
            if rom is not None:
                entry["rom"] = rom
            layers[name] = entry
        return FitResult(device=self.device, layers=layers, input_values_per_beat=in_vpb,
                         cycles_per_inference=periods[lo],
                         cells=cells + self.reserve["cells"], ffs=ffs + self.reserve["ff"],
                         bram=bram + self.reserve["bram"], budget=self.limit,
                         pipeline=self.pipeline,
                         clock_mhz=clock,
                         fmax_estimate_mhz=None if math.isinf(fmax) else round(fmax, 1))


def _pareto(front: list) -> list:
    """Keep states not dominated in (bram, cells, ffs); first found wins ties (a state's
    estimated Fmax rides along: it only ever passed the clock, so any survivor does)."""
    front = sorted(front, key=lambda s: (s[0], s[1], s[2]))
    out = []
    for s in front:
        if any(o[0] <= s[0] and o[1] <= s[1] and o[2] <= s[2] for o in out):
            continue
        out.append(s)
    return out


def _no_fit_message(model, device: Device, options, reserve, limit,
                    lower_bound: bool = False) -> str:
    # The cheapest choice per stage, ignoring how beats chain (a lower bound).
    cells = reserve["cells"] + sum(min(o[1] for opts in pb.values() for o in opts)
                                   for pb in options)
    bram = reserve["bram"] + sum(min(o[3] for opts in pb.values() for o in opts)
                                 for pb in options)
    what = (f"estimated {'at least ' if lower_bound else ''}{cells} logic cells with the "
            f"harness{' (before counting the weight ROMs)' if lower_bound else ''}, budget "
            f"{limit['cells']} ({int(UTILIZATION * 100)}% of {device.cells})")
    if bram > device.bram_count:
        what += f", and {bram} block RAMs of {device.bram_count}"
    return (f"model '{model.name}' does not fit the {device.part} ({device.name}) even with "
            f"its cheapest fold: {what}; choose a larger device")
