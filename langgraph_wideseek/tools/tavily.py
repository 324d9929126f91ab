"""Tavily backend: search with ``max_results=count``, read pages through Tavily extract.

Built on ``tavily-python``'s :class:`AsyncTavilyClient` (one per event loop: its httpx pool is loop-bound),
with its base URL from ``cfg.tavily_base_url`` so tests and proxies can stand in for
``https://api.tavily.com``. Concurrent reads are coalesced into one ``/extract`` call of up to 20 URLs (Tavily
bills extract per 5 URLs); rate limits (429) and server errors are retried with backoff.

The API key travels only in the client's ``Authorization`` header. Errors from the client are turned into
messages of our own: nothing the library or the server wrote reaches the model or the logs unredacted, and
exceptions are raised ``from None`` so a printed traceback does not carry the original either.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx

from ..config import DEFAULT_MAX_REPLY_BYTES
from ..errors import BackendConfigError, BackendError, PageNotFound, RetryableError, raise_if_strict
from ..runtime import LoopLocal, LoopLocalSemaphore, MicroBatcher, RateLimiter, RetryPolicy, retry_async
from .base import Page, SearchHit
from .page_cache import PageCache

__all__ = ["TavilyAPI", "TavilyReader", "TavilySearch", "build_tavily_backends", "redact"]

log = logging.getLogger(__name__)

MAX_EXTRACT_URLS = 20  # Tavily's limit per extract request
MAX_SEARCH_RESULTS = 20  # Tavily's limit of max_results


def redact(text: str, secrets: list[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "[redacted]")
    return text


class _CappedStream(httpx.AsyncByteStream):
    """A response body that raises ``error()`` once more than ``limit`` bytes have come."""

    def __init__(self, inner: Any, limit: int, error: Any) -> None:
        self.inner, self.limit, self.error = inner, limit, error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self.inner:
            size += len(chunk)
            if size > self.limit:
                raise self.error()
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class TavilyAPI:
    """The shared part of the Tavily search and read backends: client, limits, retries, error mapping."""

    def __init__(
        self,
        api_key: str | None,
        *,
        base_url: str = "https://api.tavily.com",
        concurrency: int = 8,
        rate: float | None = 10.0,
        timeout: float = 60.0,
        retry: RetryPolicy = RetryPolicy(retries=3, base_delay=1.0, max_delay=16.0),  # noqa: B008 - frozen
        strict: bool = False,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        self._key = api_key or ""
        self.max_reply_bytes = max_reply_bytes
        self.strict = strict
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry
        self._slots = LoopLocalSemaphore(concurrency)
        self._rate = RateLimiter(rate, max(1, int(rate))) if rate else None
        self._clients: LoopLocal[Any] = LoopLocal(self._new_client, close=_close_client)
        if not self._key:
            log.info("tavily: no API key set (TAVILY_API_KEY); using Tavily's rate-limited keyless mode")

    def __repr__(self) -> str:  # never show the key
        return f"TavilyAPI(base_url={self.base_url!r}, key={'set' if self._key else 'none'})"

    def _new_client(self) -> Any:
        from tavily import AsyncTavilyClient

        # An empty string (not None) keeps the client from reading TAVILY_API_KEY behind the config's back.
        client = AsyncTavilyClient(api_key=self._key, api_base_url=self.base_url)
        http = getattr(client, "_client", None)  # the httpx client it sends through
        if isinstance(http, httpx.AsyncClient):
            http.event_hooks["response"] = [*http.event_hooks["response"], self._cap_reply]
        else:  # a tavily-python that changed its insides: go on without the cap, but say so
            log.warning("tavily: cannot bound reply sizes with this tavily-python version")
        return client

    async def _cap_reply(self, response: httpx.Response) -> None:
        """Stop a reply at ``max_reply_bytes`` (final, not retried), before it is read into memory."""
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_reply_bytes:
            raise self._too_large()
        response.stream = _CappedStream(response.stream, self.max_reply_bytes, self._too_large)

    def _too_large(self) -> BackendError:
        return BackendError(
            f"Tavily's reply exceeded max_reply_bytes ({self.max_reply_bytes} bytes); the transfer was "
            "stopped there"
        )

    async def call(self, what: str, fn: Any) -> Any:
        """Run ``fn(client)`` with limits and retries; every failure leaves as :class:`BackendError`."""

        async def attempt() -> Any:
            async with self._slots.slot():
                if self._rate is not None:
                    await self._rate.acquire()
                try:
                    return await fn(self._clients.get())
                except Exception as e:  # noqa: BLE001 - mapped one by one below
                    raise self._map_error(what, e) from None

        try:
            return await retry_async(attempt, self.retry, on_retry=self._on_retry)
        except RetryableError as e:
            raise BackendError(str(e), retryable=True) from None

    def _on_retry(self, attempt: int, err: BaseException, wait: float) -> None:
        log.info("tavily: retry %d in %.1f s (%s)", attempt, wait, err)

    def _map_error(self, what: str, e: Exception) -> Exception:
        from tavily import errors as te

        if isinstance(e, (BackendError, RetryableError)):
            return e
        if isinstance(e, te.TavilyKeylessLimitError):
            return RetryableError(
                f"Tavily {what}: keyless rate limit reached", retry_after=e.retry_after_seconds
            )
        if isinstance(e, te.UsageLimitExceededError):
            return RetryableError(f"Tavily {what}: rate or usage limit reached (HTTP 429)")
        if isinstance(e, te.InvalidAPIKeyError):
            return BackendError(f"Tavily {what}: the API key was rejected (HTTP 401); check TAVILY_API_KEY")
        if isinstance(e, te.ForbiddenError):
            return BackendError(f"Tavily {what}: the request was refused (HTTP 403)")
        if isinstance(e, te.BadRequestError):
            detail = redact(str(e), [self._key])[:200]
            return BackendError(f"Tavily {what}: bad request" + (f" ({detail})" if detail else ""))
        if isinstance(e, te.TimeoutError):
            return RetryableError(f"Tavily {what}: timed out")
        if isinstance(e, httpx.HTTPStatusError):
            code = e.response.status_code
            if code >= 500 or code == 429:
                return RetryableError(f"Tavily {what}: server error (HTTP {code})")
            return BackendError(f"Tavily {what}: HTTP {code}")
        if isinstance(e, httpx.TransportError):
            return RetryableError(f"Tavily {what}: could not reach the service")
        if isinstance(e, (te.MissingAPIKeyError, te.KeylessUnsupportedEndpointError)):
            return BackendError(f"Tavily {what}: an API key is required")
        raise_if_strict(e, self.strict)
        log.warning("tavily %s: unexpected %s", what, type(e).__name__)  # its text may echo the key
        return BackendError(f"Tavily {what}: unexpected failure")

    async def aclose(self) -> None:
        await self._clients.aclose()


async def _close_client(client: Any) -> None:
    await client.close()


class TavilySearch:
    """:class:`~.base.SearchBackend` over Tavily search."""

    name = "tavily"

    def __init__(
        self,
        api: TavilyAPI,
        *,
        search_depth: Literal["basic", "advanced"] = "basic",
        topic: Literal["general", "news", "finance"] = "general",
    ) -> None:
        self.api = api
        self.search_depth = search_depth
        self.topic = topic

    def __repr__(self) -> str:
        return f"TavilySearch({self.api!r})"

    async def search(self, query: str, count: int) -> list[SearchHit]:
        reply = await self.api.call(
            "search",
            lambda c: c.search(
                query,
                max_results=min(count, MAX_SEARCH_RESULTS),
                search_depth=self.search_depth,
                topic=self.topic,
                timeout=self.api.timeout,
            ),
        )
        rows = reply.get("results") if isinstance(reply, dict) else None
        if not isinstance(rows, list):
            raise BackendError("Tavily search: unexpected reply")
        hits = []
        for row in rows:
            if not isinstance(row, dict) or not row.get("url"):
                continue
            score = row.get("score")
            hits.append(
                SearchHit(
                    url=str(row["url"]),
                    title=str(row.get("title") or ""),
                    snippet=str(row.get("content") or ""),
                    score=float(score) if isinstance(score, (int, float)) else None,
                )
            )
        return hits[:count]

    async def aclose(self) -> None:
        await self.api.aclose()


def _norm(url: str) -> str:
    """A loose form of a URL for matching Tavily's echo of it (it may add or drop a trailing slash)."""
    try:
        return str(httpx.URL(url).copy_with(fragment=None)).rstrip("/")
    except (httpx.InvalidURL, TypeError, ValueError):
        return url


class TavilyReader:
    """:class:`~.base.PageReader` over Tavily extract, with concurrent reads batched into one request."""

    name = "tavily"

    def __init__(
        self,
        api: TavilyAPI,
        *,
        cache: PageCache | None = None,
        extract_depth: Literal["basic", "advanced"] = "basic",
        extract_format: Literal["markdown", "text"] = "markdown",
        max_wait: float = 0.0,
    ) -> None:
        self.api = api
        self.cache = cache
        self.extract_depth = extract_depth
        self.extract_format = extract_format  # markdown keeps tables, which table-filling tasks need
        self._batcher: MicroBatcher[str, Page] = MicroBatcher(
            self._extract_batch, max_batch=MAX_EXTRACT_URLS, max_wait=max_wait
        )

    def __repr__(self) -> str:
        return f"TavilyReader({self.api!r})"

    async def read(self, url: str) -> Page:
        if self.cache is not None and (hit := await self.cache.get(url)) is not None:
            return hit
        page = await self._batcher.submit(url)
        if self.cache is not None:
            await self.cache.put(url, page)
        return page

    async def _extract_batch(self, urls: list[str]) -> list[Page | BaseException]:
        unique = list(dict.fromkeys(urls))
        reply = await self.api.call(
            "extract",
            lambda c: c.extract(
                unique,
                extract_depth=self.extract_depth,
                format=self.extract_format,
                timeout=min(self.api.timeout, 60.0),
            ),
        )
        if not isinstance(reply, dict):
            raise BackendError("Tavily extract: unexpected reply")
        found: dict[str, dict[str, Any]] = {}
        for row in reply.get("results") or []:
            if isinstance(row, dict) and row.get("url"):
                found.setdefault(str(row["url"]), row)
                found.setdefault(_norm(str(row["url"])), row)
        failed = {
            _norm(str(r["url"]))
            for r in reply.get("failed_results") or []
            if isinstance(r, dict) and r.get("url")
        }
        out: list[Page | BaseException] = []
        for url in urls:
            row = found.get(url) or found.get(_norm(url))
            text = str((row or {}).get("raw_content") or "").strip()
            if row is not None and text:
                out.append(Page(url=url, title=str(row.get("title") or ""), text=text))
            elif row is not None:
                out.append(BackendError("Tavily extract: the page has no readable text"))
            elif _norm(url) in failed:
                out.append(BackendError("Tavily could not extract this page"))
            else:
                out.append(PageNotFound("Tavily returned nothing for this URL"))
        return out

    async def aclose(self) -> None:
        await self.api.aclose()


def build_tavily_backends(cfg: Any) -> tuple[TavilySearch, TavilyReader]:
    """The Tavily search backend and page reader for ``cfg`` (a ``WideSeekConfig``)."""
    key = cfg.tavily_api_key.get_secret_value() if cfg.tavily_api_key is not None else None
    if not key and not cfg.tavily_keyless:
        raise BackendConfigError(
            "search='tavily' needs an API key: set TAVILY_API_KEY (or --tavily-api-key); to use Tavily's "
            "rate-limited keyless mode instead, set WIDESEEK_TAVILY_KEYLESS=1"
        )
    api = TavilyAPI(key, base_url=cfg.tavily_base_url, strict=cfg.strict, max_reply_bytes=cfg.max_reply_bytes)
    cache = PageCache(cfg.cache_dir, namespace="tavily-pages") if cfg.cache_dir is not None else None
    return TavilySearch(api), TavilyReader(api, cache=cache)
