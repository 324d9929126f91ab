"""The row contract end to end across the two halves of training: rows from real ``AgentExecutor.execute``
runs go through the extension's stamping, OpenRLHF's row -> Experience conversion, and the GRPO / dual-level
math."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from langgraph_wideseek.testing import WideSeekPolicy, World
from training.agent_executor import AgentExecutor
from training.data import convert_widesearch_task
from training.engine import SamplingParamsLite
from training.rollout import ExecutorSettings
from training.testing import PolicyScript, ScriptedEngine

ASSETS = Path(__file__).parent / "assets"
GROUP = 4


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(str(ASSETS / "tiny-qwen3"))


async def test_executor_rows_through_the_extension_and_the_grpo_math(tok, tmp_path):
    pytest.importorskip("openrlhf")
    from training.advantages import fold_batch
    from training.openrlhf_ext.convert import row_to_experience
    from training.openrlhf_ext.rowmeta import stamp_rollout

    world = World.generate(seed=9, n_categories=1, entities_per_category=3)
    corpus = world.write_corpus(tmp_path / "corpus.jsonl")
    task = world.named_task(0, 3)
    rec = convert_widesearch_task(task.record(), task.gold_csv(), source="synthetic")
    rewards = itertools.cycle([1.0, 0.0, 0.5, 0.25])  # a spread of rewards inside the group

    def reward(result, label):
        return next(rewards), {"fixed": 1.0}

    settings = ExecutorSettings(
        graph={
            "search": "local",
            "corpus": str(corpus),
            "index_dir": str(tmp_path / "ix"),
            "summarize_pages": False,
        }
    )
    ex = AgentExecutor(settings, reward_fn=reward)
    engine = ScriptedEngine(tok, PolicyScript(WideSeekPolicy()))
    params = SamplingParamsLite(top_k=-1, max_tokens=None, min_tokens=1, skip_special_tokens=False)
    max_len = 16384
    try:
        results = [
            await ex.execute(rec["prompt"], rec["label"], params, max_len, tok, engine) for _ in range(GROUP)
        ]
    finally:
        await ex.aclose()

    stamped = [pair for i, res in enumerate(results) for pair in stamp_rollout(res, group=0, sample=i)]
    assert len(stamped) == sum(len(r) for r in results) and len(stamped) >= GROUP * 4
    for row, stamp in stamped:
        exp = row_to_experience(row, stamp, max_len=max_len)
        mask = exp.action_mask[0]
        ((s, e),) = row["action_ranges"]
        # OpenRLHF's action mask is shifted by one (it scores token t from position t-1)
        assert int(mask.sum()) == e - s and bool(mask[s - 1]) and not bool(mask[s - 2])
        trained = exp.sequences[0][1:][mask.bool()].tolist()
        assert trained == row["observation_tokens"][s:e]
        lp = exp.rollout_log_probs[0][mask.bool()]
        assert torch.allclose(lp, torch.tensor(row["rollout_log_probs"][s:e]))
        assert bool((exp.rollout_log_probs[0][~mask.bool()] == 0).all())

    folded = fold_batch(
        rewards=[r["reward"] for r, _ in stamped],
        group_keys=[st.rollout_key[0] for _, st in stamped],
        rollout_keys=[st.rollout_key for _, st in stamped],
        agent_keys=[st.meta.agent_id for _, st in stamped],
        row_tokens=[sum(e - s for s, e in r["action_ranges"]) for r, _ in stamped],
    )
    assert folded.num_rollouts == GROUP and folded.num_groups == 1
    # dual-level weighting: within each rollout, every agent weighs 1/N_i and its tokens share that weight
    for key in folded.rollout_keys:
        idx = [i for i, (_, st) in enumerate(stamped) if st.rollout_key == key]
        mass = sum(
            float(folded.row_weight[i])
            * (stamped[i][0]["action_ranges"][0][1] - stamped[i][0]["action_ranges"][0][0])
            for i in idx
        )
        assert mass == pytest.approx(1.0, rel=1e-5)
        assert int(folded.num_agents[folded.rollout_keys.index(key)]) == stamped[idx[0]][1].meta.num_agents
    # the GRPO advantage: (R - mean) / (std + eps) over the group's four rollouts
    r = torch.tensor([1.0, 0.0, 0.5, 0.25])
    expected = (r - r.mean()) / (r.std() + 1e-6)
    got = torch.stack([folded.rollout_advantage[folded.rollout_keys.index((0, i))] for i in range(GROUP)])
    assert torch.allclose(got, expected, atol=1e-5)
