# Two entry points for a fresh machine; each does its own set-up.
#   make demo   - create .venv, install bayesattn, run the end-to-end demo
#   make test   - create .venv, install bayesattn[dev], run the test suite
# CPU machines install the CPU build of torch through the constraints file.
# On a GPU machine:  make test TORCH_CONSTRAINTS=   (pip picks your CUDA torch)

PYTHON ?= python3
VENV ?= .venv
TORCH_CONSTRAINTS ?= .ci/constraints-cpu.txt
PIP_CONSTRAINT_ARGS = $(if $(TORCH_CONSTRAINTS),-c $(TORCH_CONSTRAINTS))
STAMP = $(VENV)/.installed

.PHONY: setup demo test lint benchmark

$(STAMP): pyproject.toml $(TORCH_CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(PIP_CONSTRAINT_ARGS) -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

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
