"""Quantization-aware training in plain NumPy, and export to an integer model.

A small network (an MLP such as 64-32-10 or a CNN conv-pool-conv-pool-dense) is trained
with hand-written forward and backward passes and Adam. Hidden layers are
``dense/conv (no bias) -> batch norm -> activation quantizer``; the last layer is
``dense + bias`` and its accumulators (``acc``) or their ``argmax`` are the output.

Quantization-aware training uses straight-through estimators: the forward pass uses the
quantized weights (and activations); the gradient of the quantized weight is applied to
the float shadow weight; the activation quantizer passes the gradient inside its clip
range. LUT-Q (scheme ``lut``) alternates an Adam step on the float weights with one
k-means step of the dictionary (assign, then move each entry to its weights' mean).
Table-based units (scheme ``table``) combine LUT-Q weights with learned activation levels.

Gradual quantization: a float phase, then the weight and activation bits are lowered in
steps (for example 6 -> 5 -> 4 bits, or uniform -> ternary -> binary) to the target.

:func:`export` turns the trained network into a :class:`QuantNet` (integer codebooks,
scales, activation quantizers, batch-norm affine maps), :func:`to_model` folds it into a
:class:`~mulfree.gen.model.format.Model` with integer thresholds (:mod:`mulfree.gen.train.fold`), and
:func:`reference_forward` runs the fake-quantized float network the model must equal.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np

from . import datasets
from ..errors import InputError
from .fold import bn_affine, flip_codes, fold_thresholds
from ..model.golden import accumulator_bounds, run as golden_run
from ..model.format import (Conv2d, Dense, Flatten, MaxPool, Model, Output, OutputKind, Scheme,
    Weights)
from .quant import (ActQuant, QuantizedWeights, best_scale, bipolar_act, check_bits,
    check_float_array, integerize_levels, kmeans_assign, kmeans_step, learned_act, lutq_init,
    project, uniform_act, usable_levels, weight_levels)
from .tbn import levels_for_entries, product_table, table_weights

__all__ = ["TrainConfig", "Net", "train", "export", "to_model", "reference_forward",
           "accuracy", "evaluate_model", "model_inputs", "float_accuracy", "float_net_to_npz", "net_from_npz", "post_quantize",
           "ARCHS", "SCHEMES", "ACTS"]

log = logging.getLogger(__name__)

ARCHS = ("mlp", "cnn")
SCHEMES = ("float", "uniform", "binary", "ternary", "pot", "apot", "lut", "table")
ACTS = ("uniform", "bipolar", "learned")
BN_EPS = 1e-5


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
        if self.scheme == "table":
            entries = self.table_entries or 2**self.wbits * 2**self.abits
            for n_act in {2**self.ibits, 2**self.abits}:
                levels_for_entries(entries, n_act, self.wbits)
        elif self.table_entries is not None:
            raise InputError("--table-entries only applies to --scheme table")

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["hidden"] = list(self.hidden)
        d["channels"] = list(self.channels)
        return d


# -- layers ------------------------------------------------------------------------------

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

    def hidden(kind, shape, fan_in, out):
        w = rng.normal(0, math.sqrt(2.0 / fan_in), shape)
        layers.append(Layer(kind, W=w, gamma=np.ones(out), beta=np.zeros(out) + 0.1,
                            rmean=np.zeros(out), rvar=np.ones(out),
                            levels=np.linspace(0, cfg.alpha, 2**cfg.abits)))

    if cfg.arch == "mlp":
        n = int(np.prod(image))
        layers.append(Layer("flatten"))
        for h in cfg.hidden:
            hidden("dense", (h, n), n, h)
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
    return Net(cfg, layers, in_shape)


# -- quantizers used during training ------------------------------------------------------

def _act_kind(net: Net) -> str:
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
            l.wscale = best_scale(l.W, usable_levels(net.wscheme, net.wbits))


def reset_luts(net: Net) -> None:
    cfg = net.cfg
    for i, l in enumerate(net.compute()):
        if net.wscheme in ("lut", "table"):
            pot = cfg.lut_pot and net.wscheme == "lut"
            prune = cfg.lut_prune if net.wscheme == "lut" else 0.0
            d = lutq_init(l.W, _lut_k(net, i), pot=pot, prune=prune)
            for _ in range(5):
                _, d = kmeans_step(l.W, d, pot=pot, prune=prune)
            l.lut = d


def qweights(net: Net, l: Layer) -> np.ndarray:
    """The forward-pass weights of a layer in the current stage."""
    s = net.wscheme
    W = l.W
    if s == "float":
        return W
    if s == "binary":
        return np.mean(np.abs(W)) * np.where(W >= 0, 1.0, -1.0)
    if s == "ternary":
        delta = 0.7 * np.mean(np.abs(W))
        big = np.abs(W) > delta
        scale = np.mean(np.abs(W[big])) if big.any() else 1.0
        return scale * np.sign(W) * big
    if s in ("uniform", "pot", "apot"):
        lv = usable_levels(s, net.wbits).astype(np.float64)
        return l.wscale * lv[project(W / l.wscale, lv)]
    # lut / table
    prune = net.cfg.lut_prune if s == "lut" else 0.0
    return l.lut[kmeans_assign(W, l.lut, prune)]


def lut_step(net: Net) -> None:
    if net.wscheme not in ("lut", "table"):
        return
    cfg = net.cfg
    for l in net.compute():
        pot = cfg.lut_pot and net.wscheme == "lut"
        prune = cfg.lut_prune if net.wscheme == "lut" else 0.0
        _, l.lut = kmeans_step(l.W, l.lut, pot=pot, prune=prune)


def _act_forward(net: Net, l: Layer, y: np.ndarray):
    """Returns (value, ste mask, codes or None)."""
    kind = _act_kind(net)
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


# -- forward / backward --------------------------------------------------------------------

def _im2col(x: np.ndarray, k: int, pad: int) -> np.ndarray:
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


def _pool(x: np.ndarray):
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
            h, idx = _pool(h)
            caches.append((shape, idx))
            continue
        Wq = qweights(net, l)
        if l.kind == "conv":
            cols = _im2col(h, 3, l.pad)
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
        a, mask, codes = _act_forward(net, l, y)
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
    kind = _act_kind(net)
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
            d = dz @ Wq
    return grads


class Adam:
    def __init__(self, lr: float, b1=0.9, b2=0.999, eps=1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
        self.m: dict = {}
        self.v: dict = {}
        self.t = 0

    def step(self, net: Net, grads: dict, lr: float) -> None:
        self.t += 1
        for key in sorted(grads, key=lambda k: (k[0], k[1])):
            li, name = key
            p = getattr(net.layers[li], name)
            g = grads[key]
            m = self.m.get(key, np.zeros_like(p))
            v = self.v.get(key, np.zeros_like(p))
            m = self.b1 * m + (1 - self.b1) * g
            v = self.b2 * v + (1 - self.b2) * g * g
            self.m[key], self.v[key] = m, v
            mh = m / (1 - self.b1**self.t)
            vh = v / (1 - self.b2**self.t)
            p -= lr * mh / (np.sqrt(vh) + self.eps)


def _softmax_ce(logits: np.ndarray, y: np.ndarray):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    n = y.size
    loss = -np.log(p[np.arange(n), y] + 1e-12).mean()
    d = p
    d[np.arange(n), y] -= 1
    return loss, d / n


# -- the schedule -----------------------------------------------------------------------------

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


def train(cfg: TrainConfig, data: datasets.Dataset | None = None,
          progress=None) -> tuple[Net, dict]:
    """Train a network; returns it (in its final quantized stage) and a small history.

    BLAS runs single-threaded: the matrices are small (threads only add overhead) and one
    thread keeps every float sum in the same order, so a seed gives the same model."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        return _train(cfg, data, progress)
    with threadpool_limits(limits=1):
        return _train(cfg, data, progress)


def _train(cfg: TrainConfig, data: datasets.Dataset | None, progress) -> tuple[Net, dict]:
    data = data or datasets.load("digits")
    rng = np.random.default_rng(cfg.seed)
    xtr, ytr = data.x_train, data.y_train
    if cfg.train_subset:
        xtr, ytr = xtr[:cfg.train_subset], ytr[:cfg.train_subset]
    xv = datasets.input_codes(xtr, cfg.ibits) * datasets.input_step(cfg.ibits)
    net = build(cfg, rng, data.classes, data.image_shape)
    opt = Adam(cfg.lr)
    plan = stages(cfg)
    total = cfg.epochs
    epoch_counts = [max(1, int(round(share * total))) for *_, share in plan]
    n = xv.shape[0]
    hist: dict = {"loss": []}
    t_global, t_total = 0, sum(epoch_counts)
    for (ws, wb, ab, aq, _), n_ep in zip(plan, epoch_counts):
        net.wscheme, net.wbits, net.abits, net.aquant = ws, wb, ab, aq
        reset_luts(net)
        for ep in range(n_ep):
            refresh_scales(net)
            perm = rng.permutation(n)
            lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * t_global / t_total))
            losses = []
            for s in range(0, n, cfg.batch):
                idx = perm[s:s + cfg.batch]
                if idx.size < 2:
                    continue
                logits, caches = forward(net, xv[idx], train=True)
                loss, d = _softmax_ce(logits, ytr[idx])
                grads = backward(net, caches, d)
                opt.step(net, grads, lr)
                _post_step(net)
                losses.append(loss)
            hist["loss"].append(float(np.mean(losses)))
            t_global += 1
            if progress:
                progress(f"stage {ws}/{wb}b/a{ab}{'q' if aq else 'f'} epoch {ep + 1}/{n_ep} "
                         f"loss {hist['loss'][-1]:.4f}")
    # Final BN statistics under the final quantized forward pass (one pass, no update
    # of the weights): average over the training set.
    _recalibrate_bn(net, xv)
    return net, hist


def _post_step(net: Net) -> None:
    lut_step(net)
    learned = _act_kind(net) == "learned" and net.aquant
    for l in net.compute():
        if l.levels is not None and learned:
            # Keep the levels increasing by more than one integer step at the export
            # precision, so integerizing them never merges two levels.
            lv = np.maximum.accumulate(l.levels)
            p = net.cfg.precision
            gap = 1.05 * float(np.abs(lv).max()) / (2 ** (p - 1 if lv.min() < 0 else p) - 1)
            for i in range(1, lv.size):
                lv[i] = max(lv[i], lv[i - 1] + gap)
            l.levels[:] = lv
        if l.gamma is not None and net.wscheme in ("lut", "table"):
            np.maximum(l.gamma, 1e-3, out=l.gamma)   # no sign flips: LUT codebooks are not symmetric


def _recalibrate_bn(net: Net, xv: np.ndarray) -> None:
    """Set the running batch-norm statistics to the exact training-set statistics of the
    final network, layer by layer."""
    h = xv
    for l in net.layers:
        if l.kind == "flatten":
            h = h.reshape(h.shape[0], -1)
            continue
        if l.kind == "pool":
            h, _ = _pool(h)
            continue
        Wq = qweights(net, l)
        if l.kind == "conv":
            z = _im2col(h, 3, l.pad) @ Wq.reshape(Wq.shape[0], -1).T
        else:
            z = h @ Wq.T
        if l.last:
            break
        axes = tuple(range(z.ndim - 1))
        l.rmean, l.rvar = z.mean(axis=axes), z.var(axis=axes)
        y = l.gamma * (z - l.rmean) / np.sqrt(l.rvar + BN_EPS) + l.beta
        h, _, _ = _act_forward(net, l, y)


def float_accuracy(net: Net, data: datasets.Dataset) -> float:
    """Test accuracy of the network's own float forward pass (current stage)."""
    xv = datasets.input_codes(data.x_test, net.cfg.ibits) * datasets.input_step(net.cfg.ibits)
    logits, _ = forward(net, xv, train=False)
    return float(np.mean(np.argmax(logits, axis=1) == data.y_test))


# -- export -----------------------------------------------------------------------------------

@dataclass(eq=False)
class QLayer:
    """One exported compute layer, everything the integer model and the float reference
    need. ``pool`` marks a 2x2 max-pool after the layer; ``flatten`` one before it."""

    kind: str                      # dense | conv
    codes: np.ndarray              # weight codes
    scheme: str
    bits: int
    codebook: np.ndarray | None    # integer weight codebook (None for table)
    table: np.ndarray | None       # P[k][c] (table only)
    scale: float                   # real value of one accumulator step
    in_act: ActQuant               # quantizer whose codes this layer reads
    out_act: ActQuant | None       # None for the last layer
    a: np.ndarray | None = None    # y = a * acc + b (hidden layers)
    b: np.ndarray | None = None
    bias: np.ndarray | None = None  # integer bias (last layer)
    bn: tuple | None = None        # (gamma, beta, mean, var) for the unfolded reference
    pool: bool = False
    flatten_before: bool = False


@dataclass
class QuantNet:
    in_shape: tuple[int, ...]
    ibits: int
    layers: list[QLayer]
    output: str
    metadata: dict = field(default_factory=dict)


def _input_act(ibits: int) -> ActQuant:
    return ActQuant("uniform", ibits, np.arange(2**ibits, dtype=np.int64),
                    datasets.input_step(ibits))


def _out_act(net: Net, l: Layer) -> ActQuant:
    kind = _act_kind(net)
    if kind == "bipolar":
        return bipolar_act(1.0)
    if kind == "learned":
        return learned_act(l.levels, net.cfg.precision)
    return uniform_act(net.abits, net.cfg.alpha)


def export(net: Net) -> QuantNet:
    """The trained network in integer form (before threshold folding)."""
    cfg = net.cfg
    if net.wscheme == "float":
        raise InputError("a float network has no integer form; train with a quantized scheme "
                         "or use post_quantize")
    qls: list[QLayer] = []
    in_act = _input_act(cfg.ibits)
    pending_flatten = False
    for l in net.layers:
        if l.kind == "flatten":
            pending_flatten = True
            continue
        if l.kind == "pool":
            qls[-1].pool = True
            continue
        qw, table, scale = _export_weights(net, l, in_act)
        out_act = None if l.last else _out_act(net, l)
        ql = QLayer(l.kind, qw.codes if qw else None, net.wscheme, _code_bits(net, qw, table),
                    qw.codebook if qw else None, table, scale, in_act, out_act,
                    flatten_before=pending_flatten and cfg.arch == "cnn")
        pending_flatten = False
        if l.last:
            ql.bias = np.round(l.b / scale).astype(np.int64)
        else:
            ql.a, ql.b = bn_affine(scale, 0.0, l.gamma, l.beta, l.rmean, l.rvar, BN_EPS)
            ql.bn = (l.gamma.copy(), l.beta.copy(), l.rmean.copy(), l.rvar.copy())
            in_act = out_act
        if ql.codes is None:
            ql.codes = qw_codes_table(net, l)
        qls.append(ql)
    return QuantNet(net.in_shape, cfg.ibits, qls, cfg.output,
                    {"config": cfg.to_dict()})


def _code_bits(net: Net, qw, table) -> int:
    if table is not None:
        return max(1, (table.shape[0] - 1).bit_length())
    return qw.bits


def qw_codes_table(net: Net, l: Layer) -> np.ndarray:
    return kmeans_assign(l.W, l.lut).astype(np.int64)


def _export_weights(net: Net, l: Layer, in_act: ActQuant):
    """(QuantizedWeights or None, table or None, accumulator step scale)."""
    s = net.wscheme
    W = l.W
    if s == "table":
        table, sp = product_table(l.lut, in_act.values, net.cfg.precision)
        return None, table, sp
    if s == "binary":
        scale = float(np.mean(np.abs(W)))
        codes = (W >= 0).astype(np.int64)          # codebook [-1, +1]
        qw = QuantizedWeights("binary", 1, codes, weight_levels("binary", 1), scale)
    elif s == "ternary":
        delta = 0.7 * np.mean(np.abs(W))
        big = np.abs(W) > delta
        scale = float(np.mean(np.abs(W[big]))) if big.any() else 1.0
        codes = np.where(W > delta, 1, np.where(W < -delta, 2, 0)).astype(np.int64)
        qw = QuantizedWeights("ternary", 2, codes, weight_levels("ternary", 2), scale)
    elif s in ("uniform", "pot", "apot"):
        lv = weight_levels(s, net.wbits)
        usable = lv.astype(np.float64)
        if s == "uniform":
            usable = np.where(lv == -(2 ** (net.wbits - 1)), 0, lv).astype(np.float64)
        idx = project(W / l.wscale, usable)
        vals = usable[idx].astype(np.int64)
        codes = idx if s != "uniform" else np.where(vals < 0, vals + 2**net.wbits, vals)
        qw = QuantizedWeights(s, net.wbits, codes.astype(np.int64), lv, l.wscale)
    else:  # lut
        cb, scale = integerize_levels(l.lut, net.cfg.precision)
        codes = kmeans_assign(W, l.lut, net.cfg.lut_prune)
        qw = QuantizedWeights("lut", net.wbits, codes.astype(np.int64), cb, scale)
    return qw, None, qw.scale * in_act.step


def to_model(q: QuantNet, name: str = "digits") -> Model:
    """Fold the exported network into a model description (integer thresholds)."""
    layers = []
    in_shape = q.in_shape
    shape = in_shape
    for i, ql in enumerate(q.layers):
        lname = f"{ql.kind}{i}"
        if ql.flatten_before:
            layers.append(Flatten(name=f"flatten{i}"))
            shape = (int(np.prod(shape)),)
        cls = Dense if ql.kind == "dense" else Conv2d
        geo = {"padding": (1, 1)} if ql.kind == "conv" else {}
        act_cb = ql.in_act.levels
        if ql.table is not None:
            w = table_weights(ql.codes, ql.table)
        else:
            w = Weights(Scheme(ql.scheme), ql.bits, ql.codes, codebook=ql.codebook)
        last = ql.out_act is None
        if last:
            kind = OutputKind.ARGMAX if q.output == "argmax" else OutputKind.ACC
            layers.append(cls(name=lname, weights=w, bias=ql.bias, output=Output(kind),
                              activation_codebook=act_cb, **geo))
            break
        probe = cls(name=lname, weights=w, bias=np.zeros(ql.codes.shape[0], np.int64),
                    output=Output(OutputKind.ACC), activation_codebook=act_cb, **geo)
        bounds = accumulator_bounds(probe, shape)
        t, flip = fold_thresholds(ql.a, ql.b, ql.out_act.boundaries, bounds.low, bounds.high)
        codes = ql.codes
        if flip.any():
            if ql.table is not None:
                raise InputError("cannot fold a negative batch-norm scale into a table layer")
            codes = flip_codes(ql.codes, ql.codebook, flip)
            w = Weights(Scheme(ql.scheme), ql.bits, codes, codebook=ql.codebook)
        layers.append(cls(name=lname, weights=w, bias=np.zeros(codes.shape[0], np.int64),
                          output=Output(OutputKind.THRESHOLDS, ql.out_act.bits, t),
                          activation_codebook=act_cb, **geo))
        if ql.kind == "conv":
            shape = (shape[0], shape[1], codes.shape[0])
            if ql.pool:
                layers.append(MaxPool(name=f"pool{i}", kernel=(2, 2)))
                shape = (shape[0] // 2, shape[1] // 2, shape[2])
        else:
            shape = (codes.shape[0],)
    return Model(name=name, input_shape=in_shape, input_bits=q.ibits, layers=tuple(layers),
                 metadata=q.metadata)


def reference_forward(q: QuantNet, codes: np.ndarray, folded: bool = False):
    """The fake-quantized float network on input codes: real-valued weights
    (``scale * W[k]``), real activations (``step * A[c]``), batch norm in float, the
    activation quantizer's boundaries. Returns (per-layer output codes, last-layer
    logits). ``folded=True`` uses the folded affine form ``a * acc + b`` instead of the
    unfolded batch norm (exact by construction)."""
    h_codes = np.asarray(codes, np.int64)
    outs = []
    logits = None
    for ql in q.layers:
        if ql.flatten_before:
            h_codes = h_codes.reshape(h_codes.shape[0], -1)
        x = ql.in_act.values[h_codes]
        if ql.table is not None:
            z = _table_sum(ql, h_codes) * ql.scale
            acc = _table_sum(ql, h_codes)
        else:
            wv = ql.codebook[ql.codes].astype(np.float64)
            wreal = wv * (ql.scale / ql.in_act.step)
            if ql.kind == "conv":
                z = _im2col(x, 3, 1) @ wreal.reshape(wreal.shape[0], -1).T
                acc = _im2col(ql.in_act.levels[h_codes].astype(np.float64), 3, 1) @ \
                    wv.reshape(wv.shape[0], -1).T
            else:
                z = x @ wreal.T
                acc = ql.in_act.levels[h_codes].astype(np.float64) @ wv.T
        if ql.out_act is None:
            logits = ql.scale * (acc + ql.bias)
            break
        if folded:
            y = ql.a * acc + ql.b
        else:
            g, be, m, v = ql.bn
            y = g * (z - m) / np.sqrt(v + BN_EPS) + be
        h_codes = ql.out_act.codes(y)
        if ql.pool:
            h_codes, _ = _pool(h_codes)
        outs.append(h_codes)
    return outs, logits


def _table_sum(ql: QLayer, h_codes: np.ndarray) -> np.ndarray:
    """``sum_i P[k_ji][c_i]`` in float (exact: small integers)."""
    t = ql.table.astype(np.float64)
    if ql.kind == "conv":
        n, hh, ww, c = h_codes.shape
        xp = np.full((n, hh + 2, ww + 2, c), -1)
        xp[:, 1:-1, 1:-1] = h_codes
        cols = np.empty((n, hh, ww, 3, 3, c), np.int64)
        for dy in range(3):
            for dx in range(3):
                cols[:, :, :, dy, dx] = xp[:, dy:dy + hh, dx:dx + ww]
        cols = cols.reshape(n * hh * ww, -1)
        k = ql.codes.reshape(ql.codes.shape[0], -1)
        tp = np.concatenate([t, np.zeros((t.shape[0], 1))], axis=1)
        cols = np.where(cols < 0, t.shape[1], cols)
        acc = np.zeros((cols.shape[0], k.shape[0]))
        for j in range(k.shape[0]):
            acc[:, j] = tp[k[j][None, :], cols].sum(axis=1)
        return acc.reshape(n, hh, ww, -1)
    k = ql.codes
    acc = np.zeros((h_codes.shape[0], k.shape[0]))
    for j in range(k.shape[0]):
        acc[:, j] = t[k[j][None, :], h_codes].sum(axis=1)
    return acc


# -- evaluation ----------------------------------------------------------------------------

def model_inputs(model: Model, data: datasets.Dataset, split: str = "test") -> np.ndarray:
    x = data.x_test if split == "test" else data.x_train
    codes = datasets.input_codes(x, model.input_bits)
    if len(model.input_shape) == 1:
        codes = codes.reshape(codes.shape[0], -1)
    if codes.shape[1:] != tuple(model.input_shape):
        raise InputError(f"the model expects inputs of shape {list(model.input_shape)}; the "
                         f"{data.name} data set gives {list(codes.shape[1:])}")
    return codes


def evaluate_model(model: Model, data: datasets.Dataset | None = None) -> float:
    """Test accuracy of the golden integer model: argmax of the last accumulators."""
    data = data or datasets.load("digits")
    res = golden_run(model, model_inputs(model, data))
    acc = res.last_accumulators
    if acc.ndim != 2 or acc.shape[1] != data.classes:
        raise InputError(f"the model's last layer gives {list(acc.shape[1:])} accumulators; "
                         f"classifying {data.name} needs {data.classes}")
    return float(np.mean(np.argmax(acc, axis=1) == data.y_test))


accuracy = evaluate_model


# -- float models as .npz and post-training quantization ------------------------------------

def float_net_to_npz(net: Net) -> dict:
    """The float network's arrays in the documented .npz layout (docs/training.md)."""
    out: dict = {"format": np.array("mulfree-float-v1"), "arch": np.array(net.cfg.arch),
                 "ibits": np.array(net.cfg.ibits)}
    i = 0
    for l in net.layers:
        if l.kind not in ("dense", "conv"):
            if l.kind == "pool":
                out[f"layer{i - 1}.pool"] = np.array(2)
            continue
        out[f"layer{i}.kind"] = np.array(l.kind)
        out[f"layer{i}.W"] = l.W.copy()
        if l.last:
            out[f"layer{i}.b"] = l.b.copy()
        else:
            out[f"layer{i}.bn_gamma"] = l.gamma.copy()
            out[f"layer{i}.bn_beta"] = l.beta.copy()
            out[f"layer{i}.bn_mean"] = l.rmean.copy()
            out[f"layer{i}.bn_var"] = l.rvar.copy()
        i += 1
    return out


def net_from_npz(arrays: dict, cfg: TrainConfig) -> Net:
    """Rebuild a float network from the .npz layout; ``cfg`` gives the quantization."""
    def get(key, required=True):
        if key not in arrays:
            if required:
                raise InputError(f"float model: missing array '{key}' (see docs/training.md)")
            return None
        return np.asarray(arrays[key])

    arch = str(get("arch"))
    if arch not in ARCHS:
        raise InputError(f"float model: 'arch' must be mlp or cnn, got {arch!r}")
    layers: list[Layer] = []
    n = 0
    while f"layer{n}.W" in arrays:
        n += 1
    if n == 0:
        raise InputError("float model: no layers (expected arrays layer0.W, layer1.W, ...)")
    if arch == "mlp":
        layers.append(Layer("flatten"))
    for i in range(n):
        W = check_float_array(get(f"layer{i}.W"), f"float model layer{i}.W")
        kind = str(get(f"layer{i}.kind", False) if f"layer{i}.kind" in arrays else "dense")
        if kind not in ("dense", "conv"):
            raise InputError(f"float model: layer{i}.kind must be dense or conv, got {kind!r}")
        want = 2 if kind == "dense" else 4
        if W.ndim != want:
            raise InputError(f"float model: layer{i}.W must have {want} dimensions, got shape "
                             f"{list(W.shape)}")
        last = i == n - 1
        if last:
            if arch == "cnn":
                layers.append(Layer("flatten"))
            b = check_float_array(get(f"layer{i}.b"), f"float model layer{i}.b")
            if kind != "dense" or b.shape != (W.shape[0],):
                raise InputError(f"float model: the last layer must be dense with a bias of "
                                 f"{W.shape[0]} values")
            layers.append(Layer("dense", W=W.copy(), b=b.copy(), last=True))
        else:
            vals = [check_float_array(get(f"layer{i}.bn_{k}"), f"float model layer{i}.bn_{k}")
                    for k in ("gamma", "beta", "mean", "var")]
            if any(v.shape != (W.shape[0],) for v in vals):
                raise InputError(f"float model: layer{i} batch-norm arrays need {W.shape[0]} values")
            layers.append(Layer(kind, W=W.copy(), gamma=vals[0], beta=vals[1], rmean=vals[2],
                                rvar=vals[3], levels=np.linspace(0, cfg.alpha, 2**cfg.abits)))
            if f"layer{i}.pool" in arrays:
                layers.append(Layer("pool"))
    in_shape = (8, 8, 1) if arch == "cnn" else (int(layers[1].W.shape[1]),)
    cfg = replace(cfg, arch=arch)
    net = Net(cfg, layers, in_shape)
    return net


def post_quantize(arrays: dict, cfg: TrainConfig, data: datasets.Dataset | None = None,
                  lut_steps: int = 20) -> Net:
    """Post-training quantization of a float network: weights by the scheme, batch norm
    re-estimated on the training set with quantized weights and activations."""
    if cfg.scheme in ("float", "table"):
        raise InputError(f"mulfree quantize supports uniform, binary, ternary, pot, apot and "
                         f"lut, not {cfg.scheme!r}")
    data = data or datasets.load("digits")
    net = net_from_npz(arrays, cfg)
    net.wscheme, net.wbits, net.abits, net.aquant = cfg.scheme, cfg.wbits, cfg.abits, True
    refresh_scales(net)
    reset_luts(net)
    if cfg.scheme == "lut":
        for _ in range(lut_steps):
            lut_step(net)
    xv = datasets.input_codes(data.x_train, cfg.ibits) * datasets.input_step(cfg.ibits)
    if net.layers[0].kind == "flatten":
        xv = xv.reshape(xv.shape[0], -1)
    if len(net.in_shape) == 1 and net.in_shape[0] != xv.reshape(xv.shape[0], -1).shape[1]:
        raise InputError(f"float model expects {net.in_shape[0]} inputs, digits has 64")
    _recalibrate_bn(net, xv)
    return net
