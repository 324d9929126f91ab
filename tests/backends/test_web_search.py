"""Keyless web search: our side of the ``ddgs`` seam.

The internet is out of reach, so these tests replace the search library with a stand-in object behind the
``KeylessEngine`` seam — the one place in the suite where a fake object (not a fake server) is used, because
``ddgs`` scrapes live search engines and cannot be pointed at a local server. One test checks that the real
``ddgs.DDGS`` is built with our options.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from langgraph_wideseek.config import WideSeekConfig
from langgraph_wideseek.runtime import RetryableError, RetryPolicy
from langgraph_wideseek.tools.base import BackendError
from langgraph_wideseek.tools.web import DDGSEngine, WebSearch, build_web_backends

FAST_RETRY = RetryPolicy(retries=2, base_delay=0.01, max_delay=0.02)


class StandInEngine:
    """Answers like ``DDGS.text`` (dicts with title/href/body) and records concurrency."""

    def __init__(
        self,
        rows: list[dict[str, Any]] | None = None,
        *,
        sleep: float = 0.0,
        errors: list[Exception] | None = None,
    ) -> None:
        self.rows = (
            rows
            if rows is not None
            else [
                {"title": f"T{i}", "href": f"https://site{i}.example/page", "body": f"body {i}"}
                for i in range(10)
            ]
        )
        self.sleep = sleep
        self.errors = list(errors or [])
        self.calls: list[tuple[str, int]] = []
        self.active = 0
        self.peak = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def text(self, query: str, max_results: int) -> list[dict[str, Any]]:
        with self._lock:
            self.calls.append((query, max_results))
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.threads.add(threading.current_thread().name)
        try:
            if self.sleep:
                time.sleep(self.sleep)
            if self.errors:
                raise self.errors.pop(0)
            return self.rows[:max_results]
        finally:
            with self._lock:
                self.active -= 1


async def test_hits_are_mapped_and_cut_to_count() -> None:
    rows = [
        {"title": "A", "href": "https://a.example/", "body": "about a"},
        {"title": "mail", "href": "mailto:x@example.com", "body": "not a page"},
        {"title": "B", "url": "https://b.example/", "body": "about b"},
        {"title": "C", "href": "https://c.example/", "body": "about c"},
    ]
    engine = StandInEngine(rows)
    search = WebSearch(engine, rate=None)
    hits = await search.search("rivers", 4)
    assert [(h.url, h.title, h.snippet) for h in hits] == [  # the mailto: row cannot be read: dropped
        ("https://a.example/", "A", "about a"),
        ("https://b.example/", "B", "about b"),
        ("https://c.example/", "C", "about c"),
    ]
    assert [h.url for h in await search.search("rivers", 1)] == ["https://a.example/"]
    assert engine.calls == [("rivers", 4), ("rivers", 1)]
    assert all(t.startswith("wideseek-websearch") for t in engine.threads)  # never on the event loop's thread
    await search.aclose()


async def test_rate_limit_and_timeout_errors_are_retried_then_reported() -> None:
    engine = StandInEngine(errors=[RetryableError("the search engines are rate-limiting us")])
    search = WebSearch(engine, rate=None, retry=FAST_RETRY)
    assert len(await search.search("q", 3)) == 3 and len(engine.calls) == 2

    engine = StandInEngine(errors=[RetryableError("the search engines timed out")] * 3)
    search = WebSearch(engine, rate=None, retry=FAST_RETRY)
    with pytest.raises(BackendError, match="timed out") as err:
        await search.search("q", 3)
    assert err.value.retryable and len(engine.calls) == 3


async def test_library_failures_become_backend_errors() -> None:
    search = WebSearch(StandInEngine(errors=[KeyError("internal")]), rate=None, retry=FAST_RETRY)
    with pytest.raises(BackendError, match="failed unexpectedly"):
        await search.search("q", 3)
    search = WebSearch(StandInEngine(errors=[BackendError("web search failed in every engine")]), rate=None)
    with pytest.raises(BackendError, match="every engine"):
        await search.search("q", 3)


async def test_a_hung_engine_hits_the_time_cap() -> None:
    search = WebSearch(StandInEngine(sleep=1.0), rate=None, timeout=0.2, retry=RetryPolicy(retries=0))
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match="timed out after 0.2 s"):
        await search.search("q", 3)
    assert time.perf_counter() - t0 < 0.8
    await search.aclose()


async def test_concurrency_is_bounded() -> None:
    engine = StandInEngine(sleep=0.05)
    search = WebSearch(engine, concurrency=2, rate=None)
    await asyncio.gather(*(search.search(f"q{i}", 1) for i in range(8)))
    assert engine.peak == 2 and len(engine.calls) == 8
    await search.aclose()


async def test_rate_limit_spaces_requests() -> None:
    engine = StandInEngine()
    search = WebSearch(engine, concurrency=8, rate=20.0, burst=1)
    t0 = time.perf_counter()
    await asyncio.gather(*(search.search(f"q{i}", 1) for i in range(5)))
    assert time.perf_counter() - t0 >= 0.18  # 5 requests at 20/s with no burst: at least 4 gaps of 50 ms
    await search.aclose()


def test_ddgs_engine_builds_the_real_client_with_our_options() -> None:
    from ddgs.ddgs import DDGS  # the real class (the package exports a lazy-loading proxy)
    from ddgs.exceptions import DDGSException, RatelimitException

    engine = DDGSEngine(
        timeout=7, proxy="socks5://127.0.0.1:9050", backend="wikipedia,bing", region="de-de", safesearch="off"
    )
    client = engine.client()
    assert isinstance(client, DDGS)
    assert client._timeout == 7 and client._proxy == "socks5://127.0.0.1:9050"
    assert engine.client() is client  # one per thread

    # Our calls reach DDGS.text with our options, and its exceptions map to ours. The method is replaced on
    # this one instance, so nothing goes to the network.
    seen: dict[str, Any] = {}

    def text(query: str, **kw: Any) -> list[dict[str, Any]]:
        seen.update(kw, query=query)
        raise seen.pop("raise")

    client.text = text
    seen["raise"] = DDGSException("No results found.")
    assert engine.text("q", 4) == []
    assert seen == {
        "query": "q",
        "max_results": 4,
        "backend": "wikipedia,bing",
        "region": "de-de",
        "safesearch": "off",
    }
    seen["raise"] = RatelimitException("202 Ratelimit")
    with pytest.raises(RetryableError, match="rate-limiting"):
        engine.text("q", 4)
    seen["raise"] = DDGSException("https://engine.example returned 500")
    with pytest.raises(BackendError, match="every engine"):
        engine.text("q", 4)


def test_build_web_backends_from_config(tmp_path) -> None:
    cfg = WideSeekConfig(search="web", cache_dir=tmp_path, allow_private_urls=True)
    search, reader = build_web_backends(cfg)
    assert search.name == reader.name == "web"
    assert reader.guard.allow_private is True
    assert reader.cache is not None and reader.cache.root == tmp_path / "web-pages"
    _, strict = build_web_backends(WideSeekConfig(search="web"))
    assert strict.guard.allow_private is False and strict.cache is None
