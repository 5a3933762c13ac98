# Two entry points for a fresh machine; each does its own set-up.
#   make run    - create .venv, install bayesattn, run the headline experiment on one
#                 torch thread (the same numbers whatever else runs on the machine)
#                 (approximation gap vs L, quick preset) into runs/
#   make test   - create .venv, install bayesattn[dev], run the test suite on
#                 PYTEST_WORKERS processes (default 2: pytest-xdist; 1 runs it in one process)
# Also: make lab (JupyterLab on notebooks/ with the project's kernel), make demo
# (exact vs NUTS ground-truth demo), make benchmark, make lint.
# The constraints file pins torch's version only. Where pip finds no CPU wheel of that
# version locally (any ordinary Linux machine), PyPI's default Linux torch comes with
# CUDA libraries (several GB); to get the CPU-only build from PyTorch's own index:
#                    make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# On a GPU machine:  make test TORCH_CONSTRAINTS=   (pip picks your CUDA torch)

PYTHON ?= python3
VENV ?= .venv
TORCH_CONSTRAINTS ?= .ci/constraints-cpu.txt
TORCH_INDEX ?=
PIP_CONSTRAINT_ARGS = $(if $(TORCH_CONSTRAINTS),-c $(TORCH_CONSTRAINTS))
STAMP = $(VENV)/.installed

.PHONY: setup run demo test lint benchmark lab

RUN_OUT ?= runs/gap-vs-length-quick-seed0
PYTEST_WORKERS ?= 2

$(STAMP): pyproject.toml $(TORCH_CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		$(PIP_CONSTRAINT_ARGS) --index-url $(TORCH_INDEX) torch)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(PIP_CONSTRAINT_ARGS) -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/bayesattn run gap-vs-length --preset quick --seed 0 --threads 1 --out $(RUN_OUT) --resume

demo: $(STAMP)
	$(VENV)/bin/bayesattn demo

test: $(STAMP)
	@$(VENV)/bin/pytest $(if $(filter-out 1,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS)); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5) - treating as failure"; fi; \
	exit $$rc

lab: $(STAMP)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(PIP_CONSTRAINT_ARGS) -e ".[dev,lab]"
	$(VENV)/bin/jupyter lab notebooks

lint: $(STAMP)
	$(VENV)/bin/ruff check bayesattn models inference tests benchmarks

benchmark: $(STAMP)
	$(VENV)/bin/python benchmarks/ground_truth.py
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(PIP_CONSTRAINT_ARGS) -e ".[dev,bench]"
	$(VENV)/bin/python benchmarks/amortized.py
	$(VENV)/bin/python benchmarks/throughput.py
	$(VENV)/bin/python benchmarks/threads.py
