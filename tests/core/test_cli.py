"""`wideseek run` and `wideseek index` as a user runs them: a subprocess against a threaded fake server."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langgraph_wideseek.cli import main as cli_main
from langgraph_wideseek.graph.trajectory import Trajectory, read_jsonl
from langgraph_wideseek.testing import FakeOpenAIServer, Reply, ScriptedPolicy, ThreadedServer

from .helpers import QUESTION, RIVERS, VeloriaAgents, corpus_records, spawn

REPO = Path(__file__).resolve().parents[2]
SECRET = "sk-cli-secret-0d6e2b8f"


def wideseek(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "langgraph_wideseek", *args],
        cwd=REPO,
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def team() -> Iterator[ThreadedServer]:
    """The scripted research team on a server that demands an API key."""
    with FakeOpenAIServer(VeloriaAgents(), api_key=SECRET).start_in_thread() as ts:
        yield ts


def expected_table() -> list[dict[str, str]]:
    return [{"River": n, "Length": f["length"], "Mouth": f["mouth"]} for n, f in RIVERS.items()]


def test_run_prints_the_answer_on_stdout_and_progress_on_stderr(team, corpus_path, index_dir):
    proc = wideseek(
        "run",
        QUESTION,
        "--base-url",
        team.base_url,
        "--model",
        "m",
        "--api-key",
        SECRET,
        "--corpus",
        str(corpus_path),
        "--index-dir",
        str(index_dir),
        "--no-summarize",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("```markdown\n| River | Length | Mouth |")
    assert "| Corvo | 655 km | Gulf of Tamar |" in proc.stdout
    assert "[lead]" not in proc.stdout
    err = proc.stderr.splitlines()
    assert err[0] == "[lead] turn 1"
    assert "[lead] wave 1: 1 subagent(s) started" in err
    assert "[subagent w1.s1] ok after 3 turn(s) [1/1]" in err
    assert "[lead] wave 2: 4 subagent(s) started" in err
    assert sum(ln.startswith("[subagent w2.") for ln in err) == 4
    assert sum(ln.endswith("[4/4]") for ln in err) == 1
    assert err[-1] == "[lead] finished: ok"
    assert SECRET not in proc.stdout + proc.stderr


def test_env_defaults_json_and_appended_trajectory(team, corpus_path, index_dir, tmp_path):
    traj_file = tmp_path / "out" / "rollouts.jsonl"
    traj_file.parent.mkdir()
    traj_file.write_text(Trajectory(rollout_id="earlier", question="old").to_json() + "\n", encoding="utf-8")
    env = {
        "OPENAI_BASE_URL": team.base_url,
        "OPENAI_API_KEY": SECRET,
        "WIDESEEK_MODEL": "env-model",
        "WIDESEEK_CORPUS": str(corpus_path),
        "WIDESEEK_INDEX_DIR": str(index_dir),
        "WIDESEEK_SUMMARIZE_PAGES": "false",
    }
    proc = wideseek("-vv", "run", QUESTION, "--json", "--trajectory", str(traj_file), env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # exactly one JSON object on stdout
    assert out["status"] == "ok" and out["errors"] == []
    assert out["table"] == expected_table()
    assert out["answer"].startswith("```markdown") and out["boxed"] is None
    assert out["usage"]["calls"] == 18 and out["usage"]["subagents"] == 5
    assert all(r["model"] == "env-model" for r in team.server.requests)
    assert "DEBUG" in proc.stderr  # -vv really logs, and still no key in it
    assert SECRET not in proc.stdout and SECRET not in proc.stderr

    text = traj_file.read_text(encoding="utf-8")
    assert SECRET not in text
    earlier, new = read_jsonl(traj_file)  # appended after the existing line, and valid
    assert earlier.rollout_id == "earlier"
    assert new.rollout_id == out["rollout_id"] and new.question == QUESTION and new.answer == out["answer"]
    assert new.num_calls() == 18 and new.lead.status == "ok"


def test_failed_lead_exits_1(corpus_path, index_dir, tmp_path):
    # the lead keeps delegating until it runs out of turns
    policy = ScriptedPolicy(
        lead=[spawn("WORK"), spawn("WORK")], default_subagent=lambda req, k: Reply(content="partial")
    )
    traj_file = tmp_path / "t.jsonl"
    with FakeOpenAIServer(policy, api_key=SECRET).start_in_thread() as ts:
        proc = wideseek(
            "run",
            "Q",
            "--base-url",
            ts.base_url,
            "--corpus",
            str(corpus_path),
            "--index-dir",
            str(index_dir),
            "--max-lead-turns",
            "2",
            "--trajectory",
            str(traj_file),
            env={"OPENAI_API_KEY": SECRET},
        )
    assert proc.returncode == 1 and proc.stdout == ""
    assert "[error] lead: turn limit (2) reached without a final answer" in proc.stderr
    assert "the lead agent failed to produce an answer" in proc.stderr
    (traj,) = read_jsonl(traj_file)  # a failed run is recorded too
    assert traj.lead.status == "failed" and traj.answer is None
    assert SECRET not in proc.stdout + proc.stderr + traj_file.read_text(encoding="utf-8")


# ------------------------------------------------------------------- in-process: the same main(), faster
def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli_main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_question_from_stdin(team, corpus_path, index_dir, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(QUESTION + "\n"))
    code, out, err = run_main(
        [
            "run",
            "-",
            "--base-url",
            team.base_url,
            "--api-key",
            SECRET,
            "--corpus",
            str(corpus_path),
            "--index-dir",
            str(index_dir),
            "--no-summarize",
            "-q",
        ],
        capsys,
    )
    assert code == 0 and "| Amsel | 412 km | Northern Sea |" in out and err == ""


def test_json_output_of_a_failed_run_and_a_rejected_key(corpus_path, index_dir, capsys, monkeypatch):
    policy = ScriptedPolicy(
        lead=[spawn("WORK"), spawn("WORK")], default_subagent=lambda req, k: Reply(content="partial")
    )
    with FakeOpenAIServer(policy, api_key=SECRET).start_in_thread() as ts:
        common = [
            "run",
            "Q",
            "--base-url",
            ts.base_url,
            "--corpus",
            str(corpus_path),
            "--index-dir",
            str(index_dir),
            "--max-lead-turns",
            "2",
        ]
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        code, out, err = run_main(common + ["--json"], capsys)
        assert code == 1
        res: dict[str, Any] = json.loads(out)
        assert res["status"] == "failed" and res["answer"] is None and res["table"] is None
        assert res["errors"] == ["lead: turn limit (2) reached without a final answer"]
        monkeypatch.setenv("OPENAI_API_KEY", SECRET + "-wrong")
        code, out, err = run_main(common, capsys)
    assert code == 1 and "HTTP 401" in err and out == ""
    assert SECRET not in out + err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-subagents", "0"], "invalid configuration: max_subagents"),
        (["--corpus", "/nonexistent/corpus.jsonl"], "corpus file not found"),
        ([], "needs a corpus"),
    ],
)
def test_configuration_errors_exit_2(args, message, capsys):
    try:  # a bad value exits from config parsing, a missing corpus returns from the command: both are 2
        code = cli_main(["run", "Q", "--base-url", "http://127.0.0.1:9/v1", *args])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2
    assert message in err and out == ""


def test_invalid_environment_value_exits_2(monkeypatch, capsys):
    monkeypatch.setenv("WIDESEEK_MAX_LEAD_TURNS", "many")
    with pytest.raises(SystemExit) as ei:
        cli_main(["run", "Q"])
    assert ei.value.code == 2 and "max_lead_turns" in capsys.readouterr().err


def test_empty_question_exits_2(capsys):
    code, out, err = run_main(["run", "  "], capsys)
    assert code == 2 and "question is empty" in err


def test_index_builds_once_and_reports_bad_lines(corpus_path, tmp_path, capsys):
    code, first, _ = run_main(["index", str(corpus_path), "--index-dir", str(tmp_path / "idx")], capsys)
    assert code == 0
    assert first.startswith(f"indexed {len(corpus_records())} pages as ") and str(tmp_path / "idx") in first
    code, again, _ = run_main(["index", str(corpus_path), "--index-dir", str(tmp_path / "idx")], capsys)
    assert code == 0 and again.split(" -> ")[1] == first.split(" -> ")[1]
    assert len([p for p in (tmp_path / "idx").iterdir() if not p.name.startswith(".")]) == 1

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"url": "https://a", "title": "A", "text": "ok"}\n{"url": "https://b"}\n')
    code, out, err = run_main(["index", str(bad), "--index-dir", str(tmp_path / "idx")], capsys)
    assert code == 2 and "line 2" in err and out == ""
    code, out, err = run_main(["index", str(tmp_path / "absent.jsonl")], capsys)
    assert code == 2 and "not found" in err
