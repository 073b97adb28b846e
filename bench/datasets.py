"""Your own data through `mulfree train --dataset FILE.npz`: scikit-learn's bundled wine and
breast cancer sets (and a made-up one of separable Gaussian classes), written as .npz files
and trained and evaluated with the command line, as a user would.

    .venv/bin/python bench/datasets.py [--out out/datasets]

Each set is split 75 % / 25 % (stratified, ``random_state=0``); the table gives the golden
integer model's test accuracy (`mulfree eval`) and the float network's (what `mulfree
train` prints), for a dense MLP and a sparse one (``--fan-in``).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

CONFIGS = [("dense 16", ["--hidden", "16"]),
           ("sparse 32, fan-in 3", ["--hidden", "32", "--fan-in", "3"])]
COMMON = ["--scheme", "pot", "--wbits", "3", "--abits", "2", "--ibits", "4", "--epochs", "60",
          "--seed", "0"]


def _write_sets(out: Path) -> dict[str, Path]:
    import sklearn.datasets
    from sklearn.model_selection import train_test_split

    paths = {}
    for name, loader in (("wine", "load_wine"), ("breast_cancer", "load_breast_cancer")):
        d = getattr(sklearn.datasets, loader)()
        xtr, xte, ytr, yte = train_test_split(d.data, d.target, test_size=0.25, random_state=0,
                                              stratify=d.target)
        paths[name] = out / f"{name}.npz"
        np.savez(paths[name], x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 600), ("test", 200)):
        y = np.arange(n) % 3
        arrays[f"x_{split}"] = rng.normal(0, 1, (n, 5)) + 4.0 * y[:, None]
        arrays[f"y_{split}"] = y
    paths["gaussians"] = out / "gaussians.npz"
    np.savez(paths["gaussians"], **arrays)
    return paths


def _mulfree(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "mulfree.cli", *args], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"mulfree {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "out" / "datasets"))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, path in _write_sets(out).items():
        with np.load(path) as z:
            shape = (z["x_train"].shape[0], z["x_test"].shape[0], z["x_train"].shape[1],
                     int(z["y_train"].max()) + 1)
        for label, extra in CONFIGS:
            model = out / f"{name}-{label.split()[0]}.mf"
            text = _mulfree("train", "--dataset", str(path), *extra, *COMMON, "-o", str(model))
            flt = float(re.search(r"\(float ([0-9.]+)\)", text).group(1))
            acc = json.loads(_mulfree("eval", str(model), "--dataset", str(path), "--json"))
            rows.append((name, shape, label, acc["accuracy"], flt))
    print("| data set | train / test samples | features | classes | network | integer "
          "accuracy | float |")
    print("|---|---|---:|---:|---|---:|---:|")
    for name, (ntr, nte, f, c), label, acc, flt in rows:
        print(f"| {name} | {ntr} / {nte} | {f} | {c} | {label} | {100 * acc:.1f} % | "
              f"{100 * flt:.1f} % |")
    print(f"\n(`mulfree train --dataset FILE.npz {' '.join(COMMON)}` plus the network options; "
          f"files in {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
