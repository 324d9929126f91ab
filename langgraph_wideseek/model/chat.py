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
import queue
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    InvalidToolCall,
    SystemMessage,
    ToolCall,
    ToolCallChunk,
    ToolMessage,
    UsageMetadata,
)
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils import from_env, secret_from_env
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

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
    """The text of a message's content: a string, or the text blocks of a list of content blocks (other
    blocks, such as images or another provider's reasoning, have no place in this wire format)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p if isinstance(p, str) else str(p.get("text") or "")
            for p in content
            if isinstance(p, str) or (isinstance(p, dict) and p.get("type", "text") == "text")
        )
    return "" if content is None else str(content)


def _tool_choice(choice: dict[str, Any] | str | bool | None, names: list[str]) -> dict[str, Any] | str | None:
    """LangChain's ``tool_choice`` vocabulary in the forms vLLM accepts (as langchain-openai translates it).

    ``"any"`` and ``True`` mean "call some tool": ``"required"``. A bound tool's name is a named function
    choice. ``"auto"``, ``"none"``, ``"required"`` and dicts pass through; ``False`` and ``None`` send
    nothing.
    """
    if choice is None or choice is False:
        return None
    if choice is True or choice == "any":
        return "required"
    if isinstance(choice, str):
        if choice in ("auto", "none", "required"):
            return choice
        if choice in names:
            return {"type": "function", "function": {"name": choice}}
        raise ValueError(f"tool_choice {choice!r} is not one of the bound tools {names}")
    if isinstance(choice, dict):
        return choice
    raise ValueError(f"unsupported tool_choice {choice!r}: use a tool name, 'auto', 'any', 'none' or a dict")


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
            block = body if body.lstrip().startswith("<tool_call>") else f"<tool_call>\n{body}\n</tool_call>"
            out["content"] = (out["content"] + "\n" + block).strip()
        reasoning = m.additional_kwargs.get("reasoning_content")
        if keep_reasoning and reasoning:
            out["reasoning_content"] = reasoning
        return out
    raise TypeError(f"unsupported message type {type(m).__name__}")


def _read_message(
    msg: dict[str, Any], *, split_tags: bool = True, parse_calls: bool = True
) -> tuple[str, str | None, list[dict[str, Any]], list[ToolCall], list[InvalidToolCall]]:
    """(content, reasoning, raw tool calls, tool calls, invalid tool calls) of one assistant message.

    Reasoning and hermes ``<tool_call>`` blocks left in ``content`` (a server without the parsers) are split
    off here, for whole replies and for the held-back tail of a stream alike; ``split_tags`` and
    ``parse_calls`` turn that off where the server is known to have split them already."""
    content = msg.get("content") or ""
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    raw_calls = list(msg.get("tool_calls") or [])
    hermes_errors: list[dict[str, str]] = []
    if parse_calls and not raw_calls and "<tool_call>" in content:
        if reasoning is None and split_tags:
            reasoning, content = split_reasoning(content)
        content, raw_calls, hermes_errors = parse_hermes(content)
    if split_tags and reasoning is None and ("</think>" in content or content.lstrip().startswith("<think>")):
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
    return content, reasoning, raw_calls, calls, invalid


def _logprob_floats(lp: Any) -> list[float] | None:
    """The per-token logprobs of a ``logprobs`` object (``{"content": [{"logprob": x}, ...]}``), else None."""
    if not isinstance(lp, dict) or not isinstance(content := lp.get("content"), list):
        return None
    try:  # vLLM's shape, on every model call: the plain comprehension is half the cost of the checked one
        return [float(t["logprob"]) for t in content]
    except (TypeError, KeyError, ValueError):  # a foreign shape: what can be read, entry by entry
        return [float(t.get("logprob", 0.0)) for t in content if isinstance(t, dict)]


def _usage(usage: Any) -> UsageMetadata | None:
    if not isinstance(usage, dict) or not usage:
        return None
    pt, ct = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {"input_tokens": pt, "output_tokens": ct, "total_tokens": pt + ct}


def parse_completion(data: dict[str, Any]) -> AIMessage:
    """Turn one chat-completions response body into an ``AIMessage`` carrying every vLLM extra."""
    try:
        choice = data["choices"][0]
        msg = choice["message"]
    except (KeyError, IndexError, TypeError) as e:
        raise ModelRequestError(f"malformed chat completion from server: missing {e}") from e
    content, reasoning, raw_calls, calls, invalid = _read_message(msg)
    meta = {
        "finish_reason": choice.get("finish_reason"),
        "model_name": data.get("model"),
        "prompt_token_ids": intern_token_ids(data.get("prompt_token_ids") or choice.get("prompt_token_ids")),
        "token_ids": intern_token_ids(choice.get("token_ids")),
        "logprobs": _logprob_floats(choice.get("logprobs")),
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
    usage = _usage(data.get("usage"))
    if usage:
        ai.usage_metadata = usage
    return ai


# Tags that, in the content of a server started without the reasoning or tool parser, change what earlier
# text means; a stream holds text back from the first of them (see _StreamReader).
_MARKERS = ("<think>", "</think>", "<tool_call>")


class _StreamReader:
    """Turns the events of one chat-completions stream into ``AIMessageChunk`` fields.

    Structured deltas (content, ``reasoning_content`` / ``reasoning``, tool calls) pass straight through, each
    with the chunk's token ids and logprobs, so merged chunks carry the same extras as a whole reply. Content
    from a server without the parsers is streamed up to the first ``<think>``, ``</think>`` or
    ``<tool_call>``; from there on it is held back and read as a whole at the end, as a whole reply's content
    would be (reasoning, hermes tool calls).
    """

    def __init__(self) -> None:
        self.held: str | None = None  # text from the first marker on (None: nothing held)
        self.tail = ""  # text that may be the beginning of a marker
        self.structured_calls = False
        self.structured_reasoning = False
        self.started: set[int] = set()  # tool-call indices whose first delta was passed on
        self.next_index = 0
        self.id: str | None = None
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.usage: UsageMetadata | None = None
        self.prompt_seen = False

    def read(self, event: dict[str, Any]) -> AIMessageChunk | None:
        """The chunk of one stream event, or None when it carries nothing to pass on yet."""
        self.id = self.id or event.get("id")
        self.model = self.model or event.get("model")
        usage = _usage(event.get("usage"))
        if usage:
            self.usage = usage
        choices = event.get("choices") or []
        choice = choices[0] if choices and isinstance(choices[0], dict) else {}
        meta: dict[str, Any] = {}
        prompt_ids = event.get("prompt_token_ids") or choice.get("prompt_token_ids")
        if prompt_ids and not self.prompt_seen:  # vLLM sends them with the first chunk only
            self.prompt_seen = True
            meta["prompt_token_ids"] = intern_token_ids(prompt_ids)
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        if choice.get("token_ids"):
            meta["token_ids"] = intern_token_ids(choice["token_ids"])
        logprobs = _logprob_floats(choice.get("logprobs"))
        if logprobs:
            meta["logprobs"] = logprobs
        delta = choice.get("delta") or {}
        additional: dict[str, Any] = {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning:
            self.structured_reasoning = True
            additional["reasoning_content"] = reasoning
        text = self.content(delta["content"]) if isinstance(delta.get("content"), str) else ""
        raws, chunks = [], []
        for raw in delta.get("tool_calls") or []:
            kept, chunk = self.tool_call(raw)
            raws.append(kept)
            chunks.append(chunk)
        if raws:
            additional["tool_calls"] = raws
        if not (text or additional or meta):
            return None
        return AIMessageChunk(
            content=text,
            additional_kwargs=additional,
            tool_call_chunks=chunks,
            response_metadata=meta,
            id=self.id,
        )

    def last(self) -> AIMessageChunk:
        """The closing chunk: held-back text read as a whole, the finish reason, the model and usage.

        Its ``None`` extras make a merged stream carry the same keys as a whole reply when the server sent no
        token ids or logprobs (merging keeps a list over a ``None``)."""
        fields = self.finish()
        meta = {
            "finish_reason": self.finish_reason,
            "model_name": self.model,
            "prompt_token_ids": None,
            "token_ids": None,
            "logprobs": None,
        }
        return AIMessageChunk(
            content=fields.get("content", ""),
            additional_kwargs=fields.get("additional_kwargs", {}),
            tool_call_chunks=fields.get("tool_call_chunks", []),
            response_metadata=meta,
            usage_metadata=self.usage,
            id=self.id,
            chunk_position="last",
        )

    def content(self, delta: str) -> str:
        """The part of ``delta`` that can be passed on now."""
        if self.held is not None:
            self.held += delta
            return ""
        text = self.tail + delta
        at = min((i for i in (text.find(m) for m in _MARKERS) if i >= 0), default=-1)
        if at >= 0:
            self.held, self.tail = text[at:], ""
            return text[:at]
        keep = 0
        for m in _MARKERS:  # the longest end of ``text`` that could still grow into a marker
            for n in range(min(len(m) - 1, len(text)), keep, -1):
                if text.endswith(m[:n]):
                    keep = n
                    break
        self.tail = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def tool_call(self, raw: dict[str, Any]) -> tuple[dict[str, Any], ToolCallChunk]:
        """(the raw delta to keep, the tool-call chunk) of one streamed tool-call delta."""
        self.structured_calls = True
        index: int = raw["index"] if isinstance(raw.get("index"), int) else 0
        fn = raw.get("function") or {}
        first = index not in self.started
        self.started.add(index)
        self.next_index = max(self.next_index, index + 1)
        kept: dict[str, Any] = {"index": index, "function": {"arguments": fn.get("arguments") or ""}}
        if first:  # id, type and name come once, so merging concatenates only the arguments
            kept["id"] = raw.get("id") or new_call_id()
            kept["type"] = "function"
            kept["function"]["name"] = fn.get("name") or ""
        chunk = tool_call_chunk(
            name=kept["function"].get("name"),
            args=kept["function"]["arguments"],
            id=kept.get("id"),
            index=index,
        )
        return kept, chunk

    def finish(self) -> dict[str, Any]:
        """The fields of the last chunk: whatever was held back, read as a whole."""
        text = self.tail + (self.held or "")
        self.tail, self.held = "", None
        if not text:
            return {}
        # where the server split reasoning or tool calls itself, tags left in the content are content
        content, reasoning, raw_calls, _, invalid = _read_message(
            {"content": text},
            split_tags=not self.structured_reasoning,
            parse_calls=not self.structured_calls,
        )
        out: dict[str, Any] = {"content": content, "additional_kwargs": {}, "tool_call_chunks": []}
        if reasoning and not self.structured_reasoning:
            out["additional_kwargs"]["reasoning_content"] = reasoning
        if not self.structured_calls:
            raws = []
            for rc in raw_calls:
                index, self.next_index = self.next_index, self.next_index + 1
                fn = rc.get("function") or {}
                raws.append({"index": index, **rc})
                out["tool_call_chunks"].append(
                    tool_call_chunk(name=fn.get("name"), args=fn.get("arguments"), id=rc["id"], index=index)
                )
            for bad in invalid:
                if bad["name"] is None:  # a hermes block that did not parse: kept as its text
                    # LangChain re-reads merged tool-call chunks with a lenient JSON parser and keeps no
                    # reason, so the args are the whole block, tags included: that never parses as JSON, the
                    # merged message lists it as an invalid call, and it goes back to the model as written.
                    index, self.next_index = self.next_index, self.next_index + 1
                    block = f"<tool_call>\n{bad['args']}\n</tool_call>"
                    out["tool_call_chunks"].append(
                        tool_call_chunk(name=None, args=block, id=bad["id"], index=index)
                    )
            if raws:
                out["additional_kwargs"]["tool_calls"] = raws
        return out


class ChatVLLM(BaseChatModel):
    """Chat model for an OpenAI-compatible server (vLLM first), keeping token ids, logprobs and reasoning.

    Built with no arguments it reads ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``, like every OpenAI-flavoured
    LangChain model. Streaming (``stream`` / ``astream``, and ``invoke`` inside a graph streamed with
    ``stream_mode="messages"``) yields chunks whose merged message carries the same token ids, logprobs and
    reasoning as a whole reply. ``bind_tools`` translates LangChain's ``tool_choice`` vocabulary into the
    forms vLLM accepts, and ``with_structured_output`` offers function calling (the default), JSON schema and
    JSON mode.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    base_url: str = Field(default_factory=from_env("OPENAI_BASE_URL", default="http://localhost:8000/v1"))
    model: str = "RLinf/WideSeek-R1-4b"
    api_key: SecretStr | None = Field(
        default_factory=secret_from_env("OPENAI_API_KEY", default=None), repr=False, exclude=True
    )
    temperature: float | None = 1.0
    top_p: float | None = 1.0
    top_k: int | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    request_timeout: float = Field(600.0, alias="timeout")
    max_retries: int = 4
    retry_base_delay: float = 0.5
    max_inflight: int = 256

    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    connect_timeout: float = 10.0
    first_response_timeout: float = 60.0
    """Seconds before a waiting request checks that the server is alive (``OpenAITransport``); 0: off."""
    return_token_ids: bool = True
    logprobs: bool = True
    keep_reasoning: bool = True
    streaming: bool = False
    """Stream replies from ``invoke`` too (``stream`` / ``astream`` always stream)."""
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
            first_response_timeout=cfg.first_response_timeout,
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

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """What LangSmith records about a call: the provider, and the model and settings this call uses."""
        params = LangSmithParams(
            ls_provider="vllm",
            ls_model_name=kwargs.get("model", self.model),
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (OpenAI tool dicts, pydantic models, functions or LangChain tools).

        ``tool_choice`` takes LangChain's vocabulary and sends what vLLM accepts: ``"any"`` and ``True``
        become ``"required"``, a bound tool's name becomes a named function choice, and ``"auto"``,
        ``"none"``, ``"required"`` and explicit dicts pass through. ``strict`` marks each function schema
        strict.
        """
        schemas = [
            t
            if isinstance(t, dict) and t.get("type") == "function"
            else convert_to_openai_tool(t, strict=strict)
            for t in tools
        ]
        if strict is not None:
            schemas = [{**t, "function": {**t["function"], "strict": strict}} for t in schemas]
        choice = _tool_choice(tool_choice, [t["function"]["name"] for t in schemas])
        if choice is not None:
            kwargs["tool_choice"] = choice
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return self.bind(tools=schemas, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """A runnable that answers with ``schema`` (a pydantic model, a TypedDict or a JSON schema dict).

        ``method``: ``"function_calling"`` forces a call of a tool with that schema (the default: what the
        WideSeek model was trained to do); ``"json_schema"`` asks vLLM for structured output with the schema
        (``response_format``, enforced by guided decoding); ``"json_mode"`` asks for any JSON object (describe
        the shape in the prompt). ``include_raw=True`` returns ``{"raw", "parsed", "parsing_error"}``.
        """
        if kwargs:
            raise ValueError(f"unexpected arguments: {sorted(kwargs)}")
        is_model = isinstance(schema, type) and is_basemodel_subclass(schema)  # pydantic 2 or 1
        if method == "function_calling":
            if schema is None:
                raise ValueError("method='function_calling' needs a schema")
            name = convert_to_openai_tool(schema)["function"]["name"]
            llm = self.bind_tools(
                [schema],
                tool_choice=name,
                strict=strict,
                ls_structured_output_format={
                    "kwargs": {"method": method, "strict": strict},
                    "schema": convert_to_openai_tool(schema),
                },
            )
            parser: Runnable[Any, Any] = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
                if is_model
                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
            )
        elif method == "json_schema":
            if schema is None:
                raise ValueError("method='json_schema' needs a schema")
            fn = convert_to_openai_tool(schema, strict=strict)["function"]
            spec: dict[str, Any] = {"name": fn["name"], "schema": fn.get("parameters") or {}}
            if fn.get("description"):
                spec["description"] = fn["description"]
            if strict is not None:
                spec["strict"] = strict
            llm = self.bind(
                response_format={"type": "json_schema", "json_schema": spec},
                ls_structured_output_format={
                    "kwargs": {"method": method, "strict": strict},
                    "schema": spec,
                },
            )
            parser = PydanticOutputParser(pydantic_object=schema) if is_model else JsonOutputParser()  # type: ignore[arg-type]
        elif method == "json_mode":
            llm = self.bind(
                response_format={"type": "json_object"},
                ls_structured_output_format={"kwargs": {"method": method}, "schema": schema},
            )
            parser = PydanticOutputParser(pydantic_object=schema) if is_model else JsonOutputParser()  # type: ignore[arg-type]
        else:
            raise ValueError(f"unknown method {method!r}: use function_calling, json_schema or json_mode")
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        ).with_fallbacks([RunnablePassthrough.assign(parsed=lambda _: None)], exception_key="parsing_error")
        return RunnableMap(raw=llm) | parsed

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
        stop = stop or self.stop
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
                first_response_timeout=self.first_response_timeout,
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
                again = self._after_rejection(e, payload)
                if again is None:
                    raise
                payload = again

    async def apost_stream(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """POST one chat-completions payload with ``stream`` set; yields each decoded stream event.

        A request the server rejects before the stream starts is read as :meth:`apost` reads it (clamped
        ``max_tokens``, dropped extras); once events flow, errors propagate."""
        payload = {**payload, "stream": True, "stream_options": {"include_usage": True}}
        while True:
            started = False
            try:
                async for event in self.transport().stream("/chat/completions", payload):
                    started = True
                    yield event
                return
            except ModelRequestError as e:
                again = None if started else self._after_rejection(e, payload)
                if again is None:
                    raise
                payload = again

    def _after_rejection(self, e: ModelRequestError, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The payload to send again after the server refused ``payload`` with ``e``, or None to give up."""
        sized = [k for k in _SIZE_KEYS if payload.get(k) is not None]
        if e.status == 400 and sized and self.clamp_max_tokens and _asks_too_much_output(e.detail):
            log.info(
                "server refused %s=%s for the context left (%s); asking for the room left instead",
                sized[0],
                payload[sized[0]],
                e.detail[:200],
            )
            return {k: v for k, v in payload.items() if k not in sized}
        if e.status == 400 and not sized and _NO_ROOM in e.detail and not isinstance(e, ContextOverflowError):
            raise ContextOverflowError(f"context overflow: {e.detail}", 400, detail=e.detail) from e
        opt = self._rejected_extra(e, payload)
        if opt is None:
            return None
        # An OpenAI-compatible server that is not vLLM: drop the extra and try again.
        log.warning("server rejected %r; retrying without it", opt)
        self._unsupported.add(opt)
        return {k: v for k, v in payload.items() if k != opt}

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

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        kwargs.pop("stream", None)
        reader = _StreamReader()
        async for event in self.apost_stream(self.build_payload(messages, stop, **kwargs)):
            chunk = reader.read(event) if isinstance(event, dict) else None
            if chunk is not None:
                gen = ChatGenerationChunk(message=chunk)
                if run_manager is not None:
                    await run_manager.on_llm_new_token(chunk.text, chunk=gen)
                yield gen
        last = ChatGenerationChunk(message=reader.last())
        if run_manager is not None:
            await run_manager.on_llm_new_token(last.message.text, chunk=last)
        yield last

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """The async stream, run on a private loop in a worker thread and handed over chunk by chunk."""
        items: queue.Queue[tuple[str, Any]] = queue.Queue()
        stopped = threading.Event()

        async def pump() -> None:
            try:
                async for gen in self._astream(messages, stop, **kwargs):
                    items.put(("chunk", gen))
                    if stopped.is_set():
                        break
            except BaseException as e:  # noqa: BLE001 - handed to the consumer, who re-raises it
                items.put(("error", e))
            finally:
                await self.aclose()
                items.put(("done", None))

        worker = threading.Thread(target=asyncio.run, args=(pump(),), name="chatvllm-stream", daemon=True)
        worker.start()
        try:
            while True:
                kind, value = items.get()
                if kind == "done":
                    break
                if kind == "error":
                    raise value
                if run_manager is not None:
                    run_manager.on_llm_new_token(value.message.text, chunk=value)
                yield value
        finally:
            stopped.set()
