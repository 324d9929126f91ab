"""What the network backends cost on this machine, measured against local servers.

    python -m benchmarks.backends [--pages 20000] [--queries 2000] [--concurrency 64]

1. ``serve-index`` + the retriever client: queries per second and latency with many concurrent searchers
   (as many subagents of many rollouts are), with the client's micro-batching on and off.
2. The web reader: fetch + guard + trafilatura extraction of a ~150 KB article page from a local server,
   one at a time and 16 at a time.

Servers run on their own event loop in a thread, so client and server do not share one loop's time. Writes
docs/benchmarks/backends.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from benchmarks.search_choice import make_passages
from langgraph_wideseek.runtime import RetryPolicy
from langgraph_wideseek.tools.local import LocalIndex
from langgraph_wideseek.tools.netguard import NetGuard
from langgraph_wideseek.tools.retriever import RetrieverClient
from langgraph_wideseek.tools.retriever_server import RetrievalServer
from langgraph_wideseek.tools.web import WebReader

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "backends.json"


class ThreadLoop:
    """An event loop in a daemon thread, for servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


async def drive(client: RetrieverClient, queries: list[str], concurrency: int) -> dict[str, float]:
    lat: list[float] = []
    it = iter(queries)

    async def worker() -> None:
        for q in it:
            t0 = time.perf_counter()
            await client.search(q, 3)
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    await client.aclose()
    return {
        "queries": len(queries),
        "qps": round(len(queries) / wall, 1),
        "p50_ms": round(statistics.median(lat) * 1e3, 2),
        "p95_ms": round(pct(lat, 0.95) * 1e3, 2),
    }


def bench_retriever(pages: int, n_queries: int, concurrency: int) -> dict[str, Any]:
    passages, queries = make_passages(pages)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        with corpus.open("w") as f:
            for i, text in enumerate(passages):
                f.write(
                    json.dumps({"url": f"https://w.example/{i}", "title": f"Page {i}", "text": text}) + "\n"
                )
        t0 = time.perf_counter()
        index = LocalIndex.open(corpus, Path(tmp) / "idx")
        build = time.perf_counter() - t0
        server = RetrievalServer(index)
        loop = ThreadLoop()
        url = loop.run(server.start())
        qs = (queries * (n_queries // len(queries) + 1))[:n_queries]
        out: dict[str, Any] = {"pages": pages, "index_build_s": round(build, 2), "concurrency": concurrency}
        retry = RetryPolicy(retries=0)
        asyncio.run(drive(RetrieverClient(url, retry=retry), qs[:200], concurrency))  # warm up
        out["batched"] = asyncio.run(
            drive(
                RetrieverClient(url, retry=retry, concurrency=32, max_batch=64, max_wait=0.005),
                qs,
                concurrency,
            )
        )
        out["unbatched"] = asyncio.run(
            drive(RetrieverClient(url, retry=retry, concurrency=32, max_batch=1, max_wait=0), qs, concurrency)
        )
        loop.run(server.stop())
        loop.close()
    return out


def article(kb: int) -> str:
    """An article page of about ``kb`` KB: distinct paragraphs (trafilatura drops repeated ones) plus a nav
    bar."""
    paras: list[str] = []
    size = i = 0
    while size < kb * 1024:
        p = (
            f"<p>Paragraph {i}: the river passes valley {i * 7 % 13}, where town {i} was founded in "
            f"{1000 + i} "
            f"and grew to {i * 37} people.</p>"
        )
        paras.append(p)
        size += len(p)
        i += 1
    nav = "".join(f"<a href='/l{i}'>link {i}</a>" for i in range(200))
    return (
        f"<html><head><title>Bench</title></head><body><nav>{nav}</nav><article>{''.join(paras)}</article>"
        "</body></html>"
    )


def bench_web(n: int) -> dict[str, Any]:
    html = article(150)

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    async def start() -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_get("/a", page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]

    loop = ThreadLoop()
    runner, port = loop.run(start())
    reader = WebReader(guard=NetGuard(allow_private=True), retry=RetryPolicy(retries=0))
    url = f"http://127.0.0.1:{port}/a"

    async def serial() -> list[float]:
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            p = await reader.read(url)
            lat.append(time.perf_counter() - t0)
            assert len(p.text) > 100_000, "the benchmark page must be extracted whole"
        return lat

    async def parallel(k: int) -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(reader.read(url) for _ in range(k)))
        return time.perf_counter() - t0

    async def guard_cost() -> float:
        g = NetGuard()
        t0 = time.perf_counter()
        for _ in range(2000):
            await g.check("https://93.184.215.14/some/path?q=1")
        return (time.perf_counter() - t0) / 2000

    asyncio.run(serial())  # warm up
    lat = asyncio.run(serial())
    wall = asyncio.run(parallel(n))
    g = asyncio.run(guard_cost())
    loop.run(runner.cleanup())
    loop.close()
    return {
        "page_kb": len(html) // 1024,
        "reads": n,
        "p50_ms": round(statistics.median(lat) * 1e3, 1),
        "p95_ms": round(pct(lat, 0.95) * 1e3, 1),
        "parallel16_pages_per_s": round(n / wall, 1),
        "guard_check_us": round(g * 1e6, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=2_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--web-reads", type=int, default=48)
    args = ap.parse_args()
    result = {
        "retriever": bench_retriever(args.pages, args.queries, args.concurrency),
        "web_reader": bench_web(args.web_reads),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
