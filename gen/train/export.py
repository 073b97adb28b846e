"""A trained network in integer form, folded into a model description.

:func:`export` turns the trained network into a :class:`QuantNet` (integer codebooks,
scales, activation quantizers, batch-norm affine maps), :func:`to_model` folds it into a
:class:`~mulfree.gen.model.format.Model` with integer thresholds
(:mod:`mulfree.gen.train.fold`), and :func:`reference_forward` runs the fake-quantized
float network the model must equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import datasets
from ..errors import InputError
from ..model.format import (Conv2d, Dense, Flatten, MaxPool, Model, Output, OutputKind, Scheme,
                            Weights)
from ..model.golden import accumulator_bounds
from .config import BN_EPS
from .fold import bn_affine, flip_codes, fold_thresholds
from .net import Layer, Net, act_kind, active_weights, im2col, pool2x2
from .quant import (ActQuant, QuantizedWeights, bipolar_act, integerize_levels, kmeans_assign,
                    learned_act, project, uniform_act, weight_levels)
from .tbn import product_table, table_weights

__all__ = ["QLayer", "QuantNet", "export", "to_model", "reference_forward"]


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
    kind = act_kind(net)
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
        ql = QLayer(l.kind, qw.codes if qw else None, qw.scheme if qw else net.wscheme, _code_bits(net, qw, table),
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
    return kmeans_assign(l.W, l.lut, mask=l.mask).astype(np.int64)


def _export_weights(net: Net, l: Layer, in_act: ActQuant):
    """(QuantizedWeights or None, table or None, accumulator step scale)."""
    s = net.wscheme
    W = l.W
    if s == "table":
        table, sp = product_table(l.lut, in_act.values, net.cfg.precision)
        return None, table, sp
    act = active_weights(l)
    if s == "binary" and l.mask is not None:
        # A sparse binary layer needs a zero for its missing connections: the 2-bit
        # ternary codebook [0, +1, -1], the connections on +-1 as in binary.
        scale = float(np.mean(np.abs(act)))
        codes = np.where(l.mask, np.where(W >= 0, 1, 2), 0).astype(np.int64)
        qw = QuantizedWeights("ternary", 2, codes, weight_levels("ternary", 2), scale)
    elif s == "binary":
        scale = float(np.mean(np.abs(W)))
        codes = (W >= 0).astype(np.int64)          # codebook [-1, +1]
        qw = QuantizedWeights("binary", 1, codes, weight_levels("binary", 1), scale)
    elif s == "ternary":
        delta = 0.7 * np.mean(np.abs(act))
        big_act = np.abs(act) > delta
        scale = float(np.mean(np.abs(act[big_act]))) if big_act.any() else 1.0
        codes = np.where(W > delta, 1, np.where(W < -delta, 2, 0)).astype(np.int64)
        qw = QuantizedWeights("ternary", 2, codes, weight_levels("ternary", 2), scale)
    elif s in ("uniform", "pot", "apot"):
        lv = weight_levels(s, net.wbits)
        usable = lv.astype(np.float64)
        if s == "uniform":
            usable = np.where(lv == -(2 ** (net.wbits - 1)), 0, lv).astype(np.float64)
        vals = usable[project(W / l.wscale, usable)].astype(np.int64)
        bits = net.wbits
        if l.mask is not None:
            vals = np.where(l.mask, vals, 0)
            if s == "pot" and bits == 1:
                bits = 2     # 1-bit pot is [-1, +1]: 2 bits add the zero (0, +1, -1)
                lv = weight_levels(s, bits)
        if s == "uniform":
            codes = np.where(vals < 0, vals + 2**bits, vals)
        else:   # pot / apot: each value's code in the codebook
            codes = np.searchsorted(np.sort(lv), vals)
            codes = np.argsort(lv)[codes]
        qw = QuantizedWeights(s, bits, codes.astype(np.int64), lv, l.wscale)
    else:  # lut
        cb, scale = integerize_levels(l.lut, net.cfg.precision)
        codes = kmeans_assign(W, l.lut, net.cfg.lut_prune, l.mask)
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
                z = im2col(x, 3, 1) @ wreal.reshape(wreal.shape[0], -1).T
                acc = im2col(ql.in_act.levels[h_codes].astype(np.float64), 3, 1) @ \
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
            h_codes, _ = pool2x2(h_codes)
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
