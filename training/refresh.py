"""Refresh an external ``vllm serve`` with the newest saved checkpoint, so the graph users query runs it.

OpenRLHF writes HF-format weights to ``{ckpt.path}/global_step{N}_hf`` when ``--ckpt.save_hf`` is on. A vLLM
server started with ``VLLM_SERVER_DEV_MODE=1`` exposes the routes that reload them in place:

    POST /pause?mode=wait          finish in-flight requests, then hold new ones
    POST /collective_rpc           {"method": "reload_weights", "kwargs": {"weights_path": DIR}}
    POST /reset_prefix_cache       cached KV of the old weights is stale
    POST /resume

:class:`WeightRefresher` runs that sequence (and always resumes a server it paused, even when the reload
fails); :class:`CheckpointWatcher` polls the checkpoint folder and refreshes once per new, completely written
step. Dev-mode routes have no authentication of their own: keep such a server on a private network.

    python -m training.refresh --server http://10.0.0.5:8000 --ckpt-path /ckpt/wideseek --watch
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import BaseModel, Field, SecretStr, field_validator

from langgraph_wideseek.errors import TrainingError

log = logging.getLogger("training.refresh")

_STEP_DIR = re.compile(r"^global_step(\d+)_hf$")


class RefreshError(TrainingError, RuntimeError):
    """The server could not be refreshed. The message never contains the API key."""


class DevModeRequired(RefreshError):
    """The server lacks the dev-mode routes (404): it was not started with ``VLLM_SERVER_DEV_MODE=1``."""


class RefreshConfig(BaseModel):
    server: str = Field(description="Root URL of the vLLM server (a trailing /v1 is ignored).")
    api_key: SecretStr | None = Field(None, repr=False, description="Sent as a bearer token when set.")
    pause_mode: str = Field("wait", description="'wait' lets in-flight requests finish before the reload.")
    request_timeout: float = Field(60.0, gt=0)
    reload_timeout: float = Field(
        1800.0, gt=0, description="Seconds the reload may take (large models: minutes)."
    )
    path_map: tuple[str, str] | None = Field(
        None,
        description="(local prefix, server prefix) when the server sees the checkpoint under another path.",
    )

    @field_validator("server")
    @classmethod
    def _root(cls, v: str) -> str:
        v = v.rstrip("/")
        return v[: -len("/v1")] if v.endswith("/v1") else v


@dataclass
class RefreshReport:
    weights_path: str
    seconds: float
    steps: list[str] = field(default_factory=list)
    results: Any = None


class WeightRefresher:
    """Runs pause -> reload_weights -> reset_prefix_cache -> resume against one server."""

    def __init__(self, config: RefreshConfig, session: aiohttp.ClientSession | None = None) -> None:
        self.config = config
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> WeightRefresher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _redact(self, text: str) -> str:
        key = self.config.api_key.get_secret_value() if self.config.api_key else ""
        return text.replace(key, "***") if key else text

    def _headers(self) -> dict[str, str]:
        if self.config.api_key is None:
            return {}
        return {"Authorization": f"Bearer {self.config.api_key.get_secret_value()}"}

    def server_path(self, local_path: str | Path) -> str:
        p = str(local_path)
        if self.config.path_map:
            local, remote = self.config.path_map
            if p.startswith(local):
                p = remote + p[len(local) :]
        return p

    async def _post(
        self,
        route: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        timeout: float | None = None,
    ) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = self.config.server + route
        t = aiohttp.ClientTimeout(total=timeout or self.config.request_timeout)
        try:
            async with self._session.post(
                url, params=params, json=body, headers=self._headers(), timeout=t
            ) as r:
                text = await r.text()
                if r.status == 404:
                    raise DevModeRequired(
                        f"{self.config.server}{route} answered 404: the server has no dev-mode routes. "
                        f"Start it "
                        "with VLLM_SERVER_DEV_MODE=1 (on a private network: these routes are "
                        "unauthenticated)."
                    )
                if r.status in (401, 403):
                    raise RefreshError(f"{route}: HTTP {r.status} (check the API key given for this server)")
                if r.status >= 400:
                    raise RefreshError(self._redact(f"{route}: HTTP {r.status}: {text[:500]}"))
                if not text.strip():
                    return None
                try:
                    return json.loads(text)
                except json.JSONDecodeError:
                    return text
        except (TimeoutError, aiohttp.ClientError) as e:
            raise RefreshError(
                self._redact(f"{route}: cannot reach {self.config.server}: {type(e).__name__}: {e}")
            ) from None

    async def refresh(self, weights_path: str | Path) -> RefreshReport:
        """Reload the server's weights from ``weights_path``; the server is resumed whatever happens after the
        pause succeeded."""
        path = self.server_path(weights_path)
        report = RefreshReport(weights_path=path, seconds=0.0)
        t0 = time.perf_counter()
        await self._post("/pause", params={"mode": self.config.pause_mode})
        report.steps.append("pause")
        failure: BaseException | None = None
        try:
            report.results = await self._post(
                "/collective_rpc",
                body={"method": "reload_weights", "kwargs": {"weights_path": path}},
                timeout=self.config.reload_timeout,
            )
            report.steps.append("reload_weights")
            await self._post("/reset_prefix_cache")
            report.steps.append("reset_prefix_cache")
        except BaseException as e:  # noqa: BLE001 - resume below, then re-raise
            failure = e
        finally:
            try:
                await self._post("/resume")
                report.steps.append("resume")
            except RefreshError as e:
                if failure is None:
                    raise
                raise RefreshError(f"{failure}; and resuming the paused server also failed: {e}") from None
        if failure is not None:
            raise failure
        report.seconds = time.perf_counter() - t0
        return report


# --- checkpoint watching ------------------------------------------------------------------------------------


def checkpoint_steps(ckpt_path: str | Path) -> list[tuple[int, Path]]:
    """``(step, dir)`` of every ``global_step{N}_hf`` folder, oldest first."""
    root = Path(ckpt_path)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


def weights_complete(path: Path) -> bool:
    """Whether an HF folder holds a config and every weight file its index names."""
    if not (path / "config.json").is_file():
        return False
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = path / index_name
        if index.is_file():
            try:
                shards = set(json.loads(index.read_text())["weight_map"].values())
            except (OSError, ValueError, KeyError):
                return False  # still being written
            return all((path / s).is_file() for s in shards)
    return (path / "model.safetensors").is_file() or (path / "pytorch_model.bin").is_file()


def _snapshot(path: Path) -> tuple[tuple[str, int, int], ...]:
    return tuple(
        sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir() if p.is_file())
    )


class CheckpointWatcher:
    """Refreshes the server once per new checkpoint step, after its folder stopped changing.

    A folder is ready when :func:`weights_complete` holds and its file names, sizes and mtimes were the same
    at two consecutive polls (the writer may still be adding the tokenizer files after the weights). Only the
    newest ready step is loaded; older unseen ones are skipped. A failed refresh is logged and retried at the
    next poll; :class:`DevModeRequired` stops the watcher (retrying cannot help).
    """

    def __init__(
        self,
        ckpt_path: str | Path,
        refresher: WeightRefresher,
        *,
        interval: float = 30.0,
        after_step: int = -1,
    ) -> None:
        self.ckpt_path = Path(ckpt_path)
        self.refresher = refresher
        self.interval = interval
        self.last_step = after_step
        self._seen: dict[int, tuple[tuple[str, int, int], ...]] = {}
        self.reports: list[tuple[int, RefreshReport]] = []

    def ready_step(self) -> tuple[int, Path] | None:
        """The newest step that is complete and unchanged since the previous call, if newer than the last."""
        best = None
        for step, path in checkpoint_steps(self.ckpt_path):
            if step <= self.last_step or not weights_complete(path):
                continue
            try:
                snap = _snapshot(path)
            except OSError:
                continue
            if self._seen.get(step) == snap:
                best = (step, path)
            self._seen[step] = snap
        return best

    async def poll_once(self) -> RefreshReport | None:
        found = self.ready_step()
        if found is None:
            return None
        step, path = found
        log.info("refreshing %s from %s", self.refresher.config.server, path)
        report = await self.refresher.refresh(path)
        self.last_step = step
        self._seen = {s: v for s, v in self._seen.items() if s > step}
        self.reports.append((step, report))
        log.info("server now runs global_step%d (%.1f s)", step, report.seconds)
        return report

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.poll_once()
            except DevModeRequired:
                raise
            except RefreshError as e:
                log.error("refresh failed, will retry: %s", e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)


# --- CLI ----------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.refresh", description=__doc__.split("\n\n")[0])
    p.add_argument("--server", required=True, help="vLLM server root URL, e.g. http://10.0.0.5:8000")
    p.add_argument(
        "--api-key-env",
        default="VLLM_API_KEY",
        help="environment variable holding the server's API key (default: VLLM_API_KEY)",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--weights", help="reload this HF folder once")
    what.add_argument("--ckpt-path", help="OpenRLHF --ckpt.path; refresh from its newest global_step*_hf")
    p.add_argument("--watch", action="store_true", help="with --ckpt-path: keep polling for new steps")
    p.add_argument("--interval", type=float, default=30.0, help="seconds between polls (default 30)")
    p.add_argument("--after-step", type=int, default=-1, help="ignore steps up to this one")
    p.add_argument(
        "--path-map",
        metavar="LOCAL=REMOTE",
        help="rewrite a path prefix when the server mounts the checkpoints elsewhere",
    )
    p.add_argument("--reload-timeout", type=float, default=1800.0)
    return p


async def _amain(args: argparse.Namespace) -> int:
    path_map = None
    if args.path_map:
        if "=" not in args.path_map:
            print("--path-map must look like LOCAL=REMOTE", file=sys.stderr)
            return 2
        local, remote = args.path_map.split("=", 1)
        path_map = (local, remote)
    key = os.environ.get(args.api_key_env)
    cfg = RefreshConfig(
        server=args.server,
        api_key=SecretStr(key) if key else None,
        path_map=path_map,
        reload_timeout=args.reload_timeout,
    )
    async with WeightRefresher(cfg) as refresher:
        try:
            if args.weights:
                rep = await refresher.refresh(args.weights)
                print(f"reloaded {rep.weights_path} in {rep.seconds:.1f} s")
                return 0
            watcher = CheckpointWatcher(
                args.ckpt_path, refresher, interval=args.interval, after_step=args.after_step
            )
            if args.watch:
                await watcher.run()
                return 0
            # one-shot: the newest complete step, without waiting for a second poll
            steps = [(s, p) for s, p in checkpoint_steps(args.ckpt_path) if weights_complete(p)]
            if not steps:
                print(f"no complete global_step*_hf folder under {args.ckpt_path}", file=sys.stderr)
                return 1
            step, path = steps[-1]
            rep = await refresher.refresh(path)
            print(f"reloaded global_step{step} ({rep.weights_path}) in {rep.seconds:.1f} s")
            return 0
        except RefreshError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(_amain(_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
