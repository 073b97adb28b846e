"""What a fully pipelined network of neuron tables computes, without any model knowledge.

:class:`TablesSpec` is the whole network as :class:`~.table_pipeline.TablePipeline`
needs it: layers of neurons, each either a :class:`TableNeuron` (its whole function as
one truth table over the bits of the input codes it reads) or a :class:`SumNeuron` (a sum
of one small lookup per input it reads, then thresholds: the arithmetic form, for neurons
with too many input bits for one table), and optionally an argmax over the last layer.
Everything is plain integers; the plan (``mulfree.gen.plan.tables``) fills them in from
a model.

Timing (no stalls): one inference per ``in_beats`` cycles; :attr:`TablesSpec.registers`
register stages between the input frame and the output register (see
:class:`~.table_pipeline.TablePipeline`); the cycle model is
:class:`mulfree.hw.timing.TablesModel`.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import signed, unsigned

from .product import shape_for
from .timing import TablesModel
from .truth_table import MAX_IN_BITS, STYLES

__all__ = ["TableNeuron", "SumNeuron", "TableLayerSpec", "TablesSpec"]


def _ints(name: str, values, *, allow_empty: bool = True) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a sequence of integers, not {values!r}")
    out = tuple(values)
    for v in out:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} entries must be integers, not {v!r}")
    if not allow_empty and not out:
        raise ValueError(f"{name} must not be empty")
    return out


@dataclass(frozen=True)
class TableNeuron:
    """A neuron as one truth table.

    ``inputs`` are positions in the layer's input vector; input ``k`` of the list gives
    bits ``[k*b, (k+1)*b)`` of the table index (``b``: the layer's input code bits), so
    ``table`` has ``2**(len(inputs) * b)`` entries. No inputs: a constant, ``table[0]``.
    """

    inputs: tuple[int, ...]
    table: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", _ints("Neuron inputs", self.inputs))
        object.__setattr__(self, "table", _ints("Neuron table", self.table, allow_empty=False))

    @property
    def bounds(self) -> tuple[int, int]:
        return min(self.table), max(self.table)

    def check(self, in_bits: int, in_count: int) -> None:
        _check_inputs(self.inputs, in_count)
        want = 2 ** (len(self.inputs) * in_bits)
        if len(self.table) != want:
            raise ValueError(f"A table over {len(self.inputs)} inputs of {in_bits} bits needs "
                             f"{want} entries, not {len(self.table)}")
        if len(self.inputs) * in_bits > MAX_IN_BITS:
            raise ValueError(f"A table may have at most {MAX_IN_BITS} input bits, not "
                             f"{len(self.inputs) * in_bits}")


@dataclass(frozen=True)
class SumNeuron:
    """A neuron in arithmetic form: ``acc = bias + sum_k terms[k][c[inputs[k]]]``, then
    ``sum_t (acc >= thresholds[t])`` (``thresholds`` ``None``: the output is ``acc``).

    ``terms[k]`` lists the contribution of input ``inputs[k]`` for each of its
    ``2**b`` codes (a product row ``P[w][c]``)."""

    inputs: tuple[int, ...]
    terms: tuple[tuple[int, ...], ...]
    bias: int
    thresholds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", _ints("Neuron inputs", self.inputs))
        object.__setattr__(self, "terms", tuple(_ints("Neuron term", t, allow_empty=False)
                                                for t in self.terms))
        if isinstance(self.bias, bool) or not isinstance(self.bias, int):
            raise TypeError(f"Bias must be an integer, not {self.bias!r}")
        if self.thresholds is not None:
            t = _ints("Thresholds", self.thresholds, allow_empty=False)
            if any(a > b for a, b in zip(t, t[1:])):
                raise ValueError(f"Thresholds must be non-decreasing, not {list(t)!r}")
            object.__setattr__(self, "thresholds", t)

    @property
    def acc_bounds(self) -> tuple[int, int]:
        return (self.bias + sum(min(t) for t in self.terms),
                self.bias + sum(max(t) for t in self.terms))

    @property
    def bounds(self) -> tuple[int, int]:
        if self.thresholds is None:
            return self.acc_bounds
        return 0, len(self.thresholds)

    def check(self, in_bits: int, in_count: int) -> None:
        _check_inputs(self.inputs, in_count)
        if len(self.terms) != len(self.inputs):
            raise ValueError(f"A sum neuron needs one term per input: {len(self.inputs)} "
                             f"inputs, {len(self.terms)} terms")
        for t in self.terms:
            if len(t) != 2**in_bits:
                raise ValueError(f"Each term lists one value per {in_bits}-bit code "
                                 f"({2**in_bits}), not {len(t)}")


def _check_inputs(inputs: tuple[int, ...], in_count: int) -> None:
    if len(set(inputs)) != len(inputs):
        raise ValueError(f"Neuron inputs must be distinct, not {list(inputs)!r}")
    for i in inputs:
        if not 0 <= i < in_count:
            raise ValueError(f"Neuron input {i} is outside the layer's {in_count} inputs")


@dataclass(frozen=True)
class TableLayerSpec:
    """One layer: ``in_count`` input codes of ``in_bits`` bits, its neurons in output
    order, every output sent as ``out_width`` bits (two's complement when ``out_signed``:
    accumulators; else codes). Sum neurons register their adder trees every
    ``sum_pipeline_every`` levels (0: not at all); the layer's other neurons are delayed
    to match."""

    in_bits: int
    in_count: int
    neurons: tuple
    out_width: int
    out_signed: bool = False
    sum_pipeline_every: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "neurons", tuple(self.neurons))

    @property
    def out_bounds(self) -> tuple[int, int]:
        return (min(n.bounds[0] for n in self.neurons), max(n.bounds[1] for n in self.neurons))

    @property
    def out_shape(self):
        """The shape every output of the layer is sent in."""
        return signed(self.out_width) if self.out_signed else unsigned(self.out_width)

    @property
    def latency(self) -> int:
        """Register stages inside the layer (its adder trees' pipeline registers)."""
        depth = 0
        if self.sum_pipeline_every:
            for n in self.neurons:
                if isinstance(n, SumNeuron) and len(n.terms) > 1:
                    levels = (len(n.terms) - 1).bit_length()   # the bias rides in a term
                    depth = max(depth, levels // self.sum_pipeline_every)
        return depth

    def check(self) -> None:
        for name, v in (("Input bits", self.in_bits), ("Input count", self.in_count),
                        ("Output width", self.out_width)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if isinstance(self.sum_pipeline_every, bool) or not isinstance(
                self.sum_pipeline_every, int) or self.sum_pipeline_every < 0:
            raise ValueError(f"Sum pipeline interval must be a non-negative integer, not "
                             f"{self.sum_pipeline_every!r}")
        if not self.neurons:
            raise ValueError("A layer needs at least one neuron")
        for n in self.neurons:
            if not isinstance(n, (TableNeuron, SumNeuron)):
                raise TypeError(f"Neurons must be TableNeuron or SumNeuron, not {n!r}")
            n.check(self.in_bits, self.in_count)
        lo, hi = self.out_bounds
        need = shape_for(lo, hi)
        if (need.signed and not self.out_signed) or (
                (need.width if need.signed == self.out_signed else need.width + 1) > self.out_width):
            raise ValueError(f"Outputs in [{lo}, {hi}] do not fit {self.out_shape}")


@dataclass(frozen=True)
class TablesSpec:
    """A whole network of table layers, fully pipelined.

    Parameters
    ----------
    in_beat : int
        Input codes per input beat (divides the first layer's ``in_count``); the whole
        sample in one beat gives one inference per cycle.
    layers : tuple of TableLayerSpec
        Each layer's ``in_bits`` and ``in_count`` are the previous layer's output.
    argmax : bool
        Send the index of the last layer's largest output (ties: the lowest index)
        instead of the outputs.
    style : str
        How truth tables are written (:data:`mulfree.hw.truth_table.STYLES`).
    register_every : int
        Layers between pipeline registers (1: a register after every layer).
    argmax_every : int
        Half-levels of the argmax tree (a level compares pairs, then selects the larger of
        each) between pipeline registers: 1 registers after every comparison and every
        selection, 2 after every level.
    """

    in_beat: int
    layers: tuple
    argmax: bool = False
    style: str = "bdd"
    register_every: int = 1
    argmax_every: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))

    @property
    def in_bits(self) -> int:
        return self.layers[0].in_bits

    @property
    def in_count(self) -> int:
        return self.layers[0].in_count

    @property
    def in_beats(self) -> int:
        return self.in_count // self.in_beat

    @property
    def out_count(self) -> int:
        """Values per inference: 1 with argmax, else the last layer's outputs."""
        return 1 if self.argmax else len(self.layers[-1].neurons)

    @property
    def out_beat(self) -> int:
        return self.out_count

    @property
    def out_beats(self) -> int:
        return 1

    @property
    def out_shape(self):
        if self.argmax:
            return shape_for(0, max(1, len(self.layers[-1].neurons) - 1))
        return self.layers[-1].out_shape

    @property
    def out_bits(self) -> int:
        return self.out_shape.width

    @property
    def argmax_levels(self) -> int:
        return (len(self.layers[-1].neurons) - 1).bit_length() if self.argmax else 0

    @property
    def segments(self) -> list[int]:
        """The register stages after the input frame, segment by segment: the layers in
        groups of ``register_every`` (each adding its own internal registers), then the
        argmax half-levels in groups of ``argmax_every``. A register ends every segment but
        the last, whose output goes into the output register."""
        stages = []
        for start in range(0, len(self.layers), self.register_every):
            stages.append(sum(l.latency for l in self.layers[start:start + self.register_every]))
        if self.argmax:
            stages.extend(0 for _ in range(-(-2 * self.argmax_levels // self.argmax_every)))
        return stages

    @property
    def registers(self) -> int:
        """Register stages between the input frame register and the output register."""
        segs = self.segments
        return len(segs) - 1 + sum(segs)

    @property
    def depth(self) -> int:
        """Inferences in the pipeline at most: the input frame register, the
        ``registers`` stages, the output register and its skid buffer."""
        return self.registers + 3

    @property
    def latency(self) -> int:
        """Cycles from the first input beat's transfer to the output beat's transfer, no
        stalls (what :class:`mulfree.hw.timing.TablesModel` gives)."""
        return self.in_beats - 1 + self.registers + 2

    def cycle_model(self):
        """A fresh cycle model of this stage's handshakes (:mod:`.timing`)."""
        return TablesModel(self)

    def check(self) -> None:
        if not self.layers:
            raise ValueError("A table network needs at least one layer")
        for n, layer in enumerate(self.layers):
            if not isinstance(layer, TableLayerSpec):
                raise TypeError(f"Layers must be TableLayerSpec, not {layer!r}")
            layer.check()
            if n:
                prev = self.layers[n - 1]
                if prev.out_shape.signed:
                    raise ValueError(f"Layer {n - 1} outputs signed values; only the last "
                                     f"layer may")
                want = (prev.out_shape.width, len(prev.neurons))
                if (layer.in_bits, layer.in_count) != want:
                    raise ValueError(f"Layer {n} takes {layer.in_count} codes of "
                                     f"{layer.in_bits} bits, layer {n - 1} gives {want[1]} "
                                     f"of {want[0]}")
        for name, v, lo in (("Input beat", self.in_beat, 1),
                            ("Register interval", self.register_every, 1),
                            ("Argmax register interval", self.argmax_every, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if self.in_count % self.in_beat:
            raise ValueError(f"Input beat must divide the {self.in_count} input codes, not "
                             f"{self.in_beat}")
        if self.style not in STYLES:
            raise ValueError(f"Style must be one of {', '.join(STYLES)}, not {self.style!r}")
        if not isinstance(self.argmax, bool):
            raise TypeError(f"Argmax must be a bool, not {self.argmax!r}")
