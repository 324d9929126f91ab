"""``serve-index``'s HTTP API over a real local index: shapes, defaults, validation, errors."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from langgraph_wideseek.tools.base import Page, SearchHit
from langgraph_wideseek.tools.local import LocalIndex
from langgraph_wideseek.tools.retriever_server import RetrievalServer


@pytest.fixture
def index(tmp_path: Path) -> LocalIndex:
    corpus = tmp_path / "c.jsonl"
    rows = [
        {
            "url": f"https://w.example/{i}",
            "title": f"Page {i}",
            "text": f"Document number {i} talks about topic{i} and the shared word alpha.",
        }
        for i in range(8)
    ]
    corpus.write_text("\n".join(json.dumps(r) for r in rows))
    return LocalIndex.open(corpus, tmp_path / "idx")


@pytest.fixture
async def server(index: LocalIndex):
    async with RetrievalServer(index, default_topk=3) as srv, aiohttp.ClientSession() as http:
        yield srv, http


async def post(http: aiohttp.ClientSession, url: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    async with http.post(url, data=data, headers={"Content-Type": "application/json"}) as r:
        return r.status, await r.json()


async def test_retrieve_shapes_and_topk(server) -> None:
    srv, http = server
    status, body = await post(http, srv.url + "/retrieve", {"queries": ["topic5", "alpha"], "topk": None})
    assert status == 200 and len(body["result"]) == 2
    assert len(body["result"][1]) == 3  # topk null: the server's default
    doc = body["result"][0][0]
    assert doc == {"url": "https://w.example/5", "title": "Page 5", "contents": doc["contents"]}
    assert "topic5" in doc["contents"]
    status, body = await post(
        http, srv.url + "/retrieve", {"queries": ["alpha"], "topk": 5, "return_scores": True}
    )
    items = body["result"][0]
    assert len(items) == 5 and set(items[0]) == {"document", "score"}
    assert all(a["score"] >= b["score"] for a, b in zip(items, items[1:]))


async def test_access_and_health(server) -> None:
    srv, http = server
    status, body = await post(http, srv.url + "/access", {"urls": ["https://w.example/2", "https://nope/"]})
    assert status == 200
    assert body["result"][0]["url"] == "https://w.example/2" and "topic2" in body["result"][0]["contents"]
    assert body["result"][1] is None
    async with http.get(srv.url + "/health") as r:
        assert await r.json() == {"status": "ok", "pages": 8, "passages": 8}


@pytest.mark.parametrize(
    "path,body,message",
    [
        ("/retrieve", b"{not json", "Invalid JSON"),
        ("/retrieve", {"queries": []}, "queries"),
        ("/retrieve", {"queries": "alpha"}, "queries"),
        ("/retrieve", {"queries": ["a"], "topk": 0}, "topk"),
        ("/retrieve", {"queries": ["a"], "topk": 1000}, "topk"),
        ("/retrieve", {"queries": ["a"] * 1025}, "queries"),
        ("/access", {"urls": [1, 2]}, "urls.0"),
        ("/access", {}, "urls"),
    ],
)
async def test_bad_requests_get_400_with_a_reason(server, path: str, body, message: str) -> None:
    srv, http = server
    status, reply = await post(http, srv.url + path, body)
    assert status == 400 and message in reply["error"]


async def test_index_failures_are_500_and_the_server_keeps_serving(tmp_path: Path) -> None:
    class Flaky:
        num_pages = num_passages = 1
        calls = 0

        def search(self, query: str, k: int) -> list[SearchHit]:
            self.calls += 1
            if query == "boom":
                raise RuntimeError("disk on fire")
            return [SearchHit(url="https://u/", title="t", snippet="s", score=1.0)]

        def get_page(self, url: str) -> Page | None:
            raise OSError("gone")

    async with RetrievalServer(Flaky()) as srv, aiohttp.ClientSession() as http:
        status, body = await post(http, srv.url + "/retrieve", {"queries": ["boom"]})
        assert status == 500 and body == {"error": "search failed"}  # no internals leak to clients
        status, body = await post(http, srv.url + "/access", {"urls": ["https://u/"]})
        assert status == 500 and body == {"error": "page lookup failed"}
        status, body = await post(http, srv.url + "/retrieve", {"queries": ["fine"]})
        assert status == 200 and body["result"][0][0]["url"] == "https://u/"


def test_bad_default_topk() -> None:
    with pytest.raises(ValueError):
        RetrievalServer(object(), default_topk=0)  # type: ignore[arg-type]
