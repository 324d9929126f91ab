"""External vLLM weight refresh against a loopback stand-in that speaks vLLM's dev-mode routes."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from aiohttp import web

from training.refresh import (
    CheckpointWatcher,
    DevModeRequired,
    RefreshConfig,
    RefreshError,
    WeightRefresher,
    checkpoint_steps,
    main,
    weights_complete,
)

KEY = "sk-refresh-secret-123"


class DevServer:
    """Mimics a ``vllm serve`` started with VLLM_SERVER_DEV_MODE=1 (or without it: ``dev_mode=False``)."""

    def __init__(
        self, *, dev_mode: bool = True, fail_reload: bool = False, api_key: str | None = None
    ) -> None:
        self.dev_mode = dev_mode
        self.fail_reload = fail_reload
        self.api_key = api_key
        self.calls: list[tuple[str, dict, object]] = []
        self.paused = False
        self.loaded: str | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    def _auth_ok(self, request: web.Request) -> bool:
        return self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def _handle(self, request: web.Request) -> web.Response:
        route = request.path
        body = await request.json() if request.can_read_body else None
        self.calls.append((route, dict(request.query), body))
        if not self.dev_mode:
            return web.json_response({"detail": "Not Found"}, status=404)
        if not self._auth_ok(request):
            return web.json_response({"error": "Unauthorized"}, status=401)
        if route == "/pause":
            assert request.query.get("mode") == "wait"
            self.paused = True
            return web.json_response({"status": "paused"})
        if route == "/resume":
            self.paused = False
            return web.json_response({"status": "resumed"})
        if route == "/reset_prefix_cache":
            return web.Response(status=200)
        if route == "/collective_rpc":
            assert self.paused, "reload while not paused"
            if self.fail_reload:
                # echo the key to prove the client redacts what the server sends back
                return web.json_response({"error": f"reload failed (auth {self.api_key})"}, status=500)
            assert body["method"] == "reload_weights"
            self.loaded = body["kwargs"]["weights_path"]
            return web.json_response({"results": [None]})
        return web.json_response({"detail": "Not Found"}, status=404)

    async def __aenter__(self) -> DevServer:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def make_ckpt(root: Path, step: int, *, sharded: bool = False, complete: bool = True) -> Path:
    d = root / f"global_step{step}_hf"
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    if sharded:
        shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        (d / "model.safetensors.index.json").write_text(
            json.dumps({"weight_map": {"a": shards[0], "b": shards[1]}})
        )
        for s in shards[: 2 if complete else 1]:
            (d / s).write_bytes(b"x")
    elif complete:
        (d / "model.safetensors").write_bytes(b"x")
    return d


async def test_refresh_runs_the_four_routes_in_order_with_the_key():
    async with DevServer(api_key=KEY) as srv:
        async with WeightRefresher(RefreshConfig(server=srv.url + "/v1", api_key=KEY)) as r:
            rep = await r.refresh("/ckpt/global_step10_hf")
    assert [c[0] for c in srv.calls] == ["/pause", "/collective_rpc", "/reset_prefix_cache", "/resume"]
    assert srv.calls[1][2] == {
        "method": "reload_weights",
        "kwargs": {"weights_path": "/ckpt/global_step10_hf"},
    }
    assert srv.loaded == "/ckpt/global_step10_hf" and not srv.paused
    assert rep.steps == ["pause", "reload_weights", "reset_prefix_cache", "resume"]


async def test_server_without_dev_mode_gets_a_clear_error_and_nothing_else_is_sent():
    async with DevServer(dev_mode=False) as srv:
        async with WeightRefresher(RefreshConfig(server=srv.url)) as r:
            with pytest.raises(DevModeRequired, match="VLLM_SERVER_DEV_MODE=1"):
                await r.refresh("/ckpt/x")
    assert [c[0] for c in srv.calls] == ["/pause"]


async def test_failed_reload_still_resumes_and_redacts_the_key():
    async with DevServer(fail_reload=True, api_key=KEY) as srv:
        async with WeightRefresher(RefreshConfig(server=srv.url, api_key=KEY)) as r:
            with pytest.raises(RefreshError) as ei:
                await r.refresh("/ckpt/x")
    assert KEY not in str(ei.value) and "***" in str(ei.value) and "HTTP 500" in str(ei.value)
    assert [c[0] for c in srv.calls] == ["/pause", "/collective_rpc", "/resume"]
    assert not srv.paused


async def test_wrong_key_is_reported_without_echoing_it():
    async with DevServer(api_key=KEY) as srv:
        async with WeightRefresher(RefreshConfig(server=srv.url, api_key="sk-wrong-456")) as r:
            with pytest.raises(RefreshError, match="HTTP 401") as ei:
                await r.refresh("/x")
    assert "sk-wrong-456" not in str(ei.value)


async def test_unreachable_server_is_a_refresh_error():
    async with DevServer() as srv:
        url = srv.url
    async with WeightRefresher(RefreshConfig(server=url, request_timeout=5)) as r:
        with pytest.raises(RefreshError, match="cannot reach"):
            await r.refresh("/x")


async def test_path_map_rewrites_the_prefix():
    async with DevServer() as srv:
        cfg = RefreshConfig(server=srv.url, path_map=("/local/ckpt", "/mnt/ckpt"))
        async with WeightRefresher(cfg) as r:
            await r.refresh("/local/ckpt/global_step3_hf")
    assert srv.loaded == "/mnt/ckpt/global_step3_hf"


def test_checkpoint_discovery_and_completeness(tmp_path):
    make_ckpt(tmp_path, 2)
    make_ckpt(tmp_path, 10, sharded=True)
    make_ckpt(tmp_path, 12, sharded=True, complete=False)
    (tmp_path / "_actor").mkdir()
    (tmp_path / "global_step5").mkdir()  # DeepSpeed state, not HF
    steps = checkpoint_steps(tmp_path)
    assert [s for s, _ in steps] == [2, 10, 12]
    assert [weights_complete(p) for _, p in steps] == [True, True, False]
    assert checkpoint_steps(tmp_path / "missing") == []


async def test_watcher_waits_for_a_stable_folder_then_loads_only_the_newest(tmp_path):
    async with DevServer() as srv:
        async with WeightRefresher(RefreshConfig(server=srv.url)) as r:
            w = CheckpointWatcher(tmp_path, r, interval=0.01)
            assert await w.poll_once() is None  # nothing yet
            make_ckpt(tmp_path, 1)
            make_ckpt(tmp_path, 2)
            assert await w.poll_once() is None  # first sighting: not yet known to be stable
            rep = await w.poll_once()
            assert rep is not None and srv.loaded.endswith("global_step2_hf")
            assert w.last_step == 2
            assert await w.poll_once() is None  # nothing new
            d = make_ckpt(tmp_path, 3)
            assert await w.poll_once() is None
            (d / "tokenizer.json").write_text("{}")  # still being written: the snapshot changed
            assert await w.poll_once() is None
            assert (await w.poll_once()) is not None
    loads = [c[2]["kwargs"]["weights_path"] for c in srv.calls if c[0] == "/collective_rpc"]
    assert [Path(p).name for p in loads] == ["global_step2_hf", "global_step3_hf"]


async def test_watcher_run_retries_failures_and_stops_on_missing_dev_mode(tmp_path, caplog):
    make_ckpt(tmp_path, 1)
    async with DevServer(fail_reload=True) as srv:
        async with WeightRefresher(RefreshConfig(server=srv.url)) as r:
            w = CheckpointWatcher(tmp_path, r, interval=0.01)
            stop = asyncio.Event()
            with caplog.at_level(logging.ERROR, logger="training.refresh"):
                task = asyncio.create_task(w.run(stop))
                for _ in range(200):
                    if sum(c[0] == "/collective_rpc" for c in srv.calls) >= 2:
                        break
                    await asyncio.sleep(0.01)
                srv.fail_reload = False
                for _ in range(200):
                    if w.last_step == 1:
                        break
                    await asyncio.sleep(0.01)
                stop.set()
                await asyncio.wait_for(task, 5)
            assert w.last_step == 1
            assert "refresh failed, will retry" in caplog.text
    async with DevServer(dev_mode=False) as srv:
        async with WeightRefresher(RefreshConfig(server=srv.url)) as r:
            w = CheckpointWatcher(tmp_path, r, interval=0.01)
            with pytest.raises(DevModeRequired):
                await asyncio.wait_for(w.run(), 5)


def test_cli_one_shot_refresh_reads_the_key_from_env(tmp_path, monkeypatch, capsys):
    make_ckpt(tmp_path, 4)
    make_ckpt(tmp_path, 7)
    monkeypatch.setenv("MY_VLLM_KEY", KEY)
    srv = DevServer(api_key=KEY)

    async def run() -> int:
        async with srv:
            return await asyncio.to_thread(
                main, ["--server", srv.url, "--ckpt-path", str(tmp_path), "--api-key-env", "MY_VLLM_KEY"]
            )

    assert asyncio.run(run()) == 0
    assert srv.loaded.endswith("global_step7_hf")
    out = capsys.readouterr()
    assert "global_step7" in out.out and KEY not in out.out + out.err


def test_cli_reports_missing_dev_mode_with_exit_code_1(tmp_path, capsys):
    srv = DevServer(dev_mode=False)

    async def run() -> int:
        async with srv:
            return await asyncio.to_thread(main, ["--server", srv.url, "--weights", str(tmp_path)])

    assert asyncio.run(run()) == 1
    assert "VLLM_SERVER_DEV_MODE=1" in capsys.readouterr().err
