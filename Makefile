# Quick start: `make demo` runs the flagship demo (offline), `make test` runs the whole test suite.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
# the real-model LLM test tier (tests/llm_real): llama.cpp's server in a venv of its own, built once
LLAMA_VENV := .venv-llama
LLAMA_STAMP := $(LLAMA_VENV)/.installed

.PHONY: demo test lint bench clean llama-server

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# builds llama-cpp-python[server] from source (~5-8 min on 2 cores the first time) and unpacks the model; without
# a compiler it prints a note and the tier is skipped (in CI, with CI=true, its tests fail instead)
$(LLAMA_STAMP): tests/support/prepare_llama_server.sh
	PYTHON=$(PYTHON) bash tests/support/prepare_llama_server.sh $(LLAMA_VENV)

llama-server: $(LLAMA_STAMP)

demo: $(STAMP)
	$(PY) -m miniagents.demo

test: $(STAMP) $(LLAMA_STAMP)
	$(PY) -m pytest
	bash tests/run_core_on_other_pythons.sh

# ruff (lint + format check) and pyright over the package; CI runs it
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pyright miniagents

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info
