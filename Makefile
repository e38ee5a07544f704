# Two commands set everything up on a fresh machine:
#   make demo   - create .venv if missing, run the whole pipeline on the bundled brain demo
#   make test   - create .venv if missing, run the test suite
# CORES sets Snakemake's --cores (default 2); TORCH pins the CPU build of torch that is
# installed first (an unpinned torch would pull a multi-GB CUDA build).

PYTHON ?= python3
CORES ?= 2
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-all lint clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES) --workflow-profile workflow/profiles/local

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

test-all: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: $(BIN)/.installed
	$(BIN)/snakemake --lint

clean:
	rm -rf results logs benchmarks/*/ reports/*.html .snakemake
