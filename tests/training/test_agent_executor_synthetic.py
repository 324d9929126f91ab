"""A full multi-wave rollout on the benchmark's synthetic world: the scripted WideSeek player (which acts only
on what it is sent) drives the token-level engine through the in-actor endpoint; the local search backend
reads the world's corpus; page summaries go through the same endpoint. The answer must be right, so a token,
message or report lost anywhere on the path shows up as a wrong table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from langgraph_wideseek.testing import WideSeekPolicy, World
from training.agent_executor import AgentExecutor
from training.data import convert_widesearch_task, parse_label
from training.engine import SamplingParamsLite
from training.rows import validate_row
from training.testing import PolicyScript, ScriptedEngine, parse_rendered_chat

ASSETS = Path(__file__).parent / "assets"


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(str(ASSETS / "tiny-qwen3"))


def exact_reward(world: World):
    tasks = {t.instance_id: t for t in world.tasks(named_count=3)}

    def reward(result, label):
        wrong = tasks[label.instance_id].mismatches(result.answer)
        return (1.0 if not wrong else 0.0), {"mismatches": float(len(wrong))}

    return reward


async def test_list_task_two_waves_every_call_a_row(tok, tmp_path):
    world = World.generate(seed=5, n_categories=1, entities_per_category=6)
    corpus = world.write_corpus(tmp_path / "corpus.jsonl")
    task = world.list_task(0)
    row = convert_widesearch_task(task.record(), task.gold_csv(), source="synthetic")
    policy = WideSeekPolicy(max_per_wave=10)
    engine = ScriptedEngine(tok, PolicyScript(policy))
    from training.rollout import ExecutorSettings

    settings = ExecutorSettings(
        graph={
            "search": "local",
            "corpus": str(corpus),
            "index_dir": str(tmp_path / "ix"),
            "summarize_pages": True,
            "max_retries": 0,
        }
    )
    ex = AgentExecutor(settings, reward_fn=exact_reward(world))
    params = SamplingParamsLite(
        temperature=1.0,
        top_p=1.0,
        top_k=-1,
        max_tokens=None,
        min_tokens=1,
        skip_special_tokens=False,
        logprobs=None,
    )
    try:
        rows = await ex.execute(row["prompt"], row["label"], params, 16384, tok, engine)
    finally:
        await ex.aclose()
    assert policy.failures == []
    assert parse_label(row["label"]).instance_id == task.instance_id
    logs = rows[0]["extra_logs"]
    assert logs["wideseek_reward"] == 1.0 and logs["reward_mismatches"] == 0.0  # the table is exactly right
    assert {r["reward"] for r in rows} == {1.0}
    # wave 1: one subagent reads the list page; wave 2: one subagent per member
    assert logs["subagents"] == 1 + 6 and logs["failed_subagents"] == 0
    assert {r["wideseek"]["num_agents"] for r in rows} == {1 + 1 + 6}
    lead_rows = [r for r in rows if r["wideseek"]["role"] == "lead"]
    assert len(lead_rows) == 3
    assert len(rows) == logs["model_calls"] == logs["rows"]
    # page summaries are served by the same endpoint but are not agent turns: not trained on
    summaries = logs["endpoint_calls"] - logs["model_calls"]
    assert summaries >= 7 and logs["used_access"] == 1.0
    for r in rows:
        validate_row(r)
        start = r["action_ranges"][0][0]
        req = parse_rendered_chat(tok.decode(r["observation_tokens"][:start]))
        names = {t["function"]["name"] for t in req["tools"]}
        assert names == ({"create_sub_agents"} if r["wideseek"]["role"] == "lead" else {"search", "access"})
    # the final lead call's context holds both waves' reports (1 list + 6 members); its action is the table
    final = lead_rows[-1]
    s, e = final["action_ranges"][0]
    assert tok.decode(final["observation_tokens"][:s]).count("# Subtask ") == 1 + 6
    assert "```markdown" in tok.decode(final["observation_tokens"][s:e])
    json.dumps(rows)  # rows travel through Ray: plain JSON-able data
