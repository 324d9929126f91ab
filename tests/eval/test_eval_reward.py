"""The WideSeek-R1 reward: bonuses, length penalty, zero cases, generic vs benchmark mode, QA tasks."""

from __future__ import annotations

import pytest

from langgraph_wideseek import WideSeekResult
from langgraph_wideseek.eval import ExactJudge, JudgeError
from langgraph_wideseek.eval.judge import GENERIC_CRITERION, QA_CRITERION
from langgraph_wideseek.eval.reward import RewardConfig, compute_reward, generic_task
from langgraph_wideseek.eval.table import to_markdown
from langgraph_wideseek.eval.tasks import Task
from langgraph_wideseek.graph.trajectory import AgentTrajectory, Completion, Trajectory, TurnRecord


def rollout(answer: str | None, *, access=False, longest=100, lead_ok=True) -> Trajectory:
    def turn(k, n_tokens, calls=()):
        return TurnRecord(
            turn=k,
            messages=[],
            completion=Completion(content="x", tool_calls=list(calls)),
            completion_token_ids=list(range(n_tokens)),
        )

    sub_calls = (
        [{"id": "c1", "type": "function", "function": {"name": "access", "arguments": "{}"}}]
        if access
        else []
    )
    return Trajectory(
        rollout_id="r",
        question="q",
        answer=answer,
        agents=[
            AgentTrajectory(
                agent_id="lead",
                role="lead",
                status="ok" if lead_ok else "failed",
                turns=[turn(1, 50), turn(2, 80)],
            ),
            AgentTrajectory(
                agent_id="sub-1",
                role="subagent",
                index=1,
                turns=[
                    turn(
                        1,
                        longest,
                        [{"id": "c0", "type": "function", "function": {"name": "search", "arguments": "{}"}}],
                    ),
                    turn(2, 10, sub_calls),
                ],
            ),
        ],
    )


def perfect(task: Task, *, fence=True) -> str:
    return to_markdown(list(task.required), [list(r) for r in task.gold.rows()], fence=fence)


class CountingJudge(ExactJudge):
    def __init__(self):
        self.criteria: list[str] = []

    async def grade(self, criterion, pairs):
        self.criteria.append(criterion)
        return await super().grade(criterion, pairs)


@pytest.fixture
def t(sample_tasks):
    return sample_tasks["ws_en_008"]  # 25 rows; 2 keys, 4 number_near columns


async def test_perfect_table_short_rollout(t):
    r = await compute_reward(rollout(perfect(t)), t, judge=ExactJudge())
    assert (r.total, r.item_f1, r.format_bonus, r.access_bonus, r.length_penalty) == (1.1, 1.0, 0.1, 0.0, 0.0)
    assert r.reason == "ok" and r.longest_generation == 100


@pytest.mark.parametrize(("longest", "penalty"), [(3000, 0.0), (4000, 0.05), (5000, 0.1), (9000, 0.1)])
async def test_access_bonus_and_length_penalty(t, longest, penalty):
    r = await compute_reward(rollout(perfect(t), access=True, longest=longest), t, judge=ExactJudge())
    assert r.access_bonus == 0.05 and r.length_penalty == pytest.approx(penalty)
    assert r.total == pytest.approx(1.0 + 0.1 + 0.05 - penalty)


async def test_zero_cases(t):
    judge = ExactJudge()
    failed = await compute_reward(rollout(perfect(t), lead_ok=False, access=True), t, judge=judge)
    assert (failed.total, failed.reason) == (0.0, "the lead failed")
    none = await compute_reward(rollout(None), t, judge=judge)
    assert (none.total, none.reason) == (0.0, "no final answer")
    prose = await compute_reward(rollout("I found nothing."), t, judge=judge)
    assert (prose.total, prose.reason) == (0.0, "no table in the answer")
    cols = list(t.required)[:-1]
    short = to_markdown(cols, [list(r)[:-1] for r in t.gold.rows()])
    missing = await compute_reward(rollout(short, access=True), t, judge=judge)
    assert (missing.total, missing.reason) == (0.0, "the table's columns are not the required ones")


async def test_unfenced_table_gets_no_format_bonus(t):
    r = await compute_reward(rollout(perfect(t, fence=False)), t, judge=ExactJudge())
    assert (r.total, r.item_f1, r.format_bonus) == (1.0, 1.0, 0.0)


async def test_reasoning_in_the_answer_is_ignored(t):
    r = await compute_reward(
        rollout("<think>| a | b | c | d |</think>\n" + perfect(t)), t, judge=ExactJudge()
    )
    assert r.total == 1.1


async def test_generic_mode_judges_every_non_key_column_with_one_criterion(t):
    rows = [list(r) for r in t.gold.rows()]
    c = list(t.required).index("totaltradingvalue(usdmillions)")
    rows[0][c] = "2,699,009"  # +4%: within number_near's 5%, but not the same string
    answer = to_markdown(list(t.required), rows)
    judge = CountingJudge()
    generic = await compute_reward(rollout(answer), t, judge=judge, mode="generic")
    assert judge.criteria == [GENERIC_CRITERION] * 4  # one call per non-key column
    assert generic.item_f1 == pytest.approx(149 / 150)
    bench_judge = CountingJudge()
    bench = await compute_reward(rollout(answer), t, judge=bench_judge, mode="benchmark")
    assert bench_judge.criteria == [] and bench.item_f1 == 1.0
    assert generic_task(t).eval_pipeline["exchangename"] == t.eval_pipeline["exchangename"]
    with pytest.raises(ValueError):
        await compute_reward(rollout(answer), t, judge=judge, mode="lenient")


async def test_judge_failures_are_reported(t):
    class Down(ExactJudge):
        async def grade(self, criterion, pairs):
            raise JudgeError("down")

    r = await compute_reward(rollout(perfect(t)), t, judge=Down())
    assert (
        r.judge_failures == 4
        and r.item_f1 == pytest.approx(50 / 150)
        and "4 judge call(s) failed" in r.reason
    )


QA = Task(instance_id="depth_1", query="Who wrote Hamlet?", kind="qa", answers=("William Shakespeare",))


async def test_qa_reward():
    class Lenient(ExactJudge):
        async def grade(self, criterion, pairs):
            assert criterion == QA_CRITERION
            return [int(r.lower() in t.lower()) for r, t in pairs]

    right = await compute_reward(rollout("It is \\boxed{william  shakespeare}."), QA, judge=ExactJudge())
    assert (right.total, right.item_f1, right.kind) == (
        1.1,
        1.0,
        "qa",
    )  # equal up to case/space: no judge call
    judged = await compute_reward(rollout("\\boxed{Shakespeare}", access=True), QA, judge=Lenient())
    assert judged.total == pytest.approx(1.15)
    wrong = await compute_reward(rollout("\\boxed{Marlowe}"), QA, judge=Lenient())
    assert (wrong.total, wrong.item_f1) == (0.1, 0.0)
    unboxed = await compute_reward(rollout("Shakespeare"), QA, judge=Lenient())
    assert (unboxed.total, unboxed.reason) == (0.0, "no \\boxed{} answer")


async def test_reward_from_a_result_and_custom_constants(t):
    res = WideSeekResult(question="q", answer=perfect(t), trajectory=rollout(perfect(t), longest=3500))
    r = await compute_reward(
        res, t, judge=ExactJudge(), config=RewardConfig(format_bonus=0.2, length_weight=1.0)
    )
    assert r.total == pytest.approx(1.0 + 0.2 - 0.25)
    failed = WideSeekResult(question="q", answer=None, status="failed", trajectory=rollout(None))
    assert (await compute_reward(failed, t, judge=ExactJudge())).reason == "the lead failed"


def test_a_variant_never_reuses_the_original_prepared_gold(t):
    t.prepared_gold()  # the benchmark pipeline's gold: numbers already through extract_number
    g = generic_task(t)
    assert g.prepared_gold().cells["totaltradingvalue(usdmillions)"][0] == "2,595,201"  # norm_str only
    assert t.prepared_gold().cells["totaltradingvalue(usdmillions)"][0] == "2595201"
    assert t.derived("generic", generic_task) is t.derived("generic", generic_task)


# --- the training seam: labels written by training/data.py --------------------------------------------------


def test_task_from_a_widesearch_label_equals_the_loaded_task(sample_tasks, sample_dir):
    import json as _json

    from langgraph_wideseek.eval.reward import task_from_label
    from training.data import convert_widesearch_record

    rec = _json.loads((sample_dir / "widesearch_sample.jsonl").read_text(encoding="utf-8").splitlines()[0])
    converted = convert_widesearch_record(rec, sample_dir / "widesearch_gold")
    task = task_from_label(converted["label"])
    loaded = sample_tasks[rec["instance_id"]]
    assert task.gold == loaded.gold and task.eval_pipeline == loaded.eval_pipeline
    assert task.unique_columns == loaded.unique_columns and task_from_label(converted["label"]) is task


async def test_reward_from_a_training_label_with_the_rollout_seam_arguments(sample_dir):
    from langgraph_wideseek.eval.reward import task_from_label
    from training.data import TaskLabel

    gold = "| City | Country |\n|---|---|\n| Paris | France |\n| Rome | Italy |"
    label = TaskLabel(
        instance_id="w1",
        kind="table",
        source="wideseek-r1",
        gold_table=gold,
        gold_format="markdown",
        unique_columns=["city"],
        required_columns=["city", "country"],
    ).to_label()
    task = task_from_label(label)
    assert task.eval_pipeline["country"].criterion == GENERIC_CRITERION
    answer = "```markdown\n| City | Country |\n|---|---|\n| Paris | France |\n```"
    # what training/rollout.py calls: a label-built task, judge None when no endpoint is set, mode "train"
    r = await compute_reward(rollout(answer), task, judge=None, mode="train")
    assert r.item_f1 == pytest.approx(2 / 3) and r.total == pytest.approx(2 / 3 + 0.1)
    qa = TaskLabel(instance_id="d1", kind="qa", source="wideseek-r1", answers=["Ada Lovelace"]).to_label()
    r = await compute_reward(rollout("\\boxed{Ada Lovelace}"), qa, mode="train")
    assert (r.total, r.kind) == (1.1, "qa")
