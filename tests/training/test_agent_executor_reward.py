"""The rollout reward: custom functions, settings checks, and the WideSeek-R1 reward built from dataset
labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langgraph_wideseek.graph.result import WideSeekResult
from langgraph_wideseek.graph.trajectory import AgentTrajectory, Completion, Trajectory, TurnRecord
from training.data import convert_widesearch_task, convert_wideseek_record, parse_label
from training.reward import RewardSettings, RolloutReward, as_reward, load_function

ASSETS = Path(__file__).parent / "assets"


def result(
    answer: str | None, *, status: str = "ok", access: bool = True, gen_tokens: int = 10
) -> WideSeekResult:
    calls = (
        [{"id": "c", "type": "function", "function": {"name": "access", "arguments": "{}"}}] if access else []
    )
    turn = TurnRecord(
        turn=1,
        messages=[],
        completion=Completion(content="x", tool_calls=calls),
        prompt_token_ids=[1],
        completion_token_ids=list(range(gen_tokens)),
    )
    traj = Trajectory(
        rollout_id="r",
        question="q",
        answer=answer,
        agents=[AgentTrajectory(agent_id="lead", role="lead", status=status, turns=[turn])],
    )
    return WideSeekResult(question="q", answer=answer, status=status, trajectory=traj)


def test_as_reward_accepts_numbers_pairs_and_breakdowns():
    assert as_reward(0.5) == (0.5, {})
    assert as_reward((1, {"a": 2})) == (1.0, {"a": 2.0})

    class Breakdown:
        total, item_f1, format_bonus, access_bonus, length_penalty, judge_failures = (
            1.1,
            1.0,
            0.1,
            0.05,
            0.05,
            0,
        )

    total, parts = as_reward(Breakdown())
    assert total == 1.1 and set(parts) == {
        "item_f1",
        "format_bonus",
        "access_bonus",
        "length_penalty",
        "judge_failures",
    }
    for bad in ("1.0", None, True):
        with pytest.raises(TypeError):
            as_reward(bad)


def test_load_function_by_module_or_file(tmp_path):
    assert load_function("json:dumps") is json.dumps
    f = tmp_path / "r.py"
    f.write_text("def reward(result, label):\n    return 0.25\n")
    assert load_function(f"{f}:reward")(None, None) == 0.25
    with pytest.raises(AttributeError, match="no callable 'nope'"):
        load_function(f"{f}:nope")
    with pytest.raises(ValueError, match="module:function"):
        load_function("reward")


def test_default_reward_needs_a_judge_or_exact_scoring():
    with pytest.raises(ValueError, match="judge_base_url"):
        RolloutReward(RewardSettings())
    RolloutReward(RewardSettings(judge="exact"))
    RolloutReward(RewardSettings(judge_base_url="http://127.0.0.1:9/v1", judge_model="j"))
    RolloutReward(RewardSettings(), function=lambda result, label: 1.0)  # a custom reward needs no judge


async def test_custom_async_reward():
    async def f(res, label):
        return 0.75, {"x": 1}

    rw = RolloutReward(RewardSettings(), function=f)
    assert await rw(result("a"), parse_label(convert_wideseek_record(QA)["label"])) == (0.75, {"x": 1.0})


QA = {
    "instance_id": "d1",
    "question": "Who? Put it in \\boxed{}.",
    "answer": ["Ada Lovelace"],
    "is_markdown": False,
}
TABLE = {
    "instance_id": "w1",
    "question": "Albums?",
    "is_markdown": True,
    "unique_columns": ["Album"],
    "answer": "| Album | Year |\n|---|---|\n| First | 1999 |\n| Second | 2003 |",
    "evaluation": {"required": ["album", "year"]},
}


# --- the WideSeek-R1 reward (langgraph_wideseek.eval.reward + the exact scorer) -----------------------------


def needs_reward_module():
    return pytest.importorskip(
        "langgraph_wideseek.eval.reward", reason="the reward module lands with the eval work"
    )


def test_labels_become_scorer_tasks():
    needs_reward_module()
    from langgraph_wideseek.eval.reward import task_from_label

    t = task_from_label(parse_label(convert_wideseek_record(TABLE)["label"]))
    assert t.kind == "table" and t.required == ("album", "year") and t.unique_columns == ("album",)
    assert t.gold.column("year") == ("1999", "2003")
    assert t.eval_pipeline["year"].metric == ("llm_judge",)  # the training recipe: non-key cells judged
    q = task_from_label(parse_label(convert_wideseek_record(QA)["label"]))
    assert q.kind == "qa" and q.answers == ("Ada Lovelace",)
    rec = json.loads((ASSETS / "widesearch" / "tasks.jsonl").read_text(encoding="utf-8").splitlines()[0])
    gold = (ASSETS / "widesearch" / "gold" / "ws_en_002.csv").read_bytes().decode("utf-8-sig")
    w = task_from_label(parse_label(convert_widesearch_task(rec, gold)["label"]))
    from langgraph_wideseek.eval.tasks import load_tasks

    ref = load_tasks(ASSETS / "widesearch" / "tasks.jsonl", gold_dir=ASSETS / "widesearch" / "gold")[0]
    assert w.gold == ref.gold and w.eval_pipeline == ref.eval_pipeline and w.required == ref.required


async def test_wideseek_reward_on_the_synthetic_world_with_exact_scoring():
    needs_reward_module()
    from langgraph_wideseek.testing import World

    world = World.generate(seed=2, n_categories=1, entities_per_category=4)
    task = world.named_task(0, 3)
    label = parse_label(convert_widesearch_task(task.record(), task.gold_csv(), source="synthetic")["label"])
    rw = RolloutReward(RewardSettings(mode="benchmark", judge="exact"))
    try:
        total, parts = await rw(result(task.gold_markdown()), label)
        assert parts["item_f1"] == 1.0 and total == pytest.approx(1.0 + 0.1 + 0.05)
        half = task.gold_markdown().splitlines()
        total2, parts2 = await rw(
            result("\n".join(half[:-2] + half[-1:]), access=False), label
        )  # a row fewer
        assert 0 < parts2["item_f1"] < 1 and parts2["access_bonus"] == 0.0
        total3, parts3 = await rw(result("no table at all"), label)
        assert total3 == 0.0 and set(parts3) == set(parts)  # same logged parts whatever happens
        total4, _ = await rw(result(None, status="failed"), label)
        assert total4 == 0.0
    finally:
        await rw.aclose()
