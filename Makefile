# The two quickstart commands (README): `make demo` and `make test`. Both set up their own venv.
# CI (.ci/run) runs `make lint` and `make test` on a clean clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo simulate test test-fast test-vllm setup setup-dev bench lint clean

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

## Try every entry point offline (README, "Try it offline"): set up .venv with the Studio and eval extras, write a
## generated world to ./wideseek-sim/ and serve the simulated model on 127.0.0.1:8000 until Ctrl-C. It prints what
## to paste into another terminal for `wideseek run`, `wideseek eval`, `langgraph dev` and the examples.
## Options: make simulate SIMULATE_ARGS="--seed 3 --latency-token 0.01" (wideseek simulate --help lists them).
SIMULATE_ARGS ?=
$(VENV)/.extras: pyproject.toml $(VENV)/.core
	$(PIP) install -q -e '.[studio,eval]'
	touch $@

simulate: $(VENV)/.extras
	$(PY) -m langgraph_wideseek simulate $(SIMULATE_ARGS)

## Set up and run the whole test suite, with the coverage floor of pyproject.toml (90%).
test: $(VENV)/.dev
	$(PY) -m pytest -q -p no:cacheprovider --cov --cov-report=term

## The suite without the tests marked slow (servers in subprocesses, the CPU training smoke): a quick loop.
test-fast: $(VENV)/.dev
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

## Lint rules, formatting and types (mypy with the pydantic plugin), as configured in pyproject.toml.
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

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
