"""Servers that misbehave, on 127.0.0.1: endless and oversized replies are cut off at ``max_reply_bytes`` and
not retried, a hung server is reported while it hangs and given up on after one retry, malformed endpoint URLs
fail at start-up, and the main key never goes to a summariser on another host (issue 13)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from langgraph_wideseek import WideSeekConfig, WideSeekGraph
from langgraph_wideseek.errors import BackendError, JudgeError, ModelUnavailableError, ReplyTooLarge
from langgraph_wideseek.eval import OpenAIJudge
from langgraph_wideseek.model import ChatVLLM
from langgraph_wideseek.model.transport import OpenAITransport
from langgraph_wideseek.runtime import RetryPolicy
from langgraph_wideseek.tools.retriever import RetrieverClient

LIMIT = 64 * 1024
FAST = RetryPolicy(retries=4, base_delay=0.001, max_delay=0.001)


class Hostile:
    """A server whose every route runs ``handler``; counts the requests it got."""

    def __init__(self, handler: Callable[[web.Request], Any]) -> None:
        self.handler = handler
        self.requests = 0
        self.headers: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _any(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.headers.append(dict(request.headers))
        await request.read()
        result: web.StreamResponse = await self.handler(request)
        return result

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self.runner = web.AppRunner(
            app, handle_signals=False, shutdown_timeout=0.1, handler_cancellation=True
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def hostile() -> AsyncIterator[Callable[..., Any]]:
    started: list[Hostile] = []

    async def start(handler: Callable[[web.Request], Any]) -> Hostile:
        h = Hostile(handler)
        await h.start()
        started.append(h)
        return h

    yield start
    for h in started:
        await h.stop()


async def endless(request: web.Request) -> web.StreamResponse:
    """HTTP 200 with a chunked body that never ends."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    chunk = b'{"choices": [' + b" " * 65_000
    try:
        while True:
            await resp.write(chunk)
    except (ConnectionResetError, RuntimeError):
        pass
    return resp


async def huge_declared(request: web.Request) -> web.StreamResponse:
    """A 300 MB Content-Length (the body would follow)."""
    resp = web.StreamResponse(status=200, headers={"Content-Length": str(300 * 1024 * 1024)})
    await resp.prepare(request)
    try:
        await resp.write(b"{" + b" " * 1000)
        await asyncio.sleep(5)
    except (ConnectionResetError, RuntimeError):
        pass
    return resp


async def hang(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.json_response({})


@pytest.mark.parametrize("handler", [endless, huge_declared])
async def test_an_oversized_model_reply_is_cut_off_and_not_retried(hostile, handler):
    srv = await hostile(handler)
    llm = ChatVLLM(base_url=srv.url + "/v1", model="m", max_reply_bytes=LIMIT, retry_base_delay=0.001)
    try:
        with pytest.raises(ReplyTooLarge, match="max_reply_bytes"):
            await asyncio.wait_for(llm.apost({"model": "m", "messages": []}), 10)
    finally:
        await llm.aclose()
    assert srv.requests == 1


async def endless_events(request: web.Request) -> web.StreamResponse:
    """A server-sent event stream of chunks that never sends ``[DONE]``."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    event = b'data: {"choices": [{"index": 0, "delta": {"content": "x"}}]}\n\n'
    try:
        while True:
            await resp.write(event * 200)
    except (ConnectionResetError, RuntimeError):
        pass
    return resp


async def test_an_endless_stream_is_cut_off_at_the_same_limit(hostile):
    srv = await hostile(endless_events)
    llm = ChatVLLM(base_url=srv.url + "/v1", model="m", max_reply_bytes=LIMIT, retry_base_delay=0.001)
    chunks = 0
    try:
        with pytest.raises(ReplyTooLarge, match="streamed reply exceeded max_reply_bytes"):
            async with asyncio.timeout(10):
                async for _ in llm.astream("hi"):
                    chunks += 1
    finally:
        await llm.aclose()
    assert srv.requests == 1
    assert 0 < chunks < LIMIT // 50  # what arrived before the limit was passed on, and no more


async def test_the_judge_and_the_retriever_cut_oversized_replies_too(hostile):
    srv = await hostile(endless)
    judge = OpenAIJudge(srv.url + "/v1", "j", retry=FAST, max_reply_bytes=LIMIT)
    try:
        with pytest.raises(JudgeError, match="max_reply_bytes"):
            await asyncio.wait_for(judge.complete("hi"), 10)
    finally:
        await judge.aclose()
    client = RetrieverClient(srv.url, retry=FAST, max_reply_bytes=LIMIT)
    try:
        with pytest.raises(BackendError, match="max_reply_bytes"):
            await asyncio.wait_for(client.retrieve(["q"], 3), 10)
    finally:
        await client.aclose()
    assert srv.requests == 2  # one each: an oversized reply is final


async def test_a_hung_server_is_reported_while_it_hangs_and_given_up_after_one_retry(hostile, caplog):
    srv = await hostile(hang)
    transport = OpenAITransport(srv.url + "/v1", timeout=0.6, retry=FAST, progress_interval=0.2)
    caplog.set_level(logging.WARNING, logger="langgraph_wideseek.model.transport")
    try:
        with pytest.raises(ModelUnavailableError, match="no reply; a timeout is retried once"):
            await asyncio.wait_for(transport.post("/chat/completions", {}), 10)
    finally:
        await transport.aclose()
    assert srv.requests == 2  # the first attempt and one retry, not max_retries + 1
    waiting = [r.getMessage() for r in caplog.records if "waiting for the model server" in r.getMessage()]
    assert waiting and srv.url in waiting[0]


def test_default_worst_case_for_a_hung_server_is_minutes():
    cfg = WideSeekConfig()
    llm = ChatVLLM.from_config(cfg)
    t = llm.transport()
    worst = (t.timeout_retries + 1) * t.timeout + t.retry.max_delay
    assert worst <= 11 * 60 and t.connect_timeout <= 10 and t.progress_interval <= 30
    # a server that answers nothing at all is found out much sooner, by the liveness probe
    assert t.first_response_timeout + t.probe_timeout <= 75


async def test_a_hung_server_fails_at_the_first_response_timeout_not_the_total_one(hostile):
    srv = await hostile(hang)  # every route hangs, /v1/models too
    transport = OpenAITransport(
        srv.url + "/v1", timeout=30, retry=FAST, first_response_timeout=0.3, probe_timeout=0.3
    )
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        with pytest.raises(ModelUnavailableError, match="looks hung"):
            await asyncio.wait_for(transport.post("/chat/completions", {}), 10)
    finally:
        await transport.aclose()
    assert loop.time() - t0 < 3  # 0.3 s of waiting + a 0.3 s probe, not the 30 s request timeout
    assert srv.requests == 2  # the request and one probe; a hung server is not asked again


async def test_a_slow_but_alive_server_is_waited_for(hostile):
    probes = []

    async def slow_chat(request: web.Request) -> web.Response:
        if request.path.endswith("/models"):
            probes.append(request.method)
            return web.json_response({"object": "list", "data": []})
        await asyncio.sleep(1.2)  # a long generation: longer than the first-response timeout
        return web.json_response({"ok": True})

    srv = await hostile(slow_chat)
    transport = OpenAITransport(
        srv.url + "/v1", timeout=30, retry=FAST, first_response_timeout=0.3, probe_timeout=0.3
    )
    try:
        assert await asyncio.wait_for(transport.post("/chat/completions", {}), 10) == {"ok": True}
    finally:
        await transport.aclose()
    assert probes and set(probes) == {"GET"} and srv.requests == 1 + len(probes)  # one generation, no retry


BAD_URLS = ["localhost:8000/v1", "http://", "htp://x/v1", "http://a:99999/v1", "http://a b"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_malformed_base_urls_fail_at_start_up_with_their_name(url):
    for field in ("base_url", "summary_base_url", "retriever_url", "tavily_base_url"):
        with pytest.raises(ValidationError, match=field):
            WideSeekConfig(**{field: url})
    with pytest.raises(ValueError, match="judge"):
        OpenAIJudge(url, "j")


def test_the_main_key_never_goes_to_a_summariser_on_another_host(corpus_path, index_dir):
    main = "http://127.0.0.1:9001/v1"
    base = dict(base_url=main, api_key="sk-main-0001", corpus=corpus_path, index_dir=index_dir)
    other = WideSeekGraph(WideSeekConfig(**base, summary_base_url="http://127.0.0.1:9002/v1"))
    assert other.access_tool.summarizer is not None
    assert other.access_tool.summarizer.llm.api_key is None
    own = WideSeekGraph(
        WideSeekConfig(**base, summary_base_url="http://127.0.0.1:9002/v1", summary_api_key="sk-sum")
    )
    assert own.access_tool.summarizer.llm.api_key.get_secret_value() == "sk-sum"
    same = WideSeekGraph(WideSeekConfig(**base, summary_base_url="http://127.0.0.1:9001/other/v1"))
    assert same.access_tool.summarizer.llm.api_key.get_secret_value() == "sk-main-0001"


async def test_a_summariser_on_another_host_receives_no_authorization_header(hostile, serve, corpus_path):
    """End to end: the summariser's server sees no key (it had received ``Bearer sk-...`` before)."""
    summariser = await hostile(
        lambda r: _json({"choices": [{"message": {"role": "assistant", "content": "a summary"}}]})
    )
    cfg = WideSeekConfig(
        base_url="http://127.0.0.1:9/v1",
        api_key="sk-main-0002",
        summary_base_url=summariser.url + "/v1",
        corpus=corpus_path,
    )
    graph = WideSeekGraph(cfg)
    try:
        summary = await graph.access_tool.summarizer.summarize("https://x", "page text", "what")
    finally:
        await graph.aclose()
    assert summary == "a summary"
    assert summariser.headers and "Authorization" not in summariser.headers[0]


async def _json(obj: Any) -> web.Response:
    return web.json_response(obj)


@pytest.mark.parametrize("handler", [endless, huge_declared])
async def test_tavily_replies_are_cut_off_too(hostile, handler):
    from langgraph_wideseek.tools.tavily import TavilyAPI, TavilySearch

    srv = await hostile(handler)
    search = TavilySearch(TavilyAPI("tvly-k", base_url=srv.url, retry=FAST, max_reply_bytes=LIMIT))
    try:
        with pytest.raises(BackendError, match="max_reply_bytes"):
            await asyncio.wait_for(search.search("q", 3), 10)
    finally:
        await search.aclose()
    assert srv.requests == 1
