"""``wideseek eval`` and ``wideseek score`` end to end.

The real CLI entry point runs the real graph against ``FakeOpenAIServer`` playing the model (the lead sends
one subagent, then answers with the gold table), and scores with ``OpenAIJudge`` against a second fake server
playing the judge. Both run on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from langgraph_wideseek.cli import main
from langgraph_wideseek.eval.table import to_markdown
from langgraph_wideseek.testing import FakeOpenAIServer, Reply, first_user_text, is_lead, turn_index

IDS = ["ws_en_002", "ws_zh_003"]


class AgentModel:
    """The lead delegates one subtask, then answers with the gold table of the task it was given."""

    def __init__(self, tasks, broken: set[str] = frozenset()):
        self.tasks = tasks
        self.broken = broken

    def __call__(self, body: dict) -> Reply:
        text = first_user_text(body)
        task = next(t for t in self.tasks if t.query in text)
        if not is_lead(body):
            return Reply(content="Report: the table is in the gold file.")
        if turn_index(body) == 0:
            return Reply(
                reasoning="Delegate.",
                tool_calls=[
                    {
                        "name": "create_sub_agents",
                        "arguments": {"sub_agents": [{"prompt": f"Collect the rows for {task.instance_id}"}]},
                    }
                ],
            )
        if task.instance_id in self.broken:
            return Reply(content="Sorry, I could not build the table.")
        return Reply(
            reasoning="Compile.",
            content=to_markdown(list(task.required), [list(r) for r in task.gold.rows()]),
        )


def _corpus(tmp_path: Path) -> Path:
    p = tmp_path / "corpus.jsonl"
    p.write_text(json.dumps({"url": "https://example.org/a", "title": "A", "text": "Nothing useful."}) + "\n")
    return p


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


@pytest.mark.slow
async def test_eval_then_resume_then_score(sample_tasks, sample_dir, fake_judge_model, tmp_path, capsys):
    tasks = [sample_tasks[i] for i in IDS]
    out = tmp_path / "run"
    async with (
        FakeOpenAIServer(AgentModel(tasks, broken={"ws_zh_003"})) as agent,
        FakeOpenAIServer(fake_judge_model(), api_key="sk-judge-SECRET") as judge,
    ):
        argv = [
            "eval",
            "--tasks",
            str(sample_dir / "widesearch_sample.jsonl"),
            "--gold",
            str(sample_dir / "widesearch_gold"),
            "--ids",
            ",".join(IDS),
            "--out",
            str(out),
            "--samples",
            "2",
            "--concurrency",
            "2",
            "--no-progress",
            "--base-url",
            agent.base_url,
            "--model",
            "fake-model",
            "--search",
            "local",
            "--corpus",
            str(_corpus(tmp_path)),
            "--max-subagents",
            "2",
            "--judge-base-url",
            judge.base_url,
            "--judge-model",
            "judge",
            "--judge-api-key",
            "sk-judge-SECRET",
        ]
        assert await cli(*argv) == 0
        agent_calls, judge_calls = agent.stats.requests, judge.stats.requests
        assert agent_calls == 4 * 3  # per trial: lead, subagent, lead
        # again: every trial is finished and every judge reply cached, so nothing is asked twice
        assert await cli(*argv) == 0
        assert (agent.stats.requests, judge.stats.requests) == (agent_calls, judge_calls)

    stdout = capsys.readouterr().out
    assert "item F1  Avg@2  50.0  Max@2  50.0" in stdout and "success  Avg@2  50.0  Pass@2  50.0" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["judge"] == "openai:judge" and summary["statuses"] == {"ok": 2, "no_table": 2}
    assert summary["by_language"]["en"]["metrics"]["success"]["avg"] == 100.0
    assert summary["by_language"]["zh"]["metrics"]["item_f1"]["avg"] == 0.0
    results = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(results) == 4 and all(r["usage"]["calls"] == 3 for r in results)
    trajs = [json.loads(x) for x in (out / "trajectories.jsonl").read_text().splitlines()]
    assert {a["role"] for t in trajs for a in t["trajectory"]["agents"]} == {"lead", "subagent"}
    for name in ("results.jsonl", "trajectories.jsonl", "scores.jsonl", "summary.json", "report.md"):
        assert "sk-judge-SECRET" not in (out / name).read_text()
    assert (out / "scores.png").exists() and list((out / "judge_cache").glob("*/*.json"))

    # `wideseek score` reads results.jsonl as responses and agrees with the run (exact judge, offline)
    scored = tmp_path / "scored"
    assert (
        await cli(
            "score",
            "--tasks",
            str(sample_dir / "widesearch_sample.jsonl"),
            "--ids",
            ",".join(IDS),
            "--responses",
            str(out / "results.jsonl"),
            "--out",
            str(scored),
            "--exact-judge",
        )
        == 0
    )
    again = json.loads((scored / "summary.json").read_text())
    assert again["samples"] == 2 and again["judge"] == "exact"
    assert again["pooled"]["metrics"] == summary["pooled"]["metrics"]


async def test_score_reports_bad_input_clearly(sample_dir, tmp_path, capsys):
    bad = tmp_path / "responses.jsonl"
    bad.write_text('{"instance_id": "ws_en_002", "sample": 0, "response": 5}\n')
    code = await cli(
        "score",
        "--tasks",
        str(sample_dir / "widesearch_sample.jsonl"),
        "--responses",
        str(bad),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2 and "responses.jsonl:1" in capsys.readouterr().err
    code = await cli(
        "score",
        "--tasks",
        str(tmp_path / "nope.jsonl"),
        "--responses",
        str(bad),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2 and "task file" in capsys.readouterr().err


async def test_score_without_a_judge_warns_and_uses_the_exact_judge(
    sample_tasks, sample_dir, tmp_path, capsys
):
    t = sample_tasks["ws_en_004"]
    responses = tmp_path / "r.jsonl"
    responses.write_text(
        json.dumps(
            {
                "instance_id": t.instance_id,
                "sample": 0,
                "response": to_markdown(list(t.required), [list(r) for r in t.gold.rows()]),
            }
        )
        + "\n"
        + json.dumps({"instance_id": "ws_xx_404", "sample": 0, "response": "?"})
        + "\n"
    )
    code = await cli(
        "score",
        "--tasks",
        str(sample_dir / "widesearch_sample.jsonl"),
        "--ids",
        "ws_en_004",
        "--responses",
        str(responses),
        "--out",
        str(tmp_path / "o"),
    )
    captured = capsys.readouterr()
    assert code == 0 and "not comparable with published ones" in captured.err and "ws_xx_404" in captured.err
    assert "success  Avg@1 100.0" in captured.out


async def test_eval_rejects_qa_tasks_up_front(tmp_path, capsys):
    tasks = tmp_path / "mixed.jsonl"
    tasks.write_text(json.dumps({"instance_id": "qa_1", "question": "Who wrote it?", "answer": "Ada"}) + "\n")
    code = await cli(
        "eval", "--tasks", str(tasks), "--out", str(tmp_path / "o"), "--base-url", "http://127.0.0.1:9/v1"
    )
    assert code == 2 and "QA tasks" in capsys.readouterr().err
