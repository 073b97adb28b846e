"""An :class:`~.adder_graph.AdderGraph` as hardware: one kept wire per adder, registers
every ``latency_cutoff`` adder levels.

Every adder's result is a signal of its exact shape with a ``keep`` attribute: without
it, Yosys's ``alumacc`` merges chained adders into multi-operand ``$macc`` cells and
maps those itself (measured at about twice the LUTs of the graph; the test
``tests/hw/test_adder_graph_unit.py`` checks that the synthesized netlist has one
``$alu`` per adder and no ``$macc``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .adder_graph import AdderGraph
from .product import _check_width, shape_for

__all__ = ["adder_graph_values", "AdderGraphUnit", "stages"]

_KEEP = {"keep": 1}


def stages(graph: AdderGraph, latency_cutoff: int) -> tuple[list[int], int]:
    """Pipeline stage of every value (inputs: 0; an adder at depth ``d``:
    ``(d - 1) // latency_cutoff``) and the latency (the last output's stage); a cutoff
    of 0 is one combinational stage."""
    if latency_cutoff <= 0:
        return [0] * graph.n_values, 0
    st = [0] * graph.n_in + [(d - 1) // latency_cutoff for d in graph.depth[graph.n_in:]]
    lat = max((st[t.src] for t in graph.outputs if t is not None), default=0)
    return st, lat


def adder_graph_values(m: Module, graph: AdderGraph, inputs, *, latency_cutoff: int = 0,
                       domain: str = "sync", name: str = "cmvm"):
    """Build ``graph`` in ``m`` over ``inputs`` (one value per graph input, each holding its
    bounds). Returns ``(outputs, latency)``: per graph output a value of the output's exact
    shape (``None`` for a constant-zero output), valid ``latency`` cycles after the
    inputs (registers in ``domain``)."""
    if len(inputs) != graph.n_in:
        raise ValueError(f"The graph has {graph.n_in} inputs, not {len(inputs)}")
    st, latency = stages(graph, latency_cutoff)
    vals = list(inputs)
    delayed = {}

    def at(v: int, stage: int):
        """Value ``v`` as seen in ``stage`` (registered once per stage crossed)."""
        s = st[v]
        if s >= stage:
            return vals[v]
        key = (v, stage)
        if key not in delayed:
            prev = at(v, stage - 1)
            r = Signal(shape_for(*graph.bounds[v]), name=f"{name}_v{v}_s{stage}")
            m.d[domain] += r.eq(prev)
            delayed[key] = r
        return delayed[key]

    def term(t, stage):
        v = at(t.src, stage)
        v = v << t.shift if t.shift else v
        return v, t.neg

    for k, add in enumerate(graph.adders):
        v = graph.n_in + k
        (a, an), (b, bn) = term(add.a, st[v]), term(add.b, st[v])
        expr = b - a if an else (a - b if bn else a + b)
        s = Signal(shape_for(*graph.bounds[v]), name=f"{name}_a{k}", attrs=_KEEP)
        m.d.comb += s.eq(expr)
        vals.append(s)

    outs = []
    for j, t in enumerate(graph.outputs):
        if t is None:
            outs.append(None)
            continue
        v = at(t.src, latency)
        v = v << t.shift if t.shift else v
        if t.neg:
            o = Signal(shape_for(*graph.output_bounds(j)), name=f"{name}_neg{j}", attrs=_KEEP)
            m.d.comb += o.eq(-v)
            v = o
        outs.append(v)
    return outs, latency


class AdderGraphUnit(wiring.Component):
    """``y = W @ x`` through an adder graph (see :mod:`.adder_graph`).

    Parameters
    ----------
    graph : AdderGraph
        The graph; its input bounds give the input fields' shapes.
    latency_cutoff : int
        Adder levels per pipeline stage (0: purely combinational).

    Members
    -------
    x : In(StructLayout)
        Field ``x<i>`` is input ``i``, of the narrowest shape holding its bounds.
    y : Out(StructLayout)
        Field ``y<j>`` is output ``j``, of the narrowest shape holding its exact bounds.

    Latency: ``latency`` cycles (``stages(graph, latency_cutoff)[1]``; 0 without a cutoff).
    """

    def __init__(self, *, graph: AdderGraph, latency_cutoff: int = 0) -> None:
        if not isinstance(graph, AdderGraph):
            raise TypeError(f"Graph must be an AdderGraph, not {graph!r}")
        _check_width("Latency cutoff", latency_cutoff, minimum=0)
        self._graph = graph
        self._cutoff = latency_cutoff
        self.latency = stages(graph, latency_cutoff)[1]
        ins = data.StructLayout({f"x{i}": shape_for(*b) for i, b in enumerate(graph.in_bounds)})
        outs = data.StructLayout({f"y{j}": shape_for(*graph.output_bounds(j))
                                  for j in range(graph.n_out)})
        super().__init__({"x": In(ins), "y": Out(outs)})

    @property
    def graph(self) -> AdderGraph:
        return self._graph

    def elaborate(self, platform):
        m = Module()
        g = self._graph
        inputs = [self.x[f"x{i}"] for i in range(g.n_in)]
        outs, latency = adder_graph_values(m, g, inputs, latency_cutoff=self._cutoff)
        assert latency == self.latency
        for j, v in enumerate(outs):
            if v is not None:
                m.d.comb += self.y[f"y{j}"].eq(v)
        return m
