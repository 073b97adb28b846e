"""The import corpus through mulfree's importer, as a table (docs/import.md shows it).

    .venv/bin/python bench/import_corpus.py            # all graphs, with the device fits (~3 min)
    .venv/bin/python bench/import_corpus.py --no-fit   # without them (~1 min)
    .venv/bin/python bench/import_corpus.py --only cnn_digits_w4a4
    .venv/bin/python bench/import_corpus.py --widths   # import time by input/activation bits
    .venv/bin/python bench/import_corpus.py --codebooks  # offset levels: identity+bias or decode

Every graph of tests/data/import (Brevitas exports, public QONNX/FINN-ONNX graphs, the
model-zoo references whose graphs are in ../shared/models) is imported unedited, as
``mulfree import`` does it (declaring the input encoding where the graph has no input
quantizer: meta.json's ``user_must_declare``, and hls4ml's fixed<16,6> for the jet
tagger). Per graph: its node count; the import's result and time; the layers it became;
the import's self-check (80 inputs, 16 of them on rounding ties, against qonnx's
executor); the agreement of ``mulfree predict --float`` with qonnx's executor on the
saved test inputs (class, largest output difference); and whether the model fits an
iCE40UP5K and an LFE5U-85F by mulfree's device fit (``mulfree verilog NET.mf -o DIR
--device ice40up5k``: the fitter's logic-cell estimate against its budget, not a
place-and-route result).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "import"
DECLARE = {"zoo_qkeras_jettagging": (16, True, 2**-10)}   # hls4ml's default fixed<16,6>


def _shared() -> Path | None:
    for cand in (ROOT.parent / "shared", ROOT.parent.parent / "shared"):
        if (cand / "models").is_dir():
            return cand
    return None


def corpus(only: str | None = None):
    """(name, graph path, declaration or None, saved inputs, saved executor outputs)."""
    shared = _shared()
    for meta_path in sorted(DATA.glob("*/*/meta.json")):
        name = meta_path.parent.name
        if only and only != name:
            continue
        meta = json.loads(meta_path.read_text())
        ref = meta.get("model", "model.onnx")
        if ref.startswith("../shared/"):
            if shared is None:
                print(f"skip {name}: ../shared/models not found", file=sys.stderr)
                continue
            path = shared / ref[len("../shared/"):]
        else:
            path = meta_path.parent / ref
        must = meta.get("input_encoding", {}).get("user_must_declare")
        decl = DECLARE.get(name) or ((must["bits"], must["signed"], must["scale"]) if must else None)
        yield (f"{meta_path.parent.parent.name}/{name}", path, decl,
               np.load(meta_path.parent / "inputs.npy"),
               np.load(meta_path.parent / "out_qonnx.npy"))


def _layers(model) -> str:
    from mulfree.gen.model.format import Conv2d, Dense, MaxPool

    parts = []
    for layer in model.layers:
        if isinstance(layer, Dense):
            parts.append(f"dense {layer.weights.scheme.value}")
        elif isinstance(layer, Conv2d):
            kind = "avgpool" if layer.name.startswith("avgpool") else "conv"
            parts.append(f"{kind} {layer.weights.scheme.value}")
        elif isinstance(layer, MaxPool):
            parts.append("maxpool")
    out = []
    for p in parts:      # run-length: "conv uniform x2"
        if out and out[-1][0] == p:
            out[-1][1] += 1
        else:
            out.append([p, 1])
    return ", ".join(p if n == 1 else f"{p} x{n}" for p, n in out)


def _fit(model, device: str) -> str:
    from mulfree.gen.errors import InputError
    from mulfree.gen.plan.network import plan_network

    try:
        _, manifest = plan_network(model, fold=f"device:{device}")
    except InputError as e:
        m = re.search(r"estimated (at least )?(\d+) logic cells with the harness.*?budget (\d+)",
                      str(e))
        if not m:
            return "no"
        return f"no ({'>= ' if m.group(1) else ''}{m.group(2)} > {m.group(3)} LC)"
    fit = manifest["device_fit"]
    return f"yes ({fit['estimate']['cells']}/{fit['budget']['cells']} LC)"


def measure(case, fits: bool) -> dict:
    from mulfree.gen.errors import MulfreeError
    from mulfree.gen.importers.qonnx import InputDecl, check_import, import_graph
    from mulfree.gen.importers.selfcheck import reference_run
    from mulfree.gen.importers.graph import load_graph
    from mulfree.gen.model import golden
    from mulfree.gen.model.encoding import decode_outputs, encode_inputs

    name, path, decl, x, want = case
    row = {"graph": name, "nodes": len(load_graph(path).graph.node)}
    d = InputDecl(*decl) if decl else None
    try:
        imp = import_graph(path, decl=d)
    except MulfreeError as e:
        msg = str(e)
        row.update(result="refused", detail=msg)
        return row
    model = imp.model
    row.update(result=f"imported, {imp.seconds:.2f} s" + (f" (--input-bits {decl[0]})" if decl else ""),
               layers=_layers(model))
    check = check_import(path, imp)
    row["check"] = "passed" if check.ok else "FAILED: " + check.message
    if decl:      # a declared input takes values on its grid: the reference on those
        x = (np.round(x / decl[2]) * decl[2]).astype(np.float32)
        want = reference_run(path, x, [])["<output>"]
    got = decode_outputs(model, golden.run(model, encode_inputs(model, x)))
    if want.dtype.kind in "iu":
        row["agreement"] = f"{int(np.sum(np.all(got.reshape(len(x), -1) == want.reshape(len(x), -1), 1)))}/{len(x)} equal"
    else:
        diff = float(np.abs(got.astype(np.float64) - want).max())
        w = want.reshape(len(x), -1)
        cls = f"class {int(np.sum(got.reshape(len(x), -1).argmax(1) == w.argmax(1)))}/{len(x)}, " \
            if w.shape[1] > 1 else ""
        row["agreement"] = f"{cls}max diff {diff:.1e}"
    if fits:
        row["up5k"] = _fit(model, "ice40up5k")
        row["85f"] = _fit(model, "lfe5u-85f")
    return row


def table(rows: list[dict], fits: bool) -> str:
    head = ["graph", "nodes", "result", "layers", "self-check", "predict --float vs qonnx"]
    head += ["fits UP5K", "fits 85F"] if fits else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r["result"] == "refused":
            detail = r["detail"]
            detail = detail if len(detail) < 140 else detail[:137] + "..."
            cells = [r["graph"], str(r["nodes"]), "refused", detail.replace("|", "/"), "-", "-"]
            cells += ["-", "-"] if fits else []
        else:
            cells = [r["graph"], str(r["nodes"]), r["result"], r["layers"], r["check"],
                     r["agreement"]] + ([r["up5k"], r["85f"]] if fits else [])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _wide_mlp(path: Path, in_bits: int, act_bits: int, widths=(64, 256, 256, 10)) -> Path:
    """A Brevitas-like MLP (Quant -> Gemm -> BatchNorm -> Relu -> Quant ...) with random
    weights: ``in_bits`` input codes, ``act_bits`` hidden activations, 8-bit weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []

    def const(v):
        name = f"c{len(inits)}"
        inits.append(numpy_helper.from_array(np.asarray(v, np.float32), name))
        return name

    def quant(x, scale, bits, signed):
        out = f"q{len(nodes)}"
        nodes.append(helper.make_node("Quant", [x, const(scale), const(0.0), const(bits)], [out],
                                      domain="qonnx.custom_op.general", signed=int(signed),
                                      narrow=0, rounding_mode="ROUND"))
        return out

    x = quant("x", 2.0**-10, in_bits, True)
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        w = quant(const(rng.normal(0, 0.05, (b, a))), 0.002, 8, True)
        y = f"g{i}"
        nodes.append(helper.make_node("Gemm", [x, w, const(rng.normal(0, 0.1, b))], [y], transB=1))
        if i < len(widths) - 2:
            params = [const(v) for v in (rng.uniform(0.5, 2, b), rng.normal(0, 1, b),
                                         rng.normal(0, 0.1, b), rng.uniform(0.5, 2, b))]
            nodes.append(helper.make_node("BatchNormalization", [y, *params], [y + "bn"]))
            nodes.append(helper.make_node("Relu", [y + "bn"], [y + "r"]))
            x = quant(y + "r", 4.0 / 2**act_bits, act_bits, False)
        else:
            x = y
    g = helper.make_graph(nodes, "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                        [1, widths[0]])],
                          [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, widths[-1]])],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid("qonnx.custom_op.general", 1)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def widths_table() -> str:
    """Import time (without the self-check) and the self-check of a 64-256-256-10 MLP of
    8-bit weights, by input and activation width: thresholds by search take the same few
    dozen steps whatever the accumulator range."""
    import tempfile

    from mulfree.gen.importers.qonnx import check_import, import_graph
    from mulfree.gen.model.golden import accumulator_bounds

    lines = ["| input bits | activation bits | accumulator values (first layer) | import | "
             "self-check |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        import_graph(_wide_mlp(Path(tmp) / "warm.onnx", 4, 2, (4, 4, 2)))  # load qonnx once
        for in_bits, act_bits in ((8, 4), (8, 8), (16, 4), (16, 8)):
            path = _wide_mlp(Path(tmp) / f"w{in_bits}_{act_bits}.onnx", in_bits, act_bits)
            imp = import_graph(path)
            b = accumulator_bounds(imp.model.layers[0])
            t = time.perf_counter()
            ok = check_import(path, imp).ok
            lines.append(f"| {in_bits} | {act_bits} | 2**{int(np.log2(b.max - b.min + 1))} | "
                         f"{imp.seconds:.2f} s | {'passed' if ok else 'FAILED'} "
                         f"({time.perf_counter() - t:.1f} s) |")
    return "\n".join(lines)


def codebooks_table() -> str:
    """Signed or offset levels as the identity codebook plus a bias (the importer's choice
    from 17 levels on) against the offset codebook decoded by a table, by mulfree's device
    fit (estimated logic cells, cycles per inference)."""
    import mulfree.gen.importers.lower as lower
    from mulfree.gen.importers.qonnx import import_qonnx
    from mulfree.gen.errors import InputError
    from mulfree.gen.plan.network import plan_network

    def fit(model, device):
        try:
            _, man = plan_network(model, fold=f"device:{device}")
        except InputError as e:
            m = re.search(r"estimated (at least )?(\d+) logic cells", str(e))
            return f"no ({'>= ' if m.group(1) else ''}{m.group(2)} LC)" if m else "no"
        return f"{man['device_fit']['estimate']['cells']} LC, {man['cycles_per_inference']} cycles"

    rows = ["| graph | input / hidden levels | codebook | UP5K fit | 85F fit |", "|---|---|---|---|---|"]
    shared = _shared()
    graphs = [(DATA / "brevitas" / n / "model.onnx", None, n) for n in
              ("mlp_tab_in16", "mlp_tab_w4a4_gemm_bias", "mlp_tab_w3a3_hardtanh")]
    if shared is not None:
        graphs.append((shared / "models" / "qonnx-tfc" / "TFC_2W2A.onnx", None, "TFC_2W2A"))
    keep = lower.IDENTITY_MIN_LEVELS
    try:
        for path, decl, name in graphs:
            for how, limit in (("identity + bias", 2), ("offset, decoded", 2**20)):
                lower.IDENTITY_MIN_LEVELS = limit
                model = import_qonnx(path, decl=decl)
                sizes = "/".join(str(l.activation_codebook.size) for l in model.layers
                                 if getattr(l, "activation_codebook", None) is not None)
                print(f"... {name} {how}", file=sys.stderr, flush=True)
                rows.append(f"| {name} | {sizes} | {how} | {fit(model, 'ice40up5k')} | "
                            f"{fit(model, 'lfe5u-85f')} |")
    finally:
        lower.IDENTITY_MIN_LEVELS = keep
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-fit", action="store_true", help="skip the device fits")
    p.add_argument("--only", metavar="NAME", help="one graph (its folder name)")
    p.add_argument("--widths", action="store_true",
                   help="only the import time by input and activation width")
    p.add_argument("--codebooks", action="store_true",
                   help="only the identity-codebook-plus-bias choice against decoding")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    if args.widths:
        print(widths_table())
        return 0
    if args.codebooks:
        print(codebooks_table())
        return 0
    rows = []
    t0 = time.perf_counter()
    for case in corpus(args.only):
        t = time.perf_counter()
        print(f"... {case[0]}", file=sys.stderr, flush=True)
        rows.append(measure(case, not args.no_fit))
        print(f"    {rows[-1]['result']} ({time.perf_counter() - t:.1f} s)", file=sys.stderr)
    print(table(rows, not args.no_fit))
    ok = sum(r["result"] != "refused" for r in rows)
    passed = sum(r.get("check") == "passed" for r in rows)
    print(f"\n{ok} of {len(rows)} graphs imported, {passed} self-checks passed; "
          f"{time.perf_counter() - t0:.0f} s in all")
    return 0 if passed == ok else 1


if __name__ == "__main__":
    sys.exit(main())
