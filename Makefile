# The two quickstart commands (README): `make demo` and `make test`. Both set up their own venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test test-vllm setup setup-dev bench lint clean

$(VENV)/.core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

VLLM_VENV ?= .venv-vllm

$(VENV)/.dev: pyproject.toml scripts/install_dev.sh $(VENV)/.core
	VENV=$(VENV) bash scripts/install_dev.sh
	touch $@

setup: $(VENV)/.core

setup-dev: $(VENV)/.dev

## Set up and run the main job: the lead agent + parallel subagents on one question.
## Uses your vLLM server when OPENAI_BASE_URL is set, else the built-in simulated model.
demo: $(VENV)/.core
	$(PY) examples/quickstart.py

## Set up and run the whole test suite.
test: $(VENV)/.dev
	$(PY) -m pytest -q -p no:cacheprovider

## The vLLM conformance tier: vLLM 0.29's own OpenAI server code (over a scripted engine core) against ChatVLLM,
## the graph and the in-actor endpoint (docs/vllm-conformance.md). Its venv layers vLLM's frontend over the dev venv.
$(VLLM_VENV)/.vllm: scripts/install_vllm_conformance.sh $(VENV)/.dev
	BASE=$(VENV) TIER=$(VLLM_VENV) bash scripts/install_vllm_conformance.sh
	touch $@

test-vllm: $(VLLM_VENV)/.vllm
	$(VLLM_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/conformance

bench: $(VENV)/.dev
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) $(VLLM_VENV) build dist *.egg-info .pytest_cache
