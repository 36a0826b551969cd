# Shipyard: `make demo` runs the main job end to end; `make test` runs the test suite (what CI runs).
SHELL := /bin/bash
PY := .venv/bin/python
LINT_IMPORTS := .venv/bin/lint-imports --no-cache
export PYTHONPATH := $(CURDIR)
# the venv's bin first: DeepSpeed's op cache is keyed by the ninja it finds (see docs/notes)
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export TORCH_EXTENSIONS_DIR ?= $(HOME)/.cache/shipyard/torch_extensions
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: env demo lint-imports test test-fast services services-down bench lock clean

env:  ## build (once, cached outside the clone) and link .venv
	@bash scripts/venv.sh

demo: env  ## train digits_cnn → export (parity) → .mar v1.0 → TorchServe (token auth) → predict bundled PNG digits → stop
	$(PY) scripts/demo.py

services: env  ## install and start what the tests need (Slurm cluster, nginx, prometheus tools, Java check)
	@bash scripts/services.sh up

services-down:
	@bash scripts/services.sh down

# one intra-op thread: tests run beside TorchServe, Slurm daemons and worker processes on 2 cores, where
# torch's spinning thread pools slow small models by 20x (benchmarks/results/PROFILE.md)
lint-imports: env  ## the dependency rule (pyproject.toml contracts): imports point down only
	$(LINT_IMPORTS)

# two xdist workers: most tests wait on a subprocess (train.py, TorchServe, Slurm), so one worker leaves a core idle;
# --dist loadfile keeps each file on one worker, so its module fixtures (trained runs, TorchServe) are built once
# (xdist 3.8's loadgroup did not group marked tests here under pytest 9.2)
TEST_WORKERS ?= -n 2 --dist loadfile

test: env services  ## the whole suite, slow tests included (CI runs exactly this)
	@set -o pipefail; status=0; $(LINT_IMPORTS) && OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -q $(TEST_WORKERS) $(PYTEST_ARGS) || status=$$?; bash scripts/services.sh down; exit $$status

test-fast: env  ## the suite without slow tests and without services
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: env services  ## benchmarks → benchmarks/results/latest.json + latest.md
	$(PY) -m benchmarks.run

lock:  ## regenerate requirements.lock from pyproject.toml's dependencies in a scratch venv
	@bash scripts/lock.sh

clean:
	rm -rf outputs multirun .pytest_cache
