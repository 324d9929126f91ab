"""Tavily search and extract through the real ``AsyncTavilyClient`` against a local stand-in of Tavily's
API."""

from __future__ import annotations

import asyncio
import logging

import pytest

from langgraph_wideseek.config import WideSeekConfig
from langgraph_wideseek.runtime import RetryPolicy
from langgraph_wideseek.tools.base import BackendError, PageNotFound
from langgraph_wideseek.tools.page_cache import PageCache
from langgraph_wideseek.tools.tavily import TavilyAPI, TavilyReader, TavilySearch, build_tavily_backends

from .stand_ins import TavilyStandIn, serve

KEY = "tvly-dev-SECRETKEY0123456789abcdef"
FAST = RetryPolicy(retries=2, base_delay=0.01, max_delay=0.02)


@pytest.fixture
async def tavily():
    stand_in = TavilyStandIn(
        api_key=KEY,
        pages={
            "https://en.wikipedia.org/wiki/Danube": (
                "# Danube\n\n| River | Length |\n|---|---|\n| Danube | 2850 km |"
            ),
            "https://example.org/a": "Page A text.",
            "https://example.org/b/": "Page B text.",
        },
    )
    async with serve(stand_in.app()) as base:
        yield stand_in, base


def api(base: str, key: str | None = KEY, **kw) -> TavilyAPI:
    kw.setdefault("retry", FAST)
    return TavilyAPI(key, base_url=base, **kw)


async def test_search_sends_count_as_max_results_and_maps_results(tavily) -> None:
    stand_in, base = tavily
    search = TavilySearch(api(base))
    hits = await search.search("danube length", 4)
    assert [h.url for h in hits] == [f"https://example.org/danube-length/{i}" for i in range(1, 5)]
    assert hits[0].title == "danube length result 1" and hits[0].snippet == "Snippet 1 about danube length."
    assert hits[0].score == pytest.approx(0.8)
    path, body, headers = stand_in.requests[-1]
    assert path == "/search" and body["query"] == "danube length" and body["max_results"] == 4
    assert body["search_depth"] == "basic" and headers["Authorization"] == f"Bearer {KEY}"
    assert len(await search.search("q", 50)) == 20  # Tavily's own maximum
    assert stand_in.requests[-1][1]["max_results"] == 20
    await search.aclose()


async def test_concurrent_reads_share_one_extract_request(tavily) -> None:
    stand_in, base = tavily
    reader = TavilyReader(api(base))
    urls = [
        "https://en.wikipedia.org/wiki/Danube",
        "https://example.org/a",
        "https://example.org/b",
        "https://example.org/nope",
        "https://example.org/a",
    ]
    results = await asyncio.gather(*(reader.read(u) for u in urls), return_exceptions=True)
    extracts = [r for r in stand_in.requests if r[0] == "/extract"]
    assert len(extracts) == 1
    assert extracts[0][1]["urls"] == urls[:4] and extracts[0][1]["format"] == "markdown"
    assert "| Danube | 2850 km |" in results[0].text and results[0].url == urls[0]
    assert results[1].text == "Page A text." and results[4].text == "Page A text."
    assert results[2].text == "Page B text."  # Tavily's echo "…/b/" still matches "…/b"
    assert isinstance(results[3], BackendError) and "could not extract" in str(results[3])
    await reader.aclose()


async def test_url_missing_from_both_lists_is_not_found(tavily) -> None:
    stand_in, base = tavily

    # A reply that lists the URL neither as a result nor as a failure.
    reader = TavilyReader(api(base))
    stand_in.fail.append(("/extract", 200, {"results": [], "failed_results": []}))
    with pytest.raises(PageNotFound, match="returned nothing"):
        await reader.read("https://example.org/a")


async def test_rate_limits_and_server_errors_are_retried(tavily) -> None:
    stand_in, base = tavily
    search = TavilySearch(api(base))
    stand_in.fail += [
        ("/search", 429, {"detail": {"error": "rate limit"}}),
        ("/search", 502, {"detail": "bad gw"}),
    ]
    assert len(await search.search("q", 2)) == 2
    assert [r[0] for r in stand_in.requests] == ["/search"] * 3

    stand_in.fail += [("/search", 500, {})] * 3
    with pytest.raises(BackendError, match="server error \\(HTTP 500\\)") as err:
        await search.search("q", 2)
    assert err.value.retryable


async def test_client_errors_are_not_retried(tavily) -> None:
    stand_in, base = tavily
    search = TavilySearch(api(base))
    stand_in.fail.append(("/search", 400, {"detail": {"error": f"query too long (key {KEY})"}}))
    with pytest.raises(BackendError, match="bad request") as err:
        await search.search("q", 2)
    assert KEY not in str(err.value) and "[redacted]" in str(err.value)
    stand_in.fail.append(("/search", 432, {"detail": {"error": "plan limit"}}))
    with pytest.raises(BackendError, match="refused"):
        await search.search("q", 2)
    assert len(stand_in.requests) == 2


async def test_the_api_key_never_leaks(tavily, caplog) -> None:
    stand_in, base = tavily
    caplog.set_level(logging.DEBUG)  # including httpx/httpcore debug records
    wrong = "tvly-WRONG-KEY-abcdef0123456789"
    search, reader = TavilySearch(api(base, wrong)), TavilyReader(api(base, wrong))
    errors = []
    for coro in (search.search("q", 2), reader.read("https://example.org/a")):
        with pytest.raises(BackendError) as err:
            await coro
        errors.append(err.value)
    # The stand-in's 401 body echoes the Authorization header, as some services do.
    assert any(wrong in str(r[2].get("Authorization")) for r in stand_in.requests)
    for e in errors:
        assert "API key was rejected" in str(e)
        for text in (str(e), repr(e), str(e.__cause__), str(e.args)):
            assert wrong not in text
        assert e.__cause__ is None and e.__suppress_context__
    for text in (repr(search), repr(reader), repr(search.api)):
        assert wrong not in text and "key=set" in repr(search.api)
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records and wrong not in logged


async def test_unreachable_service_is_reported(tavily) -> None:
    _, base = tavily
    search = TavilySearch(api("http://127.0.0.1:9", retry=RetryPolicy(retries=1, base_delay=0.01)))
    with pytest.raises(BackendError, match="could not reach") as err:
        await search.search("q", 2)
    assert err.value.retryable


async def test_extracts_are_cached(tavily, tmp_path) -> None:
    stand_in, base = tavily
    reader = TavilyReader(api(base), cache=PageCache(tmp_path, namespace="tavily-pages"))
    a1 = await reader.read("https://example.org/a")
    a2 = await reader.read("https://example.org/a")
    assert a1 == a2 and len(stand_in.requests) == 1


async def test_keyless_mode_when_no_key_is_configured(tavily, monkeypatch) -> None:
    stand_in, base = tavily
    monkeypatch.setenv("TAVILY_API_KEY", KEY)  # the client must not read the env behind the config's back
    search = TavilySearch(api(base, None))
    with pytest.raises(BackendError, match="API key was rejected"):
        await search.search("q", 2)
    headers = stand_in.requests[-1][2]
    assert "Authorization" not in headers and headers.get("X-Tavily-Access-Mode") == "keyless"


async def test_one_backend_serves_successive_event_loops(tavily) -> None:
    stand_in, base = tavily
    search = TavilySearch(api(base))

    async def search_and_close() -> int:
        try:
            return len(await search.search("q", 3))
        finally:
            await search.aclose()

    def worker() -> list[int]:  # fresh event loops, one after the other, as successive asyncio.run calls make
        return [asyncio.run(search_and_close()) for _ in range(2)]

    assert await asyncio.to_thread(worker) == [3, 3]  # the stand-in keeps serving on this test's loop
    assert len(stand_in.requests) == 2


async def test_build_from_config(tavily, tmp_path, monkeypatch) -> None:
    stand_in, base = tavily
    monkeypatch.setenv("TAVILY_API_KEY", KEY)
    cfg = WideSeekConfig(search="tavily", tavily_base_url=base + "/", cache_dir=tmp_path)
    search, reader = build_tavily_backends(cfg)
    assert search.api is reader.api and search.api.base_url == base
    assert reader.cache is not None and reader.cache.root == tmp_path / "tavily-pages"
    assert len(await search.search("q", 1)) == 1  # the env key reached the Authorization header
    assert stand_in.requests[-1][2]["Authorization"] == f"Bearer {KEY}"
    await search.aclose()


def test_no_key_is_a_configuration_error_unless_keyless_is_asked_for(tavily) -> None:
    from langgraph_wideseek.errors import BackendConfigError

    _, base = tavily
    with pytest.raises(BackendConfigError, match="TAVILY_API_KEY"):
        build_tavily_backends(WideSeekConfig(search="tavily", tavily_base_url=base))
    keyless = WideSeekConfig(search="tavily", tavily_base_url=base, tavily_keyless=True)
    search, _ = build_tavily_backends(keyless)
    assert search.api._key == ""
