"""A local OpenAI-compatible chat server that plays scripted model turns.

It stands in for a vLLM server at the one edge we cannot reach offline: the model. It speaks the real wire
protocol over real HTTP on 127.0.0.1, including vLLM's extra fields (``prompt_token_ids``,
``choices[].token_ids``, per-token ``logprobs``), SSE streaming, ``max_tokens`` truncation, context-length
rejections (HTTP 400 in vLLM's wording), injected HTTP errors, delays, and servers started without tool or
reasoning parsers (``Reply(hermes_text=True)`` puts ``<think>`` and ``<tool_call>`` text into ``content``).

Tokens come from a deterministic toy tokenizer, so ids are stable across runs and comparable in tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import re
import threading
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from ..model.hermes import render_hermes

_TOKEN = re.compile(r"\w+|[^\w\s]|\s+")


def toy_tokenize(text: str) -> list[int]:
    """Deterministic ids: one per word, punctuation mark or whitespace run."""
    return [10 + zlib.crc32(t.encode()) % 100_000 for t in _TOKEN.findall(text)]


def toy_logprob(token_id: int) -> float:
    return -((token_id % 97) + 1) / 100.0


def _dumps(obj: Any) -> bytes:  # orjson: JSON costs the harness a third of what json costs
    return orjson.dumps(obj)


_loads = orjson.loads


_LOGPROB_ENTRIES: dict[int, dict[str, Any]] = {}


def _logprob_entry(token_id: int) -> dict[str, Any]:
    """vLLM's per-token logprob object; shared per id (never mutated) so a long reply costs no new dicts."""
    e = _LOGPROB_ENTRIES.get(token_id)
    if e is None:
        if len(_LOGPROB_ENTRIES) > 200_000:
            _LOGPROB_ENTRIES.clear()
        e = _LOGPROB_ENTRIES[token_id] = {
            "token": str(token_id),
            "logprob": toy_logprob(token_id),
            "bytes": None,
            "top_logprobs": [],
        }
    return e


@dataclass
class Reply:
    """One scripted model turn (or an injected failure)."""

    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    status: int = 200
    error: str | None = None
    delay: float = 0.0
    hermes_text: bool = False
    headers: dict[str, str] = field(default_factory=dict)


Policy = Callable[[dict[str, Any]], Reply | Awaitable[Reply]]


@dataclass
class LatencyModel:
    """Seconds a request takes: fixed cost plus per generated token, growing with requests in flight
    (a crude model of continuous batching: each extra concurrent sequence slows every decode step)."""

    base: float = 0.0
    per_token: float = 0.0
    per_token_inflight: float = 0.0
    # Charge this many generated tokens for every request instead of the real count: fixed work per call, so
    # a benchmark's wall time does not grow just because one reply (a long final table) is longer.
    fixed_tokens: int | None = None

    def __call__(self, inflight: int, completion_tokens: int) -> float:
        n = completion_tokens if self.fixed_tokens is None else self.fixed_tokens
        return self.base + n * (self.per_token + self.per_token_inflight * max(0, inflight - 1))


@dataclass
class ServerStats:
    requests: int = 0
    errors: int = 0
    inflight: int = 0
    peak_inflight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Filled only with ``track_prefix=True``: per role, bytes of rendered prompt, and bytes of it that repeat
    # an earlier request of the same role (see PrefixTracker); ``prefix_samples`` keeps (role, total bytes,
    # shared bytes, turn, reusable bytes) per request: turn counts the assistant messages already in the
    # context; reusable is what an earlier request could have cached (everything before the newest reply, or
    # the tools and system prompt on a first turn), so shared/reusable shows re-serialisation losses.
    prompt_bytes: dict[str, int] = field(default_factory=dict)
    shared_prefix_bytes: dict[str, int] = field(default_factory=dict)
    prefix_samples: list[tuple[str, int, int, int, int]] = field(default_factory=list)


def request_role(body: dict[str, Any]) -> str:
    """Which agent sent a request, told by its tools: ``lead``, ``subagent``, ``summarizer`` (no tools)."""
    names = {t.get("function", {}).get("name") for t in body.get("tools") or []}
    if "create_sub_agents" in names:
        return "lead"
    if names & {"search", "access"}:
        return "subagent"
    return "summarizer" if not names else "other"


class PrefixTracker:
    """How much of each prompt a prefix cache could reuse, the way vLLM's automatic prefix caching sees it:
    the prompt is cut into fixed-size blocks, each block is identified by a hash chained over every block
    before it, and a request reuses its leading blocks whose chained hashes an earlier request of the same
    role produced. Works on bytes of the rendered prompt (64-byte blocks, about 16 tokens, vLLM's default)."""

    def __init__(self, block: int = 64) -> None:
        self.block = block
        self._seen: dict[str, set[int]] = {}

    def observe(self, role: str, prompt: bytes) -> int:
        """Record ``prompt``; return how many of its leading bytes were already cached for ``role``."""
        seen = self._seen.setdefault(role, set())
        h, shared, hit = 0, 0, True
        for i in range(0, len(prompt) - len(prompt) % self.block, self.block):
            h = hash((h, prompt[i : i + self.block]))
            if hit and h in seen:
                shared = i + self.block
            else:
                hit = False
                seen.add(h)
        return shared


def render_parts(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[str]:
    """The rendering of a request, one string per message (plus the tools block and the generation prompt).

    Every part starts with ``<`` and ends with ``>`` or a newline after ``>``, so no toy token spans two
    parts: tokenizing part by part gives exactly the ids of tokenizing the whole prompt, and lets the server
    cache the ids of messages it has seen before (agents resend their whole history every turn).
    """
    parts = []
    if tools:
        parts.append("<tools>" + json.dumps(tools, sort_keys=True, ensure_ascii=False) + "</tools>")
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        part = [f"<|im_start|>{m.get('role')}\n"]
        if m.get("reasoning_content"):
            part.append(f"<think>{m['reasoning_content']}</think>")
        part.append(content or "")
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function", {})
            part.append(f"<tool_call>{fn.get('name')}{fn.get('arguments')}</tool_call>")
        part.append("<|im_end|>\n")
        parts.append("".join(part))
    parts.append("<|im_start|>assistant\n")
    return parts


def render_prompt(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    """A stable text rendering of a request, for toy prompt token ids (not a real chat template)."""
    return "".join(render_parts(messages, tools))


class _TokenCache:
    """Toy token ids per rendered part, bounded (cleared when full: it only saves time, never changes ids)."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._ids: dict[str, list[int]] = {}

    def ids(self, parts: list[str]) -> list[int]:
        out: list[int] = []
        for part in parts:
            got = self._ids.get(part)
            if got is None:
                if len(self._ids) >= self.max_entries:
                    self._ids.clear()
                got = self._ids[part] = toy_tokenize(part)
            out += got
        return out


class FakeOpenAIServer:
    """``async with FakeOpenAIServer(policy) as srv: ... srv.base_url ...``

    ``policy(request_json)`` returns a :class:`Reply` (sync or async). ``srv.requests`` keeps every request
    body in arrival order; ``srv.completions`` every (request, response body) pair the server answered with
    HTTP 200, in completion order. ``max_context`` makes over-long requests fail the way vLLM does.

    Replies name the model the request asked for, as vLLM does; ``echo_model=False`` makes every reply name
    ``model`` instead (``wideseek simulate`` uses it so that every reply says it came from a simulation).
    ``port=0`` (the default) listens on a free port of 127.0.0.1; the server never binds another address.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        model: str = "fake-model",
        echo_model: bool = True,
        port: int = 0,
        latency: LatencyModel | None = None,
        max_context: int | None = None,
        api_key: str | None = None,
        record_requests: bool = True,
        track_prefix: bool = False,
    ) -> None:
        self.policy = policy
        self.model = model
        self.echo_model = echo_model
        self._bind_port = port
        self.latency = latency
        self.max_context = max_context
        self.api_key = api_key
        self.record_requests = record_requests
        self.requests: list[dict[str, Any]] = []
        self.completions: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.stats = ServerStats()
        self.prefix = PrefixTracker() if track_prefix else None
        self._tokens = _TokenCache()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/stats", self._stats)
        app.router.add_post("/stats/reset", self._reset_stats)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._bind_port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start_in_thread(self) -> ThreadedServer:
        """Run the server on its own loop in a daemon thread (for sync code and subprocess tests)."""
        return ThreadedServer(self)

    # --- handlers ------------------------------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _stats(self, request: web.Request) -> web.Response:
        """Counters as JSON, for a server running in another process (benchmarks)."""
        return web.json_response(dataclasses.asdict(self.stats))

    async def _reset_stats(self, request: web.Request) -> web.Response:
        inflight = self.stats.inflight
        self.stats = ServerStats(inflight=inflight)
        self.requests.clear()
        if self.prefix is not None:
            self.prefix = PrefixTracker(self.prefix.block)
        return web.json_response({"ok": True})

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
        self.stats.errors += 1
        body = {
            "object": "error",
            "message": message,
            "type": "BadRequestError" if status == 400 else "Error",
            "code": status,
        }
        return web.json_response(body, status=status, headers=headers)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "invalid API key")
        try:
            body = await request.json(loads=_loads)
        except json.JSONDecodeError:
            return self._error(400, "request body is not JSON")
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return self._error(400, "'messages' must be a non-empty list")
        if self.record_requests:
            self.requests.append(body)
        self.stats.requests += 1
        self.stats.inflight += 1
        self.stats.peak_inflight = max(self.stats.peak_inflight, self.stats.inflight)
        started = time.perf_counter()
        try:
            reply = self.policy(body)
            if inspect.isawaitable(reply):
                reply = await reply
            return await self._respond(request, body, reply, started)
        finally:
            self.stats.inflight -= 1

    async def _respond(
        self, request: web.Request, body: dict, reply: Reply, started: float
    ) -> web.StreamResponse:
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            return self._error(reply.status, reply.error or f"injected HTTP {reply.status}", reply.headers)

        parts = render_parts(body["messages"], body.get("tools"))
        prompt_ids = self._tokens.ids(parts)
        if self.prefix is not None:
            role, raw_prompt = request_role(body), "".join(parts).encode()
            shared = self.prefix.observe(role, raw_prompt)
            st = self.stats
            st.prompt_bytes[role] = st.prompt_bytes.get(role, 0) + len(raw_prompt)
            st.shared_prefix_bytes[role] = st.shared_prefix_bytes.get(role, 0) + shared
            msgs = body["messages"]
            turn = sum(1 for m in msgs if m.get("role") == "assistant")
            # What a prompt-stable client lets the cache reuse: everything the previous turn already sent (all
            # before the newest assistant reply), or on a first turn the tools and system prompt.
            last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=None)
            keep = last if last is not None else sum(1 for m in msgs if m.get("role") == "system")
            head = 1 if body.get("tools") else 0
            reusable = sum(len(p.encode()) for p in parts[: head + keep])
            st.prefix_samples.append((role, len(raw_prompt), shared, turn, reusable))
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if self.max_context is not None:
            want = len(prompt_ids) + (max_tokens or 0)
            if len(prompt_ids) >= self.max_context or want > self.max_context:
                return self._error(
                    400,
                    f"This model's maximum context length is {self.max_context} tokens. However, you "
                    f"requested "
                    f"{want} tokens ({len(prompt_ids)} in the messages, {max_tokens or 0} in the "
                    f"completion). "
                    "Please reduce the length of the messages or completion.",
                )

        # The raw generated text, as the model would emit it before any server-side parsing.
        raw = ""
        if reply.reasoning is not None:
            raw += f"<think>\n{reply.reasoning}\n</think>\n\n"
        raw += reply.content or ""
        for tc in reply.tool_calls:
            args = tc.get("arguments", {})
            raw += ("\n" if raw else "") + (
                render_hermes(tc["name"], args)
                if isinstance(args, dict)
                else f"<tool_call>\n{args}\n</tool_call>"
            )
        completion_ids = toy_tokenize(raw)
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        content, reasoning, tool_calls = reply.content, reply.reasoning, reply.tool_calls
        if max_tokens is not None and len(completion_ids) > max_tokens:
            completion_ids = completion_ids[:max_tokens]
            truncated = "".join(_TOKEN.findall(raw)[:max_tokens])
            content, reasoning, tool_calls, finish = truncated, None, [], "length"
            if reply.hermes_text is False and "</think>" in truncated:
                reasoning, content = truncated.split("</think>", 1)
                reasoning = reasoning.replace("<think>", "").strip()
        self.stats.prompt_tokens += len(prompt_ids)
        self.stats.completion_tokens += len(completion_ids)

        if self.latency is not None:
            await asyncio.sleep(self.latency(self.stats.inflight, len(completion_ids)))

        message: dict[str, Any] = {"role": "assistant"}
        if reply.hermes_text:
            message["content"] = raw if finish != "length" else content
            message["tool_calls"] = []
        else:
            message["content"] = content
            if reasoning is not None:
                message["reasoning_content"] = reasoning
            message["tool_calls"] = [
                {
                    "id": f"chatcmpl-tool-{uuid.uuid4().hex[:16]}",
                    "type": "function",
                    "function": {
                        "name": tc["name"],
                        "arguments": tc["arguments"]
                        if isinstance(tc.get("arguments"), str)
                        else json.dumps(tc.get("arguments", {}), ensure_ascii=False),
                    },
                }
                for tc in tool_calls
            ]
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
        if body.get("return_token_ids"):
            choice["token_ids"] = completion_ids
        if body.get("logprobs"):
            choice["logprobs"] = {"content": [_logprob_entry(t) for t in completion_ids]}
        usage = {
            "prompt_tokens": len(prompt_ids),
            "completion_tokens": len(completion_ids),
            "total_tokens": len(prompt_ids) + len(completion_ids),
        }
        resp: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model) if self.echo_model else self.model,
            "choices": [choice],
            "usage": usage,
        }
        if body.get("return_token_ids"):
            resp["prompt_token_ids"] = prompt_ids
        if self.record_requests:
            self.completions.append((body, resp))
        if body.get("stream"):
            return await self._stream(
                request, resp, include_usage=bool((body.get("stream_options") or {}).get("include_usage"))
            )
        return web.Response(body=_dumps(resp), content_type="application/json")

    async def _stream(
        self, request: web.Request, resp: dict[str, Any], include_usage: bool
    ) -> web.StreamResponse:
        """The reply as vLLM streams it: a first chunk with the role (and ``prompt_token_ids``), then one
        chunk per toy token of the reasoning and the content, each tool call as a header chunk and an
        arguments chunk, the completion's token ids and logprobs spread over those chunks in order, a chunk
        with the finish reason, and the usage when ``stream_options.include_usage`` asks for it."""
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        choice = resp["choices"][0]
        msg = choice["message"]
        base = {
            "id": resp["id"],
            "object": "chat.completion.chunk",
            "created": resp["created"],
            "model": resp["model"],
        }

        async def send(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> None:
            c = {"index": 0, "delta": delta, "finish_reason": finish}
            c.update((k, v) for k, v in extra.items() if k != "top")
            chunk = {**base, "choices": [c], **extra.get("top", {})}
            await out.write(b"data: " + _dumps(chunk) + b"\n\n")

        deltas: list[dict[str, Any]] = []
        for key in ("reasoning_content", "content"):
            deltas += [{key: piece} for piece in _TOKEN.findall(msg.get(key) or "")]
        for i, tc in enumerate(msg.get("tool_calls") or []):
            fn = tc["function"]
            head = {"index": i, "id": tc["id"], "type": "function", "function": {"name": fn["name"]}}
            args = {"index": i, "function": {"arguments": fn["arguments"]}}
            deltas += [{"tool_calls": [head]}, {"tool_calls": [args]}]
        ids = choice.get("token_ids")
        lps = choice.get("logprobs")
        n = len(ids) if ids is not None else len(lps["content"]) if lps is not None else 0
        k = max(len(deltas), 1)
        top = {"prompt_token_ids": resp["prompt_token_ids"]} if "prompt_token_ids" in resp else {}
        await send({"role": "assistant", "content": ""}, top=top)
        for j in range(k):
            lo, hi = j * n // k, (j + 1) * n // k
            extra: dict[str, Any] = {}
            if ids is not None:
                extra["token_ids"] = ids[lo:hi]
            if lps is not None:
                extra["logprobs"] = {"content": lps["content"][lo:hi]}
            await send(deltas[j] if j < len(deltas) else {}, **extra)
        await send({}, choice["finish_reason"])
        if include_usage:
            await out.write(b"data: " + _dumps({**base, "choices": [], "usage": resp["usage"]}) + b"\n\n")
        await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out


class ThreadedServer:
    """A :class:`FakeOpenAIServer` running on a private loop in a daemon thread."""

    def __init__(self, server: FakeOpenAIServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(server.start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-openai-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake server did not start")

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def stop(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop)
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> ThreadedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
