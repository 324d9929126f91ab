"""Local HTTP stand-ins for the services the backends talk to, all on 127.0.0.1.

Each speaks the real wire format of the service it replaces (Tavily's /search and /extract, a web server with
real headers, redirects and streamed bodies, an RLinf-style retrieval server), so the backends under test use
their real HTTP clients end to end.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on a free port of 127.0.0.1; yields its base URL."""
    # handler_cancellation: a handler whose client went away (slow and endless pages) stops at once.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# ------------------------------------------------------------------------------------------------------------
# Minimal PDF
# ------------------------------------------------------------------------------------------------------------


def make_pdf(lines: list[str], title: str = "") -> bytes:
    """A valid one-page PDF showing ``lines`` in Helvetica (xref offsets computed, so strict parsers accept
    it)."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
    for line in lines:
        ops.append(f"({esc(line)}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Title ({esc(title)}) >>".encode("latin-1"),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    out += trailer.encode()
    return bytes(out)


# ------------------------------------------------------------------------------------------------------------
# Tavily
# ------------------------------------------------------------------------------------------------------------


@dataclass
class TavilyStandIn:
    """Tavily's /search and /extract with their real request and reply shapes.

    ``fail`` holds (path, status, body) replies served before normal ones, to inject 429/5xx/4xx answers.
    """

    api_key: str
    pages: dict[str, str] = field(default_factory=dict)  # url -> raw_content
    fail: list[tuple[str, int, Any]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/search", self._search)
        app.router.add_post("/extract", self._extract)
        return app

    def _injected(self, path: str) -> web.Response | None:
        for i, (p, status, body) in enumerate(self.fail):
            if p == path:
                del self.fail[i]
                return web.json_response(body, status=status)
        return None

    async def _auth(self, request: web.Request, path: str) -> tuple[dict[str, Any], web.Response | None]:
        body = json.loads(await request.read())
        self.requests.append((path, body, dict(request.headers)))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            # Tavily's 401 body; like some real services it echoes what it was sent.
            return body, web.json_response(
                {
                    "detail": {
                        "error": f"Unauthorized: missing or invalid API key "
                        f"({request.headers.get('Authorization')})."
                    }
                },
                status=401,
            )
        return body, self._injected(path)

    async def _search(self, request: web.Request) -> web.Response:
        body, early = await self._auth(request, "/search")
        if early is not None:
            return early
        n = int(body.get("max_results", 5))
        q = body["query"]
        results = [
            {
                "title": f"{q} result {i}",
                "url": f"https://example.org/{q.replace(' ', '-')}/{i}",
                "content": f"Snippet {i} about {q}.",
                "score": round(0.9 - i * 0.1, 3),
                "raw_content": None,
            }
            for i in range(1, n + 1)
        ]
        return web.json_response(
            {
                "query": q,
                "follow_up_questions": None,
                "answer": None,
                "images": [],
                "results": results,
                "response_time": 0.01,
                "request_id": "00000000-0000-0000-0000-000000000000",
            }
        )

    async def _extract(self, request: web.Request) -> web.Response:
        body, early = await self._auth(request, "/extract")
        if early is not None:
            return early
        urls = body["urls"] if isinstance(body["urls"], list) else [body["urls"]]
        results, failed = [], []
        for u in urls:
            if u in self.pages:
                results.append({"url": u, "raw_content": self.pages[u], "images": []})
            elif u + "/" in self.pages:  # answers with the page's canonical URL, as Tavily may
                results.append({"url": u + "/", "raw_content": self.pages[u + "/"], "images": []})
            else:
                failed.append({"url": u, "error": "Failed to fetch url"})
        return web.json_response(
            {
                "results": results,
                "failed_results": failed,
                "response_time": 0.02,
                "request_id": "00000000-0000-0000-0000-000000000001",
            }
        )


# ------------------------------------------------------------------------------------------------------------
# Retrieval server with failure injection
# ------------------------------------------------------------------------------------------------------------


@dataclass
class RetrievalStandIn:
    """An RLinf-style /retrieve + /access server over a dict of pages, with injectable failures."""

    pages: dict[str, str]  # url -> contents ("\"Title\"\nbody" layout)
    fail: list[tuple[str, int]] = field(default_factory=list)
    scores: bool = True  # False: ignore return_scores and answer bare docs (older servers)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    delay: float = 0.0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/retrieve", self._retrieve)
        app.router.add_post("/access", self._access)
        return app

    def _injected(self, path: str) -> web.Response | None:
        for i, (p, status) in enumerate(self.fail):
            if p == path:
                del self.fail[i]
                return web.json_response(
                    {"error": "injected"},
                    status=status,
                    headers={"Retry-After": "0"} if status == 429 else None,
                )
        return None

    async def _retrieve(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(("/retrieve", body))
        if (early := self._injected("/retrieve")) is not None:
            return early
        if self.delay:
            await asyncio.sleep(self.delay)
        k = body.get("topk") or 3
        out = []
        for q in body["queries"]:
            words = set(q.lower().split())
            ranked = sorted(self.pages.items(), key=lambda kv: -len(words & set(kv[1].lower().split())))[:k]
            docs = [{"id": str(i), "url": u, "contents": c} for i, (u, c) in enumerate(ranked)]
            if body.get("return_scores") and self.scores:
                out.append([{"document": d, "score": 1.0 / (i + 1)} for i, d in enumerate(docs)])
            else:
                out.append(docs)
        return web.json_response({"result": out})

    async def _access(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(("/access", body))
        if (early := self._injected("/access")) is not None:
            return early
        return web.json_response(
            {
                "result": [
                    {"url": u, "contents": self.pages[u]} if u in self.pages else None for u in body["urls"]
                ]
            }
        )
