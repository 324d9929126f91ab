"""An OpenAI-compatible chat endpoint served inside the vLLM Ray actor, over its token-in/token-out engine.

OpenRLHF's trainer engines have no HTTP server; an unmodified LangGraph graph needs one. This module serves
``POST /v1/chat/completions`` on 127.0.0.1 (port 0, on the caller's running event loop) and does per request
what ``vllm serve --enable-auto-tool-choice --tool-call-parser hermes --reasoning-parser qwen3`` does:

1. render the chat template with the HF tokenizer, tools included
   (``apply_chat_template(messages, tools=..., add_generation_prompt=True)``), then tokenize;
2. reject a prompt that does not fit the context with HTTP 400 in vLLM's words ("maximum context length");
3. call ``engine.generate(prompt_token_ids, sampling_params)`` (OpenRLHF's ``RolloutRayActor.generate``);
4. decode, split ``<think>`` reasoning, parse hermes ``<tool_call>`` blocks (``langgraph_wideseek.hermes``);
5. answer in OpenAI JSON plus vLLM's extras: ``prompt_token_ids``, ``choices[0].token_ids``,
   ``choices[0].logprobs.content[*].logprob`` and usage.

The graph's trajectory therefore records the exact ids and logprobs of every call, and training rows are built
from the trajectory (``training.rows``) on the same path as offline export.

Requests are keyed by rollout, in the URL (``/r/{rollout_id}/v1``) or in a ``wideseek_rollout`` body field
(what the executor uses: one base URL per actor keeps the chat model's per-endpoint caches bounded). Each rollout
registers the engine, OpenRLHF's sampling params and the context length it runs under, and gets its own call
accounting. Requests without a key use the default rollout given at construction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from langgraph_wideseek.hermes import parse_hermes_vllm, split_reasoning_vllm

from .engine import Generation, LLMEngine, make_sampling_params, read_generation

log = logging.getLogger("training.endpoint")

DEFAULT_ROLLOUT = "_default"
ROLLOUT_FIELD = "wideseek_rollout"


class EndpointError(Exception):
    """An error answered to the client as OpenAI-style JSON with an HTTP status."""

    def __init__(self, status: int, message: str, kind: str = "BadRequestError", param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.status}}


class ChatRequest(BaseModel):
    """The chat-completions fields this endpoint reads; other fields are accepted and ignored, as vLLM does."""

    model_config = ConfigDict(extra="allow")

    messages: list[dict[str, Any]]
    model: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = 1
    stream: bool = False
    logprobs: bool = False
    top_logprobs: int | None = None
    return_token_ids: bool = False
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    min_tokens: int | None = None
    chat_template_kwargs: dict[str, Any] | None = None


@dataclass
class RolloutStats:
    """Per-rollout accounting of the calls this endpoint served."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    max_completion_tokens: int = 0
    truncated: int = 0
    context_rejections: int = 0
    errors: int = 0
    generate_seconds: float = 0.0


@dataclass
class _Slot:
    engine: LLMEngine
    sampling_params: Any
    max_length: int
    stats: RolloutStats


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, dict) and p.get("type", "text") == "text":
                parts.append(str(p.get("text", "")))
            else:
                raise EndpointError(400, f"unsupported content part type {p.get('type') if isinstance(p, dict) else p!r}")
        # vLLM gives a template that reads content as a string the text parts joined by newlines
        return "\n".join(parts)
    raise EndpointError(400, f"message content must be a string or a list of parts, got {type(content).__name__}")


def normalize_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What vLLM does before rendering: flatten text parts and give templates tool-call arguments as objects."""
    if not messages:
        raise EndpointError(400, "'messages' must be a non-empty list")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise EndpointError(400, f"messages[{i}] must be an object with a string 'role'")
        m = dict(m)
        m["content"] = _text(m.get("content"))
        calls = []
        for c in m.get("tool_calls") or []:
            c = json.loads(json.dumps(c))  # a private copy
            fn = c.get("function") or {}
            args = fn.get("arguments")
            if isinstance(args, str):
                try:
                    fn["arguments"] = json.loads(args)
                except json.JSONDecodeError:
                    pass  # rendered verbatim, as the model wrote it
            calls.append(c)
        if calls:
            m["tool_calls"] = calls
        out.append(m)
    return out


def context_error(max_length: int, prompt_len: int, requested: int = 0) -> EndpointError:
    """vLLM 0.29's 400 for a prompt longer than ``max_length - requested`` (``requested``: the request's
    ``max_tokens``, 0 without one). vLLM stops tokenizing one token past the limit, so it reports at most that
    many input tokens, "at least"."""
    max_input = max_length - requested
    count = min(prompt_len, max_input + 1)
    q = "at least " if count == max_input + 1 else ""
    return EndpointError(
        400,
        f"This model's maximum context length is {max_length} tokens. However, you requested {requested} output "
        f"tokens and your prompt contains {q}{count} input tokens, for a total of {q}{count + requested} tokens. "
        f"Please reduce the length of the input prompt or the number of requested output tokens. "
        f"(parameter=input_tokens, value={count})", param="input_tokens")


def max_tokens_error(max_length: int, asked: int, param: str) -> EndpointError:
    """vLLM 0.29's 400 for ``max_tokens`` (or ``max_completion_tokens``) above the context length."""
    return EndpointError(
        400, f"{param}={asked} cannot be greater than max_model_len=max_total_tokens={max_length}. Please request "
             f"fewer output tokens. (parameter={param}, value={asked})", param=param)


# vLLM reports a logprob below this as this (JSON has no -Infinity).
MIN_LOGPROB = -9999.0
SYSTEM_FINGERPRINT = "wideseek-endpoint"


def token_pieces(tokenizer: Any, ids: list[int]) -> list[str]:
    """Each token's text as vLLM's logprobs show it: decoded alone, except that a token ending in part of a
    multi-byte character is read with up to four tokens before it; the text those complete is attributed to
    the completing token, and a token that completes nothing yet shows as ``""``."""
    pieces = []
    for i, tok in enumerate(ids):
        piece = tokenizer.decode([tok])
        if piece.endswith("\ufffd"):
            piece = ""
            for k in range(1, min(i, 4) + 1):
                ctx = ids[i - k:i]
                full = tokenizer.decode(ctx + [tok])
                if full.endswith("\ufffd"):
                    continue
                clean = len(ctx)
                while clean > 0 and tokenizer.decode([ctx[clean - 1]]).endswith("\ufffd"):
                    clean -= 1
                prefix = tokenizer.decode(ctx[:clean]) if clean else ""
                common = 0
                for a, b in zip(prefix, full):
                    if a != b:
                        break
                    common += 1
                piece = full[common:]
                break
        pieces.append(piece)
    return pieces


class ChatEndpoint:
    """The in-actor endpoint. Construct anywhere; :meth:`start` on the loop that will serve it.

    ``strict_max_tokens`` reproduces vLLM's 400 for ``prompt + max_tokens > context``; by default the request's
    ``max_tokens`` is clamped to the context that remains instead, because the graph budgets with estimates.
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        engine: LLMEngine | None = None,
        sampling_params: Any = None,
        max_length: int | None = None,
        model_name: str = "wideseek-policy",
        host: str = "127.0.0.1",
        port: int = 0,
        strict_max_tokens: bool = False,
    ) -> None:
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.host = host
        self.port = port
        self.strict_max_tokens = strict_max_tokens
        self._slots: dict[str, _Slot] = {}
        if engine is not None:
            if max_length is None:
                raise ValueError("max_length is required with a default engine")
            self._slots[DEFAULT_ROLLOUT] = _Slot(engine, sampling_params, max_length, RolloutStats())
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # One worker: HF fast tokenizers are not safe to call from several threads at once, and the template
        # rendering is pure Python anyway. Off the loop so the server and the graph keep running meanwhile.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="endpoint-tokenizer")
        self._stop_ids = self._find_stop_ids(tokenizer)
        vocab = tokenizer.get_vocab()
        self._think_ids = (vocab.get("<think>"), vocab.get("</think>"), vocab.get("<tool_call>"))
        self._special_ids = set(getattr(tokenizer, "all_special_ids", ()) or ())

    @staticmethod
    def _find_stop_ids(tokenizer: Any) -> set[int]:
        ids = set()
        if getattr(tokenizer, "eos_token_id", None) is not None:
            ids.add(int(tokenizer.eos_token_id))
        for tok in ("<|im_end|>", "<|endoftext|>"):
            tid = tokenizer.convert_tokens_to_ids(tok)
            if isinstance(tid, int) and tid != getattr(tokenizer, "unk_token_id", None) and tid >= 0:
                ids.add(tid)
        return ids

    # --- lifecycle -----------------------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._runner is not None

    @property
    def root_url(self) -> str:
        if self._runner is None:
            raise RuntimeError("endpoint not started")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"

    def rollout_url(self, rollout_id: str) -> str:
        return f"{self.root_url}/r/{rollout_id}/v1"

    async def start(self) -> str:
        """Serve on the running loop; returns the ``/v1`` base URL."""
        if self._runner is not None:
            return self.base_url
        self._loop = asyncio.get_running_loop()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/r/{rollout}/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/r/{rollout}/v1/models", self._models)
        app.router.add_get("/health", self._health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._runner = runner
        log.info("in-actor chat endpoint on %s", self.base_url)
        return self.base_url

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._pool.shutdown(wait=False)

    # --- rollouts ------------------------------------------------------------------------------------------
    def open_rollout(self, rollout_id: str, *, engine: LLMEngine, sampling_params: Any, max_length: int) -> str:
        """Register a rollout; its graph talks to the returned base URL."""
        if "/" in rollout_id or not rollout_id:
            raise ValueError(f"bad rollout id {rollout_id!r}")
        if rollout_id in self._slots:
            raise ValueError(f"rollout {rollout_id} is already open")
        self._slots[rollout_id] = _Slot(engine, sampling_params, max_length, RolloutStats())
        return self.rollout_url(rollout_id)

    def close_rollout(self, rollout_id: str) -> RolloutStats:
        return self._slots.pop(rollout_id).stats

    def stats(self, rollout_id: str = DEFAULT_ROLLOUT) -> RolloutStats:
        return self._slots[rollout_id].stats

    # --- handlers ------------------------------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": self.model_name, "object": "model", "owned_by": "wideseek"}]})

    def _slot(self, request: web.Request, body: dict[str, Any]) -> _Slot:
        rid = request.match_info.get("rollout") or body.get(ROLLOUT_FIELD) or DEFAULT_ROLLOUT
        slot = self._slots.get(str(rid))
        if slot is None:
            raise EndpointError(404, f"no open rollout {rid!r} on this endpoint", "NotFoundError")
        return slot

    async def _chat(self, request: web.Request) -> web.Response:
        slot: _Slot | None = None
        try:
            try:
                raw = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise EndpointError(400, "request body is not JSON") from None
            if not isinstance(raw, dict):
                raise EndpointError(400, "request body must be a JSON object")
            slot = self._slot(request, raw)
            try:
                req = ChatRequest.model_validate(raw)
            except ValidationError as e:
                raise EndpointError(400, f"invalid request: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}") from None
            body = await self.complete(req, slot)
            return web.json_response(body, dumps=lambda o: json.dumps(o, ensure_ascii=False))
        except EndpointError as e:
            if slot is not None:
                slot.stats.errors += 1
            return web.json_response(e.body(), status=e.status)

    # --- the work ------------------------------------------------------------------------------------------
    def _render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                template_kwargs: dict[str, Any]) -> list[int]:
        try:
            text = self.tokenizer.apply_chat_template(
                messages, tools=tools or None, add_generation_prompt=True, tokenize=False, **template_kwargs)
        except Exception as e:  # jinja errors, raise_exception() in the template
            raise EndpointError(400, f"chat template failed: {type(e).__name__}: {e}") from None
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _decode(self, gen: Generation, sampling: Any, want_logprobs: bool) -> tuple[str, list[str] | None]:
        ids = gen.token_ids
        if gen.finish_reason == "stop" and ids and ids[-1] in self._stop_ids:
            ids = ids[:-1]  # the stop token is trained on (it is in token_ids) but is not text
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        stops = getattr(sampling, "stop", None) or []
        if gen.finish_reason == "stop" and stops and not getattr(sampling, "include_stop_str_in_output", False):
            cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
            if cut >= 0:
                text = text[:cut]
        pieces = token_pieces(self.tokenizer, gen.token_ids) if want_logprobs else None
        return text, pieces

    def _reasoning_tokens(self, ids: list[int], thinking: bool) -> int:
        """vLLM's ``usage.completion_tokens_details.reasoning_tokens`` for the qwen3 parser: the generated
        tokens before ``</think>`` (or a ``<tool_call>``), tags and special tokens not counted."""
        if not thinking:
            return 0
        start, end, call = self._think_ids
        n = 0
        for t in ids:
            if t == end or t == call:
                break
            if t != start and t not in self._special_ids:
                n += 1
        return n

    async def complete(self, req: ChatRequest, slot: _Slot) -> dict[str, Any]:
        """One chat completion (the HTTP layer's core, callable directly)."""
        if req.n != 1:
            raise EndpointError(400, "only n=1 is supported")
        if req.stream:
            raise EndpointError(400, "streaming is not supported by the in-actor endpoint")
        loop = asyncio.get_running_loop()
        messages = normalize_messages(req.messages)
        prompt_ids = await loop.run_in_executor(
            self._pool, self._render, messages, req.tools, dict(req.chat_template_kwargs or {}))
        n_prompt = len(prompt_ids)
        asked = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
        if asked is not None and asked < 1:
            raise EndpointError(400, f"max_tokens must be at least 1, got {asked}. (parameter=max_tokens, "
                                     f"value={asked})", param="max_tokens")
        # vLLM checks max_tokens against the context, then prompt + max_tokens; by default (not strict) the
        # request's max_tokens is a cap on the room that is left instead, as if it had not been sent.
        requested = asked if (asked is not None and self.strict_max_tokens) else 0
        if requested > slot.max_length:
            slot.stats.context_rejections += 1
            raise max_tokens_error(slot.max_length, requested, param)
        if n_prompt > slot.max_length - requested:
            slot.stats.context_rejections += 1
            raise context_error(slot.max_length, n_prompt, requested)
        if n_prompt == slot.max_length:  # fits, with no room to generate: vLLM then asks for 0 tokens
            slot.stats.context_rejections += 1
            raise EndpointError(400, "max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)",
                                param="max_tokens")
        room = slot.max_length - n_prompt
        max_tokens = min(asked, room) if asked is not None else room
        cap = getattr(slot.sampling_params, "max_tokens", None)  # OpenRLHF's --rollout.max_new_tokens
        if cap:
            max_tokens = min(max_tokens, int(cap))
        stop = [req.stop] if isinstance(req.stop, str) else req.stop
        try:
            sampling = make_sampling_params(
                slot.sampling_params, n=1, max_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p,
                top_k=req.top_k, min_p=req.min_p, seed=req.seed, stop=stop,
                repetition_penalty=req.repetition_penalty, presence_penalty=req.presence_penalty,
                frequency_penalty=req.frequency_penalty, min_tokens=req.min_tokens,
                # always ask for the sampled token's logprob: rows carry the rollout logprobs
                logprobs=max(1, req.top_logprobs or 0),
            )
        except Exception as e:  # vLLM validates at construction (VLLMValidationError is not a ValueError)
            raise EndpointError(400, f"invalid sampling parameters: {e}") from None

        t0 = time.perf_counter()
        try:
            out = await slot.engine.generate(prompt_ids, sampling)
            gen = read_generation(out)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("engine.generate failed")
            raise EndpointError(500, f"generation failed: {type(e).__name__}: {e}", "InternalServerError") from None
        slot.stats.generate_seconds += time.perf_counter() - t0

        text, pieces = await loop.run_in_executor(self._pool, self._decode, gen, sampling, req.logprobs)
        # vLLM's qwen3 reasoning parser, then its hermes tool parser (auto tool choice); see hermes.py
        thinking = bool((req.chat_template_kwargs or {}).get("enable_thinking", True))
        reasoning, content = split_reasoning_vllm(text, thinking=thinking)
        tool_calls: list[dict[str, Any]] = []
        if req.tools and req.tool_choice != "none":
            parsed = parse_hermes_vllm(content or "")
            if parsed is not None:
                content, tool_calls = parsed
        # vLLM reports "tool_calls" whenever the parser found calls, whatever ended the generation
        finish = "tool_calls" if tool_calls else gen.finish_reason

        st = slot.stats
        st.calls += 1
        st.prompt_tokens += n_prompt
        st.completion_tokens += len(gen.token_ids)
        st.max_completion_tokens = max(st.max_completion_tokens, len(gen.token_ids))
        st.truncated += gen.finish_reason == "length"

        # The keys vLLM 0.29 sends, nulls included (tests/conformance compares the two field by field).
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": None,
                                   "audio": None, "function_call": None}
        if tool_calls:  # vLLM leaves the key out when there are none
            message["tool_calls"] = tool_calls
        message["reasoning"] = reasoning  # vLLM 0.29 no longer sends "reasoning_content"
        logprobs = None
        if req.logprobs:
            if gen.logprobs is None:
                raise EndpointError(500, "the engine returned no logprobs although they were requested",
                                    "InternalServerError")
            assert pieces is not None
            logprobs = {"content": [
                {"token": p, "logprob": max(lp, MIN_LOGPROB), "bytes": list(p.encode("utf-8", errors="replace")),
                 "top_logprobs": []}
                for p, lp in zip(pieces, gen.logprobs)]}
        choice: dict[str, Any] = {
            "index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish,
            "stop_reason": gen.stop_reason, "token_ids": gen.token_ids if req.return_token_ids else None,
            "routed_experts": None,
        }
        n_out = len(gen.token_ids)
        return {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model or self.model_name,
            "choices": [choice],
            "service_tier": None,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "usage": {"prompt_tokens": n_prompt, "total_tokens": n_prompt + n_out, "completion_tokens": n_out,
                      "prompt_tokens_details": None,
                      "completion_tokens_details": {"reasoning_tokens": self._reasoning_tokens(gen.token_ids,
                                                                                               thinking)}},
            "prompt_logprobs": None,
            "prompt_token_ids": prompt_ids if req.return_token_ids else None,
            "prompt_text": None,
            "kv_transfer_params": None,
            "ec_transfer_params": None,
            "metrics": None,
        }


def stats_dict(stats: RolloutStats) -> dict[str, float]:
    return {k: float(v) for k, v in asdict(stats).items()}
