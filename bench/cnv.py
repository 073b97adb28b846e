"""Benchmark: FINN's CNV (CIFAR-10 topology, random weights) fitted to the ECP5-85F.

The model is written by ``mulfree.gen.model.cnv`` (``scripts/make_cnv.py``): 32x32x3 8-bit
input, 3x3 convolutions of 64, 64, max-pool, 128, 128, max-pool, 256, 256, dense 512, 512,
10 (argmax); 1,542,848 weights; w1a1 (binary weights, bipolar activations) or w2a2. The
weights are random (seeded): no trained CNV is at hand and training CIFAR-10 on two CPU
cores is out of reach; the hardware's size, bit-exactness and throughput do not depend
on what the weights are.

Steps, each printed as it goes:

1. write the model (``out/cnv/cnv-w1a1.mf``);
2. ``mulfree verilog --device lfe5u-85f``: the device fit (PE, SIMD, ROM place, threshold
   unit per layer), the Verilog and the manifest (cycles per inference and latency from
   the cycle model of the whole chain); the fitted fold is saved as ``fold.json``;
3. with ``--sim N``: ``mulfree sim --simulator verilator`` on N random images with that
   fold, every output against the golden model;
4. with ``--build``: ``mulfree build --board ulx3s-85f --router router2 --pll-attempts 1``
   with that fold (a build at the 25 MHz board clock, then one at the PLL clock nextpnr's
   Fmax allows)
   (Yosys ``synth_ecp5`` and nextpnr-ecp5, the UART harness included; hours on a shared
   2-core machine; nextpnr's default router1 did not finish routing it), or with
   ``--from-build DIR`` the results of such a build already made (``mulfree build``'s
   folder, or one where nextpnr was run by hand: ``DIR/build`` with Yosys's
   ``top_stat.json`` and nextpnr's ``top_report.json``).

It prints LUT4 (nextpnr's TRELLIS_COMB: LUT4 and carry halves), flip-flops, EBR (DP16KD),
Fmax, cycles per inference and frames/s at Fmax beside FINN's published CNV-w1a1 on a
Zynq ZC706: 21,906 frames/s (Umuroglu et al., "FINN: A Framework for Fast, Scalable
Binarized Neural Network Inference", FPGA 2017, arXiv:1612.07119, abstract and Table).
When a build did not finish, what Yosys reported (``top_stat.json``) is printed instead.

    .venv/bin/python bench/cnv.py                       # fit and Verilog (minutes)
    .venv/bin/python bench/cnv.py --sim 2               # and Verilator on 2 images
    .venv/bin/python bench/cnv.py --build --timeout 14400
    .venv/bin/python bench/cnv.py --from-build out/cnv/build
    .venv/bin/python bench/cnv.py --synth-layer conv3    # one layer's engine alone
    .venv/bin/python bench/cnv.py --build --latency-cutoff 4   # registers in the trees

``--latency-cutoff N`` adds the fold key of that name to the fitted fold (``fold-cutN.json``:
the same PE and SIMD, a register after every N levels of each adder tree) for ``--sim``,
``--build`` (into ``out/cnv/build-cutN``) and ``--synth-layer``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "cnv"
os.environ["AMARANTH_USE_YOSYS"] = "builtin"

FINN_CNV_W1A1_FPS = 21906       # ZC706, Umuroglu et al. 2017 (arXiv:1612.07119)
DEVICE, BOARD = "lfe5u-85f", "ulx3s-85f"


def _mulfree(args: list[str], log: Path, timeout: float | None = None, nice: int = 0) -> int:
    cmd = ([] if not nice else ["nice", "-n", str(nice)]) + \
        [sys.executable, "-m", "mulfree.cli", *args]
    print(f"cnv: $ mulfree {' '.join(args)}  (log: {log})", flush=True)
    t = time.monotonic()
    with open(log, "w") as f:
        try:
            code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout,
                                  cwd=ROOT).returncode
        except subprocess.TimeoutExpired:
            code = None
    print(f"cnv:   {'timed out' if code is None else f'exit {code}'} after "
          f"{time.monotonic() - t:.0f} s", flush=True)
    return -1 if code is None else code


def _fit(model_path: Path, rtl: Path) -> dict:
    log = OUT / "verilog.log"
    if _mulfree(["verilog", str(model_path), "-o", str(rtl), "--device", DEVICE], log):
        sys.exit(f"cnv: mulfree verilog failed; see {log}")
    manifest = json.loads((rtl / "manifest.json").read_text())
    fit = manifest["device_fit"]
    fold = {"input_values_per_beat": fit["input_values_per_beat"],
            "pipeline": fit["pipeline"], "layers": fit["fitted_layers"]}
    (OUT / "fold.json").write_text(json.dumps(fold, indent=1) + "\n")
    print(f"\nDevice fit on the {fit['device']['part']} ({DEVICE}):")
    print(f"{'layer':8} {'type':8} {'pe':>4} {'simd':>5} {'rom':6} {'thresholds':10} "
          f"{'cycles':>7}")
    for row in manifest["layers"]:
        f = fit["fitted_layers"].get(row["name"], {})
        print(f"{row['name']:8} {row['type']:8} {row.get('pe', ''):>4} {row.get('simd', ''):>5} "
              f"{f.get('rom', ''):6} {f.get('thresholds', 'parallel' if f else ''):10} "
              f"{row.get('cycles', ''):>7}")
    est = fit["estimate"]
    print(f"estimate: {est['cells']:,} LUT4 of {fit['capacity']['cells']:,} (budget "
          f"{fit['budget']['cells']:,}), {est['ffs']:,} FF, {est['bram']} of "
          f"{fit['capacity']['bram']} EBR; Fmax estimate {fit.get('fmax_estimate_mhz')} MHz")
    print(f"cycles per inference: {manifest['cycles_per_inference']:,} (the chain's cycle "
          f"model; the fit's slowest stage: {fit['cycles_per_inference']:,}), latency "
          f"{manifest['latency_cycles']:,} cycles")
    return manifest


def _synth_layer(model_path: Path, name: str, fold_path: Path) -> None:
    """Yosys ``synth_ecp5`` of one layer's engine alone, with the fitted fold: where a
    layer's logic goes without a whole build."""
    from mulfree.boards.synth import Flow, synthesize_component
    from mulfree.gen.model.format import load
    from mulfree.gen.plan.network import plan_network
    from mulfree.hw.network import build_stage

    model = load(model_path)
    names = [layer.name for layer in model.layers if layer.name != "flatten"]
    if name not in names:
        sys.exit(f"cnv: no layer '{name}' (layers: {', '.join(names)})")
    fold = {**json.loads(fold_path.read_text()), "link_fifos": False}
    stages, _ = plan_network(model, "runtime", fold)
    spec = stages[names.index(name)]
    t = time.monotonic()
    r = synthesize_component(build_stage(spec), Flow(target="ecp5", pnr=False),
                             timeout=3600).report
    muxes = r.cells.get("PFUMX", 0) + r.cells.get("L6MUX21", 0)
    print(f"{name} alone (synth_ecp5, {time.monotonic() - t:.0f} s): {r.lut:,} LUT4, "
          f"{r.carry:,} CCU2C, {muxes:,} PFUMX and L6MUX21, {r.ff:,} FF, "
          f"{r.cells.get('DP16KD', 0)} DP16KD")


def _stage_reached(build: Path) -> str:
    """How far a build in ``build`` got, from the files its script leaves."""
    d = build / "build"
    if (d / "top.bit").exists():
        return "the bitstream"
    if (d / "top_report.json").exists() or (d / "top.config").exists():
        return "nextpnr's end (report written)"
    if (d / "top_stat.json").exists():
        return "nextpnr (Yosys finished)"
    if d.exists():
        return "Yosys (synthesis)"
    return "writing the design for Yosys (Amaranth elaboration)"


def manifest_bits(manifest: dict) -> str:
    """``1a1`` or ``2a2`` from the model's name (``cnv-w1a1``)."""
    return manifest["model"].rsplit("-w", 1)[-1]


def _results(build: Path, manifest: dict) -> None:
    cycles = manifest["cycles_per_inference"]
    report = build / "report.json"
    print()
    bare = build / "build" / "top_report.json"
    if report.exists() or bare.exists():
        if report.exists():
            r = json.loads(report.read_text())
            res = r["resources"]
            cycles = r.get("cycles_per_inference", cycles)    # the fold that was built
        else:
            r, res = _bare_report(build / "build")
        placed = res.get("placed", {})
        cells = res.get("cells", {})
        fmax = min(v["achieved"] for v in r["fmax_mhz"].values())
        print(f"Built for the {BOARD} (Yosys + nextpnr, harness included), {build}:")
        for u in r["utilization"]:
            print(f"  {u['resource']:24} {u['used']:>8,} / {u['available'] or '-'}")
        comb = placed.get("TRELLIS_COMB", {}).get("used", 0)
        ebr = placed.get("DP16KD", {}).get("used", cells.get("DP16KD", 0))
        fps = fmax * 1e6 / cycles
        print(f"Yosys: {cells.get('LUT4', 0):,} LUT4, {cells.get('CCU2C', 0):,} CCU2C, "
              f"{cells.get('TRELLIS_DPR16X4', 0):,} TRELLIS_DPR16X4, {res.get('ff', 0):,} FF, "
              f"{cells.get('DP16KD', 0)} DP16KD")
        print("\n| design | LUT4 (TRELLIS_COMB placed) | FF | EBR | Fmax | cycles / inference "
              "| frames/s |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        print(f"| mulfree CNV-w{manifest_bits(manifest)}, LFE5U-85F | {comb:,} | "
              f"{res.get('ff', 0):,} | {ebr} | {fmax:.1f} MHz | {cycles:,} | {fps:,.0f} |")
        print(f"| FINN CNV-w1a1, ZC706 (published) | | | | | | {FINN_CNV_W1A1_FPS:,} |")
        print(f"mulfree / FINN: {fps / FINN_CNV_W1A1_FPS:.3f}")
        return
    stat = build / "build" / "top_stat.json"
    print(f"No finished build in {build}: reached {_stage_reached(build)}.")
    if stat.exists():
        sys.path.insert(0, str(ROOT))
        from mulfree.boards.toolchain import parse_yosys_stat
        s = parse_yosys_stat(stat)
        print(f"Yosys (synth_ecp5): {s.lut:,} LUT4, {s.carry:,} CCU2C (LUT4 + 2 x CCU2C = "
              f"{s.lut + 2 * s.carry:,}), {s.cells.get('TRELLIS_DPR16X4', 0):,} "
              f"TRELLIS_DPR16X4, {s.ff:,} FF, {s.cells.get('DP16KD', 0)} DP16KD, {s.dsp} DSP")
    for f in (50.0, 25.0):
        print(f"at {f:g} MHz: {f * 1e6 / cycles:,.0f} frames/s ({cycles:,} cycles/inference); "
              f"FINN CNV-w1a1 on a ZC706: {FINN_CNV_W1A1_FPS:,}")


def _bare_report(d: Path) -> tuple[dict, dict]:
    """``(report, resources)`` as ``mulfree build``'s report.json has them, from Yosys's
    ``top_stat.json`` and nextpnr's ``top_report.json`` in ``d``."""
    sys.path.insert(0, str(ROOT))
    from mulfree.boards.toolchain import parse_nextpnr_report, parse_yosys_stat
    res = parse_nextpnr_report(d / "top_report.json", parse_yosys_stat(d / "top_stat.json"))
    doc = res.to_json()
    util = [{"resource": k, "used": v["used"], "available": v["available"]}
            for k, v in res.placed.items() if v["used"]]
    return {"fmax_mhz": doc["fmax_mhz"], "utilization": util}, doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bits", type=int, choices=(1, 2), default=1, help="w1a1 or w2a2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sim", type=int, default=0, metavar="N",
                    help="Verilator bit-exactness on N random images")
    ap.add_argument("--build", action="store_true", help="Yosys + nextpnr for the ULX3S-85F")
    ap.add_argument("--from-build", type=Path, metavar="DIR",
                    help="report a build made before (mulfree build's output folder)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds for the build")
    ap.add_argument("--synth-layer", metavar="NAME",
                    help="Yosys synth_ecp5 of this layer's engine alone (e.g. conv3)")
    ap.add_argument("--latency-cutoff", type=int, default=0, metavar="N",
                    help="the fitted fold with registers every N adder-tree levels")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from mulfree.gen.model.cnv import CNV_FULL, cnv_model
    from mulfree.gen.model.format import save

    OUT.mkdir(parents=True, exist_ok=True)
    model_path = OUT / f"cnv-w{args.bits}a{args.bits}.mf"
    t = time.monotonic()
    save(cnv_model(CNV_FULL, wbits=args.bits, abits=args.bits, seed=args.seed), model_path)
    print(f"cnv: wrote {model_path} ({time.monotonic() - t:.1f} s)", flush=True)
    manifest = _fit(model_path, OUT / "rtl")
    fold_path, suffix = OUT / "fold.json", ""
    if args.latency_cutoff:
        suffix = f"-cut{args.latency_cutoff}"
        fold = {**json.loads(fold_path.read_text()), "latency_cutoff": args.latency_cutoff}
        fold_path = OUT / f"fold{suffix}.json"
        fold_path.write_text(json.dumps(fold, indent=1) + "\n")
        print(f"cnv: {fold_path.name}: the fitted fold, latency_cutoff {args.latency_cutoff}")
    if args.synth_layer:
        _synth_layer(model_path, args.synth_layer, fold_path)
    if args.sim:
        log = OUT / f"sim{suffix}.log"
        code = _mulfree(["sim", str(model_path), "--simulator", "verilator", "--fold",
                         str(fold_path), "--random", str(args.sim)], log, nice=10)
        tail = [ln for ln in log.read_text().splitlines() if "PASS" in ln or "FAIL" in ln]
        print(f"Verilator: {tail[-1].strip() if tail else f'no verdict (exit {code})'}")
    build = args.from_build
    if args.build:
        build = OUT / f"build{suffix}"
        _mulfree(["build", str(model_path), "--board", BOARD, "--fold", str(fold_path),
                  "--attempts", "1", "--pll-attempts", "1", "--router", "router2",
                  "-o", str(build)], OUT / f"build{suffix}.log", args.timeout,
                 nice=10)
    if build is not None:
        _results(build, manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
