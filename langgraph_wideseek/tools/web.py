"""The keyless open-web backend: search through ``ddgs``, read pages with httpx + trafilatura / pypdf.

Search: ``ddgs`` is a synchronous metasearch library, so queries run on a small thread pool of our own,
bounded in concurrency, rate-limited (the engines behind it throttle scrapers) and retried on their rate-limit
and timeout errors.

Read: every fetch goes through the SSRF guard (:mod:`.netguard`) before the first request and on every
redirect hop, connects to the address the guard checked (so DNS cannot change its answer in between), follows
at most ``max_redirects`` redirects itself, stops reading past ``max_bytes``, gives up after ``timeout``
seconds for the whole fetch, and turns HTML (trafilatura), PDF (pypdf) and plain text into page text. Other
content types are refused with a message that says so.
"""

from __future__ import annotations

import asyncio
import io
import logging
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import httpx

from ..errors import BackendError, PageNotFound, RetryableError, raise_if_strict
from ..runtime import LoopLocalSemaphore, RateLimiter, RetryPolicy, parse_retry_after, retry_async
from .base import Page, SearchHit
from .netguard import NetGuard, Resolver
from .page_cache import PageCache

__all__ = [
    "DEFAULT_USER_AGENT",
    "DDGSEngine",
    "KeylessEngine",
    "WebReader",
    "WebSearch",
    "build_web_backends",
]

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 "
    "langgraph-wideseek/0.1"
)
_ACCEPT = "text/html,application/xhtml+xml,application/pdf;q=0.9,text/plain;q=0.8,*/*;q=0.5"
_REDIRECTS = {301, 302, 303, 307, 308}
_HTML = {"text/html", "application/xhtml+xml"}
_PDF = {"application/pdf", "application/x-pdf"}
_TEXTUAL_APPLICATION = {"application/json", "application/xml", "application/ld+json", "application/x-yaml"}
_UNKNOWN = {"", "application/octet-stream", "binary/octet-stream", "application/unknown"}


# ------------------------------------------------------------------------------------------------------------
# Search
# ------------------------------------------------------------------------------------------------------------


class KeylessEngine(Protocol):
    """The seam between our search backend and the keyless search library.

    ``text`` is synchronous and returns the library's result dicts (``title``, ``href``, ``body``).
    """

    def text(self, query: str, max_results: int) -> list[dict[str, Any]]: ...


class DDGSEngine:
    """:class:`KeylessEngine` over ``ddgs.DDGS``, one client per worker thread (its engines keep state)."""

    def __init__(
        self,
        *,
        timeout: int = 10,
        proxy: str | None = None,
        backend: str = "auto",
        region: str = "us-en",
        safesearch: str = "moderate",
    ) -> None:
        self.timeout = timeout
        self.proxy = proxy
        self.backend = backend
        self.region = region
        self.safesearch = safesearch
        self._local = threading.local()

    def client(self) -> Any:
        ddgs = getattr(self._local, "ddgs", None)
        if ddgs is None:
            from ddgs import DDGS  # imported here: it pulls in an HTTP stack only the web backend needs

            ddgs = self._local.ddgs = DDGS(proxy=self.proxy, timeout=self.timeout)
        return ddgs

    def text(self, query: str, max_results: int) -> list[dict[str, Any]]:
        from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

        try:
            return self.client().text(
                query,
                max_results=max_results,
                backend=self.backend,
                region=self.region,
                safesearch=self.safesearch,
            )
        except RatelimitException:
            raise RetryableError("the search engines are rate-limiting us") from None
        except TimeoutException:
            raise RetryableError("the search engines timed out") from None
        except DDGSException as e:
            # ddgs reports an empty result set as an exception; that is an answer, not a failure.
            if "no results found" in str(e).lower():
                return []
            raise BackendError("web search failed in every engine") from None


class WebSearch:
    """:class:`~.base.SearchBackend` over a keyless engine (``ddgs`` unless one is injected)."""

    name = "web"

    def __init__(
        self,
        engine: KeylessEngine | None = None,
        *,
        concurrency: int = 4,
        rate: float | None = 2.0,
        burst: int = 4,
        timeout: float = 30.0,
        retry: RetryPolicy = RetryPolicy(retries=2, base_delay=1.0, max_delay=8.0),  # noqa: B008 - frozen
        strict: bool = False,
    ) -> None:
        self.engine: KeylessEngine = engine or DDGSEngine()
        self.strict = strict
        self.concurrency = concurrency
        self.timeout = timeout
        self.retry = retry
        self._slots = LoopLocalSemaphore(concurrency)
        self._rate = RateLimiter(rate, burst) if rate else None
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="wideseek-websearch")
            return self._executor

    async def search(self, query: str, count: int) -> list[SearchHit]:
        async def attempt() -> list[dict[str, Any]]:
            async with self._slots.slot():
                if self._rate is not None:
                    await self._rate.acquire()
                loop = asyncio.get_running_loop()
                fut = loop.run_in_executor(self._pool(), self.engine.text, query, count)
                try:
                    return await asyncio.wait_for(fut, self.timeout)
                except TimeoutError:
                    # The thread cannot be stopped; it ends on the library's own timeout and frees its worker.
                    raise RetryableError(f"web search timed out after {self.timeout:g} s") from None

        try:
            rows = await retry_async(attempt, self.retry, on_retry=_log_retry("web search"))
        except RetryableError as e:
            raise BackendError(str(e), retryable=True) from None
        except BackendError:
            raise
        except Exception as e:  # noqa: BLE001 - a library bug must become a tool message, not a crash
            raise_if_strict(e, self.strict)
            log.warning("web search: unexpected %s: %s", type(e).__name__, e)
            raise BackendError("web search failed unexpectedly") from None
        return _hits_from_rows(rows, count)

    async def aclose(self) -> None:
        with self._executor_lock:
            pool, self._executor = self._executor, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _hits_from_rows(rows: list[dict[str, Any]], count: int) -> list[SearchHit]:
    hits: list[SearchHit] = []
    for row in rows:
        url = str(row.get("href") or row.get("url") or "")
        if not url.startswith(("http://", "https://")):
            continue  # nothing the reader could open
        hits.append(SearchHit(url=url, title=str(row.get("title") or ""), snippet=str(row.get("body") or "")))
        if len(hits) >= count:
            break
    return hits


def _log_retry(what: str) -> Callable[[int, BaseException, float], None]:
    def on_retry(attempt: int, err: BaseException, wait: float) -> None:
        log.info("%s: retry %d in %.1f s (%s)", what, attempt, wait, err)

    return on_retry


# ------------------------------------------------------------------------------------------------------------
# Read
# ------------------------------------------------------------------------------------------------------------


class WebReader:
    """:class:`~.base.PageReader` that fetches URLs from the open web, guarded against SSRF."""

    name = "web"

    def __init__(
        self,
        *,
        guard: NetGuard | None = None,
        cache: PageCache | None = None,
        timeout: float = 20.0,
        connect_timeout: float = 10.0,
        max_bytes: int = 10 * 1024 * 1024,
        max_redirects: int = 5,
        concurrency: int = 16,
        retry: RetryPolicy = RetryPolicy(retries=1, base_delay=0.5, max_delay=4.0),  # noqa: B008 - frozen
        user_agent: str = DEFAULT_USER_AGENT,
        max_pdf_pages: int = 200,
        max_text_chars: int = 400_000,
        ssl_context: ssl.SSLContext | None = None,
        strict: bool = False,
    ) -> None:
        if max_bytes < 1 or max_redirects < 0 or timeout <= 0:
            raise ValueError("max_bytes must be >= 1, max_redirects >= 0 and timeout > 0")
        self.guard = guard or NetGuard()
        self.cache = cache
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.retry = retry
        self.user_agent = user_agent
        self.max_pdf_pages = max_pdf_pages
        self.max_text_chars = max_text_chars
        self._slots = LoopLocalSemaphore(concurrency)
        self._ssl = ssl_context  # None: the certifi bundle, built on first use
        self.strict = strict

    async def read(self, url: str) -> Page:
        if self.cache is not None:
            cached = await self.cache.get(url)
            if cached is not None:
                return cached
        try:
            page = await retry_async(lambda: self._attempt(url), self.retry, on_retry=_log_retry("web read"))
        except RetryableError as e:
            raise BackendError(str(e), retryable=True) from None
        except BackendError:
            raise
        except Exception as e:  # noqa: BLE001 - a parser or library bug must become a tool message
            raise_if_strict(e, self.strict)
            log.warning("web read: unexpected %s while reading %s: %s", type(e).__name__, url, e)
            raise BackendError("the page could not be read (unexpected error)") from None
        if self.cache is not None:
            await self.cache.put(url, page)
        return page

    async def aclose(self) -> None:
        """Nothing pooled to close: each read uses its own short-lived connections."""

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:  # building a context loads the CA bundle: once per reader, not per fetch
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    async def _attempt(self, url: str) -> Page:
        async with self._slots.slot():
            try:
                return await asyncio.wait_for(self._fetch(url), self.timeout)
            except TimeoutError:
                # Not retried here (a server this slow is rarely faster a second later, and the agent has
                # other URLs); ``retryable`` tells a caller that a later attempt may succeed.
                raise BackendError(
                    f"the page took longer than {self.timeout:g} s to load", retryable=True
                ) from None

    async def _fetch(self, url: str) -> Page:
        # A client per read: connections are pinned to checked addresses, so pooling them across hosts that
        # share an address would reuse a TLS session verified for another name; per-read clients also never
        # cross loops.
        client = httpx.AsyncClient(
            verify=self._ssl_context(),
            # env proxies would receive our pinned IP URLs; the guard must see the real route
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
            headers={"User-Agent": self.user_agent, "Accept": _ACCEPT, "Accept-Encoding": "gzip, deflate"},
        )
        async with client:
            current = httpx.URL(url)
            for _hop in range(self.max_redirects + 1):
                target = await self.guard.check(current)
                try:
                    async with client.stream(
                        "GET",
                        target.pinned_url,
                        headers={"Host": target.host_header},
                        extensions={"sni_hostname": target.host},
                    ) as resp:
                        if resp.status_code in _REDIRECTS:
                            location = resp.headers.get("location")
                            if not location:
                                raise BackendError(
                                    f"the server sent a redirect (HTTP {resp.status_code}) without a target"
                                )
                            current = current.join(location)
                            continue
                        _check_status(resp)
                        return await self._to_page(url, current, resp)
                except httpx.TimeoutException:
                    raise BackendError(
                        f"the page took longer than {self.timeout:g} s to load", retryable=True
                    ) from None
                except httpx.ConnectError as e:
                    if _is_certificate_error(e):  # not transient: retrying cannot fix a certificate
                        raise BackendError(
                            "the server's TLS certificate is not valid for this site"
                        ) from None
                    raise RetryableError("could not connect to the server") from None
                except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
                    raise RetryableError("the connection to the server failed") from None
                except httpx.HTTPError as e:
                    raise BackendError(f"the page could not be fetched ({type(e).__name__})") from None
            raise BackendError(f"too many redirects (more than {self.max_redirects})")

    async def _to_page(self, url: str, final: httpx.URL, resp: httpx.Response) -> Page:
        mime, charset = _content_type(resp.headers.get("content-type", ""))
        kind = _kind_from_mime(mime)
        if kind is None:
            raise BackendError(f"the URL serves {mime}, which cannot be read as text")
        declared = _content_length(resp)
        if kind == "pdf" and declared is not None and declared > self.max_bytes:
            raise BackendError(f"the PDF is too large to read ({_mb(declared)}, limit {_mb(self.max_bytes)})")
        body, truncated = await self._read_capped(resp)
        if kind == "unknown":
            kind = _sniff(body)
            if kind is None:
                raise BackendError("the URL serves binary data that cannot be read as text")
        if truncated:
            if kind == "pdf":  # a cut PDF cannot be parsed
                raise BackendError(f"the PDF is too large to read (over {_mb(self.max_bytes)})")
            log.info("web read: page larger than %s, reading its start only", _mb(self.max_bytes))
        if kind == "html":
            title, text = await asyncio.to_thread(_html_to_text, body, charset, str(final))
        elif kind == "pdf":
            title, text = await asyncio.to_thread(_pdf_to_text, body, self.max_pdf_pages, self.max_text_chars)
        else:
            title, text = "", _decode(body, charset)
        text = text.strip()[: self.max_text_chars]
        if not text:
            raise BackendError("the page has no readable text")
        return Page(url=url, title=title, text=text)

    async def _read_capped(self, resp: httpx.Response) -> tuple[bytes, bool]:
        """The body up to ``max_bytes`` (after content decoding, which also bounds compression bombs)."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_bytes():
            room = self.max_bytes - size
            if len(chunk) > room:
                chunks.append(chunk[:room])
                return b"".join(chunks), True  # leaving the stream early closes the connection
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks), False


def _is_certificate_error(e: BaseException) -> bool:
    seen = 0
    cur: BaseException | None = e
    while cur is not None and seen < 5:  # httpx wraps the ssl error of httpcore/anyio a few levels deep
        if isinstance(cur, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(cur):
            return True
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return False


def _check_status(resp: httpx.Response) -> None:
    code = resp.status_code
    if 200 <= code < 300:
        return
    if code in (404, 410):
        raise PageNotFound(f"the page does not exist (HTTP {code})")
    if code == 429 or code >= 500:
        raise RetryableError(
            f"the server answered HTTP {code}", retry_after=parse_retry_after(resp.headers.get("retry-after"))
        )
    if code in (401, 403):
        raise BackendError(f"the server refused access (HTTP {code})")
    raise BackendError(f"the server answered HTTP {code}")


def _content_type(header: str) -> tuple[str, str | None]:
    parts = [p.strip() for p in header.split(";")]
    mime = parts[0].lower()
    charset = None
    for p in parts[1:]:
        key, _, value = p.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip("\"'")
    return mime, charset


def _kind_from_mime(mime: str) -> str | None:
    if mime in _HTML:
        return "html"
    if mime in _PDF:
        return "pdf"
    if mime in _UNKNOWN:
        return "unknown"
    if mime.startswith("text/") or mime in _TEXTUAL_APPLICATION or mime.endswith(("+json", "+xml")):
        return "text"
    return None


def _sniff(body: bytes) -> str | None:
    head = body[:1024].lstrip().lower()
    if head.startswith(b"%pdf-"):
        return "pdf"
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "html"
    sample = body[:4096]
    if b"\x00" in sample:
        return None
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(sample) - 4:  # a multi-byte character cut at the sample's end is fine
            return None
    return "text"


def _content_length(resp: httpx.Response) -> int | None:
    try:
        return int(resp.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _mb(n: int) -> str:
    return f"{n / 1_048_576:.1f} MB"


def _decode(body: bytes, charset: str | None) -> str:
    if charset:
        try:
            return body.decode(charset, errors="replace")
        except LookupError:
            pass
    return body.decode("utf-8", errors="replace")


def _html_to_text(body: bytes, charset: str | None, url: str) -> tuple[str, str]:
    import trafilatura

    html: str | bytes = _decode(body, charset) if charset else body  # trafilatura detects the encoding itself
    tree = trafilatura.load_html(html)
    if tree is None:
        return "", ""
    # The title is read from the tree rather than through with_metadata=True, which also runs date and author
    # extraction and made a 150 KB page 3-4x slower to read (docs/benchmarks/backends.json).
    title_el = tree.find(".//title")
    title = " ".join(title_el.text_content().split()) if title_el is not None else ""
    doc = trafilatura.bare_extraction(tree, url=url, include_comments=False, include_tables=True)
    text = (getattr(doc, "text", None) or "") if doc is not None else ""
    if not text.strip():
        # Pages without an "article" (lists, tables, tiny pages): fall back to all visible text. The tree
        # above was pruned by the extraction, so this parses the original again.
        _, text, _ = trafilatura.baseline(html)
    return title, text


def _pdf_to_text(body: bytes, max_pages: int, max_chars: int) -> tuple[str, str]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(body))
        if reader.is_encrypted and not reader.decrypt(""):
            raise BackendError("the PDF is encrypted")
        parts: list[str] = []
        total = 0
        for i, page in enumerate(reader.pages):
            if i >= max_pages or total >= max_chars:
                break
            text = page.extract_text() or ""
            parts.append(text)
            total += len(text)
        meta = reader.metadata
        title = str(meta.title or "") if meta is not None else ""
    except BackendError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError):
        raise BackendError("the PDF could not be parsed") from None
    return title, "\n\n".join(p for p in parts if p.strip())


# ------------------------------------------------------------------------------------------------------------
# Wiring
# ------------------------------------------------------------------------------------------------------------


def build_web_backends(
    cfg: Any,
    *,
    engine: KeylessEngine | None = None,
    resolver: Resolver | None = None,
    allowed_networks: tuple[str, ...] = (),
) -> tuple[WebSearch, WebReader]:
    """The web search backend and page reader for ``cfg`` (a :class:`~langgraph_wideseek.WideSeekConfig`)."""
    guard = NetGuard(
        allow_private=cfg.allow_private_urls, allowed_networks=allowed_networks, resolver=resolver
    )
    cache = PageCache(cfg.cache_dir, namespace="web-pages") if cfg.cache_dir is not None else None
    strict = cfg.strict
    return WebSearch(engine, strict=strict), WebReader(
        guard=guard,
        cache=cache,
        timeout=cfg.fetch_timeout,
        max_bytes=cfg.fetch_max_bytes,
        max_redirects=cfg.fetch_max_redirects,
        strict=strict,
    )
