# The two commands a user needs: `make demo` and `make test`. Both set everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python
export YOWASP_CACHE_DIR ?= $(HOME)/.cache/YoWASP
# Verilog emission always uses Amaranth's built-in Yosys, even when YOSYS points elsewhere.
export AMARANTH_USE_YOSYS := builtin
# pytest workers: both cores by default; PYTEST_ARGS adds options (e.g. -k, -x).
JOBS ?= 2
PYTEST_ARGS ?=

.PHONY: demo test setup bench clean

setup:
	@VENV=$(VENV) scripts/setup.sh

demo: setup
	@VENV=$(VENV) scripts/demo.sh

test: setup
	$(PY) -m pytest -n $(JOBS) $(PYTEST_ARGS)

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf build out .pytest_cache
