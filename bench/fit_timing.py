"""Benchmark: the default device fit against the board clock, before and after timing.

The demo's model (``scripts/demo.sh`` step 1: a 64-16-10 PoT digits MLP, seed 1) is built
for each board twice, through Yosys and nextpnr with the UART harness:

* ``area only``: the fold fitted to the board's device by cells alone (``--device``
  without a clock: the default of ``mulfree build`` before it checked timing);
* ``default``: what ``mulfree build MODEL --board B`` does now: the fit constrained by
  the timing model at the board clock, built, checked against nextpnr's Fmax and refitted
  for a faster estimate when the clock is missed (``boards.build.build_fitted``).

Printed per build: the fold, cycles per inference, nextpnr's Fmax, whether the board clock
is met, inferences/s at the board clock (only when met), logic cells placed, and the
attempts the default flow took. Everything measured; nothing estimated is printed as a
result (the timing model's estimate is shown as such).

    .venv/bin/python bench/fit_timing.py                      # both boards, about 20 min
    .venv/bin/python bench/fit_timing.py --boards icebreaker --model out/demo/digits.mf
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOARDS = ("icebreaker", "ulx3s-85f")


def _demo_model(path: Path) -> Path:
    from mulfree.cli.main import main

    if not path.exists():
        rc = main(["train", "--dataset", "digits", "--arch", "mlp", "--hidden", "16",
                   "--scheme", "pot", "--wbits", "3", "--abits", "2", "--ibits", "4",
                   "--seed", "1", "-o", str(path)])
        if rc:
            sys.exit(rc)
    return path


def _fold_text(manifest: dict) -> str:
    parts = [f"{r['name']} {r['pe']}x{r['simd']}" for r in manifest["layers"] if "pe" in r]
    if manifest.get("device_fit", {}).get("pipeline"):
        parts.append("pipeline")
    return ", ".join(parts)


def _row(label: str, r, board) -> dict:
    from mulfree.boards.build import CELL_NAME

    met = r.fmax_mhz >= r.clk_hz / 1e6
    placed = r.resources.placed.get(CELL_NAME[board.family], {})
    return {"board": board.name, "fit": label, "fold": _fold_text(r.manifest),
            "cycles": r.cycles_per_inference, "fmax_mhz": round(r.fmax_mhz, 1),
            "clock_mhz": r.clk_hz / 1e6, "met": met,
            "inferences_per_s_at_clock": round(r.inferences_per_s_clock) if met else None,
            "placed": f"{placed.get('used')}/{placed.get('available')}",
            "attempts": [a.describe() for a in r.attempts], "kept": r.kept,
            "estimate_mhz": r.manifest.get("device_fit", {}).get("fmax_estimate_mhz")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", nargs="+", default=list(BOARDS))
    ap.add_argument("--model", type=Path, help="a .mf file (default: train the demo's)")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "bench-fit-timing")
    ap.add_argument("--skip-area-only", action="store_true",
                    help="build only the default (timing-checked) fit")
    args = ap.parse_args()
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

    from mulfree.boards.build import build, build_fitted
    from mulfree.boards.registry import get_board
    from mulfree.gen.model.format import load
    from mulfree.gen.plan.folds import load_fold

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.model or _demo_model(args.out / "digits.mf")
    model = load(path)
    rows = []
    start = time.monotonic()
    for name in args.boards:
        board = get_board(name)
        device = f"device:{board.part.name}"
        if not args.skip_area_only:
            t = time.monotonic()
            r = build(model, board, args.out / f"{name}-area-only", fold=load_fold(device))
            rows.append(_row("area only (before)", r, board))
            print(f"{name} area only: {time.monotonic() - t:.0f} s", file=sys.stderr, flush=True)
        t = time.monotonic()
        r = build_fitted(model, board, args.out / f"{name}-default", fold=load_fold(device))
        rows.append(_row("default (after)", r, board))
        print(f"{name} default: {time.monotonic() - t:.0f} s", file=sys.stderr, flush=True)

    print(f"\n{path.name}: {len(rows)} build rows in {time.monotonic() - start:.0f} s\n")
    print("| board | fit | fold | cycles/inference | Fmax MHz (nextpnr) | board clock | "
          "inferences/s at the board clock | cells placed |")
    print("|---|---|---|---:|---:|---|---:|---:|")
    for row in rows:
        clock = f"{row['clock_mhz']:g} MHz {'met' if row['met'] else 'MISSED'}"
        rate = f"{row['inferences_per_s_at_clock']:,}" if row["met"] else "(misses timing)"
        print(f"| {row['board']} | {row['fit']} | {row['fold']} | {row['cycles']} | "
              f"{row['fmax_mhz']} | {clock} | {rate} | {row['placed']} |")
    for row in rows:
        if row["attempts"]:
            print(f"\n{row['board']} {row['fit']}:")
            for a in row["attempts"]:
                print(f"  {a}")
            print(f"  kept: {row['kept']}")
    (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
