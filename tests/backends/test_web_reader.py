"""The web page reader against a local web server: content types, redirects, caps, timeouts, SSRF, caching.

The server runs on 127.0.0.1, which the SSRF guard refuses; the reader here uses a guard that lets exactly
127.0.0.1/32 through (``allowed_networks``), so every other private target stays refused — which is what the
redirect-to-private tests need. Names resolve through an injected table, never real DNS.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from pathlib import Path

import pytest
from aiohttp import web

from langgraph_wideseek.runtime import RetryPolicy
from langgraph_wideseek.tools.base import BackendError, PageNotFound
from langgraph_wideseek.tools.netguard import NetGuard, URLRefused
from langgraph_wideseek.tools.page_cache import PageCache
from langgraph_wideseek.tools.web import WebReader

from .stand_ins import make_pdf, serve

ARTICLE = (
    "<html><head><title>Rivers of Europe</title></head><body>"
    "<nav><a href='/'>Home</a> | <a href='/about'>About</a></nav>"
    "<article><h1>Rivers of Europe</h1>"
    + "".join(
        f"<p>The river number {i} flows through several countries and is {100 + i} km long.</p>"
        for i in range(12)
    )
    + "<table><tr><th>River</th><th>Length</th></tr><tr><td>Danube</td><td>2850 km</td></tr></table>"
    "</article><footer>Copyright footer text</footer></body></html>"
)


class Site:
    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.hosts: list[str] = []
        self.sent_bytes = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{name:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits[name] = self.hits.get(name, 0) + 1
        self.hosts.append(request.headers.get("Host", ""))
        if name == "article":
            return web.Response(text=ARTICLE, content_type="text/html")
        if name == "latin1":
            body = (
                "<html><body><article><p>"
                + "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e. " * 30
                + "</p></article></body></html>"
            )
            return web.Response(
                body=body.encode("latin-1"), headers={"Content-Type": "text/html; charset=ISO-8859-1"}
            )
        if name == "gzip":
            return web.Response(
                body=gzip.compress(ARTICLE.encode()),
                headers={"Content-Type": "text/html", "Content-Encoding": "gzip"},
            )
        if name == "doc.pdf":
            return web.Response(
                body=make_pdf(["Quarterly report 2024", "Revenue grew 12 percent."], title="Q Report"),
                content_type="application/pdf",
            )
        if name == "octet-pdf":
            return web.Response(body=make_pdf(["Sniffed PDF body"]), content_type="application/octet-stream")
        if name == "plain":
            return web.Response(text="Plain facts: water boils at 100 C.", content_type="text/plain")
        if name == "json":
            return web.json_response({"population": 1234})
        if name == "image":
            return web.Response(body=b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, content_type="image/png")
        if name == "zip":
            return web.Response(body=b"PK\x03\x04" + b"\x00" * 100, content_type="application/zip")
        if name == "binary":
            return web.Response(body=bytes(range(256)) * 4, content_type="application/octet-stream")
        if name == "empty":
            return web.Response(text="<html><body></body></html>", content_type="text/html")
        if name == "host":
            return web.Response(
                text=f"host header was {request.headers.get('Host')}", content_type="text/plain"
            )
        if name.startswith("chain/"):
            n = int(name.split("/")[1])
            target = "/article" if n == 0 else f"/chain/{n - 1}"
            raise web.HTTPFound(target)
        if name == "relative":
            raise web.HTTPMovedPermanently("article")  # relative Location
        if name == "to-metadata":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/iam/security-credentials/")
        if name == "to-internal":
            raise web.HTTPTemporaryRedirect("http://internal.test/admin")
        if name == "to-loopback-other":
            raise web.HTTPFound("http://127.0.0.2:9/x")
        if name == "to-file":
            raise web.HTTPFound("file:///etc/passwd")
        if name == "no-location":
            return web.Response(status=302)
        if name == "missing":
            raise web.HTTPNotFound()
        if name == "gone":
            raise web.HTTPGone()
        if name == "forbidden":
            raise web.HTTPForbidden()
        if name == "teapot":
            return web.Response(status=418, text="no")
        if name == "broken":
            return web.Response(status=500, text="oops")
        if name == "flaky":
            if self.hits[name] == 1:
                return web.Response(status=503, headers={"Retry-After": "0"})
            return web.Response(text=ARTICLE, content_type="text/html")
        if name == "slow":
            await asyncio.sleep(5)
            return web.Response(text=ARTICLE, content_type="text/html")
        if name in ("huge", "drip", "huge-pdf", "huge-pdf-undeclared"):
            resp = web.StreamResponse(
                headers={"Content-Type": "application/pdf" if "pdf" in name else "text/html"}
            )
            if name == "huge-pdf":
                resp.content_length = 50 * 1024 * 1024
            await resp.prepare(request)
            if name.startswith("huge-pdf"):
                await resp.write(b"%PDF-1.4\n")
            else:
                await resp.write(b"<html><body><article><p>" + b"Endless river facts. " * 40 + b"</p>")
            try:
                for _ in range(100_000):  # "endless": far beyond any cap, ends only if the client goes away
                    chunk = b"<p>" + b"More and more text about rivers. " * 60 + b"</p>"
                    await resp.write(chunk)
                    self.sent_bytes += len(chunk)
                    if name == "drip":
                        await asyncio.sleep(0.05)
            except (ConnectionResetError, RuntimeError):
                pass
            return resp
        raise web.HTTPNotFound()


def resolver(table: dict[str, str]):
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("unknown host")
        return [table[host]]

    return resolve


@pytest.fixture
async def site():
    s = Site()
    async with serve(s.app()) as base:
        yield s, base


def reader(**kw) -> WebReader:
    guard = NetGuard(
        allowed_networks=["127.0.0.1/32"],
        resolver=resolver({"site.test": "127.0.0.1", "internal.test": "10.0.0.5"}),
    )
    kw.setdefault("retry", RetryPolicy(retries=1, base_delay=0.01, max_delay=0.05))
    return WebReader(guard=guard, **kw)


async def test_html_main_text_and_title(site) -> None:
    _, base = site
    page = await reader().read(f"{base}/article")
    assert page.url == f"{base}/article"
    assert page.title == "Rivers of Europe"
    assert "The river number 3 flows" in page.text and "Danube" in page.text and "2850 km" in page.text
    assert "Copyright footer" not in page.text  # trafilatura dropped the boilerplate


async def test_declared_charset_and_gzip_bodies(site) -> None:
    _, base = site
    r = reader()
    assert "Café crème brûlée." in (await r.read(f"{base}/latin1")).text
    assert "The river number 11 flows" in (await r.read(f"{base}/gzip")).text


async def test_pdf_and_sniffed_pdf(site) -> None:
    _, base = site
    r = reader()
    page = await r.read(f"{base}/doc.pdf")
    assert "Quarterly report 2024" in page.text and "Revenue grew 12 percent." in page.text
    assert page.title == "Q Report"
    assert "Sniffed PDF body" in (await r.read(f"{base}/octet-pdf")).text


async def test_text_types(site) -> None:
    _, base = site
    r = reader()
    assert (await r.read(f"{base}/plain")).text == "Plain facts: water boils at 100 C."
    assert '"population": 1234' in (await r.read(f"{base}/json")).text


@pytest.mark.parametrize(
    "path,message",
    [
        ("image", "serves image/png"),
        ("zip", "serves application/zip"),
        ("binary", "binary data"),
        ("empty", "no readable text"),
    ],
)
async def test_unreadable_content_is_refused_with_a_reason(site, path: str, message: str) -> None:
    _, base = site
    with pytest.raises(BackendError, match=message):
        await reader().read(f"{base}/{path}")


async def test_redirects_are_followed_up_to_the_cap(site) -> None:
    s, base = site
    r = reader(max_redirects=3)
    assert "Danube" in (await r.read(f"{base}/chain/2")).text  # chain/n is n + 1 redirects
    assert "Danube" in (await r.read(f"{base}/relative")).text
    assert s.hits["article"] == 2
    with pytest.raises(BackendError, match=r"too many redirects \(more than 3\)"):
        await r.read(f"{base}/chain/3")
    assert s.hits["article"] == 2  # the over-cap chain was not followed to its end


@pytest.mark.parametrize(
    "path,message",
    [
        ("to-metadata", "metadata"),
        ("to-internal", "private address"),
        ("to-loopback-other", "loopback"),
        ("to-file", "only http and https"),
    ],
)
async def test_every_redirect_hop_is_checked_by_the_guard(site, path: str, message: str) -> None:
    _, base = site
    with pytest.raises(URLRefused, match=message):
        await reader().read(f"{base}/{path}")


async def test_guard_refuses_the_first_hop_too(site) -> None:
    _, base = site
    strict = WebReader(guard=NetGuard(resolver=resolver({})))
    with pytest.raises(URLRefused, match="loopback"):
        await strict.read(f"{base}/article")


async def test_connection_goes_to_the_checked_address_with_the_original_host(site) -> None:
    s, base = site
    port = base.rsplit(":", 1)[1]
    page = await reader().read(f"http://site.test:{port}/host")
    assert page.text == f"host header was site.test:{port}"


@pytest.mark.parametrize("path,error", [("missing", PageNotFound), ("gone", PageNotFound)])
async def test_missing_pages(site, path: str, error: type) -> None:
    _, base = site
    with pytest.raises(error, match="does not exist"):
        await reader().read(f"{base}/{path}")


async def test_http_errors(site) -> None:
    s, base = site
    r = reader()
    with pytest.raises(BackendError, match="refused access \\(HTTP 403\\)"):
        await r.read(f"{base}/forbidden")
    with pytest.raises(BackendError, match="HTTP 418"):
        await r.read(f"{base}/teapot")
    with pytest.raises(BackendError, match="HTTP 500") as err:
        await r.read(f"{base}/broken")
    assert err.value.retryable and s.hits["broken"] == 2  # one retry, then an honest failure
    with pytest.raises(BackendError, match="redirect .* without a target"):
        await r.read(f"{base}/no-location")


async def test_transient_5xx_is_retried(site) -> None:
    s, base = site
    assert "Danube" in (await reader().read(f"{base}/flaky")).text
    assert s.hits["flaky"] == 2


async def test_slow_server_hits_the_time_cap(site) -> None:
    _, base = site
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match="longer than 0.5 s") as err:
        await reader(timeout=0.5).read(f"{base}/slow")
    assert time.perf_counter() - t0 < 2.0 and err.value.retryable


async def test_dripping_body_hits_the_total_time_cap(site) -> None:
    _, base = site
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match="longer than 0.6 s"):
        await reader(timeout=0.6, max_bytes=50 * 1024 * 1024).read(f"{base}/drip")
    assert time.perf_counter() - t0 < 2.0


async def test_huge_html_is_cut_at_the_size_cap(site) -> None:
    s, base = site
    t0 = time.perf_counter()
    page = await reader(max_bytes=200_000).read(f"{base}/huge")
    assert "Endless river facts." in page.text
    assert time.perf_counter() - t0 < 5.0
    await asyncio.sleep(0.2)
    # The server could send far more (its loop runs 100,000 chunks); we stopped reading near the cap.
    assert s.sent_bytes < 20 * 1024 * 1024


async def test_huge_pdf_is_refused(site) -> None:
    s, base = site
    with pytest.raises(BackendError, match="PDF is too large"):
        await reader(max_bytes=100_000).read(f"{base}/huge-pdf")  # refused from Content-Length alone
    assert s.sent_bytes < 5 * 1024 * 1024
    with pytest.raises(BackendError, match="PDF is too large"):
        await reader(max_bytes=100_000).read(f"{base}/huge-pdf-undeclared")  # refused when the cap is hit


async def test_pages_are_cached_on_disk(site, tmp_path: Path) -> None:
    s, base = site
    r = reader(cache=PageCache(tmp_path))
    first = await r.read(f"{base}/article")
    second = await r.read(f"{base}/article")
    assert first == second and s.hits["article"] == 1
    with pytest.raises(PageNotFound):  # failures are not cached: each read asks again
        await r.read(f"{base}/missing")
    with pytest.raises(PageNotFound):
        await r.read(f"{base}/missing")
    assert s.hits["missing"] == 2


async def test_concurrent_reads_are_bounded(site) -> None:
    s, base = site
    r = reader(concurrency=2)
    pages = await asyncio.gather(*(r.read(f"{base}/article") for _ in range(6)))
    assert all("Danube" in p.text for p in pages) and s.hits["article"] == 6
