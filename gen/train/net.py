"""The trainable NumPy network: layers, training-time quantizers, forward and backward.

A small network (an MLP such as 64-32-10 or a CNN conv-pool-conv-pool-dense) with
hand-written forward and backward passes. Hidden layers are ``dense/conv (no bias) ->
batch norm -> activation quantizer``; the last layer is ``dense + bias``.

Quantization-aware training uses straight-through estimators: the forward pass uses the
quantized weights (:func:`qweights`) and activations (:func:`act_forward`); the gradient
of the quantized weight is applied to the float shadow weight; the activation quantizer
passes the gradient inside its clip range. LUT-Q (scheme ``lut``) moves its dictionary by
one k-means step per optimizer step (:func:`lut_step`).

Sparse fan-in (``TrainConfig.fan_in``): a dense layer's ``mask`` (``[out, in]``, ``True``
for a connection) keeps every neuron to ``F`` inputs; the weights off the mask are zero
and stay zero, so the quantized forward pass and the exported model carry the sparsity as
zero weights. The rule (``fan_in_rule``): ``random`` draws each neuron's ``F`` inputs
uniformly without replacement before training, from the seed (LogicNets' fixed random
sparsity); ``learned`` prunes by magnitude, gradually: from a tenth of the epochs to
seven tenths, each neuron keeps its ``k`` largest-magnitude weights, ``k`` falling from
all of its inputs to ``F`` on a cubic schedule (Zhu and Gupta 2017,
:func:`prune_schedule`, :func:`choose_connections`). Measured on digits (docs/tables.md):
one-shot pruning after the float phase gave 84.7 %, the gradual schedule 93.9 % (64-32-10,
``F`` = 4, 2-bit codes, 150 epochs, seed 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import datasets
from .config import BN_EPS, TrainConfig
from .quant import (best_scale, integerize_levels, kmeans_assign, kmeans_step, lutq_init, project,
                    usable_levels)
from .tbn import levels_for_entries

__all__ = ["Layer", "Net", "build", "forward", "backward", "qweights", "act_forward",
           "act_kind", "refresh_scales", "reset_luts", "lut_step", "im2col", "pool2x2",
           "choose_connections", "prune_schedule", "apply_masks", "active_weights",
           "PRUNE_START", "PRUNE_END"]

# the learned rule's pruning window, as fractions of the epochs (cubic schedule)
PRUNE_START, PRUNE_END = 0.1, 0.7


@dataclass(eq=False)
class Layer:
    """One trainable layer. ``kind`` is dense, conv, pool or flatten."""

    kind: str
    W: np.ndarray | None = None          # dense [out, in]; conv [out, kh, kw, in]
    b: np.ndarray | None = None          # last layer only
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    rmean: np.ndarray | None = None
    rvar: np.ndarray | None = None
    levels: np.ndarray | None = None     # learned activation levels (float)
    pad: int = 1
    last: bool = False
    # quantizer state
    wscale: float = 1.0
    lut: np.ndarray | None = None
    # sparse fan-in: True where a neuron reads an input (dense layers); None: dense
    mask: np.ndarray | None = None
    fan_in: int | None = None            # inputs each neuron reads, when sparse


class Net:
    """A network: layers, the config, and the current quantization stage."""

    def __init__(self, cfg: TrainConfig, layers: list[Layer], in_shape: tuple[int, ...]):
        self.cfg = cfg
        self.layers = layers
        self.in_shape = in_shape
        self.wscheme = "float"
        self.wbits = cfg.wbits
        self.abits = cfg.abits
        self.aquant = False

    def compute(self) -> list[Layer]:
        return [l for l in self.layers if l.kind in ("dense", "conv")]


def build(cfg: TrainConfig, rng: np.random.Generator, n_classes: int = 10,
          image: tuple[int, int, int] = (8, 8, 1)) -> Net:
    layers: list[Layer] = []
    # the random connections have their own generator: a dense model's draws are unchanged
    conn_rng = np.random.default_rng([cfg.seed, 0xFA41])

    def sparse(layer: Layer, index: int, n_in: int) -> Layer:
        f = cfg.layer_fan_in(index, n_in) if cfg.arch == "mlp" else None
        layer.fan_in = f
        if f is not None and cfg.fan_in_rule == "random":
            layer.mask = random_mask(conn_rng, layer.W.shape[0], n_in, f)
            layer.W = layer.W * np.sqrt(n_in / f) * layer.mask
        elif f is not None:          # learned: every connection until pruning starts
            layer.mask = np.ones(layer.W.shape, bool)
        return layer

    def hidden(kind, shape, fan_in, out):
        w = rng.normal(0, math.sqrt(2.0 / fan_in), shape)
        layers.append(Layer(kind, W=w, gamma=np.ones(out), beta=np.zeros(out) + 0.1,
                            rmean=np.zeros(out), rvar=np.ones(out),
                            levels=np.linspace(0, cfg.alpha, 2**cfg.abits)))

    if cfg.arch == "mlp":
        n = int(np.prod(image))
        layers.append(Layer("flatten"))
        for i, h in enumerate(cfg.hidden):
            hidden("dense", (h, n), n, h)
            sparse(layers[-1], i, n)
            n = h
        in_shape = (int(np.prod(image)),)
    else:
        h, w, c = image
        for ch in cfg.channels:
            hidden("conv", (ch, 3, 3, c), 9 * c, ch)
            layers.append(Layer("pool"))
            h, w, c = h // 2, w // 2, ch
        layers.append(Layer("flatten"))
        n = h * w * c
        in_shape = image
    layers.append(Layer("dense", W=rng.normal(0, math.sqrt(1.0 / n), (n_classes, n)),
                        b=np.zeros(n_classes), last=True))
    if cfg.arch == "mlp":
        sparse(layers[-1], len(cfg.hidden), n)
    return Net(cfg, layers, in_shape)


def random_mask(rng: np.random.Generator, n_out: int, n_in: int, f: int) -> np.ndarray:
    """``[n_out, n_in]``: each row ``f`` distinct inputs drawn uniformly."""
    mask = np.zeros((n_out, n_in), bool)
    for j in range(n_out):
        mask[j, rng.choice(n_in, f, replace=False)] = True
    return mask


def prune_schedule(epoch: int, epochs: int) -> float:
    """The fraction of the way from all inputs to ``F`` (0 to 1) the learned rule has
    pruned at the start of ``epoch`` (0-based) of ``epochs``: 0 until ``PRUNE_START``,
    1 from ``PRUNE_END``, cubic in between."""
    t = epoch / max(1, epochs)
    p = min(1.0, max(0.0, (t - PRUNE_START) / (PRUNE_END - PRUNE_START)))
    return 1.0 - (1.0 - p) ** 3


def choose_connections(net: Net, progress: float = 1.0) -> bool:
    """The ``learned`` rule: every sparse layer's neurons keep their ``k`` largest-magnitude
    weights of those still connected (ties: the lower input index), ``k = F + (n - F) *
    (1 - progress)`` rounded, and the rest are zeroed. Returns whether a mask changed."""
    changed = False
    for l in net.compute():
        if l.fan_in is None or net.cfg.fan_in_rule != "learned":
            continue
        n = l.W.shape[1]
        k = int(round(l.fan_in + (n - l.fan_in) * (1.0 - progress)))
        mask = l.mask if l.mask is not None else np.ones(l.W.shape, bool)
        if mask.sum(axis=1).max() <= k:
            continue
        order = np.argsort(-(np.abs(l.W) * mask), axis=1, kind="stable")[:, :k]
        new = np.zeros(l.W.shape, bool)
        np.put_along_axis(new, order, True, axis=1)
        l.mask = new & mask
        changed = True
    apply_masks(net)
    return changed


def apply_masks(net: Net) -> None:
    """Zero every weight off its layer's mask."""
    for l in net.compute():
        if l.mask is not None:
            l.W *= l.mask


def active_weights(l: Layer, W: np.ndarray | None = None) -> np.ndarray:
    """The weights of the layer's connections (all of them when it is dense)."""
    W = l.W if W is None else W
    if l.mask is None or not l.mask.any():
        return W.ravel()
    return W[l.mask]


def act_kind(net: Net) -> str:
    return net.cfg.act


def _table_k(net: Net, layer_index: int) -> int:
    cfg = net.cfg
    entries = cfg.table_entries or 2**cfg.wbits * 2**cfg.abits
    n_act = 2**cfg.ibits if layer_index == 0 else 2**cfg.abits
    return levels_for_entries(entries, n_act, cfg.wbits)


def _lut_k(net: Net, idx: int) -> int:
    if net.wscheme == "table":
        return _table_k(net, idx)
    return 2**net.wbits


def refresh_scales(net: Net) -> None:
    """Recompute the weight scales (fixed-level schemes) or reset the LUT-Q dictionaries
    for the current stage (at the start of each epoch / stage)."""
    for i, l in enumerate(net.compute()):
        if net.wscheme in ("uniform", "pot", "apot"):
            l.wscale = best_scale(active_weights(l), usable_levels(net.wscheme, net.wbits))


def reset_luts(net: Net) -> None:
    cfg = net.cfg
    for i, l in enumerate(net.compute()):
        if net.wscheme in ("lut", "table"):
            pot = cfg.lut_pot and net.wscheme == "lut"
            prune = cfg.lut_prune if net.wscheme == "lut" else 0.0
            d = lutq_init(l.W, _lut_k(net, i), pot=pot, prune=prune, mask=l.mask)
            for _ in range(5):
                _, d = kmeans_step(l.W, d, pot=pot, prune=prune, mask=l.mask)
            l.lut = d


def qweights(net: Net, l: Layer) -> np.ndarray:
    """The forward-pass weights of a layer in the current stage (zero off its mask)."""
    Wq = _qweights(net, l)
    return Wq if l.mask is None else Wq * l.mask


def _qweights(net: Net, l: Layer) -> np.ndarray:
    s = net.wscheme
    W = l.W
    if s == "float":
        return W
    act = active_weights(l)
    if s == "binary":
        return np.mean(np.abs(act)) * np.where(W >= 0, 1.0, -1.0)
    if s == "ternary":
        delta = 0.7 * np.mean(np.abs(act))
        big = np.abs(W) > delta
        big_act = np.abs(act) > delta
        scale = np.mean(np.abs(act[big_act])) if big_act.any() else 1.0
        return scale * np.sign(W) * big
    if s in ("uniform", "pot", "apot"):
        lv = usable_levels(s, net.wbits).astype(np.float64)
        return l.wscale * lv[project(W / l.wscale, lv)]
    # lut / table
    prune = net.cfg.lut_prune if s == "lut" else 0.0
    return l.lut[kmeans_assign(W, l.lut, prune, l.mask)]


def lut_step(net: Net) -> None:
    if net.wscheme not in ("lut", "table"):
        return
    cfg = net.cfg
    for l in net.compute():
        pot = cfg.lut_pot and net.wscheme == "lut"
        prune = cfg.lut_prune if net.wscheme == "lut" else 0.0
        _, l.lut = kmeans_step(l.W, l.lut, pot=pot, prune=prune, mask=l.mask)


def act_forward(net: Net, l: Layer, y: np.ndarray):
    """Returns (value, ste mask, codes or None)."""
    kind = act_kind(net)
    if kind == "bipolar":
        mask = np.abs(y) <= 1.0
        if not net.aquant:
            return np.clip(y, -1.0, 1.0), mask, None
        return np.where(y >= 0, 1.0, -1.0), mask, None
    if kind == "learned" and net.aquant:
        lv = l.levels
        codes = np.searchsorted((lv[1:] + lv[:-1]) / 2, y, side="right")
        return lv[codes], (y >= lv[0]) & (y <= lv[-1]), codes
    alpha = net.cfg.alpha
    mask = (y >= 0) & (y <= alpha)
    if not net.aquant:
        return np.clip(y, 0.0, alpha), mask, None
    step = alpha / (2**net.abits - 1)
    codes = np.clip(np.floor(y / step + 0.5), 0, 2**net.abits - 1)
    return codes * step, mask, None


def im2col(x: np.ndarray, k: int, pad: int) -> np.ndarray:
    n, h, w, c = x.shape
    xp = np.zeros((n, h + 2 * pad, w + 2 * pad, c))
    xp[:, pad:pad + h, pad:pad + w] = x
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    cols = np.empty((n, oh, ow, k, k, c))
    for dy in range(k):
        for dx in range(k):
            cols[:, :, :, dy, dx, :] = xp[:, dy:dy + oh, dx:dx + ow, :]
    return cols.reshape(n, oh, ow, k * k * c)


def _col2im(dcols: np.ndarray, shape: tuple[int, ...], k: int, pad: int) -> np.ndarray:
    n, h, w, c = shape
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    dcols = dcols.reshape(n, oh, ow, k, k, c)
    dxp = np.zeros((n, h + 2 * pad, w + 2 * pad, c))
    for dy in range(k):
        for dx in range(k):
            dxp[:, dy:dy + oh, dx:dx + ow, :] += dcols[:, :, :, dy, dx, :]
    return dxp[:, pad:pad + h, pad:pad + w]


def pool2x2(x: np.ndarray):
    n, h, w, c = x.shape
    oh, ow = h // 2, w // 2
    win = x[:, :oh * 2, :ow * 2].reshape(n, oh, 2, ow, 2, c).transpose(0, 1, 3, 5, 2, 4)
    win = win.reshape(n, oh, ow, c, 4)
    idx = np.argmax(win, axis=-1)
    return np.take_along_axis(win, idx[..., None], -1)[..., 0], idx


def _unpool(dy: np.ndarray, idx: np.ndarray, shape) -> np.ndarray:
    n, h, w, c = shape
    oh, ow = h // 2, w // 2
    dwin = np.zeros((n, oh, ow, c, 4))
    np.put_along_axis(dwin, idx[..., None], dy[..., None], -1)
    dwin = dwin.reshape(n, oh, ow, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(n, oh * 2, ow * 2, c)
    out = np.zeros(shape)
    out[:, :oh * 2, :ow * 2] = dwin
    return out


def forward(net: Net, x: np.ndarray, train: bool = False):
    """Logits and the caches for :func:`backward`. ``x`` are input values in [0, 1]."""
    caches = []
    h = x
    for l in net.layers:
        if l.kind == "flatten":
            caches.append(h.shape)
            h = h.reshape(h.shape[0], -1)
            continue
        if l.kind == "pool":
            shape = h.shape
            h, idx = pool2x2(h)
            caches.append((shape, idx))
            continue
        Wq = qweights(net, l)
        if l.kind == "conv":
            cols = im2col(h, 3, l.pad)
            z = cols @ Wq.reshape(Wq.shape[0], -1).T
            inp = (cols, h.shape)
        else:
            z = h @ Wq.T
            inp = h
        if l.last:
            b = l.b
            s_in = None
            if net.wscheme != "float":
                s_in = _last_scale(net, l, Wq)
                b = s_in * np.round(l.b / s_in)
            caches.append((inp, Wq, None, None))
            h = z + b
            continue
        axes = tuple(range(z.ndim - 1))
        if train:
            mu = z.mean(axis=axes)
            var = z.var(axis=axes)
            l.rmean = 0.9 * l.rmean + 0.1 * mu
            l.rvar = 0.9 * l.rvar + 0.1 * var
        else:
            mu, var = l.rmean, l.rvar
        inv = 1.0 / np.sqrt(var + BN_EPS)
        zh = (z - mu) * inv
        y = l.gamma * zh + l.beta
        a, mask, codes = act_forward(net, l, y)
        caches.append((inp, Wq, (zh, inv, train), (mask, codes)))
        h = a
    return h, caches


def _last_scale(net: Net, l: Layer, Wq: np.ndarray) -> float:
    """The real value of one accumulator step of the last layer (weight scale x input step)."""
    nz = np.abs(Wq[Wq != 0])
    ws = float(nz.min()) if net.wscheme in ("binary", "ternary") and nz.size else None
    if ws is None:
        ws = _wscale(net, l)
    return ws * _in_step(net, l)


def _wscale(net: Net, l: Layer) -> float:
    s = net.wscheme
    if s in ("uniform", "pot", "apot"):
        return l.wscale
    if s in ("lut", "table"):
        _, scale = integerize_levels(l.lut, net.cfg.precision)
        return scale
    return 1.0


def _in_step(net: Net, l: Layer) -> float:
    comp = net.compute()
    i = comp.index(l)
    if i == 0:
        return datasets.input_step(net.cfg.ibits)
    kind = act_kind(net)
    if kind == "bipolar":
        return 1.0
    if kind == "learned":
        lv = comp[i - 1].levels
        return integerize_levels(lv, net.cfg.precision, signed=bool(lv.min() < 0))[1]
    return net.cfg.alpha / (2**net.abits - 1)


def backward(net: Net, caches, dlogits: np.ndarray) -> dict:
    grads = {}
    d = dlogits
    for li in range(len(net.layers) - 1, -1, -1):
        l = net.layers[li]
        c = caches[li]
        if l.kind == "flatten":
            d = d.reshape(c)
            continue
        if l.kind == "pool":
            shape, idx = c
            d = _unpool(d, idx, shape)
            continue
        inp, Wq, bn, act = c
        if l.last:
            grads[(li, "b")] = d.sum(axis=0)
            dz = d
        else:
            mask, codes = act
            if codes is not None:
                grads[(li, "levels")] = np.bincount(codes.ravel(), weights=d.ravel(),
                                                    minlength=l.levels.size)
            dy = d * mask
            zh, inv, train = bn
            axes = tuple(range(dy.ndim - 1))
            grads[(li, "gamma")] = (dy * zh).sum(axis=axes)
            grads[(li, "beta")] = dy.sum(axis=axes)
            dzh = dy * l.gamma
            m = np.prod([dy.shape[a] for a in axes])
            dz = inv / m * (m * dzh - dzh.sum(axis=axes) - zh * (dzh * zh).sum(axis=axes))
        if l.kind == "conv":
            cols, shape = inp
            out = Wq.shape[0]
            dz2 = dz.reshape(-1, out)
            grads[(li, "W")] = (dz2.T @ cols.reshape(-1, cols.shape[-1])).reshape(Wq.shape)
            if li > 0:
                d = _col2im(dz2 @ Wq.reshape(out, -1), shape, 3, l.pad)
        else:
            grads[(li, "W")] = dz.T @ inp
            if l.mask is not None:
                grads[(li, "W")] *= l.mask
            d = dz @ Wq
    return grads
