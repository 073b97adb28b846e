"""FINN's CNV topology with random weights, at full size or scaled down.

CNV (Umuroglu et al., FINN, FPGA 2017; the FINN examples' ``cnv_w1a1`` and ``cnv_w2a2``) is
the CIFAR-10 network of BinaryNet: 32x32x3 input, 3x3 convolutions of 64, 64 channels,
2x2 max-pool, 128, 128, max-pool, 256, 256 (no padding: 32 -> 30 -> 28 -> 14 -> 12 -> 10
-> 5 -> 3 -> 1), then dense layers of 512, 512 and 10 classes; about 1.5 M weights. The
first layer reads the 8-bit image; every other layer reads `abits`-bit activations.

No trained CNV is at hand, and training CIFAR-10 is out of reach on this machine, so the
weights are random (seeded). The thresholds are not: each channel's are drawn at random
quantiles of its pre-activation over a few random calibration images (the golden model
run layer by layer), so every layer's output codes vary as a trained network's do rather
than saturating. The network classifies nothing; it has CNV's shapes, bits and memory.

At 1 bit (``w1a1``) weights are binary (-1, +1) and activations bipolar (-1, +1), FINN's
XNOR-popcount form; at 2 bits (``w2a2``) weights are 2-bit uniform (-2 .. 1) and activations
the unsigned codes 0 .. 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .format import Conv2d, Dense, Flatten, MaxPool, Model, Output, OutputKind, Weights
from .golden import layer_forward
from .examples import scheme_codebook

__all__ = ["CnvShape", "CNV_FULL", "CNV_SMALL", "cnv_model", "cnv_weight_count"]


@dataclass(frozen=True)
class CnvShape:
    """The topology: conv channels in pairs, each pair but the last followed by a 2x2
    max-pool, then dense layers and the classes.

    ``image`` is the input's height and width, ``in_channels`` its channels, ``in_bits`` its
    code width; ``padding`` the convolutions' zero padding (CNV: 0).
    """

    image: int = 32
    in_channels: int = 3
    in_bits: int = 8
    conv: tuple[int, ...] = (64, 64, 128, 128, 256, 256)
    dense: tuple[int, ...] = (512, 512)
    classes: int = 10
    padding: int = 0

    def __post_init__(self) -> None:
        if len(self.conv) % 2 or not self.conv:
            raise ValueError(f"conv channels come in pairs, not {self.conv}")
        side = self.image
        for i in range(len(self.conv)):
            side = side + 2 * self.padding - 2
            if side < 1:
                raise ValueError(f"image {self.image} is too small: conv {i} has no output")
            if i % 2 and i < len(self.conv) - 1:
                if side < 2:
                    raise ValueError(f"image {self.image} is too small for pool {i // 2}")
                side //= 2

    @property
    def final_side(self) -> int:
        side = self.image
        for i in range(len(self.conv)):
            side = side + 2 * self.padding - 2
            if i % 2 and i < len(self.conv) - 1:
                side //= 2
        return side


CNV_FULL = CnvShape()
# The CI's CNV: the same layer kinds and order, fewer channels, an 8x8 image (padding 1).
CNV_SMALL = CnvShape(image=8, in_channels=3, in_bits=8, conv=(4, 4, 8, 8, 8, 8),
                     dense=(16, 16), classes=10, padding=1)


def cnv_weight_count(shape: CnvShape) -> int:
    """Weights of the topology (what FINN quotes as about 1.5 M for CNV)."""
    n, c = 0, shape.in_channels
    for ch in shape.conv:
        n += 9 * c * ch
        c = ch
    f = shape.final_side ** 2 * c
    for d in (*shape.dense, shape.classes):
        n += f * d
        f = d
    return n


def _weights(rng: np.random.Generator, bits: int, shape: tuple[int, ...]) -> Weights:
    if bits == 1:
        return Weights("binary", 1, rng.integers(0, 2, shape), codebook=np.array([-1, 1]))
    cb = scheme_codebook("uniform", bits)
    return Weights("uniform", bits, rng.integers(0, cb.size, shape), codebook=cb)


def _act_codebook(bits: int) -> np.ndarray:
    return np.array([-1, 1]) if bits == 1 else np.arange(2**bits)


def _thresholds(rng: np.random.Generator, acc: np.ndarray, bits: int) -> np.ndarray:
    """Per channel, ``2**bits - 1`` sorted thresholds at random quantiles of `acc`
    (``[..., channels]``), kept inside the middle of the observed range."""
    per_ch = acc.reshape(-1, acc.shape[-1])
    q = np.sort(rng.uniform(0.2, 0.8, (per_ch.shape[1], 2**bits - 1)), axis=1)
    t = np.stack([np.quantile(per_ch[:, j], q[j]) for j in range(per_ch.shape[1])])
    return np.ceil(t).astype(np.int64)


def cnv_model(shape: CnvShape = CNV_FULL, *, wbits: int = 1, abits: int = 1, seed: int = 0,
              calibration: int = 4, output: str = "argmax", name: str | None = None) -> Model:
    """The CNV topology with random `wbits`-bit weights and `abits`-bit activations.

    `calibration` random images set the thresholds (see the module docstring); `output`
    is the last layer's kind (``argmax``, as FINN's top-1, or ``acc``).
    """
    if wbits not in (1, 2) or abits not in (1, 2):
        raise ValueError(f"CNV has 1- or 2-bit weights and activations, not w{wbits}a{abits}")
    if calibration < 1:
        raise ValueError(f"calibration must be at least 1 image, not {calibration}")
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2**shape.in_bits, (calibration, shape.image, shape.image,
                                           shape.in_channels))
    layers = []
    in_cb = np.arange(2**shape.in_bits)
    c = shape.in_channels

    def add(make, out: int, **geo):
        nonlocal x
        acc_layer = make(Output(OutputKind.ACC), **geo)
        _, acc = layer_forward(acc_layer, x)
        layer = make(Output(OutputKind.THRESHOLDS, abits, _thresholds(rng, acc, abits)), **geo)
        x, _ = layer_forward(layer, x)
        layers.append(layer)

    pad = (shape.padding, shape.padding)
    for i, ch in enumerate(shape.conv):
        w = _weights(rng, wbits, (ch, 3, 3, c))
        cb = in_cb if i == 0 else _act_codebook(abits)
        bias = np.zeros(ch, np.int64)
        add(lambda out, w=w, cb=cb, bias=bias, i=i: Conv2d(
            name=f"conv{i}", weights=w, bias=bias, output=out, activation_codebook=cb,
            padding=pad), ch)
        c = ch
        if i % 2 and i < len(shape.conv) - 1:
            layers.append(MaxPool(name=f"pool{i // 2}", kernel=(2, 2)))
            x, _ = layer_forward(layers[-1], x)
    layers.append(Flatten(name="flatten"))
    x, _ = layer_forward(layers[-1], x)
    f = x.shape[1]
    for i, d in enumerate(shape.dense):
        w = _weights(rng, wbits, (d, f))
        bias = np.zeros(d, np.int64)
        add(lambda out, w=w, bias=bias, i=i: Dense(
            name=f"fc{i}", weights=w, bias=bias, output=out,
            activation_codebook=_act_codebook(abits)), d)
        f = d
    w = _weights(rng, wbits, (shape.classes, f))
    layers.append(Dense(name=f"fc{len(shape.dense)}", weights=w,
                        bias=np.zeros(shape.classes, np.int64), output=Output(OutputKind(output)),
                        activation_codebook=_act_codebook(abits)))
    tag = f"w{wbits}a{abits}"
    return Model(name=name or f"cnv-{tag}", input_shape=(shape.image, shape.image,
                                                         shape.in_channels),
                 input_bits=shape.in_bits, layers=tuple(layers),
                 metadata={"source": "mulfree.gen.model.cnv.cnv_model", "seed": seed,
                           "topology": "FINN CNV" if shape == CNV_FULL else "CNV, scaled down",
                           "weights": cnv_weight_count(shape),
                           "note": "random weights, thresholds at random quantiles of "
                                   "calibration pre-activations: computes nothing useful"})
