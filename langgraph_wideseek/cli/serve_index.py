"""``wideseek serve-index``: serve a local index over the retrieval-server API, for many workers at once."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve-index",
        help="serve a corpus's local index over HTTP (POST /retrieve, POST /access)",
        description=(
            "Build or load the local index of FILE.jsonl and serve it with the RLinf-style retrieval API, "
            "so training or eval workers on many machines share one index through "
            "--search retriever --retriever-url http://HOST:PORT. Binds to 127.0.0.1 unless --host "
            "says otherwise (the API has no authentication: expose it on trusted networks only)."
        ),
    )
    p.add_argument("corpus", help="the corpus file ({url, title, text} per line)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--index-dir", help="index cache folder (default: ~/.cache/langgraph-wideseek/index)")
    p.add_argument("--topk", type=int, default=3, help="results per query when a request sends topk null (3)")
    p.add_argument("--workers", type=int, default=4, help="threads running index lookups (4)")
    p.set_defaults(func=serve_index_command)


async def serve_index_command(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..tools.local import LocalIndex
    from ..tools.retriever_server import MAX_TOPK, RetrievalServer

    if not 0 <= args.port <= 65535:
        print(f"wideseek: invalid port {args.port}", file=sys.stderr)
        return 2
    for flag, value, top in (("--workers", args.workers, 256), ("--topk", args.topk, MAX_TOPK)):
        if not 1 <= value <= top:
            print(f"wideseek: {flag} must be from 1 to {top}, not {value}", file=sys.stderr)
            return 2
    try:
        # Building a large index takes a while and is synchronous: keep it off the loop that will serve.
        index = await asyncio.to_thread(LocalIndex.open, args.corpus, args.index_dir)
        server = RetrievalServer(
            index, host=args.host, port=args.port, default_topk=args.topk, workers=args.workers
        )
    except (ConfigError, ValueError) as e:
        print(f"wideseek: {e}", file=sys.stderr)
        return 2
    try:
        await server.start()
    except OSError as e:
        print(f"wideseek: cannot listen on {args.host}:{args.port}: {e.strerror}", file=sys.stderr)
        return 1
    # The first stdout line says where we listen (port 0 picks one), so scripts can wait for it and read it.
    print(f"serving {index.num_pages} pages ({index.num_passages} passages) at {server.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this platform / the main thread
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
    print("stopped", file=sys.stderr)
    return 0
