"""A stand-in for the network generator (issue 4) that obeys the same contract.

Until ``mulfree.gen.plan.network.build_network`` and ``mulfree.gen.plan.verilog.emit_verilog`` exist,
the simulation machinery is developed and tested against this: a chain of fully serial
dense layers (one product per cycle, one code per stream beat) with streams between them.
It is deliberately simple and slow; it is not the real hardware and never ships.

Supported: dense layers (thresholds, acc or argmax output) and flatten (a no-op on a
flat stream of codes in (row, column, channel) order). Anything else raises.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from amaranth.hdl import Cat, Const, Module, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from mulfree.gen.model.golden import accumulator_bounds, product_table, signed_width
from mulfree.gen.model.format import Dense, Flatten, Model, OutputKind

__all__ = ["build_network", "emit_verilog", "StandInBackend"]


def _bits(n: int) -> int:
    return max(1, (int(n) - 1).bit_length())


class SerialDense(wiring.Component):
    """One dense layer, one product per cycle. Latency: n_in + out * (n_in + 2) cycles."""

    def __init__(self, layer: Dense, in_bits: int):
        self.layer = layer
        self.in_bits = in_bits
        self.n_out, self.n_in = layer.weights.codes.shape
        table = product_table(layer)
        self.table = table
        bounds = accumulator_bounds(layer)
        self.acc_width = max(bounds.width, signed_width(int(np.abs(table).max()) + 1)) + 1
        kind = layer.output.kind
        self.kind = kind
        if kind is OutputKind.THRESHOLDS:
            self.out_shape = unsigned(layer.output.bits)
        elif kind is OutputKind.ACC:
            self.out_shape = signed(self.acc_width)
        else:
            self.out_shape = unsigned(_bits(self.n_out))
        super().__init__({"i": In(stream.Signature(unsigned(in_bits))),
                          "o": Out(stream.Signature(self.out_shape))})

    def elaborate(self, platform):
        m = Module()
        layer, n_in, n_out = self.layer, self.n_in, self.n_out
        na = 2**self.in_bits
        k_bits = _bits(self.table.shape[0])
        pw = max(signed_width(int(self.table.min())), signed_width(int(self.table.max())))
        prod_init = np.zeros((2**k_bits, na), np.int64)
        prod_init[: self.table.shape[0], : self.table.shape[1]] = self.table
        m.submodules.prod = prod = Memory(shape=signed(pw), depth=prod_init.size,
                                          init=[int(v) for v in prod_init.reshape(-1)])
        m.submodules.wmem = wmem = Memory(shape=unsigned(k_bits), depth=n_out * n_in,
                                          init=[int(v) for v in layer.weights.codes.reshape(-1)])
        m.submodules.xbuf = xbuf = Memory(shape=unsigned(self.in_bits), depth=n_in, init=[])
        m.submodules.bias = bmem = Memory(shape=signed(self.acc_width), depth=n_out,
                                          init=[int(v) for v in layer.bias])
        prd, wrd, xrd, brd = (prod.read_port(domain="comb"), wmem.read_port(domain="comb"),
                              xbuf.read_port(domain="comb"), bmem.read_port(domain="comb"))
        xwr = xbuf.write_port()
        thr = None
        if self.kind is OutputKind.THRESHOLDS:
            nt = 2**layer.output.bits - 1
            rows = [sum((int(t) & (2**self.acc_width - 1)) << (s * self.acc_width)
                        for s, t in enumerate(row)) for row in layer.output.thresholds]
            m.submodules.thr = tmem = Memory(shape=unsigned(nt * self.acc_width), depth=n_out,
                                             init=rows)
            thr = tmem.read_port(domain="comb")

        idx = Signal(range(max(2, n_in)))
        j = Signal(range(max(2, n_out)))
        widx = Signal(range(max(2, n_out * n_in)))
        acc = Signal(signed(self.acc_width))
        best = Signal(signed(self.acc_width))
        bidx = Signal(range(max(2, n_out)))
        result = Signal(self.out_shape)
        acc_next = Signal(signed(self.acc_width))

        m.d.comb += [xwr.addr.eq(idx), xwr.data.eq(self.i.payload), xrd.addr.eq(idx),
                     wrd.addr.eq(widx), prd.addr.eq(Cat(xrd.data, wrd.data)),
                     brd.addr.eq(j), acc_next.eq(acc + prd.data), self.o.payload.eq(result)]
        if thr is not None:
            m.d.comb += thr.addr.eq(j)
            nt = 2**layer.output.bits - 1
            ts = [thr.data[s * self.acc_width:(s + 1) * self.acc_width].as_signed()
                  for s in range(nt)]
            code = sum((acc_next >= t).as_unsigned() for t in ts)
        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += [self.i.ready.eq(1), xwr.en.eq(self.i.valid)]
                with m.If(self.i.valid):
                    with m.If(idx == n_in - 1):
                        m.d.sync += [idx.eq(0), j.eq(0), widx.eq(0)]
                        m.next = "START"
                    with m.Else():
                        m.d.sync += idx.eq(idx + 1)
            with m.State("START"):
                m.d.sync += acc.eq(brd.data)
                m.next = "COMPUTE"
            with m.State("COMPUTE"):
                m.d.sync += [acc.eq(acc_next), widx.eq(widx + 1)]
                with m.If(idx == n_in - 1):
                    m.d.sync += idx.eq(0)
                    if self.kind is OutputKind.ARGMAX:
                        newer = (j == 0) | (acc_next > best)
                        with m.If(newer):
                            m.d.sync += [best.eq(acc_next), bidx.eq(j)]
                        with m.If(j == n_out - 1):
                            m.d.sync += result.eq(bidx)
                            with m.If(newer):
                                m.d.sync += result.eq(j)
                            m.next = "EMIT"
                        with m.Else():
                            m.d.sync += j.eq(j + 1)
                            m.next = "START"
                    else:
                        m.d.sync += result.eq(code if thr is not None else acc_next)
                        m.next = "EMIT"
                with m.Else():
                    m.d.sync += idx.eq(idx + 1)
            with m.State("EMIT"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    if self.kind is OutputKind.ARGMAX:
                        m.next = "LOAD"
                    else:
                        with m.If(j == n_out - 1):
                            m.next = "LOAD"
                        with m.Else():
                            m.d.sync += j.eq(j + 1)
                            m.next = "START"
        return m


class Network(wiring.Component):
    def __init__(self, stages, in_bits, out_shape):
        self.stages = stages
        super().__init__({"i": In(stream.Signature(unsigned(in_bits))),
                          "o": Out(stream.Signature(out_shape))})

    def elaborate(self, platform):
        m = Module()
        for n, s in enumerate(self.stages):
            m.submodules[f"layer{n}"] = s
        wiring.connect(m, wiring.flipped(self.i), self.stages[0].i)
        for a, b in zip(self.stages, self.stages[1:]):
            wiring.connect(m, a.o, b.i)
        wiring.connect(m, self.stages[-1].o, wiring.flipped(self.o))
        return m


def build_network(model: Model, mode: str = "runtime", fold=None):
    """(Network component, manifest dict) for a model of dense and flatten layers."""
    stages, latency, worst = [], 0, 0
    bits = model.input_bits
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Flatten):
            continue
        if not isinstance(layer, Dense):
            raise NotImplementedError(f"the stand-in network has no {type(layer).__name__}")
        s = SerialDense(layer, bits)
        stages.append(s)
        cyc = s.n_in + s.n_out * (s.n_in + 2) + 2
        latency += cyc
        worst = max(worst, cyc)
        bits = model.io[i].out_bits or 0
    last = stages[-1]
    net = Network(stages, model.input_bits, last.out_shape)
    n_in_values = int(np.prod(model.input_shape))
    n_out_values = int(np.prod(model.output_shape))
    kind = model.output_kind.value
    kind = {"thresholds": "codes"}.get(kind, kind)
    manifest = {
        "generator": "tests/sim/standin.py",
        "top": "mf_network",
        "mode": mode,
        "ports": {"clk": "clk", "rst": "rst", "i_payload": "i__payload", "i_valid": "i__valid",
                  "i_ready": "i__ready", "o_payload": "o__payload", "o_valid": "o__valid",
                  "o_ready": "o__ready"},
        "input": {"beats": n_in_values, "values_per_beat": 1, "value_bits": model.input_bits,
                  "shape": list(model.input_shape)},
        "output": {"beats": n_out_values, "values_per_beat": 1,
                   "value_bits": last.out_shape.width, "kind": kind,
                   "signed": bool(last.out_shape.signed), "shape": list(model.output_shape)},
        "latency_cycles": latency,
        "cycles_per_inference": worst,
    }
    return net, manifest


def emit_verilog(model: Model, out_dir, mode: str = "runtime", fold=None) -> Path:
    from amaranth.back import verilog

    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    net, manifest = build_network(model, mode, fold)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = verilog.convert(net, name=manifest["top"], emit_src=False)
    path = out_dir / f"{manifest['top']}.v"
    path.write_text(text)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return path


class StandInBackend:
    """The two generator entry points, as the simulation code looks them up."""

    build_network = staticmethod(build_network)
    emit_verilog = staticmethod(emit_verilog)
