#!/usr/bin/env bash
# `make demo`: the main job end to end. Train a small multiply-free digits network, check
# it, generate its Verilog, prove the RTL equal to the golden model on two simulators,
# build an iCEBreaker bitstream with Yosys/nextpnr, and measure what each arithmetic scheme
# costs. Everything lands in $OUT (default out/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
MF="$VENV/bin/mulfree"
OUT=${OUT:-out/demo}
mkdir -p "$OUT"
export AMARANTH_USE_YOSYS=builtin
step() { printf '\n== %s\n' "$*"; }
start=$(date +%s)

step "1. train a digits MLP with power-of-two weights (64-16-10, 3-bit PoT weights, 2-bit activations)"
"$MF" train --dataset digits --arch mlp --hidden 16 --scheme pot --wbits 3 --abits 2 --ibits 4 \
  --seed 1 -o "$OUT/digits.mf"
"$MF" eval "$OUT/digits.mf" --dataset digits

step "2. what is in it"
"$MF" info "$OUT/digits.mf"

step "3. golden model on the first 16 test images"
"$MF" inputs "$OUT/digits.mf" --dataset digits -n 16 -o "$OUT/inputs.npy" --labels "$OUT/labels.npy"
"$MF" predict "$OUT/digits.mf" "$OUT/inputs.npy" -o "$OUT/outputs.npy" --layer-outputs "$OUT/layers"
"$VENV/bin/python" -c "import numpy, sys; print('labels of these images:  ', numpy.load(sys.argv[1]).tolist()); print('golden-model classes:    ', numpy.load(sys.argv[2]).ravel().tolist())" "$OUT/labels.npy" "$OUT/outputs.npy"

step "4. Verilog (runtime weights, folded to fit an iCE40UP5K)"
"$MF" verilog "$OUT/digits.mf" --device ice40up5k -o "$OUT/verilog"

step "5. RTL against the golden model, bit for bit: Verilator (200 images) and Icarus Verilog (20)"
"$MF" sim "$OUT/digits.mf" --device ice40up5k --inputs "$OUT/inputs.npy" --simulator verilator
"$MF" sim "$OUT/digits.mf" --device ice40up5k --random 200 --simulator verilator
"$MF" sim "$OUT/digits.mf" --device ice40up5k --random 20 --simulator icarus

step "6. iCEBreaker bitstream through Yosys and nextpnr (YoWASP); the fold is fitted to the board's iCE40UP5K and the core clocked by its PLL at the highest clock nextpnr meets (a few builds)"
"$MF" build "$OUT/digits.mf" --board icebreaker -o "$OUT/icebreaker"

step "7. what each arithmetic scheme costs (quick grid, measured with Yosys and nextpnr)"
"$MF" compare --quick -o "$OUT/compare"

step "made in $(( $(date +%s) - start )) s"
cat <<MADE
  $OUT/digits.mf              trained integer model (model description v1, JSON)
  $OUT/outputs.npy            golden-model classes for $OUT/inputs.npy; $OUT/layers/ every layer
  $OUT/verilog/               Verilog and manifest.json (ports, latency, folding, widths)
  $OUT/icebreaker/            bitstream, report.json and the resource/timing table
  $OUT/compare/               results.csv/json, report.md and report.html (plots)
MADE
