"""What decides a trained model: :class:`TrainConfig` (every option, the seed included),
the architectures, schemes and activation kinds training offers, and the gradual
quantization schedule (:func:`stages`: a float phase, then the bits lowered in steps, for
example 6 -> 5 -> 4 bits or uniform -> ternary -> binary, to the target)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from .quant import check_bits
from .tbn import levels_for_entries

__all__ = ["TrainConfig", "stages", "ARCHS", "SCHEMES", "ACTS", "BN_EPS", "FAN_IN_RULES"]

ARCHS = ("mlp", "cnn")

SCHEMES = ("float", "uniform", "binary", "ternary", "pot", "apot", "lut", "table")

ACTS = ("uniform", "bipolar", "learned")

BN_EPS = 1e-5

# How a sparse layer's connections are chosen (``fan_in``): ``learned`` keeps each
# neuron's largest float weights after the float phase (magnitude pruning), ``random``
# draws them per neuron before training from the seed (LogicNets).
FAN_IN_RULES = ("learned", "random")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a trained model (the seed included)."""

    arch: str = "mlp"
    hidden: tuple[int, ...] = (64, 32)     # MLP hidden widths
    channels: tuple[int, ...] = (8, 16)    # CNN conv channels (3x3, pad 1, each + 2x2 pool)
    scheme: str = "uniform"
    wbits: int = 4
    abits: int = 2
    ibits: int = 4
    act: str = "uniform"                   # table forces 'learned'
    alpha: float = 2.0                     # clip of the uniform activation
    output: str = "argmax"
    table_entries: int | None = None
    precision: int = 8                     # integer precision of learned levels / tables
    lut_pot: bool = False
    lut_prune: float = 0.0
    epochs: int = 60
    batch: int = 64
    lr: float = 0.01
    seed: int = 0
    gradual: bool = True
    train_subset: int | None = None
    # Sparse fan-in (MLP): every neuron of dense layer n reads fan_in[n] of its inputs
    # (one value: every dense layer); () is dense. The rest are zero weights.
    fan_in: tuple[int, ...] = ()
    fan_in_rule: str = "learned"

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise InputError(f"--arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.scheme not in SCHEMES:
            raise InputError(f"--scheme must be one of {', '.join(SCHEMES)}, got {self.scheme!r}")
        if self.act not in ACTS:
            raise InputError(f"--act must be one of {', '.join(ACTS)}, got {self.act!r}")
        if self.output not in ("acc", "argmax"):
            raise InputError(f"--output must be acc or argmax, got {self.output!r}")
        if self.scheme == "table":
            object.__setattr__(self, "act", "learned")
        if self.scheme not in ("float", "table"):
            check_bits(self.scheme, self.wbits, "--wbits")
        elif self.scheme == "table" and not 1 <= self.wbits <= 16:
            raise InputError(f"--wbits must be 1 to 16, got {self.wbits}")
        if self.act == "bipolar" and self.abits != 1:
            raise InputError(f"bipolar activations have 1 bit, got --abits {self.abits}")
        if not 1 <= self.abits <= 8:
            raise InputError(f"--abits must be 1 to 8, got {self.abits}")
        if not 1 <= self.ibits <= 8:
            raise InputError(f"--ibits must be 1 to 8, got {self.ibits}")
        if any(h < 1 for h in self.hidden) or any(c < 1 for c in self.channels):
            raise InputError("every layer needs at least one unit (an empty layer was asked for)")
        if self.epochs < 1 or self.batch < 1 or not self.lr > 0:
            raise InputError("epochs, batch and lr must be positive")
        if (self.lut_pot or self.lut_prune) and self.scheme != "lut":
            raise InputError("--lut-pot and --lut-prune only apply to --scheme lut")
        if not 0.0 <= self.lut_prune < 1.0:
            raise InputError(f"--lut-prune must be in [0, 1), got {self.lut_prune}")
        if not 2 <= self.precision <= 16:
            raise InputError(f"--precision must be 2 to 16 bits, got {self.precision}")
        if self.act == "learned" and self.abits > self.precision - 2:
            raise InputError(f"learned activations with --abits {self.abits} need --precision "
                             f"of at least {self.abits + 2} bits, got {self.precision}")
        self._check_fan_in()
        if self.scheme == "table":
            entries = self.table_entries or 2**self.wbits * 2**self.abits
            for n_act in {2**self.ibits, 2**self.abits}:
                levels_for_entries(entries, n_act, self.wbits)
        elif self.table_entries is not None:
            raise InputError("--table-entries only applies to --scheme table")

    def _check_fan_in(self) -> None:
        fan = tuple(self.fan_in)
        object.__setattr__(self, "fan_in", fan)
        if self.fan_in_rule not in FAN_IN_RULES:
            raise InputError(f"--fan-in-rule must be one of {', '.join(FAN_IN_RULES)}, got "
                             f"{self.fan_in_rule!r}")
        if not fan:
            return
        if self.arch != "mlp":
            raise InputError("--fan-in applies to the dense layers of --arch mlp")
        if any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in fan):
            raise InputError(f"--fan-in values must be positive integers, got "
                             f"{','.join(map(str, fan))}")
        n = len(self.hidden) + 1
        if len(fan) not in (1, n):
            raise InputError(f"--fan-in takes one value or one per dense layer ({n} for "
                             f"--hidden {','.join(map(str, self.hidden))}), got {len(fan)}")

    def layer_fan_in(self, index: int, inputs: int) -> int | None:
        """Inputs each neuron of dense layer ``index`` reads (``None``: all of its
        ``inputs``)."""
        if not self.fan_in:
            return None
        f = self.fan_in[0] if len(self.fan_in) == 1 else self.fan_in[index]
        return None if f >= inputs else f

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["hidden"] = list(self.hidden)
        d["channels"] = list(self.channels)
        if self.fan_in:
            d["fan_in"] = list(self.fan_in)
        else:   # a dense model's configuration reads as before sparse fan-in existed
            del d["fan_in"], d["fan_in_rule"]
        return d


def stages(cfg: TrainConfig) -> list[tuple[str, int, int, bool, float]]:
    """(weight scheme, weight bits, activation bits, activations quantized, epoch share)."""
    if cfg.scheme == "float":
        return [("float", cfg.wbits, cfg.abits, False, 1.0)]
    out = [("float", cfg.wbits, cfg.abits, False, 0.2)]
    s, wb, ab = cfg.scheme, cfg.wbits, cfg.abits
    if cfg.gradual:
        steps = []
        if s == "binary":
            steps = [("uniform", 4, ab + 2), ("ternary", 2, ab + 1)]
        elif s == "ternary":
            steps = [("uniform", 4, ab + 2), ("uniform", 3, ab + 1)]
        elif s in ("uniform", "apot", "lut"):
            steps = [(s, wb + 2, ab + 2), (s, wb + 1, ab + 1)]
        elif s == "pot":
            steps = [(s, min(6, wb + 2), ab + 2), (s, min(6, wb + 1), ab + 1)]
        elif s == "table":
            steps = [("lut", 4, ab)]
        for ws, w, a in steps:
            if cfg.act != "uniform":
                a = ab
            a = min(a, 8)
            if ws in ("uniform", "apot"):
                w = min(max(w, 2), 8 if ws == "apot" else 16)
            out.append((ws, w, a, True, 0.15))
    out.append((s, wb, ab, True, 1.0 - sum(st[4] for st in out)))
    return out
