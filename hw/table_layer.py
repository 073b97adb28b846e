"""One layer of table (and sum) neurons as logic: :func:`layer_logic` adds it to a module
(what :class:`~.table_pipeline.TablePipeline` does for each layer), :class:`TableLayer`
is the layer alone as a component (for measuring it, or using it in another design)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .adder_tree import sum_tree
from .product import shape_for
from .table_spec import SumNeuron, TableLayerSpec, TableNeuron
from .threshold import threshold_code
from .truth_table import STYLES, TruthTable

__all__ = ["TableLayer", "layer_logic", "delay"]


def delay(m: Module, value, cycles: int, name: str, *, reset_less: bool = True):
    """``value`` through ``cycles`` registers (without reset unless asked: data)."""
    for n in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{n}", reset_less=reset_less)
        m.d.sync += reg.eq(value)
        value = reg
    return value


def layer_logic(m: Module, layer, codes: list, *, style: str = "bdd", name: str = "l"):
    """Add ``layer``'s neurons (:class:`~.table_spec.TableLayerSpec`) to ``m``: their
    outputs (``layer.out_shape`` each) from the input ``codes``, after the layer's internal
    registers (``layer.latency`` cycles)."""
    outs = []
    lat = layer.latency
    for j, n in enumerate(layer.neurons):
        nname = f"{name}_n{j}"
        own = 0
        if isinstance(n, TableNeuron):
            if not n.inputs:
                value = Const(n.table[0], shape_for(n.table[0], n.table[0]))
            else:
                tt = TruthTable(table=n.table, style=style)
                m.submodules[nname] = tt
                m.d.comb += tt.index.eq(Cat(*(codes[i] for i in n.inputs)))
                value = tt.value
        else:
            assert isinstance(n, SumNeuron)
            if not n.inputs:
                acc = Const(n.bias, shape_for(n.bias, n.bias))
            else:
                terms = []
                for k, (i, row) in enumerate(zip(n.inputs, n.terms)):
                    row = [v + (n.bias if k == 0 else 0) for v in row]
                    tt = TruthTable(table=row, style=style)
                    m.submodules[f"{nname}_t{k}"] = tt
                    m.d.comb += tt.index.eq(codes[i])
                    terms.append((tt.value, min(row), max(row)))
                acc, _lo, _hi, own = sum_tree(m, terms, pipeline_every=layer.sum_pipeline_every,
                                              name=f"{nname}_sum")
            value = acc if n.thresholds is None else threshold_code(acc, n.thresholds)
        out = Signal(layer.out_shape, name=f"{nname}_out")
        m.d.comb += out.eq(value)
        outs.append(delay(m, out, lat - own, nname))
    return outs


class TableLayer(wiring.Component):
    """A layer of neurons (:class:`~.table_spec.TableLayerSpec`) alone.

    Parameters
    ----------
    layer : TableLayerSpec
    style : str
        How truth tables are written (:data:`mulfree.hw.truth_table.STYLES`).

    Members
    -------
    x : In(in_count * in_bits)
        The input codes, code ``k`` at bits ``[k*in_bits, (k+1)*in_bits)``.
    y : Out(neurons * out_width)
        The outputs, neuron ``j`` at bits ``[j*out_width, (j+1)*out_width)``.

    Latency: ``layer.latency`` cycles (0 without sum-neuron pipelining: combinational).
    """

    def __init__(self, layer: TableLayerSpec, *, style: str = "bdd") -> None:
        if not isinstance(layer, TableLayerSpec):
            raise TypeError(f"Layer must be a TableLayerSpec, not {layer!r}")
        if style not in STYLES:
            raise ValueError(f"Style must be one of {', '.join(STYLES)}, not {style!r}")
        layer.check()
        self.layer, self.style = layer, style
        super().__init__({"x": In(layer.in_count * layer.in_bits),
                          "y": Out(len(layer.neurons) * layer.out_width)})

    @property
    def latency(self) -> int:
        return self.layer.latency

    def elaborate(self, platform):
        m = Module()
        b = self.layer.in_bits
        codes = [self.x.word_select(k, b) for k in range(self.layer.in_count)]
        outs = layer_logic(m, self.layer, codes, style=self.style)
        m.d.comb += self.y.eq(Cat(*outs))
        return m
