"""Client for retrieval servers that speak the RLinf-style API (spec section 7).

``POST /retrieve {"queries": [str], "topk": int|null, "return_scores": bool}`` answers ``{"result": [[doc,
...] per query]}`` (or ``[[{"document": doc, "score": float}, ...]]`` with scores), ``doc`` holding at least
``url`` and ``contents``; ``POST /access {"urls": [str]}`` answers ``{"result": [page or null per URL]}`` with
page ``{"url", "contents"}``. This is how the paper served its Wikipedia index to many rollout workers, and
what ``wideseek serve-index`` serves.

Single searches and reads from every agent are coalesced into batched requests (the server embeds a batch of
queries in one forward pass), in-flight requests are bounded per server URL across all clients of the process,
and 429/5xx/connection failures are retried with backoff.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp

from ..config import DEFAULT_MAX_REPLY_BYTES
from ..errors import BackendError, PageNotFound, RetryableError
from ..runtime import (
    ENDPOINT_LIMITERS,
    LoopLocal,
    MicroBatcher,
    RetryPolicy,
    parse_retry_after,
    read_capped,
    retry_async,
)
from .base import Page, SearchHit

__all__ = ["RetrieverClient", "RetrieverReader", "RetrieverSearch", "build_retriever_backends", "split_title"]

log = logging.getLogger(__name__)


def split_title(contents: str) -> tuple[str, str]:
    """``('Title', body)`` for the Wikipedia passage layout ``"Title"\\nbody``, else ``('', contents)``."""
    first, sep, rest = contents.partition("\n")
    first = first.strip()
    if sep and len(first) >= 2 and first[0] == first[-1] == '"':
        return first[1:-1].strip(), rest.strip()
    return "", contents


def _hit_from(item: Any) -> SearchHit | None:
    score = None
    doc = item
    if isinstance(item, dict) and "document" in item and isinstance(item["document"], dict):
        doc = item["document"]
        s = item.get("score")
        score = float(s) if isinstance(s, (int, float)) else None
    if not isinstance(doc, dict):
        return None
    url = doc.get("url")
    contents = doc.get("contents", doc.get("text"))
    if not isinstance(url, str) or not url or not isinstance(contents, str):
        return None  # a hit the agent could not cite or open is useless to it
    # The tool layer prints the title above the snippet, so a title line inside the contents is not repeated.
    parsed_title, body = split_title(contents)
    given = doc.get("title")
    title = given if isinstance(given, str) and given else parsed_title
    return SearchHit(url=url, title=title, snippet=body, score=score)


def _page_from(url: str, item: Any) -> Page | BaseException:
    if item is None:
        return PageNotFound("the page is not in the retrieval server's corpus")
    contents = item.get("contents", item.get("text")) if isinstance(item, dict) else None
    if not isinstance(contents, str):
        return BackendError("the retrieval server sent an unreadable page")
    given = item.get("title")
    title = given if isinstance(given, str) else split_title(contents)[0]
    return Page(url=url, title=title or "", text=contents)


class RetrieverClient:
    """Batched, limited, retrying access to one retrieval server."""

    def __init__(
        self,
        base_url: str,
        *,
        concurrency: int = 32,
        timeout: float = 60.0,
        retry: RetryPolicy = RetryPolicy(retries=4, base_delay=0.5, max_delay=10.0),  # noqa: B008 - frozen
        max_batch: int = 64,
        max_wait: float = 0.005,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        connect_timeout: float = 10.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("retriever_url must be an http(s) URL, e.g. http://127.0.0.1:8000")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_reply_bytes = max_reply_bytes
        self.connect_timeout = connect_timeout
        self.retry = retry
        self._slots = ENDPOINT_LIMITERS.for_endpoint(self.base_url, concurrency)
        self._sessions: LoopLocal[aiohttp.ClientSession] = LoopLocal(self._new_session, close=_close_session)
        self._search = MicroBatcher(self._retrieve_batch, max_batch=max_batch, max_wait=max_wait)
        self._access = MicroBatcher(self._access_batch, max_batch=max_batch, max_wait=max_wait)

    def __repr__(self) -> str:
        return f"RetrieverClient({self.base_url!r})"

    def _new_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=self.timeout, sock_connect=min(self.connect_timeout, self.timeout)
            )
        )

    # -- public, one item at a time (batched underneath) ----------------------------------------------------
    async def search(self, query: str, count: int) -> list[SearchHit]:
        return await self._search.submit((query, count))

    async def read(self, url: str) -> Page:
        return await self._access.submit(url)

    # -- batched calls --------------------------------------------------------------------------------------
    async def retrieve(self, queries: list[str], topk: int) -> list[list[SearchHit]]:
        """One ``/retrieve`` request; one hit list per query, best first."""
        body = await self._post("/retrieve", {"queries": queries, "topk": topk, "return_scores": True})
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, list) or len(result) != len(queries):
            raise BackendError("the retrieval server sent an unexpected reply to /retrieve")
        out = []
        for per_query in result:
            if not isinstance(per_query, list):
                raise BackendError("the retrieval server sent an unexpected reply to /retrieve")
            out.append([h for h in map(_hit_from, per_query) if h is not None])
        return out

    async def access(self, urls: list[str]) -> list[Page | BaseException]:
        """One ``/access`` request; a page, or the error for that URL, per URL."""
        body = await self._post("/access", {"urls": urls})
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, list) or len(result) != len(urls):
            raise BackendError("the retrieval server sent an unexpected reply to /access")
        return [_page_from(u, item) for u, item in zip(urls, result)]

    async def _retrieve_batch(self, items: list[tuple[str, int]]) -> list[list[SearchHit] | BaseException]:
        queries = list(dict.fromkeys(q for q, _ in items))  # identical queries from many agents: ask once
        topk = max(c for _, c in items)
        by_query = dict(zip(queries, await self.retrieve(queries, topk)))
        return [by_query[q][:c] for q, c in items]

    async def _access_batch(self, urls: list[str]) -> list[Page | BaseException]:
        unique = list(dict.fromkeys(urls))
        by_url = dict(zip(unique, await self.access(unique)))
        return [by_url[u] for u in urls]

    async def _post(self, path: str, payload: dict[str, Any]) -> Any:
        url = self.base_url + path

        async def attempt() -> Any:
            async with self._slots.slot():
                try:
                    async with self._sessions.get().post(url, json=payload) as resp:
                        if resp.status == 429 or resp.status >= 500:
                            raise RetryableError(
                                f"the retrieval server answered HTTP {resp.status}",
                                retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                            )
                        if resp.status == 404:
                            raise BackendError(f"the retrieval server has no {path} endpoint (HTTP 404)")
                        if resp.status >= 400:
                            raise BackendError(
                                f"the retrieval server rejected the request (HTTP {resp.status})"
                            )
                        body = await read_capped(resp, self.max_reply_bytes)
                        if body is None:  # final: the same request would get the same flood
                            raise BackendError(
                                f"the retrieval server's reply to {path} exceeded max_reply_bytes "
                                f"({self.max_reply_bytes} bytes); the transfer was stopped there"
                            )
                        text = body.decode("utf-8", "replace")
                except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError):
                    raise RetryableError("could not reach the retrieval server") from None
                except aiohttp.ClientError as e:
                    raise BackendError(
                        f"the request to the retrieval server failed ({type(e).__name__})"
                    ) from None
            try:
                return json.loads(text)
            except ValueError:
                raise BackendError(f"the retrieval server sent invalid JSON from {path}") from None

        try:
            return await retry_async(attempt, self.retry, on_retry=self._on_retry)
        except RetryableError as e:
            raise BackendError(str(e), retryable=True) from None

    def _on_retry(self, attempt: int, err: BaseException, wait: float) -> None:
        log.info("retriever %s: retry %d in %.1f s (%s)", self.base_url, attempt, wait, err)

    async def aclose(self) -> None:
        await self._sessions.aclose()


async def _close_session(session: aiohttp.ClientSession) -> None:
    await session.close()


class RetrieverSearch:
    """:class:`~.base.SearchBackend` over a retrieval server's ``/retrieve``."""

    name = "retriever"

    def __init__(self, client: RetrieverClient) -> None:
        self.client = client

    async def search(self, query: str, count: int) -> list[SearchHit]:
        return await self.client.search(query, count)

    async def aclose(self) -> None:
        await self.client.aclose()


class RetrieverReader:
    """:class:`~.base.PageReader` over a retrieval server's ``/access``."""

    name = "retriever"

    def __init__(self, client: RetrieverClient) -> None:
        self.client = client

    async def read(self, url: str) -> Page:
        return await self.client.read(url)

    async def aclose(self) -> None:
        await self.client.aclose()


def build_retriever_backends(cfg: Any) -> tuple[RetrieverSearch, RetrieverReader]:
    """Search and reader over the retrieval server at ``cfg.retriever_url``."""
    if not cfg.retriever_url:
        raise ValueError("search='retriever' needs retriever_url (--retriever-url or WIDESEEK_RETRIEVER_URL)")
    client = RetrieverClient(
        cfg.retriever_url, max_reply_bytes=cfg.max_reply_bytes, connect_timeout=cfg.connect_timeout
    )
    return RetrieverSearch(client), RetrieverReader(client)
