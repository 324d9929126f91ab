"""vLLM's output classes, as the project's engine stand-ins build them (``training.engine``)."""

from __future__ import annotations

from training.engine import CompletionOutput, Logprob, RequestOutput

__all__ = ["CompletionOutput", "Logprob", "RequestOutput"]
