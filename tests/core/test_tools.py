"""The tool layer: the exact result text of spec section 2, limits, argument errors, backend failures, and
the access summariser (on, off, failing)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from langgraph_wideseek.errors import ToolArgumentError
from langgraph_wideseek.model import ChatVLLM
from langgraph_wideseek.prompts import load_prompts
from langgraph_wideseek.testing import Reply
from langgraph_wideseek.tools.access import AccessTool
from langgraph_wideseek.tools.base import BackendError, Page, PageNotFound, SearchHit
from langgraph_wideseek.tools.local import LocalIndex, LocalReader, LocalSearch
from langgraph_wideseek.tools.search import SearchTool
from langgraph_wideseek.tools.summarize import PageSummarizer

from .helpers import RIVERS, river_url

P = load_prompts("en")


class StubSearch:
    """A search backend whose answers the test dictates (the remote search services are the edge)."""

    name = "stub"

    def __init__(
        self,
        hits: dict[str, list[SearchHit]] | None = None,
        *,
        delay: float = 0.0,
        fail: dict[str, BaseException] | None = None,
    ) -> None:
        self.hits = hits or {}
        self.delay = delay
        self.fail = fail or {}
        self.calls: list[tuple[str, int]] = []

    async def search(self, query: str, count: int) -> list[SearchHit]:
        self.calls.append((query, count))
        await asyncio.sleep(self.delay)
        if query in self.fail:
            raise self.fail[query]
        return self.hits.get(query, [])[:count]


class StubReader:
    name = "stub"

    def __init__(self, pages: dict[str, str], *, delay: float = 0.0) -> None:
        self.pages = pages
        self.delay = delay

    async def read(self, url: str) -> Page:
        await asyncio.sleep(self.delay)
        if url == "https://boom":
            raise RuntimeError("reader bug with secret-ish detail")
        if url == "https://down":
            raise BackendError("HTTP 503 from the site", retryable=True)
        if url not in self.pages:
            raise PageNotFound("404")
        return Page(url=url, text=self.pages[url])


@pytest.fixture(scope="module")
def index(corpus_path: Path, index_dir: Path) -> LocalIndex:
    return LocalIndex.open(corpus_path, index_dir)


# ------------------------------------------------------------------------------------------------ search
async def test_search_result_text_is_exactly_the_trained_format():
    hits = {
        "rivers": [
            SearchHit(url="https://a", title="Alpha", snippet="The first."),
            SearchHit(url="https://b", title="", snippet="B text."),
        ]
    }
    text, errors = await SearchTool(StubSearch(hits), P).run({"queries": [{"query": "rivers", "count": 2}]})
    assert errors == []
    assert text == (
        "# Search query: rivers\n# Result:\n"
        "[Doc 1](https://a):\nAlpha\nThe first.\n"
        "[Doc 2](https://b):\nB text."
    )


async def test_search_over_the_local_index(index):
    text, errors = await SearchTool(LocalSearch(index), P).run(
        {"queries": [{"query": "Brenna river", "count": 1}, {"query": "Gulf of Tamar"}]}
    )
    blocks = text.split("\n\n")
    head = "# Search query: Brenna river\n# Result:\n[Doc 1](" + river_url("Brenna") + "):\n"
    assert blocks[0].startswith(head)
    assert RIVERS["Brenna"]["mouth"] in blocks[0] and "[Doc 2]" not in blocks[0]
    assert blocks[1].startswith("# Search query: Gulf of Tamar\n# Result:\n[Doc 1](")
    assert "[Doc 3]" in blocks[1]  # default count 3
    assert errors == []


async def test_duplicate_urls_are_dropped_and_snippets_cut():
    long = "x" * 300
    hits = {
        "q": [
            SearchHit(url="https://a", snippet=long),
            SearchHit(url="https://a", snippet="dup"),
            SearchHit(url="https://b", snippet="b"),
        ]
    }
    text, _ = await SearchTool(StubSearch(hits), P, snippet_chars=120).run({"queries": [{"query": "q"}]})
    assert text.count("(https://a)") == 1 and "dup" not in text
    assert "[Doc 2](https://b):" in text
    assert "x" * 120 in text and "x" * 121 not in text


async def test_count_default_and_cap():
    backend = StubSearch()
    await SearchTool(backend, P, count_default=3, count_max=10).run(
        {"queries": [{"query": "a"}, {"query": "b", "count": 50}, {"query": "c", "count": "4"}, "d"]}
    )
    assert sorted(backend.calls) == [("a", 3), ("b", 10), ("c", 4), ("d", 3)]


async def test_more_than_five_queries_runs_five_and_says_so():
    backend = StubSearch()
    text, _ = await SearchTool(backend, P).run({"queries": [{"query": f"q{i}"} for i in range(7)]})
    assert sorted(q for q, _ in backend.calls) == ["q0", "q1", "q2", "q3", "q4"]
    assert text.endswith("Note: at most 5 items are processed per call; the last 2 were ignored.")
    assert [ln for ln in text.splitlines() if ln.startswith("# Search query:")] == [
        f"# Search query: q{i}" for i in range(5)
    ]  # in call order, not completion order


async def test_queries_of_one_call_run_concurrently():
    backend = StubSearch(delay=0.2)
    t0 = time.perf_counter()
    await SearchTool(backend, P).run({"queries": [{"query": f"q{i}"} for i in range(5)]})
    assert time.perf_counter() - t0 < 0.8  # serial would take 1 s


async def test_no_results_and_backend_failures_are_explicit_lines():
    backend = StubSearch(
        fail={"down": BackendError("rate limited by the provider"), "bug": KeyError("internal")}
    )
    text, errors = await SearchTool(backend, P).run({"queries": ["nothing", "down", "bug"]})
    blocks = text.split("\n\n")
    assert blocks[0] == "# Search query: nothing\n# Result:\nNo results found for this query."
    assert blocks[1] == (
        "# Search query: down\n# Result:\nSearch failed for this query (rate limited by the "
        "provider). Try again later or rephrase the query."
    )
    assert "internal error KeyError" in blocks[2]
    assert errors == ["rate limited by the provider", "internal error KeyError"]


@pytest.mark.parametrize(
    "args, msg",
    [
        ([], "search expects"),
        ({"query": "x"}, "search expects"),
        ({"queries": "x"}, "search expects"),
        ({"queries": []}, "is empty"),
        ({"queries": [{"q": "x"}]}, r"queries\[0\]"),
        ({"queries": [{"query": "  "}]}, r"queries\[0\]"),
        ({"queries": [{"query": "a"}, {"query": 3}]}, r"queries\[1\]"),
        ({"queries": [{"query": "a", "count": 0}]}, "positive integer"),
        ({"queries": [{"query": "a", "count": "many"}]}, "positive integer"),
        ({"queries": [{"query": "a", "count": True}]}, "positive integer"),
    ],
)
async def test_bad_search_arguments(args, msg):
    backend = StubSearch()
    with pytest.raises(ToolArgumentError, match=msg):
        await SearchTool(backend, P).run(args)
    assert backend.calls == []


# ------------------------------------------------------------------------------------------------ access
async def test_access_without_summariser_returns_the_page_cut_to_page_chars(index):
    tool = AccessTool(LocalReader(index), P, summarizer=None, page_chars=500)
    text, errors = await tool.run({"urls": [{"url": river_url("Amsel"), "info_to_extract": "length"}]})
    page = index.get_page(river_url("Amsel")).text
    assert text == f"# Access URL: {river_url('Amsel')}\n# Info to extract: length\n# Result:\n{page[:500]}"
    assert errors == []


async def test_access_failures_are_explicit_and_other_urls_still_served():
    reader = StubReader({"https://ok": "Some text.", "https://blank": "   "})
    tool = AccessTool(reader, P)
    text, errors = await tool.run(
        {
            "urls": [
                {"url": "https://missing", "info_to_extract": "a"},
                {"url": "https://ok", "info_to_extract": "b"},
                {"url": "https://down", "info_to_extract": "c"},
                {"url": "https://boom", "info_to_extract": "d"},
                {"url": "https://blank", "info_to_extract": "e"},
            ]
        }
    )
    blocks = text.split("\n\n")
    assert blocks[0] == (
        "# Access URL: https://missing\n# Info to extract: a\n# Result:\n"
        "Could not read this URL (404). Try another URL from the search results."
    )
    assert blocks[1].endswith("# Result:\nSome text.")
    assert "HTTP 503 from the site" in blocks[2]
    assert "internal error RuntimeError" in blocks[3] and "secret-ish" not in blocks[3]
    assert "the page has no text" in blocks[4]
    assert len(errors) == 4 and errors[0].startswith("https://missing:")


async def test_access_more_than_five_urls_and_concurrency():
    reader = StubReader({f"https://p{i}": f"page {i}" for i in range(7)}, delay=0.2)
    t0 = time.perf_counter()
    text, _ = await AccessTool(reader, P).run(
        {"urls": [{"url": f"https://p{i}", "info_to_extract": "x"} for i in range(7)]}
    )
    assert time.perf_counter() - t0 < 0.8  # serial would take 1 s
    assert text.count("# Access URL:") == 5 and "https://p5" not in text
    assert text.endswith("the last 2 were ignored.")


@pytest.mark.parametrize(
    "args, msg",
    [
        ({"url": "https://a"}, "access expects"),
        ({"urls": []}, "is empty"),
        ({"urls": ["https://a"]}, r"urls\[0\] must be an object"),
        ({"urls": [{"url": "https://a"}]}, r"urls\[0\]\.info_to_extract"),
        ({"urls": [{"url": "https://a", "info_to_extract": "x"}, {"info_to_extract": "y"}]}, r"urls\[1\]"),
    ],
)
async def test_bad_access_arguments(args, msg):
    with pytest.raises(ToolArgumentError, match=msg):
        await AccessTool(StubReader({}), P).run(args)


# -------------------------------------------------------------------------------------------- summariser
async def test_summariser_gets_the_cut_page_and_the_request(serve, index):
    srv = await serve(lambda req: Reply(reasoning="reading", content="The Corvo is 655 km long."))
    llm = ChatVLLM(base_url=srv.base_url, model="sum", return_token_ids=False, logprobs=False)
    summarizer = PageSummarizer(llm, P, max_tokens=300)
    tool = AccessTool(LocalReader(index), P, summarizer=summarizer, page_chars=600)
    text, errors = await tool.run({"urls": [{"url": river_url("Corvo"), "info_to_extract": "its length"}]})
    await llm.aclose()
    assert text == (
        f"# Access URL: {river_url('Corvo')}\n# Info to extract: its length\n# Result:\n"
        "The Corvo is 655 km long."
    )
    assert errors == []
    (req,) = srv.requests
    assert req["max_tokens"] == 300 and "tools" not in req
    assert req["messages"][0] == {"role": "system", "content": P.summarizer_system}
    user = req["messages"][1]["content"]
    page = index.get_page(river_url("Corvo")).text
    assert f"# Page URL\n{river_url('Corvo')}" in user and "# Information to extract\nits length" in user
    assert user.endswith(page[:600]) and page[:601] not in user


async def test_summariser_failure_falls_back_to_raw_text(serve, index):
    srv = await serve(lambda req: Reply(status=500, error="summariser crashed"))
    llm = ChatVLLM(base_url=srv.base_url, model="sum", max_retries=0)
    tool = AccessTool(LocalReader(index), P, summarizer=PageSummarizer(llm, P))
    text, errors = await tool.run({"urls": [{"url": river_url("Brenna"), "info_to_extract": "mouth"}]})
    await llm.aclose()
    assert "[Summary unavailable (ModelUnavailableError" in text and "summariser crashed" in text
    assert RIVERS["Brenna"]["mouth"] in text  # the raw page start still reaches the model
    assert len(errors) == 1 and "summariser failed" in errors[0]


async def test_empty_summary_is_a_failure_too(serve, index):
    srv = await serve(lambda req: Reply(reasoning="thinking only", content=""))
    llm = ChatVLLM(base_url=srv.base_url, model="sum")
    tool = AccessTool(LocalReader(index), P, summarizer=PageSummarizer(llm, P))
    text, errors = await tool.run({"urls": [{"url": river_url("Amsel"), "info_to_extract": "source"}]})
    await llm.aclose()
    assert "empty reply" in text and RIVERS["Amsel"]["source"] in text and errors


def test_summariser_inserts_pages_and_requests_verbatim():
    seen = {}

    class Capture:
        async def ainvoke(self, messages, **kw):
            seen["user"] = messages[1].content
            from langchain_core.messages import AIMessage

            return AIMessage(content="ok")

    s = PageSummarizer(Capture(), P)  # type: ignore[arg-type]
    assert asyncio.run(s.summarize("https://u", "text with {info} and {url} braces", "want {page}")) == "ok"
    assert "text with {info} and {url} braces" in seen["user"]
    assert "# Information to extract\nwant {page}" in seen["user"]
