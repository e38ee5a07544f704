# Two commands set everything up on a fresh machine:
#   make demo   - create .venv if missing, run the whole pipeline on the bundled brain demo
#   make test   - create .venv if missing, run the test suite
# make env only creates .venv (for a cluster login node, which must not run the demo).
# make lint checks the workflow (snakemake --lint) and the code's lint and format (ruff,
# snakefmt); make format rewrites the code into that format.
# CORES sets Snakemake's --cores (default 2); TORCH pins the CPU build of torch that is
# installed first (an unpinned torch would pull a multi-GB CUDA build).

PYTHON ?= python3
CORES ?= 2
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin

# What `make lint` checks and `make format` rewrites (configured in pyproject.toml).
PY_PATHS := pipeline tests workflow/benchmarks
SMK_PATHS := Snakefile workflow/rules

.PHONY: env demo test test-all lint format clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

env: $(BIN)/.installed

# Without a GPU (nvidia-smi lists none) the jobs that ask for gpu=1 (train, predictions) run
# on the CPU cores: the local profile's one-GPU cap is lifted (a slot per core) and train
# takes one thread, so the demo's two trainings use the two cores side by side.
GPUS := $(shell nvidia-smi -L 2>/dev/null | grep -c '^GPU')
DEMO_FLAGS := $(if $(filter 0,$(GPUS)),--resources gpu=$(CORES) --set-threads train=1)

demo: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES) --workflow-profile workflow/profiles/local $(DEMO_FLAGS)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

test-all: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m "slow or not slow"

# Runs every check even when one fails, so one run lists all findings; fails if any did.
lint: $(BIN)/.installed
	status=0; \
	$(BIN)/snakemake --lint || status=1; \
	$(BIN)/ruff check $(PY_PATHS) || status=1; \
	$(BIN)/ruff format --check $(PY_PATHS) || status=1; \
	$(BIN)/snakefmt --check $(SMK_PATHS) || status=1; \
	exit $$status

# Fixes what can be fixed (imports, upgrades), then formats; prints the findings left to fix by hand.
format: $(BIN)/.installed
	$(BIN)/ruff check --fix --exit-zero $(PY_PATHS)
	$(BIN)/ruff format $(PY_PATHS)
	$(BIN)/snakefmt $(SMK_PATHS)

clean:
	rm -rf results logs benchmarks reports/*.html .snakemake
