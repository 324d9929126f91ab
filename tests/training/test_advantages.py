"""Hand-computed checks of the GRPO advantage and the dual-level weighting (spec section 6)."""

from __future__ import annotations

import math

import pytest
import torch

from training.advantages import (
    GRPO_STD_EPS,
    dense_index,
    dual_level_objective,
    dual_level_row_weights,
    fold_batch,
    fold_row_advantages,
    grpo_advantages,
)


def test_grpo_one_group_uses_unbiased_std():
    # mean 0.5; unbiased variance = 4 * 0.25 / 3 = 1/3, std = 0.57735027
    adv = grpo_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), torch.tensor([0, 0, 0, 0]))
    expected = 0.5 / (math.sqrt(1 / 3) + 1e-6)
    assert expected == pytest.approx(0.8660239, abs=1e-6)
    assert adv.tolist() == pytest.approx([expected, -expected, -expected, expected], abs=1e-7)


def test_grpo_matches_openrlhf_group_norm_formula_up_to_eps():
    # OpenRLHF 0.11.2 group_norm: (r - r.mean(-1)) / (r.std(-1) + 1e-9) on an (n_prompts, n) view.
    g = torch.Generator().manual_seed(0)
    r = torch.rand(5, 8, generator=g, dtype=torch.float64)
    stock = (r - r.mean(-1, keepdim=True)) / (r.std(-1, keepdim=True) + GRPO_STD_EPS)
    ours = grpo_advantages(r.reshape(-1), torch.arange(5).repeat_interleave(8))
    assert torch.allclose(ours.reshape(5, 8).double(), stock, atol=1e-12)


def test_grpo_groups_of_different_sizes_and_degenerate_groups():
    rewards = torch.tensor([2.0, 4.0, 1.0, 1.0, 1.0, 5.0])
    groups = torch.tensor([0, 0, 1, 1, 1, 2])
    adv = grpo_advantages(rewards, groups)
    # group 0: mean 3, unbiased std sqrt(2); group 1: all equal -> 0; group 2: one rollout -> 0
    a = 1.0 / (math.sqrt(2) + 1e-6)
    assert adv.tolist() == pytest.approx([-a, a, 0.0, 0.0, 0.0, 0.0], abs=1e-7)
    assert torch.isfinite(adv).all()


def test_grpo_rejects_misaligned_inputs():
    with pytest.raises(ValueError, match="entries"):
        grpo_advantages(torch.tensor([1.0, 2.0]), torch.tensor([0]))


def test_dual_level_weights_hand_computed():
    # Rollout 0: lead (2 turns: 3 + 5 tokens), sub1 (4), sub2 (2 + 2) -> N=3.
    # Rollout 1: lead only, 10 tokens -> N=1.
    rollout = torch.tensor([0, 0, 0, 0, 0, 1])
    agent = torch.tensor([0, 0, 1, 2, 2, 3])
    tokens = torch.tensor([3, 5, 4, 2, 2, 10])
    w, n_agents, agent_tokens = dual_level_row_weights(rollout, agent, tokens)
    assert w.tolist() == pytest.approx([1 / 24, 1 / 24, 1 / 12, 1 / 12, 1 / 12, 1 / 10])
    assert n_agents.tolist() == [3, 1]
    assert agent_tokens.tolist() == [8, 4, 4, 10]
    # Per rollout, the weights over all tokens sum to 1 (each agent 1/N, spread over its tokens).
    per_rollout = torch.zeros(2, dtype=torch.float64).index_add_(0, rollout, w * tokens)
    assert per_rollout.tolist() == pytest.approx([1.0, 1.0])


def test_dual_level_weights_skip_agents_without_trained_tokens():
    w, n_agents, _ = dual_level_row_weights(
        torch.tensor([0, 0, 0]), torch.tensor([0, 1, 2]), torch.tensor([4, 0, 6])
    )
    assert n_agents.tolist() == [2]
    assert w.tolist() == pytest.approx([1 / 8, 0.0, 1 / 12])


def test_dual_level_weights_reject_agent_in_two_rollouts():
    with pytest.raises(ValueError, match="more than one rollout"):
        dual_level_row_weights(torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor([1, 1]))


def test_fold_reproduces_spec_objective_hand_computed():
    # Per-token value v: lead tokens 1, sub1 tokens 2, sub2 tokens 3 (rollout 0); 4 (rollout 1).
    # Spec objective: mean over rollouts of mean over agents of token means = mean(mean(1,2,3), 4) = 3.
    lens = [3, 5, 4, 2, 2, 10]
    vals = [1.0, 1.0, 2.0, 3.0, 3.0, 4.0]
    width = max(lens)
    per_token = torch.tensor([[v] * width for v in vals])
    mask = torch.tensor([[1] * n + [0] * (width - n) for n in lens])
    rollout = [0, 0, 0, 0, 0, 1]
    agent = [0, 0, 1, 2, 2, 3]
    assert dual_level_objective(per_token, mask, rollout, agent).item() == pytest.approx(3.0)

    # Folded: OpenRLHF sums per-token (scale_r * v) and divides by T = 26 tokens.
    w, _, _ = dual_level_row_weights(torch.tensor(rollout), torch.tensor(agent), torch.tensor(lens))
    scale = fold_row_advantages(torch.ones(2), torch.tensor(rollout), w, total_tokens=26, num_rollouts=2)
    openrlhf_token_mean = (per_token * scale[:, None] * mask).sum() / mask.sum()
    assert openrlhf_token_mean.item() == pytest.approx(3.0, rel=1e-6)


def test_fold_batch_end_to_end_with_string_keys():
    # Task "t1": rollouts a (R=1, lead+sub), b (R=0, lead only); task "t2": c (R=0.5), d (R=0.5).
    rows = [
        # (group, rollout, agent, reward, tokens)
        ("t1", "a", "lead", 1.0, 6),
        ("t1", "a", "lead", 1.0, 2),
        ("t1", "a", "sub-1", 1.0, 4),
        ("t1", "b", "lead", 0.0, 5),
        ("t2", "c", "lead", 0.5, 3),
        ("t2", "d", "lead", 0.5, 7),
        ("t2", "d", "sub-1", 0.5, 1),
    ]
    out = fold_batch(
        rewards=[r[3] for r in rows],
        group_keys=[r[0] for r in rows],
        rollout_keys=[r[1] for r in rows],
        agent_keys=[r[2] for r in rows],
        row_tokens=[r[4] for r in rows],
    )
    a = 0.5 / (math.sqrt(0.5) + 1e-6)  # t1: mean .5, unbiased std sqrt(.5)
    assert out.rollout_advantage.tolist() == pytest.approx([a, -a, 0.0, 0.0], abs=1e-6)
    assert out.num_agents.tolist() == [2, 1, 1, 2]
    assert out.total_tokens == 28 and out.num_rollouts == 4 and out.num_groups == 2
    T_over_B = 28 / 4
    expected = [a / 2 / 8, a / 2 / 8, a / 2 / 4, -a / 1 / 5, 0.0, 0.0, 0.0]
    assert out.folded.tolist() == pytest.approx([e * T_over_B for e in expected], abs=1e-6)
    assert out.group_std.tolist() == pytest.approx([math.sqrt(0.5)] * 4 + [0.0] * 3, abs=1e-6)


def test_fold_batch_agent_ids_are_scoped_by_rollout():
    # The same agent id "lead" in two rollouts is two agents.
    out = fold_batch(
        rewards=[1.0, 0.0],
        group_keys=["g", "g"],
        rollout_keys=["r1", "r2"],
        agent_keys=["lead", "lead"],
        row_tokens=[4, 4],
    )
    assert out.row_weight.tolist() == pytest.approx([0.25, 0.25])


def test_fold_batch_rejects_two_rewards_in_one_rollout():
    with pytest.raises(ValueError, match="different rewards"):
        fold_batch(
            rewards=[1.0, 0.0],
            group_keys=["g", "g"],
            rollout_keys=["r", "r"],
            agent_keys=["a", "b"],
            row_tokens=[1, 1],
        )


def test_fold_batch_rejects_rollout_in_two_groups():
    with pytest.raises(ValueError, match="two task groups"):
        fold_batch(
            rewards=[1.0, 1.0],
            group_keys=["g1", "g2"],
            rollout_keys=["r", "r"],
            agent_keys=["a", "b"],
            row_tokens=[1, 1],
        )


def test_fold_batch_rejects_no_tokens_and_nonfinite_reward():
    with pytest.raises(ValueError, match="no trainable"):
        fold_batch(rewards=[1.0], group_keys=["g"], rollout_keys=["r"], agent_keys=["a"], row_tokens=[0])
    with pytest.raises(ValueError, match="finite"):
        fold_batch(
            rewards=[float("nan")], group_keys=["g"], rollout_keys=["r"], agent_keys=["a"], row_tokens=[1]
        )


def test_fold_batch_clip_matches_openrlhf_reward_clip():
    out = fold_batch(
        rewards=[0.0, 0.0, 0.0, 1.0],
        group_keys=["g"] * 4,
        rollout_keys=list("abcd"),
        agent_keys=["x"] * 4,
        row_tokens=[1, 1, 1, 1],
        advantage_clip=(-0.4, 1.0),
    )
    # unclipped: mean .25, unbiased std .5 -> [-0.5, -0.5, -0.5, 1.5]
    assert out.rollout_advantage.tolist() == pytest.approx([-0.4, -0.4, -0.4, 1.0])


def test_dense_index_keeps_first_appearance_order():
    idx, keys = dense_index(["b", "a", "b", "c"])
    assert idx.tolist() == [0, 1, 0, 2] and keys == ["b", "a", "c"]


def test_folded_ppo_gradient_equals_spec_objective_gradient():
    """With real PPO clipping (0.2/0.28, dual clip 10) the folded token mean has the spec's gradient."""
    g = torch.Generator().manual_seed(3)
    lens = [3, 5, 4, 2, 2, 10, 6]
    rollout = [0, 0, 0, 0, 0, 1, 2]
    agent = [0, 0, 1, 2, 2, 3, 4]
    group = [0, 0, 0, 0, 0, 0, 1]  # rollouts 0 and 1 are one task; rollout 2 alone in another
    rewards = [1.0] * 5 + [0.0] + [0.3]
    width = max(lens)
    mask = torch.tensor([[1] * n + [0] * (width - n) for n in lens], dtype=torch.float64)
    logp = torch.randn(len(lens), width, generator=g, dtype=torch.float64, requires_grad=True)
    old = logp.detach() + 0.3 * torch.randn(len(lens), width, generator=g, dtype=torch.float64)

    def ppo(adv):  # per-token PPO loss with asymmetric and dual clip, as OpenRLHF's PolicyLoss
        ratio = (logp - old).exp()
        s1, s2 = ratio * adv, ratio.clamp(0.8, 1.28) * adv
        c1 = torch.min(s1, s2)
        return -torch.where(adv < 0, torch.max(c1, 10.0 * adv), c1)

    out = fold_batch(
        rewards=rewards, group_keys=group, rollout_keys=rollout, agent_keys=agent, row_tokens=lens
    )
    folded_loss = (ppo(out.folded.double()[:, None].expand(-1, width)) * mask).sum() / mask.sum()
    (g_folded,) = torch.autograd.grad(folded_loss, logp)

    spec_loss = dual_level_objective(
        ppo(out.row_advantage.double()[:, None].expand(-1, width)), mask, rollout, agent
    )
    (g_spec,) = torch.autograd.grad(spec_loss, logp)
    # folded advantages are float32 (what OpenRLHF stores), hence the tolerance
    assert folded_loss.item() == pytest.approx(spec_loss.item(), rel=1e-6)
    assert torch.allclose(g_folded, g_spec, rtol=1e-5, atol=1e-9)
    assert g_spec.abs().sum() > 0
