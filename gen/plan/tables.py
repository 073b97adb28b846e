"""The table plan: a dense model as a fully pipelined network of neuron truth tables.

A neuron reads the inputs whose product row ``P[k][c]`` is not constant over the input
codes (a zero weight's row is constant: the connection is not there; a constant row's
value joins the neuron's offset). When it reads ``F`` inputs of ``b`` bits and
``F * b`` is at most the limit, its whole function (weights, sum, bias, thresholds; or
its accumulator, for the last layer) is one truth table over those ``F * b`` bits,
**computed by the golden model**: :func:`mulfree.gen.model.golden.layer_forward` runs the
one-neuron layer on every combination of its inputs' codes (the others at code 0, which
changes nothing). Above the limit the neuron keeps the arithmetic form: one small lookup
per input it reads (its product row), summed by a balanced adder tree, then its
thresholds (:class:`mulfree.hw.table_spec.SumNeuron`). When the last layer's argmax is the
output and all its neurons are tables, each table gives the rank of its accumulator among
all the values the layer's tables hold instead of the value: a strictly increasing map,
so the argmax and its ties are the same, in fewer bits.

Options, the ``"tables"`` object of the fold (all optional)::

    {"tables": {"limit": 7,             # table input bits at most (F * b)
                "style": "bdd",         # how tables are written (mulfree.hw.truth_table)
                "register_every": 1,    # layers between pipeline registers
                "argmax_every": 1,      # argmax half-levels (compare, select) per register
                "sum_pipeline_every": 0 # adder-tree levels between registers (sum neurons)
               },
     "input_values_per_beat": 64}       # default: the whole sample in one beat

The limit and the style were chosen by measurement (``bench/tables.py``, docs/tables.md).
Dense layers (and flatten) only: a conv2d or max-pool layer is refused with its name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from mulfree.hw.product import shape_for
from mulfree.hw.table_spec import SumNeuron, TableLayerSpec, TableNeuron, TablesSpec
from mulfree.hw.truth_table import MAX_IN_BITS, STYLES

from ..errors import InputError
from ..model.format import Dense, Flatten, Model, Output, OutputKind
from ..model.golden import layer_forward, product_table
from .folds import divisors

__all__ = ["TableOptions", "DEFAULT_LIMIT", "table_options", "neuron_inputs", "neuron_table",
           "plan_tables"]

# Table input bits at most (F * b): measured in bench/tables.py (docs/tables.md): one
# table is smaller than the sum form up to 7 bits (2-bit threshold neurons of 1-bit
# inputs: 12.4 LUT4 against 16.1 at 7 bits, 19.4 against 19.4 at 8; of 2-bit inputs 9.1
# against 14.6 at 6 bits, 22.8 against 17.2 at 8; accumulators 9.4 against 12.1 at 6,
# 58.0 against 17.5 at 8), and its cost about doubles with every further bit.
DEFAULT_LIMIT = 7

DEFAULT_STYLE = "bdd"


@dataclass(frozen=True)
class TableOptions:
    """The tables mode's options (see the module docstring)."""

    limit: int = DEFAULT_LIMIT
    style: str = DEFAULT_STYLE
    register_every: int = 1
    argmax_every: int = 1
    sum_pipeline_every: int = 0

    def __post_init__(self) -> None:
        for name, v, lo, hi in (("limit", self.limit, 1, MAX_IN_BITS),
                                ("register_every", self.register_every, 1, None),
                                ("argmax_every", self.argmax_every, 1, None),
                                ("sum_pipeline_every", self.sum_pipeline_every, 0, None)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi and v > hi):
                rng = f"{lo} to {hi}" if hi else f"an integer >= {lo}"
                raise InputError(f"fold: tables.{name} must be {rng}, got {v!r}")
        if self.style not in STYLES:
            raise InputError(f"fold: tables.style must be one of {', '.join(STYLES)}, got "
                             f"{self.style!r}")

    def to_json(self) -> dict:
        return {"limit": self.limit, "style": self.style, "register_every": self.register_every,
                "argmax_every": self.argmax_every,
                "sum_pipeline_every": self.sum_pipeline_every}


def table_options(fold: dict) -> TableOptions:
    """The options from a normalized fold's ``"tables"`` object."""
    raw = fold.get("tables") or {}
    if not isinstance(raw, dict):
        raise InputError(f"fold: 'tables' must be an object, got {raw!r}")
    known = set(TableOptions.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(f"fold: unknown field 'tables.{unknown[0]}' (expected "
                         f"{', '.join(sorted(known))})")
    return TableOptions(**raw)


def _table(layer: Dense, n_codes: int) -> np.ndarray:
    """``P[k][c]`` for the ``n_codes`` input codes (codes past the codebook read 0, as in
    the golden model's padding column)."""
    table = product_table(layer)
    if table.shape[1] < n_codes:
        table = np.concatenate([table, np.zeros((table.shape[0], n_codes - table.shape[1]),
                                                np.int64)], axis=1)
    return table[:, :n_codes]


def neuron_inputs(layer: Dense, j: int, n_codes: int) -> list[int]:
    """The inputs neuron ``j`` reads: those whose product row is not constant over the
    ``n_codes`` input codes."""
    table = _table(layer, n_codes)
    rows = table[layer.weights.codes[j]]                     # [in, codes]
    return [int(i) for i in np.flatnonzero((rows != rows[:, :1]).any(axis=1))]


def _one_neuron(layer: Dense, j: int) -> Dense:
    out = layer.output
    if out.kind is OutputKind.THRESHOLDS:
        out = Output(OutputKind.THRESHOLDS, out.bits, out.thresholds[j:j + 1])
    else:
        out = Output(OutputKind.ACC)
    return Dense(name=f"{layer.name}[{j}]",
                 weights=type(layer.weights)(layer.weights.scheme, layer.weights.bits,
                                             layer.weights.codes[j:j + 1],
                                             codebook=layer.weights.codebook,
                                             products=layer.weights.products),
                 bias=layer.bias[j:j + 1], output=out,
                 activation_codebook=layer.activation_codebook)


def neuron_table(layer: Dense, j: int, inputs: list[int], in_bits: int) -> tuple[int, ...]:
    """Neuron ``j``'s output (threshold code, else accumulator) for every combination of
    the codes of ``inputs``, from the golden model: entry ``e`` has input ``inputs[k]`` at
    code ``(e >> (k * in_bits)) & (2**in_bits - 1)``, every other input at code 0."""
    n = 2 ** (len(inputs) * in_bits)
    e = np.arange(n, dtype=np.int64)
    x = np.zeros((n, layer.in_features), np.int64)
    for k, i in enumerate(inputs):
        x[:, i] = (e >> (k * in_bits)) & (2**in_bits - 1)
    out, acc = layer_forward(_one_neuron(layer, j), x)
    value = out if layer.output.kind is OutputKind.THRESHOLDS else acc
    return tuple(int(v) for v in value[:, 0])


def _sum_neuron(layer: Dense, j: int, inputs: list[int], n_codes: int) -> SumNeuron:
    table = _table(layer, n_codes)
    codes = layer.weights.codes[j]
    rows = table[codes]                                         # [in, codes]
    read = np.zeros(layer.in_features, bool)
    read[inputs] = True
    bias = int(layer.bias[j]) + int(rows[~read, 0].sum())      # constant rows: their value
    thresholds = None
    if layer.output.kind is OutputKind.THRESHOLDS:
        thresholds = tuple(int(t) for t in layer.output.thresholds[j])
    return SumNeuron(inputs=tuple(inputs), terms=tuple(tuple(int(v) for v in rows[i])
                                                       for i in inputs),
                     bias=bias, thresholds=thresholds)


def _layer_spec(layer: Dense, in_bits: int, in_count: int,
                opts: TableOptions) -> tuple[TableLayerSpec, dict]:
    n_codes = 2**in_bits
    neurons = []
    fan = []
    for j in range(layer.out_features):
        inputs = neuron_inputs(layer, j, n_codes)
        fan.append(len(inputs))
        if len(inputs) * in_bits <= opts.limit:
            neurons.append(TableNeuron(inputs=tuple(inputs),
                                       table=neuron_table(layer, j, inputs, in_bits)))
        else:
            neurons.append(_sum_neuron(layer, j, inputs, n_codes))
    kind = layer.output.kind
    if kind is OutputKind.THRESHOLDS:
        width, signed = max(1, layer.output.bits), False
    else:
        lo = min(n.bounds[0] for n in neurons)
        hi = max(n.bounds[1] for n in neurons)
        shape = shape_for(min(lo, -1), hi)          # accumulators: always two's complement
        width, signed = shape.width, True
    spec = TableLayerSpec(in_bits=in_bits, in_count=in_count, neurons=tuple(neurons),
                          out_width=width, out_signed=signed,
                          sum_pipeline_every=opts.sum_pipeline_every)
    tables = [n for n in neurons if isinstance(n, TableNeuron)]
    row = {"type": "dense", "lowering": "tables" if len(tables) == len(neurons)
           else "arithmetic" if not tables else "tables and arithmetic",
           "scheme": layer.weights.scheme.value, "out_channels": layer.out_features,
           "in_bits": in_bits, "fan_in": {"min": min(fan), "max": max(fan)},
           "table_neurons": len(tables), "sum_neurons": len(neurons) - len(tables),
           "table_input_bits": max((len(n.inputs) * in_bits for n in tables), default=0),
           "table_entries": sum(len(n.table) for n in tables),
           "sum_terms": sum(len(n.terms) for n in neurons if isinstance(n, SumNeuron)),
           "output": kind.value, "out_bits": width, "latency": spec.latency}
    return spec, row


def _ranks(layer: TableLayerSpec) -> tuple[TableLayerSpec, int]:
    """An argmax layer whose neurons are all tables: each table gives the rank of its
    accumulator among every value the layer's tables hold (a strictly increasing map, so
    the argmax and its ties are unchanged) in fewer bits. Returns the layer and the number
    of ranks (0: unchanged, some neuron is a sum)."""
    if not all(isinstance(n, TableNeuron) for n in layer.neurons):
        return layer, 0
    values = sorted({v for n in layer.neurons for v in n.table})
    rank = {v: r for r, v in enumerate(values)}
    neurons = tuple(TableNeuron(n.inputs, tuple(rank[v] for v in n.table))
                    for n in layer.neurons)
    width = max(1, (len(values) - 1).bit_length())
    return dataclasses.replace(layer, neurons=neurons, out_width=width, out_signed=False), \
        len(values)


def plan_tables(model: Model, fold: dict, progress=None) -> tuple[list, list[dict], int]:
    """``(stage specs, the manifest's layer rows, input codes per beat)`` of ``model`` in
    tables mode: one :class:`~mulfree.hw.table_spec.TablesSpec`."""
    opts = table_options(fold)
    if fold.get("device") is not None:
        raise InputError(f"fold: a device fit ('{fold['device']}') folds runtime weights; the "
                         f"tables mode has no fold to fit")
    layers, rows = [], []
    argmax = False
    n_compute = sum(1 for l in model.layers if not isinstance(l, Flatten))
    seen = 0
    for index, (layer, io) in enumerate(zip(model.layers, model.io)):
        if isinstance(layer, Flatten):
            rows.append({"index": index, "name": layer.name, "type": "flatten", "cycles": 0,
                         "note": "wiring only"})
            continue
        if not isinstance(layer, Dense):
            kind = type(layer).__name__.lower()
            raise InputError(f"layer '{layer.name}' is {kind}: the tables mode lowers dense "
                             f"layers (MLPs) only; use --mode runtime or baked")
        seen += 1
        if progress:
            progress(f"tables: layer '{layer.name}' ({seen}/{n_compute}), "
                     f"{layer.out_features} neurons")
        in_count = int(np.prod(io.in_shape))
        spec, row = _layer_spec(layer, io.in_bits, in_count, opts)
        if layer.output.kind is OutputKind.ARGMAX:
            argmax = True
            spec, ranked = _ranks(spec)
            if ranked:
                row["out_bits"] = spec.out_width
                row["ranks"] = ranked
        layers.append(spec)
        rows.append({"index": index, "name": layer.name, **row})
    if not layers:
        raise InputError("the model has no dense layer to lower to tables")
    n_in = layers[0].in_count
    in_vpb = fold.get("input_values_per_beat", n_in)
    if isinstance(in_vpb, bool) or not isinstance(in_vpb, int) or in_vpb < 1 or n_in % in_vpb:
        raise InputError(f"fold: input_values_per_beat must divide the {n_in} input codes "
                         f"(one of {divisors(n_in)}), got {in_vpb!r}")
    spec = TablesSpec(in_beat=in_vpb, layers=tuple(layers), argmax=argmax, style=opts.style,
                      register_every=opts.register_every, argmax_every=opts.argmax_every)
    try:
        spec.check()
    except (ValueError, TypeError) as e:
        raise InputError(f"tables: {e}") from None
    for row in rows:
        row["cycles"] = row.get("cycles", 1)
    return [spec], rows, in_vpb
