# Two commands set everything up on a fresh machine:
#   make demo   - create .venv if missing, run the whole pipeline on the bundled brain demo
#   make test   - create .venv if missing, run the test suite
# make gpu-wheels (here) and make gpu-check (on a GPU machine) are the GPU check
# (workflow/benchmarks/gpu_check.py); make gpu-check SMOKE=1 runs it on the CPU at tiny sizes.
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

.PHONY: env demo test test-all lint format clean gpu-wheels gpu-check

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

# The GPU check. gpu-wheels, here: the wheels the GPU machine lacks (monai, nnU-Net's
# dynamic-network-architectures, pure Python) and the brain demo's preprocessed training cases
# (float16), all under .gpu/ (git-ignored, about 20 MB: carry it). gpu-check, there: installs
# the wheels into .gpu/site and runs the check with the machine's own python3 and torch
# (GPU_OUT: where the markdown table goes). SMOKE=1: tiny sizes on the CPU, with .venv.
GPU_DIR := .gpu
GPU_PYTHON ?= python3
GPU_OUT ?= $(GPU_DIR)/gpu_check.md
DNA_VERSION := 0.4.4

gpu-wheels: $(BIN)/.installed
	rm -rf $(GPU_DIR)/wheels && mkdir -p $(GPU_DIR)/wheels
	$(BIN)/python -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux2014_x86_64 -d $(GPU_DIR)/wheels \
		"monai==$$($(BIN)/python -c 'import monai; print(monai.__version__)')" "dynamic-network-architectures==$(DNA_VERSION)"
	$(BIN)/python workflow/benchmarks/gpu_check.py prepare --data $(GPU_DIR)/brain

gpu-check: $(if $(filter 1,$(SMOKE)),$(BIN)/.installed)
ifeq ($(SMOKE),1)
	$(BIN)/python workflow/benchmarks/gpu_check.py smoke --out $(GPU_DIR)/gpu_check_smoke.md
else
	$(GPU_PYTHON) -m pip install --quiet --no-index --no-deps --no-compile --upgrade --target $(GPU_DIR)/site $(GPU_DIR)/wheels/*.whl
	PYTHONPATH=$(CURDIR):$(CURDIR)/$(GPU_DIR)/site PYTHONUNBUFFERED=1 $(GPU_PYTHON) workflow/benchmarks/gpu_check.py run --data $(GPU_DIR)/brain --out $(GPU_OUT)
endif
