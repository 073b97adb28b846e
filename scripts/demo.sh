#!/usr/bin/env bash
# `make demo`: the main job end to end, as far as mulfree reaches today.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
MF="$VENV/bin/mulfree"
OUT=${OUT:-out/demo}
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "example model (examples/example.mf): what is in it"
"$MF" info examples/example.mf

step "golden model on 16 random inputs"
"$VENV/bin/python" - "$OUT/inputs.npy" <<'PY'
import sys, numpy as np
from mulfree.gen.fileio import save_npy
save_npy(sys.argv[1], np.random.default_rng(0).integers(0, 4, (16, 8, 8, 1)))
PY
"$MF" predict examples/example.mf "$OUT/inputs.npy" -o "$OUT/outputs.npy" --layer-outputs "$OUT/layers"

step "made"
echo "  $OUT/inputs.npy        16 random input codes"
echo "  $OUT/outputs.npy       golden-model outputs"
echo "  $OUT/layers/           every layer's output codes and accumulators"
