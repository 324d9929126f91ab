"""The eval runner (with a stand-in agent), resuming, failures, aggregation and the report."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from langgraph_wideseek import WideSeekResult
from langgraph_wideseek.eval import ExactJudge, JudgeError, TrialScore
from langgraph_wideseek.eval.runner import load_responses, read_results, run_eval, run_trials, score_records
from langgraph_wideseek.eval.summary import summarize
from langgraph_wideseek.eval.table import to_markdown
from langgraph_wideseek.graph.trajectory import AgentTrajectory, Completion, Trajectory, TurnRecord
from langgraph_wideseek.tools.tally import ToolCount

REPO = Path(__file__).resolve().parents[2]
IDS = ["ws_en_002", "ws_en_004", "ws_zh_003"]  # tasks the exact judge can score perfectly


def perfect(task) -> str:
    return "Done.\n" + to_markdown(list(task.required), [list(r) for r in task.gold.rows()])


def result_for(question: str, answer: str | None, *, status="ok", errors=()) -> WideSeekResult:
    traj = Trajectory(
        rollout_id="r",
        question=question,
        answer=answer,
        agents=[
            AgentTrajectory(
                agent_id="lead",
                role="lead",
                status="ok" if status == "ok" else "failed",
                turns=[
                    TurnRecord(
                        turn=1,
                        messages=[{"role": "user", "content": question}],
                        completion=Completion(content=answer),
                        completion_token_ids=[1, 2, 3],
                    )
                ],
            )
        ],
    )
    return WideSeekResult(
        question=question, answer=answer, status=status, errors=list(errors), trajectory=traj
    )


class StandIn:
    """Answers each question with its gold table; records every call."""

    def __init__(self, tasks, *, fail=None, delay=0.0):
        self.by_query = {t.query: t for t in tasks}
        self.calls: list[str] = []
        self.fail = fail or {}
        self.delay = delay

    async def __call__(self, question: str) -> WideSeekResult:
        task = self.by_query[question]
        self.calls.append(task.instance_id)
        if self.delay:
            await asyncio.sleep(self.delay)
        mode = self.fail.get(task.instance_id)
        if mode == "raise":
            raise ConnectionError("model server unreachable")
        if mode == "failed":
            return result_for(question, None, status="failed", errors=["lead exceeded its turn limit"])
        if mode == "hang":
            await asyncio.sleep(60)
        result = result_for(question, perfect(task))
        if mode == "no_search":  # the retriever was down: every search call failed, the answer is a guess
            result.tools = {"search": ToolCount(calls=3, failed=3, items=4, failed_items=4)}
        return result


@pytest.fixture
def tasks(sample_tasks):
    return [sample_tasks[i] for i in IDS]


async def test_a_full_run_writes_every_file(tasks, tmp_path):
    agent = StandIn(tasks)
    summary = await run_eval(tasks, agent, ExactJudge(), tmp_path, samples=2, concurrency=3, progress=False)
    assert sorted(agent.calls) == sorted(IDS * 2)
    results = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(results) == 6 and {r["status"] for r in results} == {"ok"}
    assert {"instance_id", "sample", "response", "status", "errors", "usage", "elapsed"} <= set(results[0])
    trajs = [json.loads(x) for x in (tmp_path / "trajectories.jsonl").read_text().splitlines()]
    assert len(trajs) == 6 and trajs[0]["trajectory"]["agents"][0]["role"] == "lead"
    scores = [TrialScore.model_validate_json(x) for x in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert len(scores) == 6 and all(s.success for s in scores)
    assert summary.pooled.metrics["item_f1"].avg == 100.0 and summary.pooled.metrics["success"].max == 100.0
    assert set(summary.by_language) == {"en", "zh"} and summary.by_language["zh"].tasks == 1
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["pooled"]["metrics"]["row_f1"]["avg"] == 100.0 and saved["judge"] == "exact"
    report = (tmp_path / "report.md").read_text()
    assert "| ws_zh_003 | zh | 2 | 100.0 |" in report and "![scores per task](scores.png)" in report
    assert (tmp_path / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_resume_skips_finished_trials(tasks, tmp_path):
    first = StandIn(tasks)
    await run_trials(tasks[:2], first, tmp_path, samples=2, progress=False)
    again = StandIn(tasks)
    records = await run_trials(tasks, again, tmp_path, samples=2, progress=False)
    assert sorted(again.calls) == ["ws_zh_003", "ws_zh_003"]
    assert len(records) == 6 and len((tmp_path / "results.jsonl").read_text().splitlines()) == 6
    nothing = StandIn(tasks)
    await run_trials(tasks, nothing, tmp_path, samples=2, progress=False)
    assert nothing.calls == []


async def test_failed_runs_count_as_zero_and_can_be_retried(tasks, tmp_path):
    agent = StandIn(tasks, fail={"ws_en_002": "raise", "ws_en_004": "failed"})
    summary = await run_eval(tasks, agent, ExactJudge(), tmp_path, samples=2, progress=False)
    recs = {(r.instance_id, r.sample): r for r in read_results(tmp_path / "results.jsonl")}
    assert recs[("ws_en_002", 0)].errors == ["agent raised ConnectionError: model server unreachable"]
    assert recs[("ws_en_004", 1)].status == "failed" and recs[("ws_en_004", 1)].response is None
    assert summary.failed_trials == 4 and summary.statuses == {"agent_failed": 4, "ok": 2}
    assert summary.pooled.metrics["item_f1"].avg == pytest.approx(100 / 3)  # (0 + 0 + 100) / 3 tasks
    # a plain resume keeps the failures; retry_failed runs exactly those again
    plain = StandIn(tasks)
    await run_trials(tasks, plain, tmp_path, samples=2, progress=False)
    assert plain.calls == []
    retry = StandIn(tasks)
    summary = await run_eval(
        tasks, retry, ExactJudge(), tmp_path, samples=2, retry_failed=True, progress=False
    )
    assert sorted(retry.calls) == sorted(["ws_en_002", "ws_en_004"] * 2)
    assert summary.failed_trials == 0 and summary.pooled.metrics["success"].avg == 100.0


async def test_a_run_whose_every_search_failed_is_a_failed_trial_not_a_score(tasks, tmp_path):
    agent = StandIn(tasks, fail={"ws_en_002": "no_search"})
    summary = await run_eval(tasks, agent, ExactJudge(), tmp_path, samples=1, progress=False)
    recs = {r.instance_id: r for r in read_results(tmp_path / "results.jsonl")}
    assert recs["ws_en_002"].status == "failed"
    assert any("every search call failed (3 of 3)" in e for e in recs["ws_en_002"].errors)
    assert summary.failed_trials == 1 and summary.statuses == {"agent_failed": 1, "ok": 2}
    retry = StandIn(tasks)
    summary = await run_eval(
        tasks, retry, ExactJudge(), tmp_path, samples=1, retry_failed=True, progress=False
    )
    assert retry.calls == ["ws_en_002"] and summary.failed_trials == 0


async def test_a_hanging_run_times_out_as_a_failed_trial(tasks, tmp_path):
    agent = StandIn(tasks[:1], fail={"ws_en_002": "hang"})
    records = await run_trials(tasks[:1], agent, tmp_path, samples=1, trial_timeout=0.05, progress=False)
    assert records[0].status == "failed" and "exceeded 0.05 s" in records[0].errors[0]


async def test_a_half_written_last_line_is_dropped_and_rerun(tasks, tmp_path):
    await run_trials(tasks[:1], StandIn(tasks), tmp_path, samples=2, progress=False)
    path = tmp_path / "results.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[1][:40])  # killed while writing the second line
    assert len(read_results(path)) == 1
    agent = StandIn(tasks)
    await run_trials(tasks[:1], agent, tmp_path, samples=2, progress=False)
    assert len(agent.calls) == 1 and len(read_results(path)) == 2
    assert all(json.loads(x) for x in path.read_text().splitlines())


def test_a_corrupt_middle_line_is_an_error(tmp_path):
    p = tmp_path / "results.jsonl"
    p.write_text('{"instance_id": "a", "sample": 0}\ngarbage\n{"instance_id": "a", "sample": 1}\n')
    with pytest.raises(ValueError, match="results.jsonl:2"):
        read_results(p)


async def test_judge_failures_while_scoring_lose_no_trial(tasks, tmp_path):
    class Flaky(ExactJudge):
        calls = 0

        async def grade(self, criterion, pairs):
            Flaky.calls += 1
            if Flaky.calls % 2:
                raise JudgeError("rate limited")
            return await super().grade(criterion, pairs)

    records = await run_trials(tasks, StandIn(tasks), tmp_path, samples=2, progress=False)
    summary = await score_records(tasks, records, Flaky(), tmp_path, samples=2)
    scores = (tmp_path / "scores.jsonl").read_text().splitlines()
    assert len(scores) == 6
    assert summary.judge_failures == Flaky.calls - Flaky.calls // 2 > 0
    assert summary.trials_with_judge_failures > 0
    assert "judge failures" in (tmp_path / "report.md").read_text()


async def test_missing_trials_score_zero(tasks, tmp_path):
    recs = load_responses_from(
        tmp_path, [{"instance_id": "ws_en_002", "sample": 0, "response": perfect(tasks[0])}]
    )
    summary = await score_records(tasks[:1], recs, ExactJudge(), tmp_path, samples=2)
    assert summary.statuses == {"ok": 1, "missing": 1}
    assert summary.tasks[0].metrics["item_f1"].avg == 50.0 and summary.incomplete_tasks == []


def load_responses_from(tmp_path, rows):
    p = tmp_path / "responses.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return load_responses(p)


def test_load_responses_formats(tmp_path):
    recs = load_responses_from(
        tmp_path,
        [
            {"instance_id": "a", "response": "x"},
            {"instance_id": "a", "response": "y"},
            {"instance_id": "b", "trial_idx": 3, "response": None},
        ],
    )
    assert [(r.instance_id, r.sample, r.response) for r in recs] == [
        ("a", 0, "x"),
        ("a", 1, "y"),
        ("b", 3, None),
    ]
    (tmp_path / "bad.jsonl").write_text('{"sample": 0, "response": "x"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        load_responses(tmp_path / "bad.jsonl")


def _trial(iid, lang, item, row=0.0, success=False, status="ok", jf=0):
    return TrialScore(
        instance_id=iid,
        language=lang,
        item_f1=item,
        row_f1=row,
        success=success,
        status=status,
        judge_failures=jf,
        judge_calls=jf,
    )


def test_summary_avg_max_min_per_language_and_pooled():
    # task A (en): item F1 0.2 and 0.6 -> avg 40, max 60, min 20
    # task B (zh): item F1 1.0 and 0.0 -> avg 50, max 100, min 0 ; success 1 of 2 -> avg 50, pass 100
    scores = [
        _trial("A", "en", 0.2),
        _trial("A", "en", 0.6, jf=1),
        _trial("B", "zh", 1.0, 1.0, True),
        _trial("B", "zh", 0.0, status="agent_failed"),
    ]
    s = summarize(scores, samples=2, judge="exact")
    item = s.pooled.metrics["item_f1"]
    assert (item.avg, item.max, item.min) == pytest.approx((45.0, 80.0, 10.0))
    assert s.by_language["en"].metrics["item_f1"].avg == pytest.approx(40.0)
    assert (s.by_language["zh"].metrics["success"].avg, s.by_language["zh"].metrics["success"].max) == (
        50.0,
        100.0,
    )
    assert s.pooled.metrics["success"].avg == 25.0 and s.pooled.metrics["success"].max == 50.0
    assert (s.failed_trials, s.judge_failures, s.trials_with_judge_failures) == (1, 1, 1)
    assert summarize(scores[:3], samples=2).incomplete_tasks == ["B"]


KILL_SCRIPT = r"""
import asyncio, json, sys, time
from pathlib import Path
from langgraph_wideseek import WideSeekResult
from langgraph_wideseek.eval import load_tasks
from langgraph_wideseek.eval.runner import run_trials
from langgraph_wideseek.eval.table import to_markdown
from langgraph_wideseek.tools.tally import ToolCount
from langgraph_wideseek.graph.trajectory import Trajectory

data, out, log = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
tasks = load_tasks(data / "widesearch_sample.jsonl", data / "widesearch_gold",
                   ids=["ws_en_002", "ws_en_004", "ws_zh_003"])
by_query = {t.query: t for t in tasks}

async def agent(question):
    t = by_query[question]
    with log.open("a") as f:
        f.write(t.instance_id + "\n")
    await asyncio.sleep(0.25)
    answer = to_markdown(list(t.required), [list(r) for r in t.gold.rows()])
    trajectory = Trajectory(rollout_id="r", question=question)
    return WideSeekResult(question=question, answer=answer, trajectory=trajectory)

asyncio.run(run_trials(tasks, agent, out, samples=3, concurrency=2, progress=False))
print("complete")
"""


@pytest.mark.slow
def test_killed_run_resumes_without_redoing_finished_trials(tmp_path, sample_dir):
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def cmd(log):
        return [sys.executable, str(script), str(sample_dir), str(out), str(tmp_path / log)]

    proc = subprocess.Popen(cmd("first.log"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if results.exists() and len(results.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: whatever is on disk is all there is
    proc.wait(timeout=10)
    finished = read_results(results)
    assert 3 <= len(finished) < 9

    done = subprocess.run(cmd("second.log"), env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "complete" in done.stdout, done.stderr
    final = read_results(results)
    assert sorted((r.instance_id, r.sample) for r in final) == sorted(
        (i, k) for i in ["ws_en_002", "ws_en_004", "ws_zh_003"] for k in range(3)
    )
    assert len(results.read_text().splitlines()) == 9  # every trial recorded exactly once
    # the second run started exactly the trials the first had not finished (in-flight ones included)
    second = (tmp_path / "second.log").read_text().splitlines()
    for iid in ["ws_en_002", "ws_en_004", "ws_zh_003"]:
        assert second.count(iid) == 3 - sum(1 for r in finished if r.instance_id == iid)


async def test_qa_tasks_are_rejected_before_any_agent_runs(tasks, tmp_path):
    from langgraph_wideseek.eval import Task, UnsupportedTaskError

    qa = Task(instance_id="qa_1", query="Who?", kind="qa", answers=("Ada",))
    agent = StandIn(tasks)
    with pytest.raises(UnsupportedTaskError, match="qa_1"):
        await run_eval([*tasks, qa], agent, ExactJudge(), tmp_path, samples=1, progress=False)
    assert agent.calls == [] and not (tmp_path / "results.jsonl").exists()
    with pytest.raises(UnsupportedTaskError, match="1 task"):
        await score_records([qa], [], ExactJudge(), tmp_path, samples=1)
