# One command sets everything up and runs: `make run` (the default job), `make test` (the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU machines get the CPU build of torch; a machine with an NVIDIA driver keeps pip's default.
CONSTRAINT := $(if $(shell command -v nvidia-smi 2>/dev/null),,-c constraints-cpu.txt)

.PHONY: install run test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(CONSTRAINT) -e '.[dev]'
	touch $@

# the default job: the composite family, which never lost to the best fixed loss (RESULTS.md);
# CONFIG=configs/mnist1d_mlp.yaml is the paper's L2T-DLN. Each run gets a new
# runs/train-DATE-TIME (runs/latest points at it); ARGS="key=value ..."
CONFIG ?= configs/mnist1d_mlp_composite.yaml
run: install
	$(BIN)/l2t train-teacher --config $(CONFIG) $(ARGS)

# the test files over two processes (one per core of a 2-core machine; a file's tests stay
# together in one, in order)
test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/l2t bench out=runs/bench.json $(ARGS)

clean:
	rm -rf $(VENV) runs
