"""A slow, obviously-correct loop implementation of the numeric contract, for tests only."""

from __future__ import annotations

import numpy as np

from mulfree.gen.model.format import Conv2d, Dense, Flatten, MaxPool, OutputKind


def product(layer, k: int, c: int) -> int:
    w = layer.weights
    if w.products is not None:
        return int(w.products[k][c])
    return int(w.codebook[k]) * int(layer.activation_codebook[c])


def finish(layer, acc: int, j: int) -> int:
    if layer.output.kind is OutputKind.THRESHOLDS:
        return sum(1 for t in layer.output.thresholds[j] if acc >= t)
    return acc


def dense(layer: Dense, x) -> tuple[list, list]:
    codes = layer.weights.codes
    accs = []
    for j in range(codes.shape[0]):
        acc = int(layer.bias[j])
        for i in range(codes.shape[1]):
            acc += product(layer, int(codes[j][i]), int(x[i]))
        accs.append(acc)
    if layer.output.kind is OutputKind.ARGMAX:
        best = max(range(len(accs)), key=lambda j: (accs[j], -j))
        return [best], accs
    return [finish(layer, a, j) for j, a in enumerate(accs)], accs


def conv2d(layer: Conv2d, x) -> tuple[np.ndarray, np.ndarray]:
    h, w, _ = x.shape
    out_c, kh, kw, in_c = layer.weights.codes.shape
    (sh, sw), (ph, pw) = layer.stride, layer.padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    y = np.zeros((oh, ow, out_c), np.int64)
    accs = np.zeros((oh, ow, out_c), np.int64)
    for oy in range(oh):
        for ox in range(ow):
            for j in range(out_c):
                acc = int(layer.bias[j])
                for dy in range(kh):
                    for dx in range(kw):
                        iy, ix = oy * sh + dy - ph, ox * sw + dx - pw
                        if not (0 <= iy < h and 0 <= ix < w):
                            continue  # padding contributes nothing
                        for ci in range(in_c):
                            acc += product(layer, int(layer.weights.codes[j, dy, dx, ci]),
                                           int(x[iy, ix, ci]))
                accs[oy, ox, j] = acc
                y[oy, ox, j] = finish(layer, acc, j)
    if layer.output.kind is OutputKind.ARGMAX:
        y = np.array([[[max(range(out_c), key=lambda j: (accs[oy, ox, j], -j))]
                       for ox in range(ow)] for oy in range(oh)])
    return y, accs


def maxpool(layer: MaxPool, x) -> np.ndarray:
    h, w, c = x.shape
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    y = np.zeros((oh, ow, c), np.int64)
    for oy in range(oh):
        for ox in range(ow):
            for ch in range(c):
                y[oy, ox, ch] = max(int(x[oy * sh + dy, ox * sw + dx, ch])
                                    for dy in range(kh) for dx in range(kw))
    return y


def run_sample(model, x):
    """Every layer's output for one sample."""
    outs = []
    for layer in model.layers:
        if isinstance(layer, Dense):
            x, _ = dense(layer, x)
            x = np.array(x)
        elif isinstance(layer, Conv2d):
            x, _ = conv2d(layer, x)
        elif isinstance(layer, MaxPool):
            x = maxpool(layer, x)
        elif isinstance(layer, Flatten):
            x = np.asarray(x).reshape(-1)
        outs.append(np.asarray(x))
    return outs
