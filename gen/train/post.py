"""Float networks as ``.npz`` files (docs/training.md) and post-training quantization."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import datasets
from ..errors import InputError
from .config import ARCHS, TrainConfig
from .net import Layer, Net, lut_step, refresh_scales, reset_luts
from .quant import check_float_array
from .trainer import recalibrate_bn

__all__ = ["float_net_to_npz", "net_from_npz", "post_quantize"]


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
    _check_chain(layers, in_shape)
    cfg = replace(cfg, arch=arch)
    net = Net(cfg, layers, in_shape)
    return net


def _check_chain(layers: list[Layer], in_shape: tuple[int, ...]) -> None:
    """Every layer's inputs are what the layer before it gives (as the forward pass will
    multiply them), so a wrong inner size is a message, not a NumPy traceback."""
    shape = in_shape
    index = 0
    for l in layers:
        if l.kind == "flatten":
            shape = (int(np.prod(shape)),)
        elif l.kind == "pool":
            shape = (shape[0] // 2, shape[1] // 2, shape[2])
        else:
            W = l.W
            if l.kind == "dense":
                if len(shape) != 1 or W.shape[1] != shape[0]:
                    raise InputError(f"float model: layer{index}.W has shape {list(W.shape)}, "
                                     f"but its input has {int(np.prod(shape))} values "
                                     f"(expected [{W.shape[0]}, {int(np.prod(shape))}])")
                shape = (W.shape[0],)
            else:
                if len(shape) != 3 or W.shape[1:] != (3, 3, shape[2]):
                    raise InputError(f"float model: layer{index}.W has shape {list(W.shape)}, "
                                     f"expected [{W.shape[0]}, 3, 3, {shape[-1]}] for its "
                                     f"input of shape {list(shape)}")
                shape = (shape[0], shape[1], W.shape[0])
            index += 1


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
    xv = data.codes(data.x_train, cfg.ibits) * datasets.input_step(cfg.ibits)
    if net.layers[0].kind == "flatten":
        xv = xv.reshape(xv.shape[0], -1)
    if len(net.in_shape) == 1 and net.in_shape[0] != xv.reshape(xv.shape[0], -1).shape[1]:
        raise InputError(f"float model expects {net.in_shape[0]} inputs, digits has 64")
    recalibrate_bn(net, xv)
    return net
