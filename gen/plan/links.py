"""Link FIFOs: the slack between stages that lets a chain run at its slowest stage's pace.

A streaming conv2d stage takes input only while its window generator can move and a
streaming max-pool holds its window until the next stage takes it, so back to back they
stall each other and the chain runs slower than its slowest stage alone (the period the
device fit promises). FINN sizes the FIFOs between its layers by simulation; so does
:func:`add_link_fifos`, with the stages' cycle models (:mod:`mulfree.hw.timing`), which
the RTL matches cycle for cycle:

1. the chain without link FIFOs: done if it runs at its slowest stage's period;
2. every link gets the same depth, 4, 8, ... up to :data:`MAX_DEPTH`, until the chain
   reaches that period (or the deepest try, if it never does);
3. link by link, each FIFO is dropped if the chain keeps that period without it, or
   else made as shallow as keeps it (bisection).

The FIFOs hold beats between stages and never change a value; the manifest lists them
(``link_fifos``) and the resource estimate prices them (:mod:`.cost`).
"""

from __future__ import annotations

from mulfree.hw.argmax import ArgMaxSpec
from mulfree.hw.compute import ComputeSpec
from mulfree.hw.link_fifo import LinkFifoSpec
from mulfree.hw.pool import MaxPoolSpec
from mulfree.hw.timing import network_timing

__all__ = ["add_link_fifos", "stage_out_width", "MAX_DEPTH"]

# The deepest link FIFO tried (beats); a shallower one never costs more.
MAX_DEPTH = 1024
# Below 3 beats Amaranth's SyncFIFOBuffered takes a beat every other cycle.
MIN_DEPTH = 3


def stage_out_width(spec) -> int:
    """Bits of a stage's output beat."""
    if isinstance(spec, ComputeSpec):
        return spec.out_beat * spec.out_bits
    if isinstance(spec, MaxPoolSpec):
        return spec.out_beat * spec.in_bits
    raise TypeError(f"no link FIFO after a {type(spec).__name__}")


def _chain(stages, depths: dict[int, int]) -> list:
    out = []
    for k, s in enumerate(stages):
        out.append(s)
        if depths.get(k, 0) >= MIN_DEPTH:
            out.append(LinkFifoSpec(width=stage_out_width(s), depth=depths[k], after=k))
    return out


def _links(stages) -> list[int]:
    """Indices of the stages a FIFO may follow: any compute or max-pool stage with a
    next stage, except an argmax's (its layer's results feed it directly)."""
    return [k for k in range(len(stages) - 1)
            if isinstance(stages[k], (ComputeSpec, MaxPoolSpec))
            and not isinstance(stages[k + 1], ArgMaxSpec)]


def _frame_beats(spec) -> int:
    """Output beats of a stage per inference: a deeper FIFO after it never helps."""
    return spec.out_beats


def add_link_fifos(stages: list, report=None) -> list:
    """``stages`` with the link FIFOs that bring the chain to its slowest stage's period
    (module doc); ``stages`` unchanged when it runs at that period already, or when no
    stage may be followed by one. ``report(text)`` hears each step."""
    links = _links(stages)
    if not links or not all(hasattr(s, "period") or isinstance(s, ArgMaxSpec)
                            for s in stages):
        return list(stages)
    target = max(getattr(s, "period", 0) for s in stages)
    cache: dict[tuple, int] = {}

    def period(depths: dict[int, int]) -> int:
        key = tuple(sorted((k, d) for k, d in depths.items() if d >= MIN_DEPTH))
        if key not in cache:
            cache[key] = network_timing(_chain(stages, depths))[1]
        return cache[key]

    if period({}) <= target:
        return list(stages)
    caps = {k: max(MIN_DEPTH, min(MAX_DEPTH, _frame_beats(stages[k]))) for k in links}
    depth, best, goal = 4, None, None
    while True:
        depths = {k: min(depth, caps[k]) for k in links}
        p = period(depths)
        if report is not None:
            report(f"link FIFOs of {depth} beats: {p:,} cycles per inference "
                   f"(slowest stage {target:,})")
        if goal is None or p < goal:
            best, goal = depths, p
        if p <= target or depth >= max(caps.values()):
            break
        depth *= 2
    if goal >= period({}):
        return list(stages)
    depths = dict(best)
    for k in links:
        keep = depths[k]
        depths[k] = 0
        if period(depths) <= goal:
            continue
        lo, hi = MIN_DEPTH, keep           # ``hi`` keeps the goal
        while lo < hi:
            depths[k] = (lo + hi) // 2
            if period(depths) <= goal:
                hi = depths[k]
            else:
                lo = depths[k] + 1
        depths[k] = hi
    return _chain(stages, depths)
