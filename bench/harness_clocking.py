"""Where the UART harness runs once the core has a PLL: on the core clock (its baud divider
recomputed, what mulfree does) or on the board clock behind a clock-domain crossing.

    .venv/bin/python bench/harness_clocking.py [--ice40-mhz 27] [--ecp5-mhz 62.5] [--depth 128]

Synthesizes with Yosys (``synth_ice40``; ``synth_ecp5 -nodsp``), in one run, the parts
that differ between the two designs:

- PLL domain (A): the UART receiver and transmitter with the bit period of the core clock,
  and the receive FIFO as a ``SyncFIFOBuffered`` (8 bits x ``--depth``);
- board domain (B): the UART on the board clock, the receive FIFO as an
  ``AsyncFIFOBuffered`` (board -> core), and an ``AsyncFIFO`` of 4 bytes for the replies
  (core -> board); plus, not counted here, an iCE40 ``SB_PLL40_2F_PAD`` instead of
  ``SB_PLL40_PAD`` (to keep the pad's clock) and a second global clock net.

The rest of the harness (framing, identify, LEDs) is the same in both. It prints LUT4, FF
and block RAM per part and per design, the difference, and the baud-rate error (the bit
period is a whole number of cycles) at 115200 and 1,000,000 baud on each clock.

Last, the whole harness as built (design A) around a small serial MLP, minus that network
synthesized alone: what ``mulfree.gen.plan.cost.HARNESS`` reserves for it in the fit.
"""

from __future__ import annotations

import argparse
import sys


def _parts(board_hz: float, core_hz: float, depth: int, baud: int):
    from amaranth.hdl import Module
    from amaranth.lib import stream, wiring
    from amaranth.lib.fifo import AsyncFIFO, AsyncFIFOBuffered, SyncFIFOBuffered
    from amaranth.lib.wiring import In, Out

    from mulfree.boards.uart import UARTRx, UARTTx

    class Uart(wiring.Component):
        def __init__(self, hz):
            self.hz = hz
            super().__init__({"rx": In(1), "tx": Out(1), "o": Out(stream.Signature(8)),
                              "i": In(stream.Signature(8))})

        def elaborate(self, platform):
            m = Module()
            m.submodules.rx = rx = UARTRx(clk_freq=self.hz, baud=baud)
            m.submodules.tx = tx = UARTTx(clk_freq=self.hz, baud=baud)
            m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]
            wiring.connect(m, rx.o, wiring.flipped(self.o))
            wiring.connect(m, wiring.flipped(self.i), tx.i)
            return m

    class Fifo(wiring.Component):
        def __init__(self, make):
            self.make = make
            super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

        def elaborate(self, platform):
            m = Module()
            m.submodules.fifo = f = self.make()
            wiring.connect(m, wiring.flipped(self.i), f.w_stream)
            wiring.connect(m, f.r_stream, wiring.flipped(self.o))
            return m

    return {
        "A: UART on the core clock": Uart(core_hz),
        "A: receive FIFO, SyncFIFOBuffered": Fifo(lambda: SyncFIFOBuffered(width=8,
                                                                           depth=depth)),
        "B: UART on the board clock": Uart(board_hz),
        "B: receive FIFO, AsyncFIFOBuffered": Fifo(lambda: AsyncFIFOBuffered(
            width=8, depth=depth, w_domain="board", r_domain="sync")),
        "B: reply FIFO, AsyncFIFO x4": Fifo(lambda: AsyncFIFO(width=8, depth=4,
                                                              w_domain="sync",
                                                              r_domain="board")),
    }


def _baud_error(hz: float, baud: int) -> str:
    period = round(hz / baud)
    if period < 4:
        return "-"
    return f"{abs(hz / period - baud) / baud:.2%}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ice40-mhz", type=float, default=27.0,
                    help="core clock on the iCEBreaker (12 MHz board clock)")
    ap.add_argument("--ecp5-mhz", type=float, default=62.5,
                    help="core clock on the ULX3S (25 MHz board clock)")
    ap.add_argument("--depth", type=int, default=128, help="receive FIFO bytes")
    args = ap.parse_args(argv)

    from mulfree.boards.synth import Flow, emit_verilog, synthesize

    setups = [("ice40", 12e6, args.ice40_mhz * 1e6), ("ecp5", 25e6, args.ecp5_mhz * 1e6)]
    for target, board_hz, core_hz in setups:
        print(f"\n{target}: board clock {board_hz / 1e6:g} MHz, core clock "
              f"{core_hz / 1e6:g} MHz, receive FIFO {args.depth} bytes, 115200 baud")
        print(f"  {'part':<40}{'LUT4':>6}{'carry':>7}{'FF':>6}{'RAM':>5}")
        totals = {"A": [0, 0, 0, 0], "B": [0, 0, 0, 0]}
        for name, part in _parts(board_hz, core_hz, args.depth, 115200).items():
            r = synthesize(emit_verilog(part), Flow(target, pnr=False)).report
            row = [r.lut, r.carry, r.ff, r.bram]
            totals[name[0]] = [a + b for a, b in zip(totals[name[0]], row)]
            print(f"  {name:<40}{r.lut:>6}{r.carry:>7}{r.ff:>6}{r.bram:>5}")
        for key, label in (("A", "A: PLL domain (mulfree)"),
                           ("B", "B: board domain + crossing")):
            lut, carry, ff, ram = totals[key]
            print(f"  {label:<40}{lut:>6}{carry:>7}{ff:>6}{ram:>5}")
        d = [b - a for a, b in zip(totals["A"], totals["B"])]
        print(f"  {'B - A':<40}{d[0]:>+6}{d[1]:>+7}{d[2]:>+6}{d[3]:>+5}")
        for baud in (115200, 1_000_000):
            print(f"  baud error at {baud}: core clock {_baud_error(core_hz, baud)}, board "
                  f"clock {_baud_error(board_hz, baud)}")
        lut, carry, ff, ram = _whole_harness(target, core_hz, args.depth)
        print(f"  {'whole harness (A) minus the network':<40}{lut:>6}{carry:>7}{ff:>6}{ram:>5}")
    return 0


def _whole_harness(target: str, core_hz: float, depth: int):
    import numpy as np

    from mulfree.boards.harness import Harness
    from mulfree.boards.network import frame_format, network_for
    from mulfree.boards.synth import Flow, emit_verilog, synthesize
    from mulfree.gen.model.examples import random_dense
    from mulfree.gen.model.format import Model

    rng = np.random.default_rng(3)
    model = Model(name="small", input_shape=(16,), input_bits=2, layers=(
        random_dense(rng, 16, 8, scheme="pot", in_bits=2, out_bits=2, name="fc1"),
        random_dense(rng, 8, 4, scheme="apot", in_bits=2, output="argmax", name="fc2")))
    net, manifest, _ = network_for(model, fold="serial")
    frames = frame_format(model, net, manifest, {})
    whole = synthesize(emit_verilog(Harness(net, frames, clk_freq=core_hz, baud=115200,
                                            rx_fifo_depth=depth)),
                       Flow(target, pnr=False)).report
    alone = synthesize(emit_verilog(network_for(model, fold="serial")[0]),
                       Flow(target, pnr=False)).report
    return (whole.lut - alone.lut, whole.carry - alone.carry, whole.ff - alone.ff,
            whole.bram - alone.bram)


if __name__ == "__main__":
    sys.exit(main())
