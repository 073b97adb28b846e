"""``mulfree build``, ``mulfree program`` and ``mulfree run``: the board commands."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mulfree.gen.model import golden
from mulfree.gen.errors import InputError, MulfreeError
from mulfree.gen.fileio import check_output_dir, confined, load_npy, make_dir, reason, save_npy
from mulfree.gen.model.format import load
from mulfree.gen.plan.devices import device_names
from mulfree.gen.plan.folds import load_fold

from mulfree.boards.build import DEFAULT_ATTEMPTS, DEFAULT_BAUD, DEFAULT_PLL_ATTEMPTS, ROUTERS
from mulfree.boards.registry import BOARDS, get_board

from .options import add_output, nonneg_int, positive_float, positive_int

__all__ = ["add_arguments", "run"]

log = logging.getLogger(__name__)


def _board_list() -> str:
    return ", ".join(n for n, b in BOARDS.items() if not b.unsupported)


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "build":
        parser.add_argument("model", help="model description (.mf)")
        parser.add_argument("--board", "-b", required=True, metavar="BOARD",
                            help=f"one of: {_board_list()}")
        add_output(parser, kind="dir", out_alias=True,
                   help="output folder (default: build/<model>-<board>); one build at a "
                        "time per folder")
        _network_args(parser)
        parser.add_argument("--baud", type=positive_int, default=DEFAULT_BAUD,
                            help=f"UART baud rate (default {DEFAULT_BAUD})")
        parser.add_argument("--nodsp", action="store_true",
                            help="ECP5: keep multipliers out of the DSP blocks (synth_ecp5 -nodsp)")
        parser.add_argument("--router", choices=ROUTERS, default="router1",
                            help="nextpnr's router (default router1; router2 finishes "
                                 "large congested designs that router1 does not)")
        parser.add_argument("--attempts", type=positive_int, default=DEFAULT_ATTEMPTS,
                            metavar="N",
                            help=f"device fit at a fixed clock (--clock-mhz, --no-pll, a "
                                 f"board without PLL): builds allowed to meet it (nextpnr's "
                                 f"Fmax; each retry refits for a shorter path; default "
                                 f"{DEFAULT_ATTEMPTS}, 1: no retry)")
        parser.add_argument("--pll-attempts", type=nonneg_int, default=DEFAULT_PLL_ATTEMPTS,
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
        parser.add_argument("--baud", type=positive_int, default=None,
                            help=f"UART baud rate (default: the build's, else {DEFAULT_BAUD})")
        parser.add_argument("--timeout", type=positive_float, default=2.0,
                            help="seconds to wait for a reply (default 2)")
        add_output(parser, metavar="Y.npy", out_alias=True, help="save the outputs here")
        parser.add_argument("--no-check", action="store_true",
                            help="do not compare with the golden model")


def _clock_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clock-mhz", type=positive_float, metavar="MHZ",
                        help="run the core at this clock through the board's PLL (the "
                             "highest frequency it makes at or below, within 1%%); the fit "
                             "aims at it, and a clock nextpnr does not meet is a warning "
                             "(default: the highest clock the fit and nextpnr agree on)")
    parser.add_argument("--no-pll", action="store_true",
                        help="keep the core on the board clock (no PLL step)")


def _network_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=("runtime", "baked", "tables"), default="runtime",
                        help="runtime: weights in ROM, folded; baked: weights as constants "
                             "in the logic, fully parallel; tables: every sparse neuron one "
                             "truth table, one inference per clock (default runtime)")
    parser.add_argument("--fold", metavar="FILE",
                        help="fold file (JSON, see docs/hardware.md) or a preset: auto, serial, "
                             "parallel (default: fitted to the board's device and clock)")
    parser.add_argument("--device", metavar="NAME",
                        help=f"fit the fold to this device (runtime mode): one of "
                             f"{', '.join(device_names())}")
    parser.add_argument("--standin", action="store_true", help=argparse.SUPPRESS)
    _clock_args(parser)


def _read_report(folder: Path) -> dict:
    """``folder/report.json`` as written by ``mulfree build``; every problem as one line."""
    path = folder / "report.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MulfreeError(f"{folder}: no report.json (run 'mulfree build ... -o {folder}' "
                           f"first)") from None
    except (OSError, UnicodeDecodeError) as e:
        why = reason(e) if isinstance(e, OSError) else "not UTF-8 text"
        raise InputError(f"{path}: cannot read: {why}") from None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise InputError(f"{path}: not valid JSON ({e}); rebuild with 'mulfree build'") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object; rebuild with 'mulfree build'")
    return doc


def _report_field(doc: dict, path: Path, key: str, kind: type):
    value = doc.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(f"{path}: field '{key}' is missing or not a {kind.__name__}; "
                         f"rebuild with 'mulfree build'")
    return value


def _report_link(doc: dict, path: Path):
    """(frame format, baud rate) from a build report."""
    from mulfree.boards.framing import FrameFormat

    try:
        frames = FrameFormat.from_json(doc["framing"])
        baud = int(doc["uart"]["baud"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InputError(f"{path}: malformed 'framing' or 'uart' ({type(e).__name__}: {e}); "
                         f"rebuild with 'mulfree build'") from None
    if baud < 1:
        raise InputError(f"{path}: 'uart.baud' must be a positive integer, not {baud}")
    return frames, baud


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """Hold an exclusive lock on the build folder (flock on the directory itself, so no
    lock file is left behind): two builds into one folder would mix their files."""
    make_dir(folder, f"-o {folder}")
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MulfreeError(f"{folder}: another 'mulfree build' is writing this folder; "
                               f"wait for it, or give another -o") from None
        yield
    finally:
        os.close(fd)


def _load_fold(path: str | None, device: str | None = None):
    """The generator's own fold reader: a file, a preset, a device fit (``--device``), or
    None for the default."""
    from .verilog import fold_argument

    fold = fold_argument(path, device)
    return None if fold is None else load_fold(fold)


def run(args: argparse.Namespace) -> int:
    return {"build": _build, "program": _program, "run": _run}[args.command](args)


def _build(args) -> int:
    from mulfree.boards.build import requested_clock

    model = load(args.model)
    board = get_board(args.board)
    if args.clock_mhz is not None:
        if args.no_pll:
            raise MulfreeError("--clock-mhz and --no-pll exclude each other")
        requested_clock(board, args.clock_mhz)      # a clock the PLL cannot make: exit 2 now
    out = Path(args.output) if args.output else \
        Path("build") / f"{Path(args.model).stem}-{board.name}"
    check_output_dir(out)
    with _folder_lock(out):
        return _build_locked(args, model, board, out)


def _build_locked(args, model, board, out: Path) -> int:
    from mulfree.boards.build import build_clocked, format_report

    print(f"mulfree build: {model.name} for {board.title}, "
          f"{'neuron tables' if args.mode == 'tables' else args.mode + ' weights'} -> {out}",
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
                           notify=lambda text: print(f"mulfree build: {text}",
                                                     file=sys.stderr, flush=True),
                           mode=args.mode, baud=args.baud, nodsp=args.nodsp,
                           router=args.router, standin=args.standin, model_label=Path(args.model).name)
    print(format_report(result))
    for w in result.warnings:
        print(f"mulfree build: warning: {w}", file=sys.stderr)
    print(f"wrote {result.bitstream}, {out / 'report.json'}, {out / 'report.txt'}")
    return 0


def _program(args) -> int:
    folder = Path(args.dir)
    report = _read_report(folder)
    path = folder / "report.json"
    board = get_board(_report_field(report, path, "board", str))
    bitstream = confined(folder, _report_field(report, path, "bitstream", str),
                         f"{path}: 'bitstream'")
    if not bitstream.is_file():
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
            report = _read_report(folder)
            if report.get("board") == board.name:
                print(f"mulfree run: framing from {folder / 'report.json'} (the default "
                      f"build folder)", file=sys.stderr, flush=True)
                frames, built_baud = _report_link(report, folder / "report.json")
                return frames, baud or built_baud
        device = board.part.name
    fold = first_fold(board, _load_fold(args.fold, device), args.clock_mhz, model=model,
                      use_pll=not args.no_pll, baud=baud or DEFAULT_BAUD)
    return frames_for(model, args.mode, fold, standin=args.standin), baud


def _run(args) -> int:
    from mulfree.boards.host import BoardLink, link_ceiling

    if args.clock_mhz is not None and args.no_pll:
        raise MulfreeError("--clock-mhz and --no-pll exclude each other")
    model = load(args.model)
    x = golden.check_input_codes(model, load_npy(args.inputs))
    baud = args.baud
    if args.build:
        folder = Path(args.build)
        frames, built_baud = _report_link(_read_report(folder), folder / "report.json")
        baud = baud or built_baud
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
    if args.output:
        save_npy(args.output, y)
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
