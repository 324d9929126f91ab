"""GRPO advantages and dual-level weights for multi-agent rollouts (spec sections 5-6).

One rollout of the WideSeek graph yields many training rows: one per generation call of the
lead and of every kept subagent. The reward is one scalar per rollout. This module turns
per-row bookkeeping into one number per row, ``folded_advantage``, such that multiplying it
onto every action token of the row and letting OpenRLHF do its usual token mean over the
optimizer step reproduces the paper's objective:

    L = 1/B * sum_i  1/N_i * sum_a  1/T_a * sum_{t in agent a}  l_t(A_i)

B = rollouts in the batch, N_i = trained agents of rollout i, T_a = generated tokens of agent a
over all its kept turns, l_t(A) = the clipped PPO term of token t with advantage A, and
A_i = (R_i - mean_g R) / (std_g R + eps) over the rollouts g of rollout i's task.

Why folding is exact: the PPO term is positively homogeneous in the advantage
(min(r*cA, clip(r)*cA) = c*min(r*A, clip(r)*A) for c > 0, likewise the dual-clip max), so a
positive per-row factor can move inside it. OpenRLHF's token-level aggregation divides the
summed per-token loss by the step's action-token count T; pre-multiplying by T/B turns that
division into the 1/B above while the KL term (which does not see advantages) keeps
OpenRLHF's plain token mean.

Pure torch, no OpenRLHF import: usable on CPU and GPU, and in tests.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch

# Spec section 6 writes (R - mean) / (std + 1e-6). OpenRLHF 0.11.2's `group_norm` uses 1e-9;
# we follow the paper. The std itself is the unbiased one (Bessel, torch's default), which is
# what OpenRLHF's `rewards.std(-1)` computes, so the two differ only in that epsilon.
GRPO_STD_EPS = 1e-6

__all__ = [
    "GRPO_STD_EPS",
    "FoldedAdvantages",
    "dense_index",
    "dual_level_objective",
    "dual_level_row_weights",
    "fold_batch",
    "fold_row_advantages",
    "grpo_advantages",
]


def dense_index(keys: Sequence[Hashable]) -> tuple[torch.Tensor, list[Hashable]]:
    """Map arbitrary hashable keys to 0..n-1 in order of first appearance."""
    positions: dict[Hashable, int] = {}
    out = []
    for key in keys:
        out.append(positions.setdefault(key, len(positions)))
    return torch.tensor(out, dtype=torch.long), list(positions)


def _check_1d(name: str, t: torch.Tensor, n: int | None = None) -> None:
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    if n is not None and t.numel() != n:
        raise ValueError(f"{name} has {t.numel()} entries, expected {n}")


def grpo_advantages(
    rewards: torch.Tensor,
    group_index: torch.Tensor,
    *,
    eps: float = GRPO_STD_EPS,
) -> torch.Tensor:
    """Group-normalised advantage per rollout: ``(R - mean_g) / (std_g + eps)``.

    ``rewards`` and ``group_index`` are 1-D of length K (one entry per rollout); groups may
    have different sizes (a rollout that produced no rows is simply absent). ``std_g`` is the
    unbiased sample std, as in OpenRLHF's ``group_norm``. A group with a single rollout has no
    baseline and gets advantage 0 rather than OpenRLHF's NaN.
    """
    _check_1d("rewards", rewards)
    _check_1d("group_index", group_index, rewards.numel())
    if rewards.numel() == 0:
        return rewards.new_zeros(0, dtype=torch.float32)
    r = rewards.to(torch.promote_types(rewards.dtype, torch.float32))
    g = group_index.to(device=r.device, dtype=torch.long)
    n_groups = int(g.max().item()) + 1
    count = torch.zeros(n_groups, dtype=r.dtype, device=r.device).index_add_(0, g, torch.ones_like(r))
    total = torch.zeros(n_groups, dtype=r.dtype, device=r.device).index_add_(0, g, r)
    mean = total / count.clamp(min=1)
    centred = r - mean[g]
    sq = torch.zeros(n_groups, dtype=r.dtype, device=r.device).index_add_(0, g, centred * centred)
    std = (sq / (count - 1).clamp(min=1)).sqrt()
    adv = centred / (std[g] + eps)
    return torch.where(count[g] > 1, adv, torch.zeros_like(adv))


def dual_level_row_weights(
    rollout_index: torch.Tensor,
    agent_index: torch.Tensor,
    row_tokens: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row token weight ``1/N_i * 1/T_a`` (spec section 6, dual-level weighting).

    Inputs are 1-D of length M (one entry per row); ``agent_index`` must identify agents
    globally (not per rollout), ``row_tokens`` is the number of trained tokens of the row.
    Only agents with at least one trained token count towards N_i. Returns
    ``(row_weight (M,), num_agents per rollout (K,), tokens per agent (A,))``; a row with
    no trained tokens gets weight 0.
    """
    _check_1d("rollout_index", rollout_index)
    m = rollout_index.numel()
    _check_1d("agent_index", agent_index, m)
    _check_1d("row_tokens", row_tokens, m)
    if m == 0:
        z = torch.zeros(0)
        return z, z, z
    if (row_tokens < 0).any():
        raise ValueError("row_tokens must be non-negative")
    rid = rollout_index.long()
    aid = agent_index.long()
    tok = row_tokens.to(torch.float64)
    n_agents = int(aid.max().item()) + 1
    n_rollouts = int(rid.max().item()) + 1

    agent_tokens = torch.zeros(n_agents, dtype=torch.float64).index_add_(0, aid, tok)
    # Each agent belongs to exactly one rollout.
    agent_rollout = torch.full((n_agents,), -1, dtype=torch.long)
    agent_rollout.scatter_(0, aid, rid)
    clash = torch.zeros(n_agents, dtype=torch.long).index_add_(0, aid, (agent_rollout[aid] != rid).long())
    if (clash > 0).any():
        bad = int(torch.nonzero(clash)[0].item())
        raise ValueError(f"agent index {bad} appears in more than one rollout")

    trained = agent_tokens > 0
    num_agents = torch.zeros(n_rollouts, dtype=torch.float64).index_add_(
        0, agent_rollout.clamp(min=0), trained.to(torch.float64)
    )
    w = 1.0 / (num_agents[rid].clamp(min=1) * agent_tokens[aid].clamp(min=1))
    w = torch.where(tok > 0, w, torch.zeros_like(w))
    return w, num_agents, agent_tokens


def fold_row_advantages(
    rollout_advantage: torch.Tensor,
    rollout_index: torch.Tensor,
    row_weight: torch.Tensor,
    *,
    total_tokens: float,
    num_rollouts: int,
) -> torch.Tensor:
    """The per-row scalar ``A_i * w_r * T / B`` to put on every action token of row r.

    ``total_tokens`` (T) is the action-token count OpenRLHF divides by in the optimizer step
    (all rows of the batch, all data-parallel ranks); ``num_rollouts`` (B) the rollouts the
    objective averages over.
    """
    if num_rollouts <= 0:
        raise ValueError("num_rollouts must be positive")
    if total_tokens <= 0:
        raise ValueError("total_tokens must be positive")
    adv = rollout_advantage.to(torch.float64)[rollout_index.long()]
    return (adv * row_weight.to(torch.float64) * (float(total_tokens) / num_rollouts)).to(torch.float32)


@dataclass(frozen=True)
class FoldedAdvantages:
    """Result of :func:`fold_batch` (all tensors on CPU)."""

    folded: torch.Tensor  # (M,) per-row scalar, see fold_row_advantages
    row_advantage: torch.Tensor  # (M,) the rollout's GRPO advantage, unweighted
    row_weight: torch.Tensor  # (M,) 1/N_i * 1/T_a
    rollout_keys: list[Hashable]
    rollout_reward: torch.Tensor  # (K,)
    rollout_advantage: torch.Tensor  # (K,)
    num_agents: torch.Tensor  # (K,) trained agents per rollout
    group_std: torch.Tensor  # (M,) unbiased reward std of the row's task group
    total_tokens: int
    num_rollouts: int  # rollouts with at least one trained token (B)
    num_groups: int


def fold_batch(
    *,
    rewards: Sequence[float],
    group_keys: Sequence[Hashable],
    rollout_keys: Sequence[Hashable],
    agent_keys: Sequence[Hashable],
    row_tokens: Sequence[int],
    eps: float = GRPO_STD_EPS,
    advantage_clip: tuple[float, float] | None = None,
) -> FoldedAdvantages:
    """Everything the trainer needs for one batch of rows, from plain per-row keys.

    Rows of one rollout must share the reward and the group; agent keys are scoped by
    rollout here (the same agent id in two rollouts are two agents). ``advantage_clip``
    clamps the GRPO advantage like OpenRLHF clamps its normalised reward
    (``--reward.clip_range``).
    """
    m = len(rewards)
    for name, seq in (
        ("group_keys", group_keys),
        ("rollout_keys", rollout_keys),
        ("agent_keys", agent_keys),
        ("row_tokens", row_tokens),
    ):
        if len(seq) != m:
            raise ValueError(f"{name} has {len(seq)} entries, rewards has {m}")
    if m == 0:
        raise ValueError("fold_batch needs at least one row")

    rollout_index, rkeys = dense_index(list(rollout_keys))
    agent_index, _ = dense_index(list(zip(rollout_keys, agent_keys)))
    k = len(rkeys)

    reward_t = torch.tensor([float(r) for r in rewards], dtype=torch.float64)
    if not torch.isfinite(reward_t).all():
        raise ValueError("rewards must be finite")
    rollout_reward = torch.full((k,), float("nan"), dtype=torch.float64)
    rollout_reward.scatter_(0, rollout_index, reward_t)
    if not torch.equal(rollout_reward[rollout_index], reward_t):
        bad = int(torch.nonzero(rollout_reward[rollout_index] != reward_t)[0].item())
        raise ValueError(
            f"rows of rollout {rollout_keys[bad]!r} carry different rewards "
            f"({rollout_reward[rollout_index[bad]].item()} vs {reward_t[bad].item()}); "
            "the reward must be one scalar per rollout"
        )

    rollout_group: dict[Hashable, Hashable] = {}
    for rk, gk in zip(rollout_keys, group_keys):
        if rollout_group.setdefault(rk, gk) != gk:
            raise ValueError(f"rollout {rk!r} has rows in two task groups ({rollout_group[rk]!r}, {gk!r})")
    group_index, gkeys = dense_index([rollout_group[rk] for rk in rkeys])

    tokens_t = torch.tensor([int(t) for t in row_tokens], dtype=torch.long)
    row_weight, num_agents, _ = dual_level_row_weights(rollout_index, agent_index, tokens_t)

    rollout_adv = grpo_advantages(rollout_reward, group_index, eps=eps)
    if advantage_clip is not None:
        rollout_adv = rollout_adv.clamp(min=advantage_clip[0], max=advantage_clip[1])

    # Group std per row, for logging (OpenRLHF logs `group_reward_std` per sample).
    g = group_index
    n_groups = len(gkeys)
    cnt = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, g, torch.ones(k, dtype=torch.float64))
    mean = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, g, rollout_reward) / cnt
    sq = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, g, (rollout_reward - mean[g]) ** 2)
    std = torch.where(cnt > 1, (sq / (cnt - 1).clamp(min=1)).sqrt(), torch.zeros_like(cnt))

    total_tokens = int(tokens_t.sum().item())
    num_rollouts = int((num_agents > 0).sum().item())
    if total_tokens == 0 or num_rollouts == 0:
        raise ValueError("the batch has no trainable (action) tokens")
    folded = fold_row_advantages(
        rollout_adv, rollout_index, row_weight, total_tokens=total_tokens, num_rollouts=num_rollouts
    )
    return FoldedAdvantages(
        folded=folded,
        row_advantage=rollout_adv[rollout_index].to(torch.float32),
        row_weight=row_weight.to(torch.float32),
        rollout_keys=rkeys,
        rollout_reward=rollout_reward.to(torch.float32),
        rollout_advantage=rollout_adv.to(torch.float32),
        num_agents=num_agents.to(torch.long),
        group_std=std[g][rollout_index].to(torch.float32),
        total_tokens=total_tokens,
        num_rollouts=num_rollouts,
        num_groups=n_groups,
    )


def dual_level_objective(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    rollout_index: Sequence[int] | torch.Tensor,
    agent_index: Sequence[int] | torch.Tensor,
) -> torch.Tensor:
    """The spec section 6 average written out directly (the reference the folding must match).

    ``per_token`` and ``mask`` are (M, L): one row per training row. Returns
    mean over rollouts of (mean over that rollout's agents of (token mean over the agent's
    tokens across all its rows)). Rollouts/agents with no masked-in token are skipped.
    Differentiable in ``per_token``.
    """
    if per_token.shape != mask.shape or per_token.dim() != 2:
        raise ValueError("per_token and mask must both be (rows, tokens)")
    rid = [int(x) for x in rollout_index]
    aid = [int(x) for x in agent_index]
    if len(rid) != per_token.shape[0] or len(aid) != per_token.shape[0]:
        raise ValueError("one rollout and one agent index per row")
    m = mask.to(per_token.dtype)
    row_sum = (per_token * m).sum(-1)
    row_cnt = m.sum(-1)
    rollouts: dict[int, dict[int, list[int]]] = {}
    for r, (ri, ai) in enumerate(zip(rid, aid)):
        rollouts.setdefault(ri, {}).setdefault(ai, []).append(r)
    rollout_terms = []
    for agents in rollouts.values():
        agent_terms = []
        for rows in agents.values():
            cnt = row_cnt[rows].sum()
            if cnt > 0:
                agent_terms.append(row_sum[rows].sum() / cnt)
        if agent_terms:
            rollout_terms.append(torch.stack(agent_terms).mean())
    if not rollout_terms:
        raise ValueError("no trainable tokens")
    return torch.stack(rollout_terms).mean()
