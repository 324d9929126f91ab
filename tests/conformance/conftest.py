"""Fixtures of the vLLM conformance tier: one vLLM API server for the session (vLLM's own serving code over a
scripted engine core, see vllm_harness.py) and an in-actor endpoint fed by the same scripted engine.

The tier needs vLLM's frontend installed (``make test-vllm`` builds ``.venv-vllm``); without it every test here
skips (``make test``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

HAVE_VLLM = importlib.util.find_spec("vllm") is not None
ASSETS = Path(__file__).resolve().parents[1] / "training" / "assets" / "tiny-qwen3"
MAX_MODEL_LEN = 8192


@pytest.fixture(scope="session")
def tok():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(ASSETS))


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory):
    if not HAVE_VLLM:
        pytest.skip("vLLM is not installed (the conformance tier: make test-vllm)")
    from conformance.vllm_harness import VLLMServer, make_model_dir

    model_dir = make_model_dir(tmp_path_factory.mktemp("tiny-qwen3-model"))
    server = VLLMServer(model_dir, max_model_len=MAX_MODEL_LEN).start()
    yield server
    server.stop()


@pytest.fixture()
def served(vllm_server) -> Any:
    """The session server with no engine set: each test sets ``served.engine``."""
    vllm_server.engine = None
    yield vllm_server
    vllm_server.engine = None
