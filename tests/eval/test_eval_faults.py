"""`wideseek eval` while the model server dies (issue 13): the 20 sample tasks x 4 samples run while the
server is killed and restarted twice mid-run. Every trial ends scored or recorded as failed with its reason;
a resume with --retry-failed re-runs exactly those; the final summary equals a clean run's."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
from aiohttp import ClientSession, web

from langgraph_wideseek.cli import main
from langgraph_wideseek.testing import FakeOpenAIServer, is_lead, turn_index

from .test_eval_cli import AgentModel, _corpus


class KillableServer:
    """The model server as clients see it, on a fixed port: a proxy to the fake server that can be killed
    (listener closed, requests in flight cut off) and started again on the same port."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removesuffix("/v1")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.runner: web.AppRunner | None = None
        self.session: ClientSession | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _forward(self, request: web.Request) -> web.Response:
        assert self.session is not None
        body = await request.read()
        async with self.session.post(self.upstream + request.path, data=body, headers=request.headers) as r:
            return web.Response(status=r.status, body=await r.read(), content_type="application/json")

    async def start(self) -> None:
        self.session = self.session or ClientSession()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._forward)
        self.runner = web.AppRunner(
            app, handle_signals=False, shutdown_timeout=0.01, handler_cancellation=True
        )
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def kill(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def close(self) -> None:
        await self.kill()
        if self.session is not None:
            await self.session.close()


def argv(sample_dir: Path, out: Path, base_url: str, corpus: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "--tasks",
        str(sample_dir / "widesearch_sample.jsonl"),
        "--gold",
        str(sample_dir / "widesearch_gold"),
        "--out",
        str(out),
        "--samples",
        "4",
        "--concurrency",
        "8",
        "--no-progress",
        "--exact-judge",
        "--base-url",
        base_url,
        "--corpus",
        str(corpus),
        "--no-summarize",
        "--context-tokens",
        "200000",  # the toy tokenizer counts the biggest gold tables at about 30k tokens
        *extra,
    ]


def first_lead_calls(srv: FakeOpenAIServer) -> int:
    return sum(1 for r in srv.requests if is_lead(r) and turn_index(r) == 0)


@pytest.mark.slow
async def test_eval_survives_a_model_server_killed_twice(
    sample_tasks, sample_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("WIDESEEK_MAX_RETRIES", "0")  # a dead server fails the agent at once
    corpus = _corpus(tmp_path)
    tasks = list(sample_tasks.values())
    assert len(tasks) == 20

    async with FakeOpenAIServer(AgentModel(tasks)) as clean_srv:
        assert (
            await asyncio.to_thread(main, argv(sample_dir, tmp_path / "clean", clean_srv.base_url, corpus))
            == 0
        )
    clean = json.loads((tmp_path / "clean" / "summary.json").read_text())
    assert clean["failed_trials"] == 0 and clean["pooled"]["trials"] == 80

    async with FakeOpenAIServer(AgentModel(tasks)) as srv:
        proxy = KillableServer(srv.base_url)
        await proxy.start()
        out = tmp_path / "faulty"

        kills: list[int] = []

        async def outages() -> None:
            for at in (40, 100):  # requests the server has had when it dies
                while len(srv.requests) < at:
                    await asyncio.sleep(0.002)
                await proxy.kill()
                kills.append(len(srv.requests))
                await asyncio.sleep(0.1)
                await proxy.start()

        chaos = asyncio.create_task(outages())
        try:
            code = await asyncio.to_thread(main, argv(sample_dir, out, proxy.base_url, corpus))
        finally:
            chaos.cancel()
        assert code == 0 and len(kills) == 2, kills
        results = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
        assert len(results) == 80 and {(r["instance_id"], r["sample"]) for r in results} == {
            (t.instance_id, k) for t in tasks for k in range(4)
        }
        failed = [r for r in results if r["status"] == "failed"]
        assert failed, "the outages should have cost some trials"
        assert all(r["errors"] and any("model server" in e for e in r["errors"]) for r in failed)
        first = json.loads((out / "summary.json").read_text())
        assert first["failed_trials"] == len(failed)

        before = first_lead_calls(srv)
        assert (
            await asyncio.to_thread(main, argv(sample_dir, out, proxy.base_url, corpus, "--retry-failed"))
            == 0
        )
        assert first_lead_calls(srv) - before == len(failed)  # only the failed trials ran again
        await proxy.close()

    final = json.loads((out / "summary.json").read_text())
    assert final["failed_trials"] == 0
    assert final["pooled"] == clean["pooled"] and final["by_language"] == clean["by_language"]
    capsys.readouterr()
