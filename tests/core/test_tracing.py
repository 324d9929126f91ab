"""LangSmith tracing of a run, against a capture server on 127.0.0.1 standing in for the LangSmith API.

With ``LANGSMITH_TRACING=true`` one run is one trace; its model calls are named runs ("lead turn 2",
"subagent turn 1") carrying the agent, wave, subagent index and turn as metadata.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from aiohttp import web

from langgraph_wideseek.testing import Reply, ScriptedPolicy

from .helpers import call, spawn


class Capture:
    """Records every run LangSmith's client posts or patches (multipart or batch JSON)."""

    def __init__(self) -> None:
        self.posts: dict[str, dict[str, Any]] = {}
        self.paths: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        if request.method == "GET":
            return web.json_response({"version": "0.0.0", "batch_ingest_config": {}})
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                name = part.name or ""  # type: ignore[union-attr]
                data = await part.read()  # type: ignore[union-attr]
                kind, _, rest = name.partition(".")
                run_id, _, field = rest.partition(".")
                if kind in ("post", "patch"):
                    run = self.posts.setdefault(run_id, {"id": run_id})
                    value = json.loads(data) if data else None
                    if field:
                        run[field] = value
                    elif isinstance(value, dict):
                        run.update(value)
        else:
            body = await request.json() if request.can_read_body else {}
            for kind in ("post", "patch"):
                for run in body.get(kind) or []:
                    self.posts.setdefault(str(run["id"]), {}).update(run)
        return web.json_response({})


async def test_one_run_is_one_trace_with_named_agent_calls(serve, make_graph, monkeypatch):
    cap = Capture()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", cap.handle)
    # its own loop in a thread: LangSmith's client posts from a background thread and flush() blocks
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(app)
    asyncio.run_coroutine_threadsafe(runner.setup(), loop).result(10)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    asyncio.run_coroutine_threadsafe(site.start(), loop).result(10)
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2-test")
    monkeypatch.setenv("LANGSMITH_PROJECT", "wideseek-test")

    policy = ScriptedPolicy(
        lead=[spawn("find A", "find B"), Reply(content="\\boxed{AB}")],
        subagents={
            "find A": [Reply(tool_calls=[call("search", queries=[{"query": "A"}])]), Reply(content="A")],
            "find B": [Reply(content="B")],
        },
    )
    srv = await serve(policy)
    try:
        import langsmith
        from langchain_core.tracers.langchain import wait_for_all_tracers

        client = langsmith.Client(api_url=f"http://127.0.0.1:{port}", api_key="lsv2-test")
        from langchain_core.tracers.langchain import LangChainTracer

        tracer = LangChainTracer(client=client, project_name="wideseek-test")
        result = await make_graph(srv).arun("q", config={"callbacks": [tracer]})
        wait_for_all_tracers()
        client.flush()
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    assert result.status == "ok"
    runs = list(cap.posts.values())
    assert runs, cap.paths
    assert len({r.get("trace_id") for r in runs if r.get("trace_id")}) == 1  # one trace
    roots = [r for r in runs if not r.get("parent_run_id") and r.get("name")]
    assert [r["name"] for r in roots] == ["wideseek"]
    named = {r["name"]: r for r in runs if r.get("name", "").endswith(tuple(f"turn {i}" for i in (1, 2)))}
    assert {"lead turn 1", "lead turn 2", "subagent turn 1", "subagent turn 2"} <= set(named)
    metas = [r.get("extra", {}).get("metadata", {}) for r in runs if r.get("name") == "subagent turn 1"]
    ids = {(m.get("wideseek_agent"), m.get("wideseek_wave"), m.get("wideseek_subagent")) for m in metas}
    assert ids == {("w1.s1", 1, 1), ("w1.s2", 1, 2)}
    lead_meta = named["lead turn 2"].get("extra", {}).get("metadata", {})
    assert lead_meta.get("wideseek_turn") == 2 and lead_meta.get("langgraph_node") == "lead"
    assert any(r.get("name") == "subagent" for r in runs)  # each subagent is its own named run
