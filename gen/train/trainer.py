"""Quantization-aware training in plain NumPy: Adam over the gradual schedule.

:func:`train` builds a network (:mod:`.net`), walks the schedule of
:func:`~.config.stages` (float, then the bits lowered in steps to the target) with Adam
and a cosine learning rate, and re-estimates batch-norm statistics under the final
quantized forward pass. LUT-Q (scheme ``lut``) alternates an Adam step on the float
weights with one k-means step of the dictionary; table-based units (scheme ``table``)
combine LUT-Q weights with learned activation levels. :mod:`.export` turns the result
into an integer model.
"""

from __future__ import annotations

import math

import numpy as np

from . import datasets
from ..errors import InputError
from .config import BN_EPS, TrainConfig, stages
from .net import (Net, act_forward, act_kind, apply_masks, backward, build,
                  choose_connections, forward, im2col, lut_step, pool2x2, prune_schedule,
                  qweights, refresh_scales, reset_luts)

__all__ = ["train", "float_accuracy", "recalibrate_bn"]


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
    _check_shape(cfg, data)
    rng = np.random.default_rng(cfg.seed)
    xtr, ytr = data.x_train, data.y_train
    if cfg.train_subset:
        xtr, ytr = xtr[:cfg.train_subset], ytr[:cfg.train_subset]
    xv = data.codes(xtr, cfg.ibits) * datasets.input_step(cfg.ibits)
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
        choose_connections(net, prune_schedule(t_global, t_total))
        reset_luts(net)
        for ep in range(n_ep):
            # the learned fan-in rule prunes gradually (no-op for dense and random)
            choose_connections(net, prune_schedule(t_global, t_total))
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
    if choose_connections(net):   # a run too short to finish pruning: finish it here
        reset_luts(net)
    # Final BN statistics under the final quantized forward pass (one pass, no update
    # of the weights): average over the training set.
    recalibrate_bn(net, xv)
    return net, hist


def _check_shape(cfg: TrainConfig, data: datasets.Dataset) -> None:
    """The architecture fits the data set's samples, or one line says why not."""
    shape = data.image_shape
    if cfg.arch != "cnn":
        return
    if len(shape) != 3:
        raise InputError(f"--arch cnn needs images [N, H, W, C]; the {data.name} data set has "
                         f"features {list(shape)} (use --arch mlp)")
    h, w = shape[0] >> len(cfg.channels), shape[1] >> len(cfg.channels)
    if h < 1 or w < 1:
        raise InputError(f"{shape[0]}x{shape[1]} images are too small for {len(cfg.channels)} "
                         f"conv + 2x2 max-pool stages (--channels)")


def _post_step(net: Net) -> None:
    apply_masks(net)
    lut_step(net)
    learned = act_kind(net) == "learned" and net.aquant
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


def recalibrate_bn(net: Net, xv: np.ndarray) -> None:
    """Set the running batch-norm statistics to the exact training-set statistics of the
    final network, layer by layer."""
    h = xv
    for l in net.layers:
        if l.kind == "flatten":
            h = h.reshape(h.shape[0], -1)
            continue
        if l.kind == "pool":
            h, _ = pool2x2(h)
            continue
        Wq = qweights(net, l)
        if l.kind == "conv":
            z = im2col(h, 3, l.pad) @ Wq.reshape(Wq.shape[0], -1).T
        else:
            z = h @ Wq.T
        if l.last:
            break
        axes = tuple(range(z.ndim - 1))
        l.rmean, l.rvar = z.mean(axis=axes), z.var(axis=axes)
        y = l.gamma * (z - l.rmean) / np.sqrt(l.rvar + BN_EPS) + l.beta
        h, _, _ = act_forward(net, l, y)


def float_accuracy(net: Net, data: datasets.Dataset) -> float:
    """Test accuracy of the network's own float forward pass (current stage)."""
    xv = data.codes(data.x_test, net.cfg.ibits) * datasets.input_step(net.cfg.ibits)
    logits, _ = forward(net, xv, train=False)
    return float(np.mean(np.argmax(logits, axis=1) == data.y_test))
