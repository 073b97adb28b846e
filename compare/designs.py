"""The designs ``mulfree compare`` measures, one per ``(mode, scheme, wbits, abits)``.

``runtime``
    one MAC lane (:class:`mulfree.hw.mac.MacLane`): product unit plus accumulator, the
    weight an input. The accumulator is as wide as ``ACC_TERMS`` products need.
``baked``
    a small dense layer with constant weights (``BAKED_IN`` inputs, ``BAKED_OUT`` outputs,
    weights drawn with a fixed seed from the scheme's codebook): PoT products become
    wiring, the others constant shift-adds, summed by balanced pairwise adder trees.
``tables``
    the baked layer made sparse (issue 17): each of its ``BAKED_OUT`` neurons reads its
    first ``tables_fan_in(abits)`` inputs (as many as fit ``TABLE_BITS`` index bits),
    and its accumulator is one truth table over them, computed by the golden model
    (:func:`mulfree.gen.plan.tables.neuron_table`) and minimized by Yosys/ABC
    (:class:`mulfree.hw.table_layer.TableLayer`). Not in the default grids
    (``--modes tables``).

Schemes: ``uniform`` (the multiplier baseline every ratio is taken against), ``pot``,
``apot``, ``lut`` (the product from a table ``P[k][c] = W[k] * A[c]`` of a LUT-Q
codebook), ``binary`` (+-1, 1-bit codes) and ``ternary`` (0, +-1, 2-bit codes).
"""

from __future__ import annotations

import numpy as np

from mulfree.gen.errors import InputError
from mulfree.hw.compute import csd_digits

__all__ = ["MODES", "DEFAULT_MODES", "SCHEMES", "ACC_TERMS", "LANE_CONTROL", "BAKED_IN",
           "BAKED_OUT", "TABLE_MAX_INDEX_BITS", "TABLE_BITS", "tables_fan_in", "lane_codebook",
           "baked_weights", "signed_terms", "build_design", "codebook"]

MODES = ("runtime", "baked", "tables")

# the modes of the default and quick grids (tables is asked for with --modes)
DEFAULT_MODES = ("runtime", "baked")

SCHEMES = ("uniform", "pot", "apot", "lut", "binary", "ternary")


# The runtime lane's accumulator holds the sum of this many products without overflow.
ACC_TERMS = 64


# How the runtime lane starts and ends a sum (``MacLane(control=...)``): the running sum
# restarts by a synchronous reset on the last product, free in FPGA flip-flops, and the
# finished sum goes to an output register; the same for every scheme.
LANE_CONTROL = "last"


# The baked layer: inputs x outputs, weights from a fixed seed.
BAKED_IN = 16

BAKED_OUT = 2

BAKED_SEED = 2024


# A runtime table lane indexes P[k][c] by {k, c}: past this many index bits the table
# belongs in block RAM, not LUTs, and the point is left out of the sweep.
TABLE_MAX_INDEX_BITS = 10

# The tables design: each neuron reads as many inputs as fit this many table index bits.
TABLE_BITS = 12


def tables_fan_in(abits: int) -> int:
    """Inputs each neuron of the tables design reads."""
    return max(1, min(BAKED_IN, TABLE_BITS // abits))


def codebook(scheme: str, wbits: int) -> np.ndarray:
    from mulfree.gen.model.examples import scheme_codebook

    return np.asarray(scheme_codebook(scheme, wbits), dtype=np.int64)


def _signed_width(lo: int, hi: int) -> int:
    w = 1
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w


def lane_codebook(scheme: str, wbits: int) -> np.ndarray | None:
    """The weight values a runtime lane of ``scheme`` holds: the quantizer's codebook
    (``gen.quant.weight_levels``; ``lut``: the seeded LUT-Q one), or ``None`` where the
    quantizer has none at this width (PoT past 6 bits)."""
    from mulfree.gen.errors import InputError as _Refused
    from mulfree.gen.train.quant import weight_levels

    if scheme == "lut":
        return codebook("lut", wbits)
    try:
        return np.asarray(weight_levels(scheme, wbits), dtype=np.int64)
    except _Refused:
        return None


def _runtime_lane(scheme: str, wbits: int, abits: int, control: str = LANE_CONTROL):
    """One MAC lane (:class:`mulfree.hw.mac.MacLane`) for the scheme's codebook at
    ``wbits``: PoT and APoT units take the codebook's real exponents, and the accumulator
    holds ``ACC_TERMS`` products of the codebook exactly (the same rule for every scheme)."""
    from mulfree.hw.mac import MacLane, apot_max_exps

    kwargs = {}
    levels = lane_codebook(scheme, wbits)
    if scheme == "uniform":
        lane_scheme, lane_wbits = "uniform", wbits
    elif scheme == "pot":
        lane_scheme, lane_wbits = "pot", wbits
        if levels is not None:
            kwargs["max_exp"] = max(int(abs(v)).bit_length() - 1 for v in levels if v)
    elif scheme == "apot":
        lane_scheme, lane_wbits = "apot", wbits
        kwargs["max_exp"], kwargs["lo_max_exp"] = apot_max_exps(levels)
    elif scheme in ("ternary", "binary"):
        lane_scheme, lane_wbits = "pot", 1            # exponent 0 only: 0, +-1
        kwargs["max_exp"] = 0
    else:
        lane_scheme, lane_wbits = "table", wbits
        kwargs["table"] = np.multiply.outer(levels, np.arange(2**abits)).tolist()
    amax = 2**abits - 1
    if levels is None:
        # The probe lane only tells us the product's bounds; it is never elaborated.
        probe = MacLane(scheme=lane_scheme, weight_bits=lane_wbits, act_bits=abits,
                        acc_width=1, **kwargs)
        lo, hi = probe.unit.bounds
        probe._MustUse__silence = probe.unit._MustUse__silence = True
    else:
        lo, hi = int(min(levels.min(), 0)) * amax, int(max(levels.max(), 0)) * amax
    acc_width = _signed_width(ACC_TERMS * min(lo, 0), ACC_TERMS * max(hi, 0))
    lane = MacLane(scheme=lane_scheme, weight_bits=lane_wbits, act_bits=abits,
                   acc_width=acc_width, control=control, **kwargs)
    if lane_scheme in ("pot", "apot"):
        # These lanes use their unit's parameters, not the unit itself: no warning for it.
        lane.unit._MustUse__silence = True
    if scheme == "binary":
        return _BinaryLane(lane)
    return lane


def _binary_lane_class():
    from amaranth.hdl import Cat, Const, Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class BinaryLane(wiring.Component):
        """A ternary lane with the zero code unused: weights +-1 from a 1-bit code (the
        sign; the exponent field tied to exponent 0)."""

        def __init__(self, lane):
            self._lane = lane
            self._port = {"first": "first", "clear": "clear", "last": "last"}[lane.control]
            super().__init__({"weight": In(1), "act": In(lane.act.shape()), "valid": In(1),
                              self._port: In(1), "acc": Out(lane.acc.shape())})

        @property
        def control(self):
            return self._lane.control

        def elaborate(self, platform):
            m = Module()
            m.submodules.lane = lane = self._lane
            m.d.comb += [lane.weight.eq(Cat(Const(0, 1), self.weight)),
                         lane.act.eq(self.act), lane.valid.eq(self.valid),
                         getattr(lane, self._port).eq(getattr(self, self._port)),
                         self.acc.eq(lane.acc)]
            return m

    return BinaryLane


def _BinaryLane(lane):
    return _binary_lane_class()(lane)


def baked_weights(scheme: str, wbits: int) -> np.ndarray:
    """The baked layer's weight *values* ``[BAKED_OUT, BAKED_IN]`` (seeded, no all-zero
    rows so no output is constant), drawn from the same codebook as the runtime lane
    (:func:`lane_codebook`: the quantizer's)."""
    rng = np.random.default_rng([BAKED_SEED, SCHEMES.index(scheme), wbits])
    cb = lane_codebook(scheme, wbits)
    if cb is None:
        raise InputError(f"{scheme} has no {wbits}-bit codebook (the quantizer refuses it)")
    while True:
        w = cb[rng.integers(0, cb.size, (BAKED_OUT, BAKED_IN))]
        if (w != 0).any(axis=1).all():
            return w


def _baked_layer(scheme: str, wbits: int, abits: int):
    """The baked layer's arithmetic (see :func:`_baked_core`)."""
    return _baked_core(baked_weights(scheme, wbits), abits)


def signed_terms(weights: np.ndarray) -> list[list[tuple[int, int, int]]]:
    """Per output, the baked layer's terms ``(input, sign, shift)``: each weight as
    canonical signed digits (a PoT weight is one term, an APoT weight at most two)."""
    return [[(i, sign, shift) for i, v in enumerate(row) for sign, shift in csd_digits(int(v))]
            for row in weights]


def _baked_core(weights, abits):
    from amaranth.hdl import Module, Signal, signed, unsigned
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from mulfree.hw.adder_tree import sum_tree
    from mulfree.hw.product import shape_for

    n_out, n_in = weights.shape
    amax = 2**abits - 1
    per_out = signed_terms(weights)
    out_width = max(_signed_width(int(np.minimum(w, 0).sum() * amax),
                                  int(np.maximum(w, 0).sum() * amax)) for w in weights)

    class BakedCore(wiring.Component):
        """``y[j] = sum_i W[j][i] * a[i]`` with W constant, built the way
        :class:`mulfree.hw.engine.LayerEngine` builds its baked mode (without its stream
        buffers): each weight as canonical signed digits (a PoT weight one shifted copy
        of the activation, an APoT weight at most two), the positive and the negative
        terms of an output in two balanced pairwise trees
        (:func:`mulfree.hw.adder_tree.sum_tree`), meeting in one subtraction.
        Combinational."""

        def __init__(self):
            super().__init__({"a": In(unsigned(abits)).array(n_in),
                              "y": Out(signed(out_width)).array(n_out)})

        def elaborate(self, platform):
            m = Module()
            for j, terms in enumerate(per_out):
                pos = [(self.a[i] << sh, 0, amax << sh) for i, sg, sh in terms if sg > 0]
                neg = [(self.a[i] << sh, 0, amax << sh) for i, sg, sh in terms if sg < 0]
                total = None
                if pos:
                    total, lo, hi, _ = sum_tree(m, pos, name=f"pos{j}")
                if neg:
                    n, nlo, nhi, _ = sum_tree(m, neg, name=f"neg{j}")
                    if total is None:
                        total = -n
                    else:
                        d = Signal(shape_for(lo - nhi, hi - nlo), name=f"diff{j}")
                        m.d.comb += d.eq(total - n)
                        total = d
                m.d.comb += self.y[j].eq(0 if total is None else total)
            return m

    return BakedCore()


def _tables_layer(scheme: str, wbits: int, abits: int):
    """The tables design (module docstring): the baked layer's weights on its first
    ``tables_fan_in(abits)`` inputs, each neuron's accumulator one truth table."""
    from mulfree.gen.model.format import Dense, Output, OutputKind, Scheme, Weights
    from mulfree.gen.plan.tables import neuron_table
    from mulfree.hw.product import shape_for
    from mulfree.hw.table_layer import TableLayer
    from mulfree.hw.table_spec import TableLayerSpec, TableNeuron

    f = tables_fan_in(abits)
    w = baked_weights(scheme, wbits)[:, :f]
    values = np.unique(w)
    layer = Dense(name="tables", weights=Weights(Scheme.LUT, max(1, (values.size - 1).bit_length()),
                                                 np.searchsorted(values, w), codebook=values),
                  bias=np.zeros(w.shape[0], np.int64), output=Output(OutputKind.ACC),
                  activation_codebook=np.arange(2**abits))
    neurons = tuple(TableNeuron(tuple(range(f)), neuron_table(layer, j, list(range(f)), abits))
                    for j in range(w.shape[0]))
    lo = min(min(n.table) for n in neurons)
    hi = max(max(n.table) for n in neurons)
    shape = shape_for(min(lo, -1), hi)
    spec = TableLayerSpec(in_bits=abits, in_count=f, neurons=neurons, out_width=shape.width,
                          out_signed=True)
    return TableLayer(spec)


def build_design(mode: str, scheme: str, wbits: int, abits: int):
    """The Amaranth component measured at a point (the target does not change it)."""
    if mode == "runtime":
        return _runtime_lane(scheme, wbits, abits)
    if mode == "tables":
        return _tables_layer(scheme, wbits, abits)
    return _baked_layer(scheme, wbits, abits)
