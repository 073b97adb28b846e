"""A stand-in network with the contract of ``mulfree.gen.plan.network.build_network``.

The board flow (harness, builds, host driver) is developed and tested against this while
the real network generator is elsewhere; :func:`mulfree.boards.network.network_for` picks
the real one when it exists. It handles models of dense layers only, computes each layer
combinationally from constant tables into a register (fine for the small networks of the tests, not meant
to be efficient) and speaks the same stream contract: input beats of packed codes in,
output beats out.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Const, Module, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from mulfree.gen.errors import MulfreeError
from mulfree.gen.model.golden import accumulator_bounds, product_table
from mulfree.gen.model.format import Dense, Flatten, Model, OutputKind

__all__ = ["StandinNetwork", "build_standin"]


def _pack_count(bits: int, n: int, beat: int = 8) -> int:
    return max(1, min(n, beat // bits))


class StandinNetwork(wiring.Component):
    """Dense layers computed combinationally between an input and an output buffer.

    Latency: ``in_beats`` cycles to take the input, one per layer and one more to compute,
    then one output beat per cycle (under no back-pressure).
    """

    def __init__(self, model: Model) -> None:
        layers = [l for l in model.layers if not isinstance(l, Flatten)]
        if not layers or not all(isinstance(l, Dense) for l in layers):
            raise MulfreeError(f"the stand-in network handles dense layers only; model "
                               f"'{model.name}' has {[type(l).__name__ for l in model.layers]}")
        self._model = model
        self._layers = layers
        n_in = int(np.prod(model.input_shape))
        self.in_bits = model.input_bits
        self.in_vpb = _pack_count(self.in_bits, n_in)
        self.in_beats = -(-n_in // self.in_vpb)
        self.n_in = n_in
        last = layers[-1]
        kind = last.output.kind
        self.kind = kind
        if kind is OutputKind.THRESHOLDS:
            self.out_bits, self.out_signed = last.output.bits, False
            self.n_out = last.out_features
        elif kind is OutputKind.ARGMAX:
            self.out_bits, self.out_signed = max(1, (last.out_features - 1).bit_length()), False
            self.n_out = 1
        else:
            self.out_bits, self.out_signed = accumulator_bounds(last).width, True
            self.n_out = last.out_features
        self.out_vpb = _pack_count(self.out_bits, self.n_out) if not self.out_signed else 1
        self.out_beats = -(-self.n_out // self.out_vpb)
        super().__init__({
            "i": In(stream.Signature(unsigned(self.in_vpb * self.in_bits))),
            "o": Out(stream.Signature(unsigned(self.out_vpb * self.out_bits))),
        })

    @property
    def manifest(self) -> dict:
        return {
            "top": "standin",
            "input": {"beats": self.in_beats, "values_per_beat": self.in_vpb,
                      "value_bits": self.in_bits},
            "output": {"kind": {OutputKind.THRESHOLDS: "codes", OutputKind.ACC: "acc",
                                OutputKind.ARGMAX: "argmax"}[self.kind],
                       "beats": self.out_beats, "values_per_beat": self.out_vpb,
                       "value_bits": self.out_bits, "signed": self.out_signed},
            "cycles_per_inference": self.in_beats + len(self._layers) + 1 + self.out_beats,
            "latency_cycles": self.in_beats + len(self._layers) + 1,
        }

    def _layer(self, m: Module, layer: Dense, xs: list, in_bits: int):
        table = product_table(layer)
        bounds = accumulator_bounds(layer)
        width = bounds.width
        codes = layer.weights.codes
        accs = []
        for j in range(layer.out_features):
            terms = [int(layer.bias[j])]
            for i, x in enumerate(xs):
                row = [int(v) for v in table[codes[j, i]]]
                if all(v == row[0] for v in row):
                    terms[0] += row[0]
                    continue
                w = max(max(abs(v) for v in row).bit_length() + 1, 2)
                terms.append(Array([Const(v, signed(w)) for v in row])[x])
            acc = Signal(signed(width), name=f"{layer.name}_acc{j}")
            total = terms[0]
            for t in terms[1:]:
                total = total + t
            m.d.comb += acc.eq(total)
            accs.append(acc)
        kind = layer.output.kind
        if kind is OutputKind.THRESHOLDS:
            outs = []
            for j, acc in enumerate(accs):
                code = Signal(layer.output.bits, name=f"{layer.name}_code{j}")
                m.d.comb += code.eq(sum(acc >= int(t) for t in layer.output.thresholds[j]))
                outs.append(code)
            return outs
        if kind is OutputKind.ARGMAX:
            best, idx = accs[0], Const(0, self.out_bits)
            for j, acc in enumerate(accs[1:], 1):
                nb = Signal(signed(width), name=f"best{j}")
                ni = Signal(self.out_bits, name=f"idx{j}")
                m.d.comb += [nb.eq(best), ni.eq(idx)]
                with m.If(acc > best):
                    m.d.comb += [nb.eq(acc), ni.eq(j)]
                best, idx = nb, ni
            return [idx]
        return accs

    def elaborate(self, platform):
        m = Module()
        in_buf = Signal(self.in_beats * self.in_vpb * self.in_bits)
        beat_w = self.in_vpb * self.in_bits
        out_w = self.out_vpb * self.out_bits
        out_buf = Signal(self.out_beats * out_w)
        count = Signal(range(max(self.in_beats, self.out_beats) + 1))

        xs = [in_buf[i * self.in_bits:(i + 1) * self.in_bits] for i in range(self.n_in)]
        bits = self.in_bits
        for n, layer in enumerate(self._layers):
            outs = self._layer(m, layer, xs, bits)
            xs = []
            for k, v in enumerate(outs):      # one register stage per layer
                r = Signal.like(v, name=f"l{n}_q{k}")
                m.d.sync += r.eq(v)
                xs.append(r)
            bits = layer.output.bits if layer.output.kind is OutputKind.THRESHOLDS else 0
        flat = Signal(len(out_buf))
        for k, x in enumerate(xs):
            m.d.comb += flat[k * self.out_bits:(k + 1) * self.out_bits].eq(x)

        in_beats = Array(in_buf[b * beat_w:(b + 1) * beat_w] for b in range(self.in_beats))
        out_beats = Array(out_buf[b * out_w:(b + 1) * out_w] for b in range(self.out_beats))
        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [in_beats[count].eq(self.i.payload), count.eq(count + 1)]
                    with m.If(count == self.in_beats - 1):
                        m.d.sync += count.eq(0)
                        m.next = "COMPUTE"
            with m.State("COMPUTE"):
                m.d.sync += count.eq(count + 1)
                with m.If(count == len(self._layers)):
                    m.d.sync += [out_buf.eq(flat), count.eq(0)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(out_beats[count])]
                with m.If(self.o.ready):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == self.out_beats - 1):
                        m.d.sync += count.eq(0)
                        m.next = "LOAD"
        return m


def build_standin(model: Model, mode: str = "runtime", fold=None):
    """``(network, manifest)`` like ``mulfree.gen.plan.network.build_network``."""
    net = StandinNetwork(model)
    return net, net.manifest
