"""``mulfree train``, ``mulfree quantize`` and ``mulfree eval``.

    mulfree train --dataset digits --arch mlp --scheme pot --wbits 4 --abits 2 -o net.mf
    mulfree quantize float.npz --scheme apot --wbits 4 --abits 2 -o net.mf
    mulfree eval net.mf --dataset digits [--json]

``train`` runs quantization-aware training (:mod:`mulfree.gen.train`) and writes the
folded integer model; ``--save-float`` also writes the float network in the .npz layout
``quantize`` reads (docs/training.md). ``eval`` runs the golden integer model on the
test split with the model's own input encoding and prints its accuracy (the model's class:
for an imported model the argmax of its decoded outputs).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import time

import numpy as np

from mulfree.gen import limits, progress
from mulfree.gen.train import datasets
from mulfree.gen.errors import InputError, OutputError
from mulfree.gen.fileio import atomic_write_bytes
from mulfree.gen.model.format import load, save

from .options import (add_output, int_list, nonneg_float, nonneg_int, output_path,
                      positive_float, positive_int)

log = logging.getLogger(__name__)

DATASET_HELP = ("digits (scikit-learn's, bundled; the default) or a .npz file with x_train, "
                "y_train, x_test, y_test: features [N, F] or images [N, H, W, C], integer "
                "labels (docs/training.md)")

_hidden = int_list


def _quant_options(p: argparse.ArgumentParser, train: bool) -> None:
    from mulfree.gen.train.config import ACTS, SCHEMES

    schemes = SCHEMES if train else tuple(s for s in SCHEMES if s not in ("float", "table"))
    p.add_argument("--scheme", required=True, choices=schemes, help="weight scheme")
    p.add_argument("--wbits", type=positive_int, default=4, help="weight code bits (default 4)")
    p.add_argument("--abits", type=positive_int, default=2,
                   help="hidden activation bits (default 2)")
    p.add_argument("--ibits", type=positive_int, default=4, help="input code bits (default 4)")
    p.add_argument("--act", choices=ACTS, default="uniform",
                   help="activation quantizer: uniform (ReLU-clipped), bipolar (1 bit), learned")
    p.add_argument("--alpha", type=positive_float, default=2.0,
                   help="uniform activation clip (default 2)")
    p.add_argument("--last", choices=("argmax", "acc"), default="argmax",
                   help="what the last layer emits (default argmax)")
    p.add_argument("--precision", type=positive_int, default=8,
                   help="integer bits of learned levels, LUT-Q dictionaries and tables (default 8)")
    p.add_argument("--lut-pot", action="store_true",
                   help="LUT-Q: constrain the dictionary to powers of two (multiplier-less)")
    p.add_argument("--lut-prune", type=nonneg_float, default=0.0, metavar="SPARSITY",
                   help="LUT-Q: pin entry 0 at zero with at least this fraction of weights")
    p.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    p.add_argument("--name", help="model name (default from the options)")
    add_output(p, required=True, metavar="NET.mf", help="model file to write (checked before "
                                                        "training starts)")


def add_arguments(p: argparse.ArgumentParser, name: str) -> None:
    if name == "train":
        p.add_argument("--dataset", default="digits", metavar="NAME|FILE.npz",
                       help=DATASET_HELP)
        p.add_argument("--arch", choices=("mlp", "cnn"), default="mlp",
                       help="mlp: dense layers (--hidden); cnn: 3x3 conv + 2x2 max-pool "
                            "blocks (--channels), then a dense layer (default mlp)")
        p.add_argument("--hidden", type=_hidden, default=(64, 32), metavar="N,N",
                       help="MLP hidden widths (default 64,32)")
        p.add_argument("--channels", type=_hidden, default=(8, 16), metavar="N,N",
                       help="CNN conv channels (default 8,16)")
        p.add_argument("--fan-in", type=_hidden, default=(), metavar="F[,F..]",
                       help="sparse MLP: every neuron reads F inputs (one value for every "
                            "dense layer, or one per dense layer); default dense")
        p.add_argument("--fan-in-rule", choices=("learned", "random"), default="learned",
                       help="which inputs: learned (gradual magnitude pruning to each neuron's F "
                            "largest weights; default) or random (fixed per seed, as LogicNets)")
        _quant_options(p, train=True)
        p.add_argument("--table-entries", type=positive_int, default=None, metavar="E",
                       help="table scheme: at most E product-table entries per layer")
        p.add_argument("--epochs", type=positive_int, default=60,
                       help="epochs in all (default 60)")
        p.add_argument("--lr", type=positive_float, default=0.01,
                       help="Adam learning rate (default 0.01)")
        p.add_argument("--no-gradual", action="store_true",
                       help="quantize to the target bits at once (no gradual lowering)")
        output_path(p, "--save-float", metavar="NPZ",
                       help="also write the float network (the .npz layout `quantize` reads)")
    elif name == "quantize":
        p.add_argument("float_model", help="float network, .npz (layout in docs/training.md)")
        p.add_argument("--dataset", default="digits", choices=datasets.DATASETS,
                       help="data for batch-norm recalibration (default digits)")
        _quant_options(p, train=False)
    else:  # eval
        p.add_argument("model", help="model file (.mf)")
        p.add_argument("--dataset", default="digits", metavar="NAME|FILE.npz",
                       help=DATASET_HELP)
        p.add_argument("--data-scale", type=positive_float, metavar="S",
                       help="imported models: multiply the data set's values by S before the "
                            "model's own input encoding (e.g. 0.0625 for digits pixels 0..16 "
                            "to [0, 1])")
        p.add_argument("--data-offset", type=float, metavar="B",
                       help="imported models: then add B (e.g. -1 after --data-scale 0.125 for "
                            "pixels to [-1, 1])")
        p.add_argument("--json", action="store_true", help="print {\"accuracy\": ...}")


def _config(args: argparse.Namespace, **extra):
    from mulfree.gen.train.config import TrainConfig

    return TrainConfig(scheme=args.scheme, wbits=args.wbits, abits=args.abits, ibits=args.ibits,
                       act=args.act, alpha=args.alpha, output=args.last,
                       precision=args.precision, lut_pot=args.lut_pot,
                       lut_prune=args.lut_prune, seed=args.seed, **extra)


def _default_name(cfg, q, dataset: str = "digits") -> str:
    widths = [int(l.codes.shape[0]) for l in q.layers]
    if cfg.arch == "mlp":
        body = "-".join(str(w) for w in [int(np.prod(q.in_shape))] + widths)
    else:
        body = "cnn" + "-".join(str(w) for w in widths[:-1])
    if cfg.fan_in:
        body += "-f" + "_".join(str(f) for f in cfg.fan_in)
    return f"{dataset}-{body}-{cfg.scheme}-w{cfg.wbits}a{cfg.abits}i{cfg.ibits}-s{cfg.seed}"


def run(args: argparse.Namespace) -> int:
    if args.command == "eval":
        return _run_eval(args)
    from mulfree.gen.train.evaluate import evaluate_model
    from mulfree.gen.train.export import export, to_model
    from mulfree.gen.train.post import float_net_to_npz, net_from_npz, post_quantize
    from mulfree.gen.train.trainer import float_accuracy, train

    data = datasets.load(args.dataset)
    if args.command == "train":
        cfg = _config(args, arch=args.arch, hidden=tuple(args.hidden),
                      channels=tuple(args.channels), fan_in=tuple(args.fan_in),
                      fan_in_rule=args.fan_in_rule, table_entries=args.table_entries,
                      epochs=args.epochs, lr=args.lr, gradual=not args.no_gradual)
        if cfg.scheme == "float":
            raise InputError("--scheme float trains no integer model; pick a quantized scheme "
                             "(use --save-float to keep the float network of any run)")
        _check_size(cfg, data)
        t0 = time.monotonic()
        with progress.stage(f"training ({cfg.scheme}, {cfg.arch})", _epochs(cfg)) as st:
            net, hist = train(cfg, data, progress=_epoch_report(st))
        seconds = time.monotonic() - t0
        float_acc = _float_reference(cfg, data) if args.save_float is None else None
        if args.save_float:
            fcfg = _replace(cfg, scheme="float")
            with progress.stage("training the float network", _epochs(fcfg)) as st:
                fnet, _ = train(fcfg, data, progress=_epoch_report(st))
            float_acc = float_accuracy(fnet, data)
            _save_npz(args.save_float, float_net_to_npz(fnet))
    else:
        arrays = _load_npz(args.float_model)
        cfg = _config(args, arch=str(arrays.get("arch", "mlp")))
        t0 = time.monotonic()
        fnet = net_from_npz(arrays, cfg)
        if int(np.prod(fnet.in_shape)) != int(np.prod(data.image_shape)):
            raise InputError(f"{args.float_model}: the network takes "
                             f"{int(np.prod(fnet.in_shape))} inputs, a {args.dataset} sample "
                             f"has {int(np.prod(data.image_shape))}")
        float_acc = float_accuracy(fnet, data)
        net = post_quantize(arrays, cfg, data)
        seconds = time.monotonic() - t0
    q = export(net)
    q.metadata["float_accuracy"] = round(float(float_acc), 6)
    q.metadata["dataset"] = data.name
    q.metadata["source"] = f"mulfree {args.command}"
    encoding = data.encoding(cfg.ibits)
    if encoding is not None:           # how the data set's values become input codes
        q.metadata["input_encoding"] = encoding
    model = to_model(q, name=args.name or _default_name(cfg, q, data.name))
    acc = evaluate_model(model, data)
    # Accuracy of the golden model is part of the file; timing is not (determinism).
    meta = dict(model.metadata)
    meta["accuracy"] = round(acc, 6)
    from mulfree.gen.model.format import Model

    model = Model(name=model.name, input_shape=model.input_shape, input_bits=model.input_bits,
                  layers=model.layers, metadata=meta)
    _save_or_rescue(model, args.output)
    print(f"wrote {args.output}: {model.name}, integer test accuracy {acc:.4f} "
          f"(float {float_acc:.4f}), {args.command} took {seconds:.1f} s")
    return 0


def _replace(cfg, **kw):
    from dataclasses import replace

    return replace(cfg, **kw)


def _float_reference(cfg, data) -> float:
    """Float accuracy of the same architecture trained without quantization (same seed)."""
    from mulfree.gen.train.trainer import float_accuracy, train

    fcfg = _replace(cfg, scheme="float", table_entries=None)
    with progress.stage("training the float reference", _epochs(fcfg)) as st:
        fnet, _ = train(fcfg, data, progress=_epoch_report(st))
    return float_accuracy(fnet, data)


def _epochs(cfg) -> int:
    """Epochs the trainer runs over ``cfg``'s schedule (each stage at least one)."""
    from mulfree.gen.train.config import stages

    return sum(max(1, int(round(share * cfg.epochs))) for *_, share in stages(cfg))


def _epoch_report(stage):
    def report(message: str) -> None:
        stage.update(message, advance=1)
        log.info("%s", message)
    return report


def _check_size(cfg, data) -> None:
    """Refuse a network whose largest training array is past the limit, before building
    it (``--hidden 1000000`` would take gigabytes)."""
    n = data.x_train.shape[0] if not cfg.train_subset else min(cfg.train_subset,
                                                              data.x_train.shape[0])
    if cfg.arch == "mlp":
        widths = [int(np.prod(data.image_shape)), *cfg.hidden, data.classes]
        size = max(max(a * b for a, b in zip(widths, widths[1:])), n * max(widths))
        what = f"--hidden {','.join(map(str, cfg.hidden))}: the largest training array"
    else:
        if len(data.image_shape) != 3:
            return                      # the trainer refuses features for a CNN, one line
        h, w, c = data.image_shape
        size = 0
        for ch in cfg.channels:
            size = max(size, n * h * w * 9 * c, n * h * w * ch)   # im2col, outputs
            h, w, c = h // 2, w // 2, ch
        what = f"--channels {','.join(map(str, cfg.channels))}: the largest training array"
    limits.check(size, what)


def _save_or_rescue(model, path) -> None:
    """Save the model; if ``path`` fails after all (the disk filled during training),
    keep the model in the temporary folder and say where."""
    try:
        save(model, path)
    except OutputError as e:
        import tempfile

        fd, rescue = tempfile.mkstemp(prefix="mulfree-rescued-", suffix=".mf")
        os.close(fd)
        save(model, rescue)
        raise OutputError(f"{e}; the trained model was saved to {rescue} instead") from None


def _save_npz(path: str, arrays: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _load_npz(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npz archive ({e})") from None


def _run_eval(args: argparse.Namespace) -> int:
    from mulfree.gen.train.evaluate import evaluate_model

    model = load(args.model)
    data = datasets.load(args.dataset)
    acc = evaluate_model(model, data, scale=args.data_scale, offset=args.data_offset)
    if args.json:
        print(json.dumps({"accuracy": acc}))
    else:
        n = data.y_test.size
        print(f"{model.name}: test accuracy {acc:.4f} ({int(round(acc * n))}/{n}, "
              f"golden integer model, {data.name})")
    return 0
