"""The model-client floor: the OpenAI-compatible transport, the LangChain chat model for vLLM, Qwen3 text
rules.

- :mod:`.transport`: :class:`OpenAITransport`, the one HTTP client for OpenAI-compatible servers (the chat
  model and the evaluation judge both use it);
- :mod:`.chat`: :class:`ChatVLLM`, a LangChain chat model that keeps vLLM's token ids, logprobs and reasoning;
- :mod:`.hermes`: ``<think>`` reasoning and hermes ``<tool_call>`` parsing, shared with ``training/``.
"""

from ..errors import ContextOverflowError, ModelError, ModelRequestError, ModelUnavailableError
from .chat import ChatVLLM, message_to_openai, parse_completion
from .transport import OpenAITransport

__all__ = [
    "ChatVLLM",
    "ContextOverflowError",
    "ModelError",
    "ModelRequestError",
    "ModelUnavailableError",
    "OpenAITransport",
    "message_to_openai",
    "parse_completion",
]
