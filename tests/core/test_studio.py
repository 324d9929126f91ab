"""`langgraph dev --no-browser` serves the graph of langgraph.json; a run completes through langgraph_sdk."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from langgraph_wideseek.testing import FakeOpenAIServer

from .helpers import QUESTION, RIVERS, VeloriaAgents

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 25.0


def langgraph_cli() -> str | None:
    near = Path(sys.executable).parent / "langgraph"
    return str(near) if near.exists() else shutil.which("langgraph")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
async def test_langgraph_dev_serves_the_graph(corpus_path, index_dir, tmp_path):
    cli = langgraph_cli()
    if cli is None:
        pytest.skip("the `langgraph` CLI is not installed (pip install 'langgraph-wideseek[studio]')")
    sdk = pytest.importorskip("langgraph_sdk", reason="langgraph_sdk is not installed")

    port = free_port()
    log_path = tmp_path / "langgraph-dev.log"
    # langgraph dev keeps its state (.langgraph_api/) in its working folder: run it from a temporary one with
    # a copy of langgraph.json whose paths point at the checkout, so the suite leaves nothing in the checkout
    # that a later `langgraph dev` there would pick up.
    config = json.loads((REPO / "langgraph.json").read_text())
    config["dependencies"] = [str(REPO)]
    config["graphs"] = {k: str(REPO / v.removeprefix("./")) for k, v in config["graphs"].items()}
    work = tmp_path / "dev"
    work.mkdir()
    (work / "langgraph.json").write_text(json.dumps(config))
    state_before = (REPO / ".langgraph_api").exists()
    with FakeOpenAIServer(VeloriaAgents()).start_in_thread() as model:
        env = {
            **os.environ,
            "OPENAI_BASE_URL": model.base_url,
            "WIDESEEK_MODEL": "m",
            "WIDESEEK_CORPUS": str(corpus_path),
            "WIDESEEK_INDEX_DIR": str(index_dir),
            "WIDESEEK_SUMMARIZE_PAGES": "false",
            "LANGSMITH_TRACING": "false",
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        }
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [
                    cli,
                    "dev",
                    "--no-browser",
                    "--no-reload",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--config",
                    str(work / "langgraph.json"),
                ],
                cwd=work,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        client = sdk.get_client(url=f"http://127.0.0.1:{port}")
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if proc.poll() is not None:
                    pytest.fail(
                        f"langgraph dev exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}"
                    )
                try:
                    assistants = await client.assistants.search(graph_id="wideseek")
                    break
                except Exception:  # not listening yet
                    if time.monotonic() > deadline:
                        pytest.fail(
                            f"langgraph dev did not start in {START_TIMEOUT}s:\n"
                            f"{log_path.read_text()[-4000:]}"
                        )
                    await asyncio.sleep(0.3)
            assert assistants and assistants[0]["graph_id"] == "wideseek"

            thread = await client.threads.create()
            events, final = [], None
            stream = client.runs.stream(
                thread["thread_id"],
                "wideseek",
                input={"question": QUESTION},
                stream_mode=["custom", "values"],
                stream_subgraphs=True,
            )
            async for part in stream:
                if part.event.startswith("custom"):
                    events.append(part.data["type"])
                elif part.event == "values":
                    final = part.data
                elif part.event == "error":
                    pytest.fail(f"run failed: {part.data}")
            assert final is not None and final["status"] == "ok"  # the output schema: answer, table, status
            assert final["table"] == [
                {"River": n, "Length": f["length"], "Mouth": f["mouth"]} for n, f in RIVERS.items()
            ]
            assert events.count("subagent_done") == 5 and events[-1] == "final"

            # the run is persisted on the thread like any LangGraph run
            state = await client.threads.get_state(thread["thread_id"])
            assert state["values"]["answer"] == final["answer"] and state["values"]["errors"] == []

            # Studio's run configuration: the graph's per-run settings, and a run that uses them
            schemas = await client.assistants.get_schemas(assistants[0]["assistant_id"])
            props = (schemas.get("context_schema") or {}).get("properties") or {}
            assert {"max_subagents", "max_lead_turns", "max_subagent_turns", "language"} <= set(props)
            assert set((schemas.get("output_schema") or {}).get("properties") or {}) >= {"answer", "table"}
            waves = []
            async for part in client.runs.stream(
                None,
                "wideseek",
                input={"question": QUESTION},
                stream_mode=["custom"],
                stream_subgraphs=True,
                context={"max_subagents": 2},
            ):
                if part.event.startswith("custom") and part.data["type"] == "wave":
                    waves.append(part.data["subagents"])
                elif part.event == "error":
                    pytest.fail(f"run with a context failed: {part.data}")
            assert waves and max(waves) == 2  # 5 rivers, at most 2 subagents per wave in this run
        finally:
            await client.aclose()
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
    assert (REPO / ".langgraph_api").exists() == state_before  # nothing left in the checkout
