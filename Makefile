# Two entry points for a fresh machine; each does its own set-up.
#   make run    - create .venv, install bayesattn, run the headline experiment on one
#                 torch thread (the same numbers whatever else runs on the machine)
#                 (approximation gap vs L, quick preset) into runs/
#   make test   - create .venv, install bayesattn[dev], run the test suite
# Also: make demo (exact vs NUTS ground-truth demo), make benchmark, make lint.
# CPU machines install the CPU build of torch through the constraints file.
# On a GPU machine:  make test TORCH_CONSTRAINTS=   (pip picks your CUDA torch)

PYTHON ?= python3
VENV ?= .venv
TORCH_CONSTRAINTS ?= .ci/constraints-cpu.txt
PIP_CONSTRAINT_ARGS = $(if $(TORCH_CONSTRAINTS),-c $(TORCH_CONSTRAINTS))
STAMP = $(VENV)/.installed

.PHONY: setup run demo test lint benchmark

RUN_OUT ?= runs/gap-vs-length-quick-seed0

$(STAMP): pyproject.toml $(TORCH_CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(PIP_CONSTRAINT_ARGS) -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/bayesattn run gap-vs-length --preset quick --seed 0 --threads 1 --out $(RUN_OUT) --resume

demo: $(STAMP)
	$(VENV)/bin/bayesattn demo

test: $(STAMP)
	@$(VENV)/bin/pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5) - treating as failure"; fi; \
	exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check bayesattn models inference tests benchmarks

benchmark: $(STAMP)
	$(VENV)/bin/python benchmarks/ground_truth.py
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(PIP_CONSTRAINT_ARGS) -e ".[dev,bench]"
	$(VENV)/bin/python benchmarks/amortized.py
	$(VENV)/bin/python benchmarks/throughput.py
	$(VENV)/bin/python benchmarks/threads.py
