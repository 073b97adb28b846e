"""``mulfree import MODEL.onnx -o NET.mf``: a quantized ONNX graph (QONNX from Brevitas or
QKeras, FINN-ONNX) as a mulfree model description, checked against qonnx's executor.

Exit 0: imported and the self-check passed (or was skipped with ``--no-check``); 1: the
self-check found a difference (the first one is printed; nothing is written); 2: the graph
cannot be imported (the node, its op type and what would make it importable are printed;
nothing is written) or an option is wrong.
"""

from __future__ import annotations

import argparse
import sys
import time

from mulfree.gen.errors import InputError
from mulfree.gen.fileio import load_npy
from mulfree.gen.model.format import Conv2d, Dense, save

from .options import add_output, positive_float


def _bits(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if not 1 <= v <= 16:
        raise argparse.ArgumentTypeError(f"expected an integer 1 to 16, got {text!r}")
    return v



def add_arguments(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("onnx", help="quantized ONNX graph: QONNX (Brevitas, QKeras via qonnx) or "
                                "FINN-ONNX; docs/import.md lists the supported nodes")
    add_output(p, required=True, metavar="NET.mf", help="model description to write (.mf)")
    p.add_argument("--name", help="model name (default: the file name)")
    g = p.add_argument_group("an input without a quantizer in the graph")
    g.add_argument("--input-bits", type=_bits, metavar="N",
                   help="the graph input takes integer codes of N bits times --input-scale")
    g.add_argument("--input-signed", action="store_true",
                   help="the input codes are two's complement (-2**(N-1) .. 2**(N-1)-1)")
    g.add_argument("--input-scale", type=positive_float, metavar="S", default=None,
                   help="the float value of one input code step (default 1)")
    p.add_argument("--last", choices=("acc", "argmax"), default="acc",
                   help="what the last layer emits: its accumulators (default; the host takes "
                        "the class from the decoded logits where they differ) or the class "
                        "(refused unless the output affine folds into integers exactly)")
    c = p.add_argument_group("self-check against qonnx's executor")
    c.add_argument("--no-check", action="store_true", help="skip the self-check")
    c.add_argument("--check-inputs", metavar="X.npy",
                   help="check on these float inputs ([N, *graph input shape]) instead of "
                        "random ones and rounding ties")


def run(args: argparse.Namespace) -> int:
    from mulfree.gen.importers.qonnx import InputDecl, check_import, import_graph

    if args.input_bits is None and (args.input_signed or args.input_scale is not None):
        raise InputError("--input-signed and --input-scale describe --input-bits: give "
                         "--input-bits N too")
    if args.no_check and args.check_inputs:
        raise InputError("--check-inputs and --no-check contradict each other")
    decl = None
    if args.input_bits is not None:
        decl = InputDecl(args.input_bits, args.input_signed,
                         1.0 if args.input_scale is None else args.input_scale)
    x = load_npy(args.check_inputs) if args.check_inputs else None
    imported = import_graph(args.onnx, name=args.name, decl=decl, last=args.last)
    model = imported.model
    parts = []
    for layer in model.layers:
        if isinstance(layer, (Dense, Conv2d)):
            parts.append(f"{layer.name} {layer.weights.scheme.value}")
        else:
            parts.append(layer.name)
    print(f"imported {args.onnx} ({imported.nodes} nodes) in {imported.seconds:.2f} s: "
          f"{len(model.layers)} layers ({', '.join(parts)}), {model.input_bits}-bit input "
          f"codes of shape {list(model.input_shape)}, last layer -> "
          f"{model.output_kind.value}")
    for note in imported.notes:
        print(f"  note: {note}")
    if not args.no_check:
        what = f"{len(x)} inputs from {args.check_inputs}" if x is not None else \
            "80 inputs (64 random, 16 on rounding ties)"
        print(f"self-check: {what} through qonnx's executor and the golden model ...",
              flush=True)
        t0 = time.perf_counter()
        result = check_import(args.onnx, imported, x=x)
        if not result.ok:
            print(f"mulfree import: {result.message}; nothing written", file=sys.stderr)
            return 1
        print(f"  {result.summary()} ({time.perf_counter() - t0:.1f} s)")
    save(model, args.output)
    print(f"wrote {args.output}")
    return 0
