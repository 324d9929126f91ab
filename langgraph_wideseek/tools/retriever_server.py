"""Serve a local index over the RLinf-style retrieval API, so many workers share one index.

Training runs hundreds of rollouts on many machines; building or loading the index in each worker wastes
memory and start-up time. ``wideseek serve-index corpus.jsonl --host 0.0.0.0 --port 8000`` serves it once, and
every worker points ``--search retriever --retriever-url http://HOST:8000`` at it.

Endpoints (the API of :mod:`.retriever`):

- ``POST /retrieve {"queries": [str], "topk": int|null, "return_scores": bool}`` ->
  ``{"result": [[doc, ...]]}`` or ``{"result": [[{"document": doc, "score": float}, ...]]}``;
  ``doc = {"url", "title", "contents"}`` where ``contents`` is the matching passage.
- ``POST /access {"urls": [str]}`` -> ``{"result": [{"url", "title", "contents"} or null, ...]}``.
- ``GET /health`` -> ``{"status": "ok", "pages": int, "passages": int}``.

Bad requests get HTTP 400 with ``{"error": message}``. Index calls are synchronous, so they run on a bounded
thread pool and never block the server's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .base import Page, SearchHit

log = logging.getLogger(__name__)

MAX_ITEMS = 1024  # queries or URLs per request
MAX_TOPK = 100


class IndexLike(Protocol):
    """What the server needs from an index (``tools.local.LocalIndex`` satisfies it)."""

    def search(self, query: str, k: int) -> list[SearchHit]: ...

    def get_page(self, url: str) -> Page | None: ...


class RetrieveRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    queries: list[str] = Field(min_length=1, max_length=MAX_ITEMS)
    topk: int | None = Field(None, ge=1, le=MAX_TOPK)
    return_scores: bool = False


class AccessRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    urls: list[str] = Field(max_length=MAX_ITEMS)


def _doc(hit: SearchHit) -> dict[str, Any]:
    return {"url": hit.url, "title": hit.title, "contents": hit.snippet}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "body"
    return f"{where}: {err.get('msg', 'invalid')}"


class RetrievalService:
    """The request handlers, bound to one index."""

    def __init__(self, index: IndexLike, *, default_topk: int = 3, workers: int = 4) -> None:
        if not 1 <= default_topk <= MAX_TOPK:
            raise ValueError(f"default_topk must be in 1..{MAX_TOPK}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.index = index
        self.default_topk = default_topk
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/retrieve", self.retrieve)
        app.router.add_post("/access", self.access)
        app.router.add_get("/health", self.health)
        app.on_startup.append(self._start_pool)
        app.on_cleanup.append(self._stop_pool)
        return app

    async def _start_pool(self, _app: web.Application) -> None:
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="wideseek-index")

    async def _stop_pool(self, _app: web.Application) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _body(self, request: web.Request, model: type[BaseModel]) -> BaseModel | web.Response:
        try:
            raw = await request.read()
            return model.model_validate_json(raw)
        except ValidationError as e:
            return _error(400, _first_error(e))
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "request body too large")

    async def retrieve(self, request: web.Request) -> web.Response:
        req = await self._body(request, RetrieveRequest)
        if isinstance(req, web.Response):
            return req
        assert isinstance(req, RetrieveRequest)
        k = req.topk or self.default_topk
        try:
            hits = await asyncio.gather(*(self._run(self.index.search, q, k) for q in req.queries))
        except Exception:  # report, keep serving
            log.exception("serve-index: search failed")
            return _error(500, "search failed")
        if req.return_scores:
            result = [
                [{"document": _doc(h), "score": h.score if h.score is not None else 0.0} for h in per]
                for per in hits
            ]
        else:
            result = [[_doc(h) for h in per] for per in hits]
        return web.json_response({"result": result})

    async def access(self, request: web.Request) -> web.Response:
        req = await self._body(request, AccessRequest)
        if isinstance(req, web.Response):
            return req
        assert isinstance(req, AccessRequest)
        try:
            pages = await asyncio.gather(*(self._run(self.index.get_page, u) for u in req.urls))
        except Exception:
            log.exception("serve-index: page lookup failed")
            return _error(500, "page lookup failed")
        result = [None if p is None else {"url": p.url, "title": p.title, "contents": p.text} for p in pages]
        return web.json_response({"result": result})

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "pages": getattr(self.index, "num_pages", None),
                "passages": getattr(self.index, "num_passages", None),
            }
        )


class RetrievalServer:
    """Runs a :class:`RetrievalService` on ``host:port`` (port 0: a free one); an async context manager."""

    def __init__(
        self,
        index: IndexLike,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default_topk: int = 3,
        workers: int = 4,
    ) -> None:
        self.service = RetrievalService(index, default_topk=default_topk, workers=workers)
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> str:
        self._runner = web.AppRunner(self.service.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server  # the only way to learn the port chosen for port=0
        if self.port == 0 and isinstance(server, asyncio.Server) and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> RetrievalServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()
