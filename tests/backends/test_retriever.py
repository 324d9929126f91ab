"""The retrieval-server client against an RLinf-style stand-in (with injected failures) and against our own
``serve-index`` server over a real local index."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from langgraph_wideseek.config import WideSeekConfig
from langgraph_wideseek.runtime import RetryPolicy
from langgraph_wideseek.tools.base import BackendError, PageNotFound
from langgraph_wideseek.tools.factory import BackendConfigError, build_backends
from langgraph_wideseek.tools.local import LocalIndex
from langgraph_wideseek.tools.retriever import RetrieverClient, RetrieverReader, RetrieverSearch, split_title
from langgraph_wideseek.tools.retriever_server import RetrievalServer

from .stand_ins import RetrievalStandIn, serve

FAST = RetryPolicy(retries=2, base_delay=0.01, max_delay=0.02)
PAGES = {
    "https://en.wikipedia.org/wiki/Danube": '"Danube"\nThe Danube is a river in Europe, 2850 km long.',
    "https://en.wikipedia.org/wiki/Rhine": '"Rhine"\nThe Rhine is a river in Europe, 1230 km long.',
    "https://en.wikipedia.org/wiki/Nile": '"Nile"\nThe Nile is a river in Africa, 6650 km long.',
}


@pytest.fixture
async def stand_in():
    s = RetrievalStandIn(dict(PAGES))
    async with serve(s.app()) as base:
        yield s, base


def client(base: str, **kw) -> RetrieverClient:
    kw.setdefault("retry", FAST)
    return RetrieverClient(base, **kw)


def test_split_title() -> None:
    assert split_title('"Danube"\nThe Danube is long.') == ("Danube", "The Danube is long.")
    assert split_title("No title here\nsecond line") == ("", "No title here\nsecond line")
    assert split_title('"Only a quote') == ("", '"Only a quote')


async def test_search_and_read(stand_in) -> None:
    s, base = stand_in
    c = client(base)
    search, reader = RetrieverSearch(c), RetrieverReader(c)
    hits = await search.search("danube river europe", 2)
    assert [h.url for h in hits][0] == "https://en.wikipedia.org/wiki/Danube" and len(hits) == 2
    assert hits[0].title == "Danube" and hits[0].score == 1.0
    assert hits[0].snippet == "The Danube is a river in Europe, 2850 km long."  # title line not repeated
    assert s.requests[0] == (
        "/retrieve",
        {"queries": ["danube river europe"], "topk": 2, "return_scores": True},
    )
    page = await reader.read("https://en.wikipedia.org/wiki/Nile")
    assert page.title == "Nile" and "6650 km" in page.text
    with pytest.raises(PageNotFound, match="not in the retrieval server's corpus"):
        await reader.read("https://en.wikipedia.org/wiki/Missing")
    await c.aclose()


async def test_concurrent_calls_are_batched_and_deduplicated(stand_in) -> None:
    s, base = stand_in
    c = client(base, max_wait=0.01)
    queries = [("danube", 1), ("nile", 3), ("rhine", 2), ("danube", 1)]
    results = await asyncio.gather(*(c.search(q, k) for q, k in queries))
    assert [len(r) for r in results] == [1, 3, 2, 1]
    assert results[1][0].url.endswith("/Nile") and results[0] == results[3]
    assert s.requests == [
        ("/retrieve", {"queries": ["danube", "nile", "rhine"], "topk": 3, "return_scores": True})
    ]
    urls = list(PAGES) + ["https://x/none", list(PAGES)[0]]
    pages = await asyncio.gather(*(c.read(u) for u in urls), return_exceptions=True)
    assert s.requests[1] == ("/access", {"urls": urls[:4]})
    assert isinstance(pages[3], PageNotFound) and pages[4].text == pages[0].text
    await c.aclose()


async def test_batches_are_capped(stand_in) -> None:
    s, base = stand_in
    c = client(base, max_batch=2, max_wait=0.01)
    await asyncio.gather(*(c.search(f"q{i}", 1) for i in range(5)))
    assert [len(body["queries"]) for _, body in s.requests] == [2, 2, 1]
    await c.aclose()


async def test_servers_without_scores_are_understood(stand_in) -> None:
    s, base = stand_in
    s.scores = False
    hits = await client(base).search("nile", 1)
    assert hits[0].url.endswith("/Nile") and hits[0].score is None


async def test_429_and_5xx_are_retried_then_reported(stand_in) -> None:
    s, base = stand_in
    c = client(base)
    s.fail += [("/retrieve", 429), ("/retrieve", 503)]
    assert len(await c.search("nile", 1)) == 1
    assert len(s.requests) == 3
    s.fail += [("/access", 500)] * 3
    with pytest.raises(BackendError, match="HTTP 500") as err:
        await c.read(list(PAGES)[0])
    assert err.value.retryable and len(s.requests) == 6
    s.fail.append(("/retrieve", 422))
    with pytest.raises(BackendError, match="rejected the request \\(HTTP 422\\)"):
        await c.search("nile", 1)
    await c.aclose()


async def test_bad_replies_and_dead_servers_are_reported() -> None:

    from aiohttp import web

    async def wrong_length(request: web.Request) -> web.Response:
        return web.json_response({"result": []})

    async def not_json(request: web.Request) -> web.Response:
        return web.Response(text="<html>proxy error</html>")

    app = web.Application()
    app.router.add_post("/retrieve", wrong_length)
    app.router.add_post("/access", not_json)
    async with serve(app) as broken:
        c = client(broken)
        with pytest.raises(BackendError, match="unexpected reply to /retrieve"):
            await c.search("q", 1)
        with pytest.raises(BackendError, match="invalid JSON"):
            await c.read("https://x/")
        await c.aclose()
    dead = client("http://127.0.0.1:9", retry=RetryPolicy(retries=1, base_delay=0.01))
    with pytest.raises(BackendError, match="could not reach") as err:
        await dead.search("q", 1)
    assert err.value.retryable
    await dead.aclose()


async def test_in_flight_requests_are_bounded(stand_in) -> None:
    s, base = stand_in
    s.delay = 0.05
    c = client(base + "/", concurrency=2, max_batch=1, max_wait=0)
    inflight = []

    async def one(i: int) -> None:
        await c.search(f"q{i}", 1)

    async def watch() -> None:
        for _ in range(20):
            inflight.append(c._slots.in_use())
            await asyncio.sleep(0.01)

    await asyncio.gather(watch(), *(one(i) for i in range(6)))
    assert max(inflight) == 2 and len(s.requests) == 6
    await c.aclose()


def test_factory_builds_retriever_backends() -> None:
    search, reader = build_backends(
        WideSeekConfig(search="retriever", retriever_url="http://127.0.0.1:8000/")
    )
    assert isinstance(search, RetrieverSearch) and isinstance(reader, RetrieverReader)
    assert search.client is reader.client and search.client.base_url == "http://127.0.0.1:8000"
    with pytest.raises(BackendConfigError, match="retriever_url"):
        build_backends(WideSeekConfig(search="retriever"))
    with pytest.raises(ValueError, match="http"):
        RetrieverClient("127.0.0.1:8000")


# -- against our own server over a real tantivy index --------------------------------------------------------


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    rows = [
        {
            "url": "https://w.example/Danube",
            "title": "Danube",
            "text": "The Danube is Europe's second-longest river at 2850 km. It flows through Vienna and "
            "Budapest.",
        },
        {
            "url": "https://w.example/Rhine",
            "title": "Rhine",
            "text": "The Rhine rises in the Swiss Alps and flows 1230 km to the North Sea.",
        },
        {
            "url": "https://w.example/Nile",
            "title": "Nile",
            "text": "The Nile is a major north-flowing river in northeastern Africa, about 6650 km long.",
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


async def test_round_trip_through_serve_index(corpus: Path, tmp_path: Path) -> None:
    index = LocalIndex.open(corpus, tmp_path / "idx")
    async with RetrievalServer(index, port=0) as server:
        c = client(server.url)
        hits = await c.search("river Vienna Budapest", 2)
        assert hits[0].url == "https://w.example/Danube" and hits[0].title == "Danube"
        assert "2850 km" in hits[0].snippet and hits[0].score and hits[0].score > 0
        page = await RetrieverReader(c).read("https://w.example/Nile")
        assert page.title == "Nile" and "6650 km" in page.text
        with pytest.raises(PageNotFound):
            await c.read("https://w.example/Amazon")
        await c.aclose()


async def test_one_client_serves_successive_event_loops(stand_in) -> None:
    s, base = stand_in
    c = client(base)

    async def search_and_close() -> str:
        try:
            return (await c.search("nile", 1))[0].url
        finally:
            await c.aclose()

    urls = await asyncio.to_thread(lambda: [asyncio.run(search_and_close()) for _ in range(2)])
    assert urls == ["https://en.wikipedia.org/wiki/Nile"] * 2 and len(s.requests) == 2
