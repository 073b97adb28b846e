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

import bisect
import dataclasses
import math
from dataclasses import dataclass

from mulfree.hw.argmax import ArgMaxSpec
from mulfree.hw.compute import ComputeSpec

from .. import progress
from ..errors import InputError
from .cost import (FLASH_LOADER, HARNESS, StageCost, lane_luts, stage_cost, stage_fmax_mhz,
                   threshold_memories)
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
    layers: dict          # name -> {"pe", "simd", "rom", "thresholds", "threshold_memory"}
    input_values_per_beat: int
    cycles_per_inference: int
    cells: int            # estimated, network + harness
    ffs: int
    bram: int
    budget: dict
    pipeline: bool = False
    clock_mhz: float | None = None          # the clock the fit had to meet (None: any)
    fmax_estimate_mhz: float | None = None  # the timing model's, over the fitted engines
    spram: int = 0                          # SPRAM blocks (iCE40 UltraPlus)

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
            "estimate": {"cells": self.cells, "ffs": self.ffs, "bram": self.bram,
                         "spram": self.spram},
            "capacity": {"cells": d.cells, "ffs": d.ffs, "bram": d.bram_count,
                         "spram": d.spram_count},
            "budget": self.budget,
            "use": {"cells": round(self.cells / d.cells, 3), "ffs": round(self.ffs / d.ffs, 3),
                    "bram": round(self.bram / d.bram_count, 3) if d.bram_count else 0.0,
                    **({"spram": round(self.spram / d.spram_count, 3)} if d.spram_count
                       else {})},
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
    _check_memory(model, device)
    clock = fold.get("clock_mhz")
    pipelines = [True] if fold.get("pipeline") else ([False, True] if clock else [False])
    best = None
    with progress.stage(f"fitting the fold to the {device.part}") as st:
        # A lower bound first (every weight ROM priced in block RAM, at no block RAM):
        # a model far too large is refused in seconds, before every ROM is priced.
        periods = {}
        bound = _Problem(model, device, {**fold, "pipeline": pipelines[0]}, bound=True,
                         report=st.update, periods=periods)
        if not bound.fits(None):
            raise InputError(_no_fit_message(model, device, bound.options, bound.reserve,
                                             bound.limit, lower_bound=True))
        for pipeline in pipelines:
            problem = _Problem(model, device, {**fold, "pipeline": pipeline},
                               report=st.update, periods=periods)
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


# Bits of ROM a logic cell (LUT4) can hold at most: a 16-entry truth table.
LOGIC_ROM_BITS_PER_CELL = 16


def model_memory_bits(model) -> list[tuple[str, int]]:
    """Per dense/conv2d layer, the bits its weights and thresholds need wherever they are
    put, at least: ``[(name, bits)]``, the weight codes at their code width and each
    threshold at the width of the layer's threshold values (one pass over the arrays,
    no planning: the check that uses it must be quick on any model)."""
    out = []
    for layer in model.layers:
        w = getattr(layer, "weights", None)
        if w is None:
            continue
        bits = int(w.codes.size) * int(w.bits)
        t = getattr(layer.output, "thresholds", None)
        if t is not None and t.size:
            lo, hi = int(t.min()), int(t.max())
            width = max((lo if lo >= 0 else -lo - 1).bit_length(),
                        (hi if hi >= 0 else -hi - 1).bit_length()) + 1
            bits += int(t.size) * width
        out.append((layer.name, bits))
    return out


def _check_memory(model, device: Device) -> None:
    """Refuse at once (one pass over the layers, no search) a model whose weights and
    thresholds exceed everything the device could hold them in: its memory blocks plus
    :data:`LOGIC_ROM_BITS_PER_CELL` bits per logic cell of the budget."""
    layers = model_memory_bits(model)
    need = sum(b for _, b in layers)
    logic = budget(device)["cells"] * LOGIC_ROM_BITS_PER_CELL
    if need <= device.memory_bits + logic:
        return
    name, big = max(layers, key=lambda nb: nb[1])
    blocks = f"{device.bram_count} x {device.bram.bits:,}-bit {device.bram.name}"
    if device.spram_count:
        blocks += f" and {device.spram_count} x 262,144-bit SPRAM"
    raise InputError(f"model '{model.name}' fits no memory arrangement on the {device.part} "
                     f"({device.name}): its weights and thresholds are {need:,} bits, the "
                     f"largest layer '{name}' alone {big:,} bits, and the device's memories "
                     f"hold {device.memory_bits:,} bits ({blocks}), plus at most {logic:,} "
                     f"in logic; choose a larger device")


class _Problem:
    """One device fit with ``pipeline`` fixed: every stage's candidates, priced and timed.

    A candidate is ``(period, cells, ffs, bram, spram, beat out, choice, fmax)``;
    ``choice`` is ``(name, pe, simd, rom, thresholds, threshold_memory)`` for a compute
    layer (None for a stage without choices)."""

    def __init__(self, model, device: Device, fold: dict, bound: bool = False,
                 report=None, periods: dict | None = None) -> None:
        """``bound``: price every weight ROM as block RAM and count no memory block (a lower
        bound on every candidate's cells, since the model's weights are non-negative);
        ``report(text)`` hears which layer is being priced; ``periods``: the layers'
        periods already computed by another problem of the same model and fold (filled
        in here)."""
        self.model, self.device = model, device
        self.period_memo = {} if periods is None else periods
        family = device.family
        base = {k: v for k, v in fold.items() if k not in ("device", "clock_mhz")}
        pinned = dict(fold.get("layers", {}))
        base["layers"] = {name: entry for name, entry in pinned.items()}
        base["default"] = "serial"
        stages, rows, _ = plan_stages(model, "runtime", base)
        # the same with every free threshold layer's bias folded (a memory threshold
        # unit's accumulator bounds and thresholds)
        mem_base = dict(base, layers={
            **{r["name"]: {"pe": 1, "simd": 1, "thresholds": "search"}
               for r in rows if "threshold_unit" in r},
            **base["layers"]})
        mem_stages = plan_stages(model, "runtime", mem_base)[0]
        names = iter(r["name"] for r in rows if "pe" in r)
        self.pipeline = bool(fold.get("pipeline"))
        self.reserve = HARNESS[family]
        self.limit = budget(device)
        has_bram = family != "gowin" and device.bram_count > 0
        has_spram = device.spram_count > 0

        # The input beat: as given, else any divisor of the input size up to 64 bits wide
        # (a wider beat means fewer input beats, which bound the first layer's period; the
        # harness pays about a cell and a flip-flop per bit of it).
        n_in = stages[0].in_count
        if "input_values_per_beat" in fold:
            self.firsts = [stages[0].in_beat]
        else:
            fitting = [v for v in divisors(n_in) if v * model.input_bits <= 64] or [1]
            # the largest divisor up to each power of two: beats within a factor of two
            # of any width, and few of them (every one multiplies the first layer's
            # candidates)
            self.firsts = sorted({max(v for v in fitting if v <= 1 << k)
                                  for k in range(7) if any(v <= 1 << k for v in fitting)})
        # Per stage: {beat in: [candidate]}, fmax the timing model's estimate; a pinned
        # layer's is infinite (the user's choice is kept whatever the clock), and so is a
        # max-pool's (not modelled).
        options = []
        beats_in = set(self.firsts)
        for spec, mem_spec in zip(stages, mem_stages):
            per_beat = {}
            if isinstance(spec, ComputeSpec):
                name = next(names)
                if report is not None:
                    report(f"{'bounding' if bound else 'pricing'} layer '{name}'")
                entry = pinned.get(name)
                free = False
                thrs = ["parallel"] if spec.thresholds is None else None
                thr_mems = thr_logic = None
                if isinstance(entry, dict):
                    pes, simds = [spec.pe], [spec.simd]
                    roms = [entry["rom"]] if entry.get("rom") in ("block", "logic", "spram") \
                        else None
                    if "thresholds" in entry:
                        thrs = [entry["thresholds"]]
                    if entry.get("threshold_memory", "auto") != "auto":
                        thr_mems = [entry["threshold_memory"]]
                    if "threshold_logic_levels" in entry:
                        thr_logic = [entry["threshold_logic_levels"]]
                elif entry in ("serial", "parallel", "auto"):
                    pes, simds, roms = [spec.pe], [spec.simd], None
                    thrs = ["parallel"]
                else:
                    pes, simds, roms = divisors(spec.out_channels), divisors(spec.taps), None
                    free = True
                # a lower bound on a candidate's cells: its product units alone (a fold
                # whose lanes cannot fit the budget is not priced)
                lane = lane_luts(spec.unit_kind, spec.unit_params, spec.in_bits,
                                 spec.act_decode, family)
                cap = self.limit["cells"] - self.reserve["cells"]
                for beat in sorted(beats_in):
                    opts = []
                    for pe in pes:
                        for simd in simds:
                            if free and pe * simd * lane > cap:
                                continue
                            units = thrs or (["parallel", "search"] +
                                             (["sequential"] if spec.taps // simd >=
                                              spec.out_bits else []))
                            opts += self._candidates(
                                name, spec, mem_spec, beat, pe, simd, units, roms, thr_mems,
                                thr_logic, free, has_bram, has_spram, bound)
                    per_beat[beat] = _prune(opts)
            else:
                for beat in sorted(beats_in):
                    c = _with_beat(spec, beat)
                    cost: StageCost = stage_cost(c, family)
                    out = 1 if isinstance(spec, ArgMaxSpec) else c.out_beat
                    per_beat[beat] = [(_stage_period(c), cost.cells(family), cost.ff,
                                       cost.bram, cost.spram, out, None,
                                       stage_fmax_mhz(c, family))]
            options.append(per_beat)
            beats_in = {o[5] for opts in per_beat.values() for o in opts}
        self.options = options
        self.periods = sorted({o[0] for pb in options for opts in pb.values() for o in opts})

    def _candidates(self, name, spec, mem_spec, beat, pe, simd, units, roms, thr_mems,
                    thr_logic, free, has_bram, has_spram, bound=False) -> list:
        """One (pe, simd) of a compute layer at input beat ``beat``: every threshold unit,
        threshold memory and weight ROM placement. The resource model is additive in
        the ROM's placement and the threshold unit (their features, flip-flops and
        memories do not depend on each other, nor the period on the ROM), so each
        threshold unit is priced with the first ROM placement and each other placement
        by its difference, on the first unit. With ``bound`` (a lower bound, see
        :class:`_Problem`) a ROM in logic is priced in block RAM and no candidate counts its
        memory blocks."""
        family = self.device.family
        out = []
        first = None
        periods = self.period_memo
        for thr in units:
            base_spec = spec if thr == "parallel" else mem_spec
            cand = dataclasses.replace(_with_beat(base_spec, beat), pe=pe, simd=simd,
                                       out_beat=pe, rom_style=None, threshold_unit=thr,
                                       threshold_style=None)
            styles = roms
            if styles is None:
                depth, width = cand.nf * cand.sf, pe * simd * cand.weight_bits
                # SPRAM only for a ROM of more than one block RAM's bits (a smaller one is
                # never cheaper there than in a block)
                big = depth * width > self.device.bram.bits
                styles = (["logic"] + (["block"] if has_bram else []) +
                          (["spram"] if has_spram and big else [])) if depth > 1 else [None]
            if bound:
                styles = list(dict.fromkeys("block" if s == "logic" else s for s in styles))
            # the sequential unit's memory in SPRAM or not; the search unit's first
            # levels in logic where they would take block RAMs
            if thr == "sequential":
                big = (cand.nf << cand.out_bits) * cand.threshold_width > self.device.bram.bits
                mems = thr_mems or ([None, "spram"] if has_spram and big else [None])
            elif thr == "search":
                blocks = [p == "block" for _, _, p in threshold_memories(cand, family)]
                mems = thr_logic or [0] + [n for n in (1, 2) if n < len(blocks) and
                                           blocks[n - 1]]
            else:
                mems = [None]
            if first is None:
                # the ROM placements' differences, on this first unit
                costs = [stage_cost(dataclasses.replace(cand, rom_style=r), family)
                         for r in styles]
                first = [(r, c.lut - costs[0].lut, c.ff - costs[0].ff,
                          c.bram - costs[0].bram, c.spram - costs[0].spram)
                         for r, c in zip(styles, costs)]
            for tm in mems:
                c = dataclasses.replace(
                    cand, rom_style=styles[0],
                    threshold_style=None if isinstance(tm, int) else tm,
                    threshold_logic_levels=tm if isinstance(tm, int) else 0)
                cost = stage_cost(c, family)
                fmax = stage_fmax_mhz(c, family) if free and not bound else math.inf
                # the period depends on the threshold unit through its latency alone (not
                # on its memories nor the ROM); a conv2d layer's is a cycle model's run,
                # kept for the other problems of the same fit
                key = (name, beat, pe, simd, c.lag, c.pipeline, c.double_buffer,
                       c.out_in_memory)
                if key not in periods:
                    periods[key] = c.period
                period = periods[key]
                for rom, dl, df, db, ds in first:
                    lut, ff = cost.lut + dl, cost.ff + df
                    cells = StageCost(lut=lut, ff=ff, bram=0, rom="").cells(family)
                    bram, spram = (0, 0) if bound else (cost.bram + db, cost.spram + ds)
                    out.append((period, cells, ff, bram, spram, pe,
                                (name, pe, simd, rom, thr, tm), fmax))
        return out

    def solve(self, period: int, clock: float | None):
        """The cheapest choice with every stage's period at most ``period`` and (with a
        ``clock``) every estimated Fmax at least ``clock``; None if there is none."""
        limit, bits = self.limit, self.model.input_bits
        cell_cap = limit["cells"] - self.reserve["cells"]
        ff_cap = limit["ffs"] - self.reserve["ff"]
        bram_cap = limit["bram"] - self.reserve["bram"]
        spram_cap = self.device.spram_count
        # the coarsest steps a large front is thinned to (see _thin)
        grain = (max(1, limit["bram"] // 64), max(1, cell_cap // 1024),
                 max(1, ff_cap // 1024))
        # state: beat -> list of (bram, spram, cells, ffs, picks, fmax) Pareto-minimal in
        # (bram, spram, cells, ffs)
        states = {v: [(0, 0, v * bits, v * bits, (("in", v),), math.inf)] for v in self.firsts}
        for per_beat in self.options:
            nxt: dict[int, list] = {}
            for beat, front in states.items():
                for per, cells, ffs, bram, spram, out, choice, fmax in per_beat.get(beat, ()):
                    if per > period or (clock is not None and fmax < clock):
                        continue
                    for b0, s0, c0, f0, picks, m0 in front:
                        b, sp, c, f = b0 + bram, s0 + spram, c0 + cells, f0 + ffs
                        if spram and not s0:
                            # the first SPRAM brings the flash loader into the design
                            c, f = c + FLASH_LOADER["cells"], f + FLASH_LOADER["ff"]
                        if b > bram_cap or sp > spram_cap or c > cell_cap or f > ff_cap:
                            continue
                        nxt.setdefault(out, []).append(
                            (b, sp, c, f, picks + ((choice,) if choice else ()),
                             min(m0, fmax)))
            states = {beat: _thin(_pareto(front), grain) for beat, front in nxt.items()}
            if not states:
                return None
        return min((s for front in states.values() for s in front),
                   key=lambda s: (s[2], s[0], s[1]), default=None)

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
        return self.result(periods[lo], clock)

    def result(self, period: int, clock: float | None) -> FitResult:
        """The cheapest choice at ``period`` (which must have one) as a :class:`FitResult`."""
        bram, spram, cells, ffs, picks, fmax = self.solve(period, clock)
        layers = {}
        in_vpb = picks[0][1]
        for name, pe, simd, rom, thr, tm in picks[1:]:
            entry = {"pe": pe, "simd": simd}
            if rom is not None:
                entry["rom"] = rom
            if thr != "parallel":
                entry["thresholds"] = thr
            if isinstance(tm, int):
                if tm:
                    entry["threshold_logic_levels"] = tm
            elif tm is not None:
                entry["threshold_memory"] = tm
            layers[name] = entry
        return FitResult(device=self.device, layers=layers, input_values_per_beat=in_vpb,
                         cycles_per_inference=period,
                         cells=cells + self.reserve["cells"], ffs=ffs + self.reserve["ff"],
                         bram=bram + self.reserve["bram"], budget=self.limit,
                         pipeline=self.pipeline,
                         clock_mhz=clock,
                         fmax_estimate_mhz=None if math.isinf(fmax) else round(fmax, 1),
                         spram=spram)


def _prune(opts: list) -> list:
    """A stage's candidates for one input beat without those another candidate with the
    same output beat dominates (no slower, no more cells, flip-flops, block RAMs or
    SPRAMs, no lower estimated Fmax); the first of equals stays."""
    keep = []
    for o in sorted(opts, key=lambda o: (o[5], o[0], o[1], o[2], o[3], o[4], -o[7])):
        if any(k[5] == o[5] and k[0] <= o[0] and k[1] <= o[1] and k[2] <= o[2] and
               k[3] <= o[3] and k[4] <= o[4] and k[7] >= o[7] for k in keep):
            continue
        keep.append(o)
    return keep


# States kept per beat between stages before the front is thinned (see _thin).
FRONT_CAP = 256


def _thin(front: list, grain: tuple[int, int, int]) -> list:
    """A Pareto front of more than :data:`FRONT_CAP` states, thinned: dominance judged on
    block RAMs, cells and flip-flops rounded down to steps (``grain``: about 1/64 of the
    device's block RAMs and 1/1024 of its cell and flip-flop budgets, doubled until the
    front is small enough), the first (cheapest) state of a step kept. Only a large
    device's fit meets it (a CNV on the ECP5-85F reached 11,000 states a stage, and
    the search's work grows with the front times the candidates); the cost is that the
    fold found may be a few steps per stage above the cheapest at its period, or, where
    a dropped state alone left room for a later stage's cheaper candidate, a slower
    one; never one over the budget. Smaller fronts are returned as they are."""
    if len(front) <= FRONT_CAP:
        return front
    gb, gc, gf = grain
    while len(front) > FRONT_CAP:
        front = _pareto(front, (gb, gc, gf))
        gb, gc, gf = gb * 2, gc * 2, gf * 2
    return front


def _pareto(front: list, grain: tuple[int, int, int] = (1, 1, 1)) -> list:
    """Keep states not dominated in (bram, spram, cells, ffs); first found wins ties (a
    state's estimated Fmax rides along: it only ever passed the clock, so any survivor
    does).

    States sorted by (bram, spram, cells, ffs): every kept state before ``s`` has no more
    block RAMs, so ``s`` is dominated when some kept state with no more SPRAMs has no more
    cells and flip-flops. Per SPRAM count the kept states' (cells, ffs) form a staircase
    (cells rising, ffs falling), queried by bisection: ``n log n`` rather than ``n**2``
    (a CNV on the ECP5-85F keeps thousands of states per stage)."""
    gb, gc, gf = grain
    keyed = sorted((((s[0] // gb, s[1], s[2] // gc, s[3] // gf), s) for s in front),
                   key=lambda ks: (ks[0], ks[1][0], ks[1][2], ks[1][3]))
    stairs: dict[int, tuple[list, list]] = {}     # spram -> (cells ascending, ffs)
    out = []
    for (b, sp, c, f), s in keyed:
        dominated = False
        for sp0, (cs, fs) in stairs.items():
            if sp0 > sp:
                continue
            i = bisect.bisect_right(cs, c)
            if i and fs[i - 1] <= f:
                dominated = True
                break
        if dominated:
            continue
        out.append(s)
        cs, fs = stairs.setdefault(sp, ([], []))
        i = bisect.bisect_left(cs, c)
        j = i
        while j < len(cs) and fs[j] >= f:
            j += 1
        cs[i:j], fs[i:j] = [c], [f]
    return out


def _no_fit_message(model, device: Device, options, reserve, limit,
                    lower_bound: bool = False) -> str:
    # The cheapest choice per stage, ignoring how beats chain (a lower bound).
    cheapest = [min((o for opts in pb.values() for o in opts), key=lambda o: (o[1], o[3], o[4]))
                for pb in options]
    cells = reserve["cells"] + sum(o[1] for o in cheapest)
    bram = reserve["bram"] + sum(min(o[3] for opts in pb.values() for o in opts)
                                 for pb in options)
    spram = sum(min(o[4] for opts in pb.values() for o in opts) for pb in options)
    what = (f"estimated {'at least ' if lower_bound else ''}{cells} logic cells with the "
            f"harness{' (before counting the weight ROMs)' if lower_bound else ''}, budget "
            f"{limit['cells']} ({int(UTILIZATION * 100)}% of {device.cells})")
    if bram > device.bram_count:
        what += f", and {bram} block RAMs of {device.bram_count}"
    if spram > device.spram_count:
        what += f", and {spram} SPRAMs of {device.spram_count}"
    if not lower_bound and cells <= limit["cells"] and bram <= device.bram_count and \
            spram <= device.spram_count:
        # each alone fits: the logic and the memories do not fit together
        what = (f"the fold cheapest in logic ({cells} logic cells with the harness, budget "
                f"{limit['cells']}) needs {sum(o[3] for o in cheapest)} block RAMs and "
                f"{sum(o[4] for o in cheapest)} SPRAMs (the device has {device.bram_count} "
                f"and {device.spram_count}), and no fold with fewer memories fits the logic")
    return (f"model '{model.name}' does not fit the {device.part} ({device.name}) even with "
            f"its cheapest fold: {what}; choose a larger device")
