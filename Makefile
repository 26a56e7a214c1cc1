# Two commands do all the set-up: `make book` and `make test` (see README.md).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The Keras backend's extra: tensorflow (default), jax, tensorflow-cuda or jax-cuda (see README).
BACKEND ?= tensorflow
# Notebooks run at once by `make book`: independent chapters side by side, each kernel using about 1.3 of 2 cores.
JOBS ?= 2

.PHONY: env book test run clean-notebooks

# (Re)install when the dependencies change; the stamp records the last install.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(BACKEND),test]"
	touch $(STAMP)

env: $(STAMP)

# Run the whole suite on generated data with the demo profile, then build the book of that run.
# ImageNet weight files are read in place when Keras's cache lacks them from the offline copy beside
# the checkout, where there is one (see README, "ImageNet weights"); the real cells of report 3's last notebook
# likewise from ../shared/data.
book: export CYTOBOOK_WEIGHTS_DIR ?= $(abspath $(wildcard ../shared/keras_models))
book: export CYTOBOOK_REAL_DATA ?= $(abspath $(wildcard ../shared/data))
book: $(STAMP)
	run_dir=$$($(BIN)/cytobook run --profile demo --jobs $(JOBS) | tee /dev/stderr | tail -n 1); \
	$(BIN)/cytobook book "$$run_dir"

test: $(STAMP)
	$(BIN)/python -m pytest

# Strip outputs and execution counts before committing notebooks (nbval-checked outputs are kept).
clean-notebooks: $(STAMP)
	$(BIN)/python -m cytobook.nbclean notebooks/*.ipynb
