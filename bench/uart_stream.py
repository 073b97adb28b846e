"""Frames per second over the UART, back to back against stop-and-wait, in simulation; and
what the receive FIFO costs by depth.

    .venv/bin/python bench/uart_stream.py [--frames 16] [--bit-period 8] [--model X.mf]
                                          [--no-costs]

The demo's model (``scripts/demo.sh`` step 1: a 64-16-10 digits MLP, 3-bit PoT weights,
2-bit activations, 4-bit inputs; trained here in a few seconds unless ``--model``) with
the fold ``mulfree build --board icebreaker`` builds first (fitted for the clock with the
most estimated inferences/s: the one it kept in docs/boards.md's measurement), inside the
harness the bitstream holds, in Amaranth's simulator with a bit-level UART on both lines
(:meth:`mulfree.boards.simboard.SimulatedBoard.stream`). Digits test images go in back to
back with 1 (stop-and-wait), 2, ... frames in flight up to the protocol's window, and once
without any window. Printed per run: frames/s at 115,200 baud (the measured replies per bit
time times the baud rate; the clock does not enter), the link's ceiling (the busier
direction's frame, start byte included, at 10 bit times a byte), their ratio, the receive
FIFO's highest fill, lost bytes, and whether every output matched the golden model.

``--bit-period`` sets the simulated clock in cycles per bit (8 keeps Python's simulator
fast; at 115,200 baud the iCEBreaker's 30.75 MHz core clock makes 267): the network's
cycles weigh ``267 / 8`` times more against the link here than on the board, so a rate
that holds here holds there.

Then (unless ``--no-costs``) Yosys's LUT4, carry, FF and memory blocks of the receive FIFO
(``SyncFIFOBuffered``, 8 bits) for depths 2 to 512 on iCE40 and ECP5.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _demo_model(tmp: Path) -> Path:
    from mulfree.cli.main import main as mulfree

    path = tmp / "digits.mf"
    rc = mulfree(["train", "--dataset", "digits", "--arch", "mlp", "--hidden", "16",
                  "--scheme", "pot", "--wbits", "3", "--abits", "2", "--ibits", "4",
                  "--seed", "1", "-o", str(path)])
    if rc != 0:
        raise SystemExit("training the demo model failed")
    return path


def stream_rates(model_path: Path, frames_n: int, bit_period: int) -> int:
    from mulfree.boards.build import fifo_block_bytes, first_fold
    from mulfree.boards.framing import rx_fifo_depth, window
    from mulfree.boards.harness import Harness
    from mulfree.boards.host import link_ceiling
    from mulfree.boards.network import frame_format, network_for
    from mulfree.boards.registry import get_board
    from mulfree.boards.simboard import SimulatedBoard
    from mulfree.gen.model import golden
    from mulfree.gen.train.datasets import input_codes, load as load_data
    from mulfree.gen.model.format import load
    from mulfree.gen.plan.folds import load_fold

    model = load(model_path)
    board = get_board("icebreaker")
    fold = first_fold(board, load_fold(f"device:{board.part.name}"), model=model)
    net, manifest, _ = network_for(model, fold=fold)
    frames = frame_format(model, net, manifest, {"mode": "runtime", "fold": fold})
    depth = rx_fifo_depth(frames.inp.frame_bytes, fifo_block_bytes(board))
    baud = 115200
    sim = SimulatedBoard(Harness(net, frames, clk_freq=bit_period * baud, baud=baud,
                                 rx_fifo_depth=depth))
    data = load_data("digits")
    x = input_codes(data.x_test[:frames_n], model.input_bits).reshape(
        (frames_n,) + tuple(model.input_shape))
    want = golden.run(model, x).output.reshape(frames_n, -1)
    requests = [frames.encode(s) for s in x]
    reply = 1 + frames.out.frame_bytes
    ceiling = link_ceiling(frames, baud)
    w_max = window(frames.inp.frame_bytes, depth)
    print(f"{model.name}: {frames.inp.frame_bytes + 1} bytes in, {reply} out per frame; "
          f"{manifest['cycles_per_inference']} cycles per inference; receive FIFO {depth} "
          f"bytes, window {w_max}; {bit_period} cycles per bit; {frames_n} frames")
    print(f"  link ceiling at {baud} baud: {ceiling:,.1f} frames/s streamed, "
          f"{link_ceiling(frames, baud, streaming=False):,.1f} stop-and-wait")
    print(f"  {'in flight':<12}{'frames/s':>10}{'/ceiling':>10}{'FIFO max':>10}{'lost':>6}"
          f"{'bit-exact':>11}{'sim s':>7}")
    bad = 0
    for w in list(range(1, w_max + 1)) + [None]:
        t = time.monotonic()
        run = sim.stream(requests, reply, window=w)
        got = np.array([frames.decode(r[1:]) for r in run.replies]) if run.replies else None
        exact = got is not None and got.shape == want.shape and bool((got == want).all())
        rate = run.frames_per_bit() * baud
        label = "no window" if w is None else str(w)
        print(f"  {label:<12}{rate:>10,.1f}{rate / ceiling:>10.3f}{run.max_fifo:>10}"
              f"{run.lost:>6}{'yes' if exact else 'NO':>11}{time.monotonic() - t:>7.1f}")
        bad += (not exact or run.lost > 0) and w is not None
    return bad


def fifo_costs() -> None:
    from amaranth.hdl import Module
    from amaranth.lib import stream, wiring
    from amaranth.lib.fifo import SyncFIFOBuffered
    from amaranth.lib.wiring import In, Out

    from mulfree.boards.synth import Flow, emit_verilog, synthesize

    class Fifo(wiring.Component):
        def __init__(self, depth):
            self.depth = depth
            super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

        def elaborate(self, platform):
            m = Module()
            m.submodules.fifo = f = SyncFIFOBuffered(width=8, depth=self.depth)
            wiring.connect(m, wiring.flipped(self.i), f.w_stream)
            wiring.connect(m, f.r_stream, wiring.flipped(self.o))
            return m

    print("\nreceive FIFO (SyncFIFOBuffered, 8 bits) by depth, Yosys:")
    print(f"  {'target':<8}{'depth':>6}{'LUT4':>6}{'carry':>7}{'FF':>5}  memory")
    for target in ("ice40", "ecp5"):
        for depth in (2, 16, 64, 128, 512):
            r = synthesize(emit_verilog(Fifo(depth)), Flow(target, pnr=False)).report
            mem = {k: v for k, v in r.cells.items()
                   if k in ("SB_RAM40_4K", "DP16KD", "TRELLIS_DPR16X4")}
            print(f"  {target:<8}{depth:>6}{r.lut:>6}{r.carry:>7}{r.ff:>5}  "
                  f"{', '.join(f'{v} {k}' for k, v in mem.items()) or 'flip-flops'}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--bit-period", type=int, default=8)
    ap.add_argument("--model", type=Path, help="a model file instead of the demo's")
    ap.add_argument("--no-costs", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or _demo_model(Path(tmp))
        bad = stream_rates(path, args.frames, args.bit_period)
    if not args.no_costs:
        fifo_costs()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
