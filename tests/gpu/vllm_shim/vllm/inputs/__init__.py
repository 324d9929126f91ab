"""``vllm.inputs.TokensPrompt``: a dict with ``prompt_token_ids`` (and optionally ``multi_modal_data``)."""

from __future__ import annotations

from typing import Any, TypedDict


class TokensPrompt(TypedDict, total=False):
    prompt_token_ids: list[int]
    multi_modal_data: Any


__all__ = ["TokensPrompt"]
