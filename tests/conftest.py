"""Shared fixtures: an isolated environment, a small generated corpus with its index, fake model servers and
graphs pointed at them.

Everything runs offline: the only network peers are servers these fixtures start on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from core.helpers import corpus_records  # tests/ is on sys.path (pytest rootdir-relative imports)

from langgraph_wideseek.testing import FakeOpenAIServer

# CI (.ci/run sets HYPOTHESIS_PROFILE=ci) replays the same examples on every run, so a landing is never red by
# the luck of a draw; a developer's runs keep drawing new ones, which is how new cases are found.
hypothesis.settings.register_profile("ci", derandomize=True)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Variables that would leak a developer's real settings into the config under test.
_ENV_PREFIXES = ("WIDESEEK_", "OPENAI_", "TAVILY_", "LANGSMITH_", "LANGCHAIN_")


def pytest_configure(config: pytest.Config) -> None:
    # langchain-tests' standard suites carry a timing benchmark (pytest-benchmark): one round is a check that
    # it runs; thousands of rounds would only slow the suite down
    if hasattr(config.option, "benchmark_disable"):
        config.option.benchmark_disable = True


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME and the cache at a temp folder and hide the developer's model/search settings."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    for key in list(os.environ):
        if key.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(key, raising=False)
    return home


@pytest.fixture(scope="session")
def corpus_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "veloria.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for rec in corpus_records():
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory: pytest.TempPathFactory, corpus_path: Path) -> Path:
    """The index cache of the session corpus, built once."""
    from langgraph_wideseek.tools.local import LocalIndex

    d = tmp_path_factory.mktemp("index")
    LocalIndex.open(corpus_path, d)
    return d


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    """``srv = await serve(policy, **server_kwargs)``: a started FakeOpenAIServer, stopped after the test."""
    started: list[FakeOpenAIServer] = []

    async def start(policy: Callable[[dict[str, Any]], Any], **kwargs: Any) -> FakeOpenAIServer:
        srv = FakeOpenAIServer(policy, **kwargs)
        await srv.start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        await srv.stop()


# ------------------------------------------------------------------------------------------------ graphs
@pytest.fixture
async def make_graph(corpus_path: Path, index_dir: Path) -> AsyncIterator[Callable[..., Any]]:
    """``graph = make_graph(srv, **config_overrides)``: a WideSeekGraph on the session corpus, talking to
    ``srv`` through a ChatVLLM with millisecond retry backoff; closed after the test."""
    from langgraph_wideseek import WideSeekConfig, WideSeekGraph
    from langgraph_wideseek.model import ChatVLLM

    graphs: list[Any] = []

    def build(
        srv: FakeOpenAIServer | str, *, retry_base_delay: float = 0.01, llm: Any = None, **overrides: Any
    ) -> WideSeekGraph:
        base_url = srv if isinstance(srv, str) else srv.base_url
        values: dict[str, Any] = dict(
            base_url=base_url,
            model="fake-model",
            search="local",
            corpus=corpus_path,
            index_dir=index_dir,
            summarize_pages=False,
        )
        values.update(overrides)
        cfg = WideSeekConfig(**values)
        if llm is None:
            llm = ChatVLLM.from_config(cfg, retry_base_delay=retry_base_delay)
        g = WideSeekGraph(cfg, llm=llm)
        graphs.append(g)
        return g

    yield build
    for g in graphs:
        await g.aclose()
