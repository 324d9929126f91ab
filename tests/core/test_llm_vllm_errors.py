"""ChatVLLM and vLLM 0.29's 400s about the context (their exact texts; tests/conformance checks them against
vLLM's own server): a max_tokens the context cannot hold is retried once without it, so vLLM uses the room
that is left, as the in-actor endpoint does; a prompt with no room left is a context overflow."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from langgraph_wideseek.llm import ChatVLLM, ContextOverflowError, ModelRequestError
from langgraph_wideseek.testing.server import Reply

TOO_MUCH = ("This model's maximum context length is 8192 tokens. However, you requested 7997 output tokens and your "
            "prompt contains at least 196 input tokens, for a total of at least 8193 tokens. Please reduce the "
            "length of the input prompt or the number of requested output tokens. (parameter=input_tokens, "
            "value=196)")
ABOVE = ("max_tokens=9000 cannot be greater than max_model_len=max_total_tokens=8192. Please request fewer output "
         "tokens. (parameter=max_tokens, value=9000)")
PROMPT_TOO_LONG = TOO_MUCH.replace("7997", "0")
NO_ROOM = "max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)"


def refuse_sized(message: str):
    """A vLLM that refuses any request with max_tokens and answers one without."""
    seen: list[dict[str, Any]] = []

    def policy(req: dict[str, Any]) -> Reply:
        seen.append(req)
        if req.get("max_tokens") is not None or req.get("max_completion_tokens") is not None:
            return Reply(status=400, error=message)
        return Reply(content="fits")

    return policy, seen


@pytest.mark.parametrize("message", [TOO_MUCH, ABOVE])
@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens"])
async def test_too_much_output_is_asked_again_without_max_tokens(serve, message, key):
    policy, seen = refuse_sized(message)
    srv = await serve(policy)
    llm = ChatVLLM(base_url=srv.base_url, model="m", max_retries=0)
    try:
        ai = await llm.ainvoke([HumanMessage("q")], **{key: 7997})
    finally:
        await llm.aclose()
    assert ai.content == "fits"
    assert [r.get(key) for r in seen] == [7997, None]


async def test_clamping_can_be_turned_off(serve):
    policy, seen = refuse_sized(TOO_MUCH)
    srv = await serve(policy)
    llm = ChatVLLM(base_url=srv.base_url, model="m", max_retries=0, clamp_max_tokens=False)
    try:
        with pytest.raises(ContextOverflowError, match="you requested 7997 output tokens"):
            await llm.ainvoke([HumanMessage("q")], max_tokens=7997)
    finally:
        await llm.aclose()
    assert len(seen) == 1


async def test_a_prompt_too_long_even_without_max_tokens_is_a_context_overflow(serve):
    srv = await serve(lambda req: Reply(status=400, error=TOO_MUCH if req.get("max_tokens") else PROMPT_TOO_LONG))
    llm = ChatVLLM(base_url=srv.base_url, model="m", max_retries=0)
    try:
        with pytest.raises(ContextOverflowError, match="you requested 0 output tokens"):
            await llm.ainvoke([HumanMessage("q")], max_tokens=100)
    finally:
        await llm.aclose()
    assert srv.stats.requests == 2


async def test_no_room_for_one_token_is_a_context_overflow_but_max_tokens_0_is_the_callers_error(serve):
    srv = await serve(lambda req: Reply(status=400, error=NO_ROOM))
    llm = ChatVLLM(base_url=srv.base_url, model="m", max_retries=0)
    try:
        with pytest.raises(ContextOverflowError):
            await llm.ainvoke([HumanMessage("q")])
        with pytest.raises(ModelRequestError) as ei:
            await llm.ainvoke([HumanMessage("q")], max_tokens=0)
    finally:
        await llm.aclose()
    assert not isinstance(ei.value, ContextOverflowError)
