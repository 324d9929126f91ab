"""A LangChain chat model for vLLM's OpenAI-compatible API that keeps what training and analysis need.

Stock ``ChatOpenAI`` drops vLLM's ``prompt_token_ids`` / ``token_ids``, per-token logprobs and the reasoning
text. :class:`ChatVLLM` keeps them on the returned ``AIMessage``:

- ``additional_kwargs["reasoning_content"]``: the ``<think>`` text (from vLLM's reasoning parser, or split off
  client-side when the server runs without one);
- ``response_metadata``: ``finish_reason``, ``model_name``, ``prompt_token_ids``, ``token_ids`` (completion),
  ``logprobs`` (one float per generated token);
- ``usage_metadata``: prompt/completion token counts.

Hermes ``<tool_call>`` text in ``content`` (a server started without ``--enable-auto-tool-choice``) is parsed
client-side into ``tool_calls``; blocks that do not parse become ``invalid_tool_calls`` with the reason, so
the graph can tell the model what was wrong.

Requests go through :class:`~langgraph_wideseek.model.transport.OpenAITransport` (aiohttp, one session per
event loop, retries, the endpoint's shared in-flight limit); this module owns the translation between
LangChain messages and the chat-completions wire format.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import invalid_tool_call, tool_call
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr

from ..config import DEFAULT_MAX_REPLY_BYTES
from ..errors import ContextOverflowError, ModelRequestError
from ..runtime import RetryPolicy
from .hermes import new_call_id, parse_hermes, split_reasoning
from .transport import OpenAITransport

__all__ = ["ChatVLLM", "intern_token_ids", "message_to_openai", "parse_completion"]

log = logging.getLogger(__name__)

# vLLM extras an OpenAI-compatible server that is not vLLM may reject (then they are dropped and the call
# repeated)
_OPTIONAL_EXTRAS = ("return_token_ids", "logprobs")
# vLLM's 400s for a max_tokens the context cannot hold (the prompt itself may fit):
# "... However, you requested 900 output tokens and your prompt contains ..." and
# "max_tokens=9000 cannot be greater than max_model_len=...".
_OUTPUT_REQUESTED = re.compile(r"you requested (\d+) output tokens")
_OUTPUT_ABOVE_CONTEXT = "cannot be greater than max_model_len"
# vLLM's 400 when a prompt without max_tokens fills the context exactly (no room for one token).
_NO_ROOM = "max_tokens must be at least 1, got 0"
_SIZE_KEYS = ("max_tokens", "max_completion_tokens")


def _asks_too_much_output(detail: str) -> bool:
    m = _OUTPUT_REQUESTED.search(detail)
    return (m is not None and int(m.group(1)) > 0) or _OUTPUT_ABOVE_CONTEXT in detail


# One shared int object per token id (a list grown to the largest id seen). A vLLM response carries the
# prompt's token ids on every call, and a rollout keeps every turn's ids for its trajectory: as separate int
# objects they cost 36 bytes each, as references to shared ones 8 (measured: 4.3 -> about 2 MB per rollout).
_TOKEN_INTS: list[int] = []


def intern_token_ids(ids: Any) -> Any:
    """``ids`` with each element replaced by the shared int object of its value (non-lists unchanged)."""
    if not isinstance(ids, list) or not ids:
        return ids
    try:
        top, low = max(ids), min(ids)
    except TypeError:
        return ids
    if type(top) is not int or type(low) is not int or low < 0 or top >= 1 << 20:
        return ids  # not token ids of a real vocabulary (all are below 2**20): leave as is
    if top >= len(_TOKEN_INTS):
        _TOKEN_INTS.extend(range(len(_TOKEN_INTS), top + 1))
    return list(map(_TOKEN_INTS.__getitem__, ids))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in content)
    return "" if content is None else str(content)


def message_to_openai(m: BaseMessage, *, keep_reasoning: bool = True) -> dict[str, Any]:
    """One LangChain message as an OpenAI chat message dict (what goes on the wire)."""
    if isinstance(m, SystemMessage):
        return {"role": "system", "content": _text(m.content)}
    if isinstance(m, HumanMessage):
        return {"role": "user", "content": _text(m.content)}
    if isinstance(m, ToolMessage):
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": _text(m.content)}
    if isinstance(m, AIMessage):
        out: dict[str, Any] = {"role": "assistant", "content": _text(m.content)}
        raw_calls = {c.get("id"): c for c in m.additional_kwargs.get("tool_calls") or []}
        calls = []
        for tc in m.tool_calls:
            raw = raw_calls.get(tc["id"])
            args = raw["function"]["arguments"] if raw else json.dumps(tc["args"], ensure_ascii=False)
            calls.append(
                {"id": tc["id"], "type": "function", "function": {"name": tc["name"], "arguments": args}}
            )
        if calls:
            out["tool_calls"] = calls
        # A malformed call cannot go back as structured JSON (the server would reject it), so it goes back as
        # the text the model wrote, which is what the model sees under the chat template anyway.
        for bad in m.invalid_tool_calls:
            raw_args = bad.get("args") or ""
            if bad.get("name"):
                body = '{"name": ' + json.dumps(bad["name"]) + ', "arguments": ' + (raw_args or "{}") + "}"
            else:
                body = raw_args
            out["content"] = (out["content"] + f"\n<tool_call>\n{body}\n</tool_call>").strip()
        reasoning = m.additional_kwargs.get("reasoning_content")
        if keep_reasoning and reasoning:
            out["reasoning_content"] = reasoning
        return out
    raise TypeError(f"unsupported message type {type(m).__name__}")


def parse_completion(data: dict[str, Any]) -> AIMessage:
    """Turn one chat-completions response body into an ``AIMessage`` carrying every vLLM extra."""
    try:
        choice = data["choices"][0]
        msg = choice["message"]
    except (KeyError, IndexError, TypeError) as e:
        raise ModelRequestError(f"malformed chat completion from server: missing {e}") from e
    content = msg.get("content") or ""
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    raw_calls = list(msg.get("tool_calls") or [])
    hermes_errors: list[dict[str, str]] = []
    if not raw_calls and "<tool_call>" in content:
        if reasoning is None:
            reasoning, content = split_reasoning(content)
        content, raw_calls, hermes_errors = parse_hermes(content)
    if reasoning is None and ("</think>" in content or content.lstrip().startswith("<think>")):
        reasoning, content = split_reasoning(content)

    calls, invalid = [], []
    for rc in raw_calls:
        fn = rc.get("function") or {}
        cid = rc.get("id") or new_call_id()
        rc["id"] = cid
        name, args_text = fn.get("name"), fn.get("arguments") or "{}"
        try:
            args = json.loads(args_text) if isinstance(args_text, str) else args_text
            if not isinstance(args, dict):
                raise ValueError("arguments must be a JSON object")
            if not name:
                raise ValueError("tool call has no name")
        except ValueError as e:  # json.JSONDecodeError included
            why = (
                f"tool call arguments are not valid JSON: {e.msg} at position {e.pos}"
                if isinstance(e, json.JSONDecodeError)
                else f"invalid tool call: {e}"
            )
            raw = args_text if isinstance(args_text, str) else None
            invalid.append(invalid_tool_call(name=name, args=raw, id=cid, error=why))
            continue
        calls.append(tool_call(name=name, args=args, id=cid))
    for err in hermes_errors:
        invalid.append(invalid_tool_call(name=None, args=err["raw"], id=new_call_id(), error=err["error"]))

    logprobs = None
    lp = choice.get("logprobs")
    if isinstance(lp, dict) and isinstance(lp.get("content"), list):
        logprobs = [float(t.get("logprob", 0.0)) for t in lp["content"]]
    usage = data.get("usage") or {}
    meta = {
        "finish_reason": choice.get("finish_reason"),
        "model_name": data.get("model"),
        "prompt_token_ids": intern_token_ids(data.get("prompt_token_ids") or choice.get("prompt_token_ids")),
        "token_ids": intern_token_ids(choice.get("token_ids")),
        "logprobs": logprobs,
    }
    additional: dict[str, Any] = {}
    if reasoning is not None:
        additional["reasoning_content"] = reasoning
    if raw_calls:
        additional["tool_calls"] = raw_calls
    ai = AIMessage(
        content=content,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        additional_kwargs=additional,
        response_metadata=meta,
        id=data.get("id"),
    )
    if usage:
        pt, ct = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        ai.usage_metadata = {"input_tokens": pt, "output_tokens": ct, "total_tokens": pt + ct}
    return ai


class ChatVLLM(BaseChatModel):
    """Chat model for an OpenAI-compatible server (vLLM first), keeping token ids, logprobs and reasoning."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    base_url: str = "http://localhost:8000/v1"
    model: str = "RLinf/WideSeek-R1-4b"
    api_key: SecretStr | None = Field(default=None, repr=False, exclude=True)
    temperature: float | None = 1.0
    top_p: float | None = 1.0
    top_k: int | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    request_timeout: float = 600.0
    max_retries: int = 4
    retry_base_delay: float = 0.5
    max_inflight: int = 256

    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    connect_timeout: float = 10.0
    return_token_ids: bool = True
    logprobs: bool = True
    keep_reasoning: bool = True
    # vLLM refuses prompt + max_tokens > max_model_len. With this on, such a request is sent again once
    # without max_tokens, and vLLM generates into the room that is really left (never more than was asked):
    # what the in-actor training endpoint does, so a graph whose token budget is an estimate behaves the same
    # in both.
    clamp_max_tokens: bool = True
    extra_body: dict[str, Any] = Field(default_factory=dict)

    _transport: OpenAITransport | None = PrivateAttr(default=None)
    _unsupported: set[str] = PrivateAttr(default_factory=set)

    @classmethod
    def from_config(cls, cfg: Any, **overrides: Any) -> ChatVLLM:
        """Build from a :class:`~langgraph_wideseek.config.WideSeekConfig`."""
        kw = dict(
            base_url=cfg.base_url,
            model=cfg.model,
            api_key=cfg.api_key,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k,
            repetition_penalty=cfg.repetition_penalty if cfg.repetition_penalty != 1.0 else None,
            seed=cfg.seed,
            request_timeout=cfg.request_timeout,
            max_retries=cfg.max_retries,
            max_inflight=cfg.max_inflight_requests,
            max_reply_bytes=cfg.max_reply_bytes,
            connect_timeout=cfg.connect_timeout,
            return_token_ids=cfg.return_token_ids,
            logprobs=cfg.logprobs,
            keep_reasoning=cfg.keep_reasoning,
        )
        kw.update(overrides)
        return cls(**kw)

    @property
    def _llm_type(self) -> str:
        return "vllm-openai"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        schemas = [
            t if isinstance(t, dict) and t.get("type") == "function" else convert_to_openai_tool(t)
            for t in tools
        ]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=schemas, **kwargs)

    # --- request building ----------------------------------------------------------------------------------
    def build_payload(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [message_to_openai(m, keep_reasoning=self.keep_reasoning) for m in messages],
        }
        for key in ("temperature", "top_p", "top_k", "repetition_penalty", "seed", "max_tokens"):
            val = kwargs.pop(key, getattr(self, key))
            if val is not None:
                payload[key] = val
        if stop:
            payload["stop"] = stop
        if self.return_token_ids and "return_token_ids" not in self._unsupported:
            payload["return_token_ids"] = True
        if self.logprobs and "logprobs" not in self._unsupported:
            payload["logprobs"] = True
        payload.update(self.extra_body)
        payload.update(kwargs)  # tools, tool_choice, anything bound
        return payload

    # --- transport -----------------------------------------------------------------------------------------
    def transport(self) -> OpenAITransport:
        """The HTTP transport of this model (built on first use from the endpoint fields)."""
        if self._transport is None:
            self._transport = OpenAITransport(
                self.base_url,
                self.api_key,
                timeout=self.request_timeout,
                max_inflight=self.max_inflight,
                retry=RetryPolicy(retries=self.max_retries, base_delay=self.retry_base_delay),
                max_reply_bytes=self.max_reply_bytes,
                connect_timeout=self.connect_timeout,
            )
        return self._transport

    async def aclose(self) -> None:
        """Close this loop's HTTP session (a session of another loop closes when that loop shuts down)."""
        if self._transport is not None:
            await self._transport.aclose()

    async def apost(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST one chat-completions payload with retries; returns the response body.

        vLLM's 400s are read here, where the payload is known: a ``max_tokens`` the context cannot hold is
        asked again once without it (``clamp_max_tokens``), no room left at all is a context overflow, and a
        vLLM extra another OpenAI-compatible server rejects is dropped for good."""
        while True:
            try:
                return await self.transport().post("/chat/completions", payload)
            except ModelRequestError as e:
                sized = [k for k in _SIZE_KEYS if payload.get(k) is not None]
                if e.status == 400 and sized and self.clamp_max_tokens and _asks_too_much_output(e.detail):
                    log.info(
                        "server refused %s=%s for the context left (%s); asking for the room left instead",
                        sized[0],
                        payload[sized[0]],
                        e.detail[:200],
                    )
                    payload = {k: v for k, v in payload.items() if k not in sized}
                    continue
                if (
                    e.status == 400
                    and not sized
                    and _NO_ROOM in e.detail
                    and not isinstance(e, ContextOverflowError)
                ):
                    raise ContextOverflowError(f"context overflow: {e.detail}", 400, detail=e.detail) from e
                opt = self._rejected_extra(e, payload)
                if opt is None:
                    raise
                # An OpenAI-compatible server that is not vLLM: drop the extra and try again.
                log.warning("server rejected %r; retrying without it", opt)
                self._unsupported.add(opt)
                payload.pop(opt)

    def _rejected_extra(self, e: ModelRequestError, payload: dict[str, Any]) -> str | None:
        if e.status != 400 or isinstance(e, ContextOverflowError):
            return None
        return next(
            (o for o in _OPTIONAL_EXTRAS if o in payload and o in e.detail and o not in self._unsupported),
            None,
        )

    # --- LangChain interface -------------------------------------------------------------------------------
    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        data = await self.apost(self.build_payload(messages, stop, **kwargs))
        ai = parse_completion(data)
        return ChatResult(
            generations=[ChatGeneration(message=ai)], llm_output={"model_name": data.get("model")}
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        async def run() -> ChatResult:
            try:
                return await self._agenerate(messages, stop, **kwargs)
            finally:
                await self.aclose()

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(run())
        # Called synchronously from inside a running loop: run on a private loop in a worker thread.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, run()).result()
