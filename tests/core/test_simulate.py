"""`wideseek simulate` in this process: the world it writes, what it prints, a client served over HTTP, the
stop on a real SIGINT, and its errors. The same command as a user runs it, with every entry point pointed at
it, is tests/test_readme_offline.py (slow)."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shlex
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from langgraph_wideseek import WideSeekConfig, WideSeekGraph
from langgraph_wideseek.cli import main as cli_main
from langgraph_wideseek.cli.simulate import SIMULATED_MODEL, _listen_error, repository
from langgraph_wideseek.eval import ExactJudge, load_tasks, score_response

SMALL = ["--categories", "1", "--entities", "3", "--latency-request", "0"]


def read_env(path: Path) -> dict[str, str]:
    """The ``export NAME=value`` lines of env.sh (the venv line aside)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            out[name] = shlex.split(value, comments=True)[0]
    return out


def serve_then(out: Path, client: Callable[[dict[str, str]], Any], *extra: str) -> tuple[int, Any]:
    """Run ``wideseek simulate`` in this (main) thread; once env.sh appears, call ``client(env)`` in another
    thread, then stop the command with a real SIGINT. Returns (exit status, what the client returned)."""
    box: dict[str, Any] = {}

    def drive() -> None:
        try:
            deadline = time.monotonic() + 60
            while not (out / "env.sh").is_file():
                if time.monotonic() > deadline:
                    raise TimeoutError("env.sh never appeared")
                time.sleep(0.05)
            box["result"] = client(read_env(out / "env.sh"))
        except BaseException as e:  # reported by the test, after the server stopped
            box["error"] = e
        finally:
            os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=drive)
    t.start()
    try:
        status = cli_main(["simulate", "--port", "0", "--out", str(out), *SMALL, *extra])
    finally:
        t.join(60)
    if "error" in box:
        raise box["error"]
    return status, box.get("result")


async def _ask(env: dict[str, str], question: str, **overrides: Any) -> Any:
    cfg = WideSeekConfig(
        base_url=env["OPENAI_BASE_URL"],
        model=env["WIDESEEK_MODEL"],
        search=env["WIDESEEK_SEARCH"],
        corpus=env["WIDESEEK_CORPUS"],
        index_dir=env["WIDESEEK_INDEX_DIR"],
        **overrides,
    )
    async with WideSeekGraph(cfg) as graph:
        return await graph.arun(question)


def test_simulate_serves_its_world_and_stops_on_ctrl_c(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sim"

    def client(env: dict[str, str]) -> Any:
        tasks = load_tasks(out / "tasks.jsonl")  # widesearch_gold/ is found beside it
        task = next(t for t in tasks if "_named" in t.instance_id)
        question = (out / "questions" / f"{task.instance_id}.txt").read_text(encoding="utf-8")

        async def go() -> Any:
            result = await _ask(env, question)
            scored = await score_response(task, result.answer, judge=ExactJudge())
            stranger = await _ask(env, "What is the capital of France?")
            async with aiohttp.ClientSession() as http:
                async with http.get(env["OPENAI_BASE_URL"] + "/models") as r:
                    models = await r.json()
            return result, scored, stranger, models

        return asyncio.run(go())

    status, (result, scored, stranger, models) = serve_then(out, client, "--think-tokens", "5")
    captured = capsys.readouterr()

    assert status == 130  # Ctrl-C, as a shell reports it
    assert "stopped by SIGINT" in captured.err
    assert not (out / "env.sh").exists()  # it named a port that is closed now

    # what it printed: the simulated server first, then lines to paste that name this world's files
    first, *rest = captured.out.splitlines()
    assert first.startswith("SIMULATED model server at http://127.0.0.1:") and "not an LLM" in first
    text = "\n".join(rest)
    assert f"export WIDESEEK_MODEL={SIMULATED_MODEL}" in text
    assert f"export WIDESEEK_CORPUS={out / 'corpus.jsonl'}" in text
    assert f"wideseek run - < {out / 'questions'}" in text
    assert f"wideseek eval --tasks {out / 'tasks.jsonl'} --out {out / 'eval'}" in text
    assert "langgraph dev" in text and "examples/langgraph_app.py" in text
    questions = sorted(p.name for p in (out / "questions").iterdir())
    assert questions == ["syn0_c00_all.txt", "syn0_c00_named3.txt"]

    # a question of its world: the right table, every reply naming the simulated model, with token ids
    assert result.status == "ok" and scored.success and scored.item_f1 == 1.0
    turns = [turn for agent in result.trajectory.agents for turn in agent.turns]
    assert turns and all(t.prompt_token_ids and t.completion_token_ids and t.logprobs for t in turns)
    assert all(t.completion.reasoning for t in turns)
    assert models["data"][0]["id"] == SIMULATED_MODEL
    # any other question: a final answer that says what this is, not a server error retried
    assert stranger.status == "ok" and "simulated model" in stranger.answer


def test_a_rerun_keeps_the_index_of_an_unchanged_world_and_drops_it_for_another(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "sim"
    assert serve_then(out, lambda env: None)[0] == 130
    marker = out / "index" / "kept"
    marker.write_text("x")
    assert serve_then(out, lambda env: None)[0] == 130
    assert marker.exists()  # same seed, same corpus: the cached index stays
    assert serve_then(out, lambda env: None, "--seed", "1")[0] == 130
    assert not marker.exists()
    assert "seed 1," in capsys.readouterr().out
    for folder in ("questions", "widesearch_gold"):  # only this world's tasks
        assert {p.name.split("_")[0] for p in (out / folder).iterdir()} == {"syn1"}


def test_a_server_without_parsers_leaves_tool_calls_in_the_text(tmp_path: Path) -> None:
    out = tmp_path / "sim"

    def client(env: dict[str, str]) -> Any:
        async def go() -> Any:
            body = {
                "model": "anything",
                "messages": [{"role": "user", "content": "I need a table of all rivers of Nowhere."}],
                "tools": [{"type": "function", "function": {"name": "create_sub_agents", "parameters": {}}}],
            }
            async with aiohttp.ClientSession() as http:
                async with http.post(env["OPENAI_BASE_URL"] + "/chat/completions", json=body) as r:
                    return await r.json()

        return asyncio.run(go())

    status, reply = serve_then(
        out, client, "--no-parsers", "--max-context", "100000", "--latency-concurrency", "0.001"
    )
    assert status == 130
    assert reply["model"] == SIMULATED_MODEL  # whatever the request named
    message = reply["choices"][0]["message"]
    assert "<think>" in message["content"] and not message.get("tool_calls")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "-1"], "invalid port -1"),
        (["--port", "70000"], "invalid port 70000"),
        (["--categories", "0"], "--categories must be within 1..50"),
        (["--entities", "51"], "--entities must be within 1..50"),
        (["--think-tokens", "-1"], "--think-tokens must be >= 0"),
        (["--max-context", "0"], "--max-context must be >= 1"),
        (["--latency-token", "nan"], "--latency-token must be >= 0"),
        (["--latency-request", "-0.5"], "--latency-request must be >= 0"),
    ],
)
def test_invalid_options_exit_2_with_one_line(args, message, tmp_path, capsys) -> None:
    assert cli_main(["simulate", "--out", str(tmp_path / "sim"), *args]) == 2
    err = capsys.readouterr().err
    assert err == f"wideseek: {message}\n"
    assert not (tmp_path / "sim").exists()


def test_a_busy_port_exits_2_before_writing_anything(tmp_path: Path, capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert cli_main(["simulate", "--port", str(port), "--out", str(tmp_path / "sim"), *SMALL]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in err and "--port 0" in err
    assert not (tmp_path / "sim").exists()


def test_an_out_that_is_a_file_or_cannot_be_written_exits_2(tmp_path: Path, capsys) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert cli_main(["simulate", "--port", "0", "--out", str(afile)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert cli_main(["simulate", "--port", "0", "--out", str(afile / "sub"), *SMALL]) == 2
    assert f"cannot write the world to {afile / 'sub'}" in capsys.readouterr().err


def test_listen_errors_say_what_to_do() -> None:
    assert "ports below 1024 need privileges" in _listen_error(80, OSError(errno.EACCES, "Permission denied"))
    assert "boom; --port 0" in _listen_error(1, OSError(errno.EIO, "boom"))


def test_printed_lines_without_a_checkout_or_extras(tmp_path: Path, monkeypatch) -> None:
    """From an installed wheel (no langgraph.json beside the package) and without the studio/eval extras, the
    lines say where Studio runs from and which extra each command needs."""
    from langgraph_wideseek.cli import simulate
    from langgraph_wideseek.testing import World

    assert repository() is not None  # this checkout
    monkeypatch.setattr(simulate, "repository", lambda: None)
    monkeypatch.setattr(simulate, "_missing", lambda module: True)
    files = simulate._Files(tmp_path)
    text = simulate._instructions("http://127.0.0.1:1/v1", files, World.generate(n_categories=1).tasks())
    assert "from a clone of the repository" in text
    assert "pip install 'langgraph-wideseek[studio]'" in text and "langgraph-wideseek[eval]" in text
    assert "examples/" not in text
    assert json.dumps(text)  # plain text
