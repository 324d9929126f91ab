"""`wideseek run` tells the truth (issue 13): a run whose every search failed, or whose answer is empty, exits
non-zero with the reason in --json; partial failures are counted per tool without failing the run; an output
path that cannot be written stops the command before any model call, and a write that still fails at the end
comes after the answer."""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langgraph_wideseek.cli import main as cli_main
from langgraph_wideseek.graph.trajectory import read_jsonl
from langgraph_wideseek.testing import FakeOpenAIServer, Reply, ScriptedPolicy

from .helpers import call, spawn


class _Refuse(http.server.BaseHTTPRequestHandler):
    """A retrieval server that refuses every request (HTTP 400): each search fails at once."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"detail": "no"}'
        self.send_response(400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_retriever() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def searching_team(final: str = "```markdown\n| A |\n|---|\n| x |\n```") -> ScriptedPolicy:
    """The lead starts one subagent that searches twice, then answers ``final``."""
    search = Reply(tool_calls=[call("search", queries=[{"query": "Amsel"}, {"query": "Corvo"}])])
    return ScriptedPolicy(
        lead=[spawn("WORK"), Reply(content=final)],
        subagents={"WORK": [search, search, Reply(content="report")]},
    )


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli_main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_every_search_failed_exits_3_with_the_reason(refusing_retriever, capsys):
    with FakeOpenAIServer(searching_team()).start_in_thread() as ts:
        argv = ["run", "Q", "--base-url", ts.base_url, "--search", "retriever", "--no-summarize"]
        argv += ["--retriever-url", refusing_retriever]
        code, out, err = run([*argv, "--json"], capsys)
        assert code == 3
        res: dict[str, Any] = json.loads(out)
        assert res["status"] == "failed" and res["exit_code"] == 3 and res["answer"]
        assert "every search call failed (2 of 2)" in res["reason"]
        assert res["tools"]["search"] == {"calls": 2, "failed": 2, "items": 4, "failed_items": 4}
        code, out, err = run(argv, capsys)
    assert code == 3 and out.startswith("```markdown")  # the answer is still shown
    assert "wideseek: every search call failed" in err
    assert "[tools] search: 2 call(s), 2 failed entirely, 4 of 4 item(s) failed" in err


def test_partial_search_failures_are_counted_without_failing_the_run(corpus_path, index_dir, capsys):
    good = Reply(tool_calls=[call("search", queries=[{"query": "Amsel"}])])
    policy = ScriptedPolicy(
        lead=[spawn("WORK"), Reply(content="the answer")],
        subagents={"WORK": [good, good, Reply(content="report")]},
    )
    calls = {"n": 0}

    from langgraph_wideseek.tools.local import LocalSearch

    real = LocalSearch.search

    async def flaky(self: Any, query: str, count: int) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            from langgraph_wideseek.errors import BackendError

            raise BackendError("index busy")
        return await real(self, query, count)

    with pytest.MonkeyPatch.context() as mp, FakeOpenAIServer(policy).start_in_thread() as ts:
        mp.setattr(LocalSearch, "search", flaky)
        argv = ["run", "Q", "--base-url", ts.base_url, "--corpus", str(corpus_path)]
        argv += ["--index-dir", str(index_dir), "--no-summarize"]
        code, out, err = run(argv, capsys)
    assert code == 0 and out == "the answer\n"
    assert "[tools] search: 2 call(s), 1 failed entirely, 1 of 2 item(s) failed" in err


def test_an_empty_answer_exits_1(corpus_path, index_dir, capsys):
    empty = Reply(content="<think>nothing to say</think>")
    policy = ScriptedPolicy(lead=[empty, empty])
    with FakeOpenAIServer(policy).start_in_thread() as ts:
        argv = ["run", "Q", "--base-url", ts.base_url, "--corpus", str(corpus_path)]
        argv += ["--index-dir", str(index_dir), "--max-lead-turns", "2", "--json"]
        code, out, err = run(argv, capsys)
    res = json.loads(out)
    assert code == 1 and res["status"] == "failed" and res["answer"] is None
    assert res["reason"].startswith("the lead agent failed to produce an answer (lead: turn limit (2)")
    # an answer that is only whitespace (an injected model may give one) is no answer either
    from langgraph_wideseek.cli.run import outcome
    from langgraph_wideseek.graph.result import WideSeekResult
    from langgraph_wideseek.graph.trajectory import Trajectory

    blank = WideSeekResult(question="Q", answer=" \n", trajectory=Trajectory(rollout_id="r", question="Q"))
    assert outcome(blank) == (1, "the lead agent's answer is empty")


@pytest.mark.parametrize("kind", ["directory", "proc", "parent-is-file"])
def test_an_unwritable_trajectory_path_stops_before_any_model_call(kind, tmp_path, corpus_path, capsys):
    path = {
        "directory": str(tmp_path),
        "proc": "/proc/wideseek-x.jsonl",
        "parent-is-file": str(Path(corpus_path) / "t.jsonl"),
    }[kind]
    policy = ScriptedPolicy(lead=[Reply(content="answer")])
    with FakeOpenAIServer(policy).start_in_thread() as ts:
        argv = ["run", "Q", "--base-url", ts.base_url, "--corpus", str(corpus_path), "--trajectory", path]
        code, out, err = run(argv, capsys)
        assert ts.server.stats.requests == 0  # no model call was made
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "trajectory file" in err and repr(path) in err


def test_a_trajectory_write_that_fails_at_the_end_comes_after_the_answer(
    tmp_path, corpus_path, index_dir, capsys, monkeypatch
):
    traj = tmp_path / "t.jsonl"
    traj.write_text("", encoding="utf-8")
    policy = ScriptedPolicy(lead=[Reply(content="the answer")])

    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, os.strerror(28))

    monkeypatch.setattr("langgraph_wideseek.graph.trajectory.write_jsonl", full_disk)
    with FakeOpenAIServer(policy).start_in_thread() as ts:
        argv = ["run", "Q", "--base-url", ts.base_url, "--corpus", str(corpus_path)]
        argv += ["--index-dir", str(index_dir), "--trajectory", str(traj)]
        code, out, err = run(argv, capsys)
    assert code == 4 and out == "the answer\n"
    assert err.strip().endswith(
        f"wideseek: cannot write the trajectory to {str(traj)!r}: No space left on device"
    )


def test_a_writable_trajectory_path_is_left_as_it_was_until_the_run_ends(
    tmp_path, corpus_path, index_dir, capsys
):
    traj = tmp_path / "new" / "t.jsonl"
    policy = ScriptedPolicy(lead=[Reply(content="the answer")])
    with FakeOpenAIServer(policy).start_in_thread() as ts:
        argv = ["run", "Q", "--base-url", ts.base_url, "--corpus", str(corpus_path)]
        code, _, _ = run([*argv, "--index-dir", str(index_dir), "--trajectory", str(traj)], capsys)
    assert code == 0 and len(list(read_jsonl(traj))) == 1


@pytest.mark.parametrize("argv", [["--version"], ["run", "--version"], ["score", "--version"]])
def test_version_on_every_command(argv, capsys):
    from langgraph_wideseek import __version__

    with pytest.raises(SystemExit) as ei:
        cli_main(argv)
    assert ei.value.code == 0 and capsys.readouterr().out.strip() == f"wideseek {__version__}"
