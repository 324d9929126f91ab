"""One agent turn, shared by the lead and the subagents: budget the context, call the model, classify the
reply.

Everything that can go wrong in a model call ends here as a :class:`TurnOutcome` with a reason, not as an
exception out of the graph: server errors after retries, context overflow (predicted or reported), generation
cut by the length limit, and bugs in an injected model. In strict mode (``WideSeekConfig.strict``) the server
errors and the bugs propagate instead (see :mod:`langgraph_wideseek.errors`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config
from langsmith.utils import tracing_is_enabled

from ..errors import ContextOverflowError, ModelError, raise_if_strict
from ..model.chat import message_to_openai
from ..model.hermes import strip_thinking
from .state import TurnMeta
from .trajectory import AgentStatus, AgentTrajectory, Role, TurnRecord, from_plain

__all__ = [
    "MIN_GENERATION_TOKENS",
    "ReplyKind",
    "TurnOutcome",
    "build_agent_trajectory",
    "call_model",
    "estimate_tokens",
    "ordered_calls",
    "remaining_budget",
    "tool_reply",
]

log = logging.getLogger(__name__)

#: A chat model with its tools bound (``llm.bind_tools(...)``), as the graph calls it.
ChatRunnable = Runnable[LanguageModelInput, BaseMessage]

# Fewer tokens than this left for a generation means the agent has run out of context.
MIN_GENERATION_TOKENS = 64
_PER_MESSAGE_OVERHEAD = 8


def estimate_tokens(messages: Sequence[BaseMessage]) -> int:
    """A conservative token estimate: UTF-8 bytes / 3.5 (CJK: about one token per character) plus framing."""
    n = 0
    for m in messages:
        n += len(m.text.encode("utf-8")) * 2 // 7 + _PER_MESSAGE_OVERHEAD
        if isinstance(m, AIMessage):
            r = m.additional_kwargs.get("reasoning_content") or ""
            n += len(r.encode("utf-8")) * 2 // 7
            for tc in m.tool_calls:
                n += len(str(tc.get("args", ""))) * 2 // 7 + _PER_MESSAGE_OVERHEAD
    return n


class ReplyKind(StrEnum):
    """How a model call ended, which decides what the agent does next."""

    FINAL = "final"  # text without tool calls: the agent is done
    TOOLS = "tools"  # tool calls (valid or not) to answer
    EMPTY = "empty"  # no text and no calls: nudge the model
    FAILED = "failed"  # no usable reply; ``error`` says why


@dataclass
class TurnOutcome:
    kind: ReplyKind
    reply: AIMessage | None = None
    error: str | None = None
    ctx_tokens: int = 0


def remaining_budget(
    context_tokens: int, ctx_tokens: int, ctx_messages: int, messages: Sequence[BaseMessage]
) -> int:
    """Tokens left for the next generation, from the last exact count plus an estimate of what came since."""
    return context_tokens - ctx_tokens - estimate_tokens(messages[ctx_messages:])


def _watched(config: RunnableConfig) -> bool:
    """Whether this run's model calls are seen by a callback handler or LangSmith's tracer."""
    callbacks = config.get("callbacks")
    handlers = getattr(callbacks, "handlers", callbacks)
    return bool(handlers) or bool(tracing_is_enabled())


async def call_model(
    llm: ChatRunnable,
    messages: Sequence[BaseMessage],
    *,
    context_tokens: int,
    ctx_tokens: int,
    ctx_messages: int,
    deadline: float | None = None,
    strict: bool = False,
    run_name: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> TurnOutcome:
    """Call the model once with ``max_tokens`` set to the context that remains for this agent.

    ``run_name`` and ``metadata`` name the call in traces (LangSmith): they are merged into the config of the
    run in progress, so LangGraph's own metadata stays."""
    budget = remaining_budget(context_tokens, ctx_tokens, ctx_messages, messages)
    if budget < MIN_GENERATION_TOKENS:
        return TurnOutcome(
            ReplyKind.FAILED,
            error=f"context overflow: about {context_tokens - budget} of "
            f"{context_tokens} tokens used before this turn",
        )
    try:
        config: RunnableConfig | None = None
        if run_name is not None or metadata:
            current = ensure_config()
            # Only when someone is watching (a callback handler, or LangSmith tracing): a config passed to
            # ainvoke is merged three times over, about 0.2 ms per model call (benchmarks.overhead).
            if _watched(current):
                config = {"metadata": {**(current.get("metadata") or {}), **(metadata or {})}}
                if run_name is not None:
                    config["run_name"] = run_name
        coro = llm.ainvoke(messages, config, max_tokens=budget)
        if deadline is not None:
            left = deadline - time.time()
            if left <= 0:
                coro.close()  # never awaited: close it so no "never awaited" warning is left behind
                return TurnOutcome(ReplyKind.FAILED, error="timed out")
            reply = await asyncio.wait_for(coro, left)
        else:
            reply = await coro
    except TimeoutError:
        return TurnOutcome(ReplyKind.FAILED, error="timed out")
    except ContextOverflowError as e:
        return TurnOutcome(ReplyKind.FAILED, error=str(e))
    except ModelError as e:
        raise_if_strict(e, strict)
        log.warning("model call failed: %s", e)
        return TurnOutcome(ReplyKind.FAILED, error=f"model server error: {e}")
    except Exception as e:  # an injected model or a bug: reported, the run goes on (unless strict)
        raise_if_strict(e, strict)
        log.exception("model call raised")
        return TurnOutcome(ReplyKind.FAILED, error=f"model call raised {type(e).__name__}: {e}")
    if not isinstance(reply, AIMessage):
        return TurnOutcome(ReplyKind.FAILED, error=f"model returned {type(reply).__name__}, not an AIMessage")

    usage = reply.usage_metadata
    used = (int(usage.get("total_tokens") or 0) if usage else 0) or (
        context_tokens - budget + estimate_tokens([reply])
    )
    has_calls = bool(reply.tool_calls or reply.invalid_tool_calls)
    finish = reply.response_metadata.get("finish_reason")
    if finish == "length" and not reply.tool_calls:
        return TurnOutcome(
            ReplyKind.FAILED,
            reply=reply,
            ctx_tokens=used,
            error="context overflow: the generation reached the context limit",
        )
    if has_calls:
        return TurnOutcome(ReplyKind.TOOLS, reply=reply, ctx_tokens=used)
    if not strip_thinking(reply.text):
        return TurnOutcome(ReplyKind.EMPTY, reply=reply, ctx_tokens=used)
    return TurnOutcome(ReplyKind.FINAL, reply=reply, ctx_tokens=used)


def ordered_calls(reply: AIMessage) -> list[dict[str, Any]]:
    """Valid and invalid tool calls in the order the model wrote them, each tagged ``valid``."""
    valid: dict[Any, dict[str, Any]] = {c["id"]: {**c, "valid": True} for c in reply.tool_calls}
    invalid: dict[Any, dict[str, Any]] = {c["id"]: {**c, "valid": False} for c in reply.invalid_tool_calls}
    order = [c.get("id") for c in reply.additional_kwargs.get("tool_calls") or []]
    out = [valid.get(i) or invalid[i] for i in order if i in valid or i in invalid]
    seen = {c["id"] for c in out}
    out += [c for c in list(valid.values()) + list(invalid.values()) if c["id"] not in seen]
    return out


def build_agent_trajectory(
    agent_id: str,
    role: Role,
    messages: Sequence[BaseMessage],
    turn_meta: list[TurnMeta],
    tools: list[dict[str, Any]],
    *,
    status: AgentStatus,
    index: int | None = None,
    error: str | None = None,
    keep_reasoning: bool = True,
) -> AgentTrajectory:
    """Materialise per-turn records: each turn's messages are a prefix of the agent's (append-only) history.

    What ChatVLLM produced already has the record's shape and is wrapped without copies (turns share message
    dicts: see :mod:`.trajectory`); another chat model's metadata is validated, so a wrong shape is an error.
    """
    wire = [message_to_openai(m, keep_reasoning=keep_reasoning) for m in messages]
    turns = []
    for meta in turn_meta:
        reply = messages[meta["reply_index"]]
        assert isinstance(reply, AIMessage)
        md = reply.response_metadata
        usage = reply.usage_metadata
        raw_calls = reply.additional_kwargs.get("tool_calls")
        if raw_calls is None:
            raw_calls = list(wire[meta["reply_index"]].get("tool_calls") or [])
        notes: list[str] = []
        prompt_ids = _token_ids(md.get("prompt_token_ids"), "prompt_token_ids", notes)
        completion_ids = _token_ids(md.get("token_ids"), "token_ids", notes)
        logprobs = _logprobs(md.get("logprobs"), notes)
        finish = md.get("finish_reason")
        if finish is not None and not isinstance(finish, str):
            notes.append(f"finish_reason of type {type(finish).__name__} not recorded")
            finish = None
        if notes:
            log.info("%s turn %d: %s", agent_id, meta["turn"], "; ".join(notes))
        turns.append(
            from_plain(
                TurnRecord,
                {
                    "turn": meta["turn"],
                    "messages": wire[: meta["n_messages"]],
                    "tools": tools,
                    "completion": {
                        "content": reply.text,
                        "reasoning": reply.additional_kwargs.get("reasoning_content"),
                        "tool_calls": list(raw_calls),
                    },
                    "prompt_token_ids": prompt_ids,
                    "completion_token_ids": completion_ids,
                    "logprobs": logprobs,
                    "finish_reason": finish,
                    "usage": {
                        "prompt_tokens": int(usage.get("input_tokens", 0)) if usage else 0,
                        "completion_tokens": int(usage.get("output_tokens", 0)) if usage else 0,
                    },
                    "notes": notes or None,
                },
            )
        )
    return AgentTrajectory(agent_id=agent_id, role=role, status=status, index=index, error=error, turns=turns)


def _token_ids(value: Any, name: str, notes: list[str]) -> list[int] | None:
    """Token ids as the record keeps them: a list of ints, else None (and a note saying what was there)."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        try:
            # a C-speed check that every element is an int (array refuses floats, strings, None): a generator
            # over every turn's prompt ids cost about 1 ms per model call of a rollout (benchmarks.overhead)
            array("q", value)
        except (TypeError, OverflowError):
            pass
        else:
            return value if isinstance(value, list) else list(value)
    notes.append(f"{name} in an unknown shape ({type(value).__name__}) not recorded")
    return None


def _logprobs(value: Any, notes: list[str]) -> list[float] | None:
    """Per-token logprobs from what a chat model left in ``response_metadata["logprobs"]``.

    ChatVLLM leaves a list of floats; ``ChatOpenAI(logprobs=True)`` the OpenAI object (``{"content":
    [{"token", "logprob", ...}, ...]}``); a list of such entries is read too. Anything else is not recorded,
    and a note says so: another model's metadata never fails a run."""
    if value is None:
        return None
    entries = value.get("content") if isinstance(value, dict) else value
    if isinstance(entries, list):
        try:
            return [float(e["logprob"]) if isinstance(e, dict) else float(e) for e in entries]
        except (KeyError, TypeError, ValueError):
            pass
    elif entries is None:  # {"content": null}: the server had none to give
        return None
    notes.append(f"logprobs in an unknown shape ({type(value).__name__}) not recorded")
    return None


def tool_reply(call_id: str, text: str, *, name: str | None = None, error: bool = False) -> ToolMessage:
    return ToolMessage(content=text, tool_call_id=call_id, name=name, status="error" if error else "success")
