"""``mulfree build``, ``mulfree program`` and ``mulfree run``: the board commands."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mulfree.gen.model import golden
from mulfree.gen.errors import MulfreeError
from mulfree.gen.fileio import load_npy, save_npy
from mulfree.gen.model.format import load
from mulfree.gen.plan.devices import device_names
from mulfree.gen.plan.folds import load_fold

from mulfree.boards.build import DEFAULT_ATTEMPTS, DEFAULT_BAUD, DEFAULT_PLL_ATTEMPTS
from mulfree.boards.registry import BOARDS, get_board

__all__ = ["add_arguments", "run"]

log = logging.getLogger(__name__)


def _board_list() -> str:
    return ", ".join(n for n, b in BOARDS.items() if not b.unsupported)


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "build":
        parser.add_argument("model", help="model description (.mf)")
        parser.add_argument("--board", "-b", required=True, metavar="BOARD",
                            help=f"one of: {_board_list()}")
        parser.add_argument("-o", "--out", metavar="DIR",
                            help="output folder (default: build/<model>-<board>)")
        _network_args(parser)
        parser.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                            help=f"UART baud rate (default {DEFAULT_BAUD})")
        parser.add_argument("--nodsp", action="store_true",
                            help="ECP5: keep multipliers out of the DSP blocks (synth_ecp5 -nodsp)")
        parser.add_argument("--attempts", type=_positive_int, default=DEFAULT_ATTEMPTS,
                            metavar="N",
                            help=f"device fit at a fixed clock (--clock-mhz, --no-pll, a "
                                 f"board without PLL): builds allowed to meet it (nextpnr's "
                                 f"Fmax; each retry refits for a shorter path; default "
                                 f"{DEFAULT_ATTEMPTS}, 1: no retry)")
        parser.add_argument("--pll-attempts", type=_count, default=DEFAULT_PLL_ATTEMPTS,
                            metavar="N",
                            help=f"PLL step: builds allowed after the first, each at the "
                                 f"highest clock the PLL makes at or below nextpnr's Fmax "
                                 f"(default {DEFAULT_PLL_ATTEMPTS}; 0: none)")
    elif name == "program":
        parser.add_argument("dir", metavar="DIR", help="a folder written by 'mulfree build'")
        parser.add_argument("--dry-run", action="store_true",
                            help="print the programming command instead of running it")
    elif name == "run":
        parser.add_argument("--port", "-p", required=True, metavar="DEV",
                            help="serial port of the board (e.g. /dev/ttyUSB1)")
        parser.add_argument("model", help="model description (.mf) the board was built from")
        parser.add_argument("inputs", metavar="X.npy",
                            help="input codes: one sample or a batch [N, *input shape]")
        parser.add_argument("--build", metavar="DIR",
                            help="the build folder: take the framing and baud rate from its "
                                 "report.json")
        parser.add_argument("--board", "-b", metavar="BOARD",
                            help=f"without --build: the board it was built for ({_board_list()}); "
                                 f"the fold is then the one 'mulfree build' fits to it (or "
                                 f"the report in build/<model>-<board>/ when there is one)")
        _network_args(parser)
        parser.add_argument("--baud", type=int, default=None,
                            help=f"UART baud rate (default: the build's, else {DEFAULT_BAUD})")
        parser.add_argument("--timeout", type=float, default=2.0,
                            help="seconds to wait for a reply (default 2)")
        parser.add_argument("-o", "--out", metavar="Y.npy", help="save the outputs here")
        parser.add_argument("--no-check", action="store_true",
                            help="do not compare with the golden model")


def _clock_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clock-mhz", type=float, metavar="MHZ",
                        help="run the core at this clock through the board's PLL (the "
                             "highest frequency it makes at or below, within 1%%); the fit "
                             "aims at it, and a clock nextpnr does not meet is a warning "
                             "(default: the highest clock the fit and nextpnr agree on)")
    parser.add_argument("--no-pll", action="store_true",
                        help="keep the core on the board clock (no PLL step)")


def _network_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=("runtime", "baked"), default="runtime",
                        help="runtime: weights in ROM, folded; baked: weights as constants "
                             "in the logic, fully parallel (default runtime)")
    parser.add_argument("--fold", metavar="FILE",
                        help="fold file (JSON, see docs/hardware.md) or a preset: auto, serial, "
                             "parallel (default: fitted to the board's device and clock)")
    parser.add_argument("--device", metavar="NAME",
                        help=f"fit the fold to this device (runtime mode): one of "
                             f"{', '.join(device_names())}")
    parser.add_argument("--standin", action="store_true", help=argparse.SUPPRESS)
    _clock_args(parser)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _load_fold(path: str | None, device: str | None = None):
    """The generator's own fold reader: a file, a preset, a device fit (``--device``), or
    None for the default."""
    from .verilog import fold_argument

    fold = fold_argument(path, device)
    return None if fold is None else load_fold(fold)


def run(args: argparse.Namespace) -> int:
    return {"build": _build, "program": _program, "run": _run}[args.command](args)


def _build(args) -> int:
    from mulfree.boards.build import build_clocked, format_report, requested_clock

    model = load(args.model)
    board = get_board(args.board)
    if args.clock_mhz is not None:
        if args.no_pll:
            raise MulfreeError("--clock-mhz and --no-pll exclude each other")
        requested_clock(board, args.clock_mhz)      # a clock the PLL cannot make: exit 2 now
    out = Path(args.out) if args.out else Path("build") / f"{Path(args.model).stem}-{board.name}"
    print(f"mulfree build: {model.name} for {board.title}, {args.mode} weights -> {out}",
          file=sys.stderr, flush=True)
    device = args.device
    if device is None and args.fold is None and args.mode == "runtime":
        device = board.part.name      # the default: the fastest fold that fits this board
    fold = _load_fold(args.fold, device)
    board_mhz = board.clk_freq / 1e6
    if args.clock_mhz is not None:
        clock = f"at the requested {args.clock_mhz:g} MHz"
    elif board.pll and not args.no_pll and args.pll_attempts > 0:
        clock = (f"at the clock with the most estimated inferences/s, then the PLL ({board.pll}"
                 f") at the highest clock nextpnr meets")
    elif board.pll:
        clock = f"at the {board_mhz:g} MHz board clock (--no-pll)"
    else:
        clock = f"at the {board_mhz:g} MHz board clock ({board.no_pll})"
    if device is not None:
        print(f"mulfree build: fold fitted to the {fold['device']} {clock} (estimates, "
              f"checked with nextpnr; --fold auto or a fold file to choose it yourself)",
              file=sys.stderr, flush=True)
    else:
        print(f"mulfree build: {clock}", file=sys.stderr, flush=True)
    result = build_clocked(model, board, out, fitted=device is not None, fold=fold,
                           clock_mhz=args.clock_mhz, use_pll=not args.no_pll,
                           attempts=args.attempts, pll_attempts=args.pll_attempts,
                           progress=lambda text: print(f"mulfree build: {text}",
                                                       file=sys.stderr, flush=True),
                           mode=args.mode, baud=args.baud, nodsp=args.nodsp,
                           standin=args.standin, model_label=Path(args.model).name)
    print(format_report(result))
    for w in result.warnings:
        print(f"mulfree build: warning: {w}", file=sys.stderr)
    print(f"wrote {result.bitstream}, {out / 'report.json'}, {out / 'report.txt'}")
    return 0


def _program(args) -> int:
    folder = Path(args.dir)
    try:
        report = json.loads((folder / "report.json").read_text())
    except FileNotFoundError:
        raise MulfreeError(f"{folder}: no report.json (run 'mulfree build ... -o {folder}' "
                           f"first)") from None
    board = get_board(report["board"])
    bitstream = folder / report["bitstream"]
    if not bitstream.exists():
        raise MulfreeError(f"{bitstream}: the bitstream is missing (rebuild)")
    tried = []
    for cmd in board.programmers:
        tried.append(cmd[0])
        exe = shutil.which(cmd[0])
        if exe is None:
            continue
        argv = [exe] + [a.replace("{bitstream}", str(bitstream)) for a in cmd[1:]]
        print(" ".join(argv))
        if args.dry_run:
            return 0
        proc = subprocess.run(argv)
        if proc.returncode != 0:
            raise MulfreeError(f"{cmd[0]} failed (exit {proc.returncode}); is the board "
                               f"connected and accessible (udev rules, permissions)?")
        return 0
    raise MulfreeError(f"no programmer for {board.name} found: install one of "
                       f"{', '.join(tried)} (e.g. 'apt-get install openfpgaloader' or the "
                       f"openFPGALoader release), or copy {bitstream} to a machine that has one")


def _run_frames(args, model, baud):
    """Without ``--build``: the framing of what ``mulfree build`` makes for this model and
    board by default (its report when the default build folder has one)."""
    from mulfree.boards.build import first_fold
    from mulfree.boards.framing import FrameFormat
    from mulfree.boards.network import frames_for

    device = args.device
    fitted = device is not None or (args.fold is None and args.mode == "runtime")
    if not fitted:
        return frames_for(model, args.mode, _load_fold(args.fold), standin=args.standin), baud
    if args.board is None:
        raise MulfreeError("give --build DIR (a folder written by 'mulfree build') or --board "
                           "BOARD: by default the fold is fitted to the board's device and "
                           "clock, as 'mulfree build' does (or give --fold)")
    board = get_board(args.board)
    if device is None and args.fold is None:
        folder = Path("build") / f"{Path(args.model).stem}-{board.name}"
        if (folder / "report.json").exists():
            report = json.loads((folder / "report.json").read_text())
            if report.get("board") == board.name:
                print(f"mulfree run: framing from {folder / 'report.json'} (the default "
                      f"build folder)", file=sys.stderr, flush=True)
                return (FrameFormat.from_json(report["framing"]),
                        baud or int(report["uart"]["baud"]))
        device = board.part.name
    fold = first_fold(board, _load_fold(args.fold, device), args.clock_mhz, model=model,
                      use_pll=not args.no_pll, baud=baud or DEFAULT_BAUD)
    return frames_for(model, args.mode, fold, standin=args.standin), baud


def _run(args) -> int:
    from mulfree.boards.framing import FrameFormat
    from mulfree.boards.host import BoardLink, link_ceiling

    model = load(args.model)
    x = golden.check_input_codes(model, load_npy(args.inputs))
    baud = args.baud
    if args.build:
        try:
            report = json.loads((Path(args.build) / "report.json").read_text())
        except FileNotFoundError:
            raise MulfreeError(f"{args.build}: no report.json") from None
        frames = FrameFormat.from_json(report["framing"])
        baud = baud or int(report["uart"]["baud"])
    else:
        frames, baud = _run_frames(args, model, baud)
    baud = baud or DEFAULT_BAUD
    with BoardLink(args.port, frames, baud=baud, timeout=args.timeout) as link:
        link.identify()
        start = time.monotonic()
        y = link.infer(x)
        seconds = time.monotonic() - start
    y = y.reshape((len(x),) + tuple(model.output_shape))
    streamed = link.window > 1
    how = (f"streamed, {link.window} frames in flight" if streamed else
           "stop-and-wait" + (" (a version-1 board)" if link.fifo_depth is None else ""))
    print(f"{len(x)} inferences in {seconds:.2f} s: {len(x) / seconds:,.1f}/s over the link "
          f"({how}; the link's ceiling at {baud} baud: "
          f"{link_ceiling(frames, baud, streaming=streamed):,.1f}/s"
          f"{f', {link.recoveries} resynchronization(s)' if link.recoveries else ''})")
    if args.out:
        save_npy(args.out, y)
    shown = min(len(y), 8)
    for i in range(shown):
        print(f"{i}: {y[i].reshape(-1).tolist()}")
    if len(y) > shown:
        print(f"... ({len(y)} samples)")
    if args.no_check:
        return 0
    want = golden.run(model, x).output.reshape(y.shape)
    bad = np.flatnonzero((want != y).reshape(len(y), -1).any(axis=1))
    if bad.size:
        print(f"MISMATCH: {bad.size} of {len(y)} samples differ from the golden model "
              f"(first: sample {bad[0]}, board {y[bad[0]].reshape(-1).tolist()}, golden "
              f"{want[bad[0]].reshape(-1).tolist()})")
        return 1
    print(f"{len(y)} of {len(y)} samples match the golden model bit for bit")
    return 0
