"""langchain-tests' standard suites for ChatVLLM, as langchain-openai adopts them.

The unit suite runs as is. The integration suite runs against the simulated server on 127.0.0.1, played by
:class:`~langgraph_wideseek.testing.AssistantPolicy` (a deterministic assistant that calls tools with
arguments taken from the prompt and answers JSON schemas). What ChatVLLM does not support (images, PDFs,
audio, Anthropic-style inputs: the server speaks text chat completions) is declared through the suite's own
properties, whose defaults already say so; nothing is skipped by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from langgraph_wideseek.model import ChatVLLM
from langgraph_wideseek.testing import AssistantPolicy, FakeOpenAIServer

_SERVER: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def assistant_server() -> Iterator[str]:
    srv = FakeOpenAIServer(AssistantPolicy(), model="assistant").start_in_thread()
    _SERVER["base_url"] = srv.base_url
    yield srv.base_url
    srv.stop()


class TestChatVLLMUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatVLLM]:
        return ChatVLLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "assistant", "base_url": "http://127.0.0.1:9/v1"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"OPENAI_API_KEY": "sk-from-env", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"},
            {"model": "assistant"},
            {"api_key": "sk-from-env", "base_url": "http://127.0.0.1:9/v1"},
        )

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "assistant-2"


class TestChatVLLMIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatVLLM]:
        return ChatVLLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "assistant", "base_url": _SERVER["base_url"], "retry_base_delay": 0.01}

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "assistant-2"
