"""Trajectory -> training rows: the one conversion shared by RL training and offline export.

One row per generation call ("transition" rows, spec openrlhf.md): the prompt is exactly the token ids the
engine saw for that call and the action is exactly the ids it generated, so no re-rendering of a history can
shift a token. Each row carries OpenRLHF 0.11.2's single-sample keys plus a ``"wideseek"`` dict that the
multi-row extension reads (rollout id, agent, role, turn, N_i, the 1/N_i agent weight and the agent's total
generated tokens, for the dual-level weighting of spec section 6).

Spec section 5: when the run succeeded, calls of subagents that failed are left out and do not count in N_i;
when the lead failed, every call is kept and the reward is 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langgraph_wideseek.errors import TrainingError
from langgraph_wideseek.graph.trajectory import (
    AgentTrajectory,
    Role,
    Status,
    Trajectory,
    TurnRecord,
    read_jsonl,
)

OnMissing = Literal["raise", "skip"]


class MissingTokenIds(TrainingError, ValueError):
    """A call has no token ids, so it cannot become a training row."""


def rollout_succeeded(trajectory: Trajectory) -> bool:
    """A rollout succeeded when its lead finished (status ok)."""
    leads = [a for a in trajectory.agents if a.role == Role.LEAD]
    if len(leads) != 1:
        raise ValueError(
            f"rollout {trajectory.rollout_id}: expected exactly one lead agent, found {len(leads)}"
        )
    return leads[0].status == Status.OK


def kept_agents(trajectory: Trajectory) -> list[AgentTrajectory]:
    """Agents whose calls are trained on: all of them if the lead failed, else all but failed subagents."""
    if not rollout_succeeded(trajectory):
        return list(trajectory.agents)
    return [a for a in trajectory.agents if a.role == Role.LEAD or a.status == Status.OK]


@dataclass
class _Call:
    turn: int
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float] | None
    finish_reason: str | None
    record: TurnRecord


@dataclass
class RowStats:
    """What a conversion kept and dropped."""

    rows: int = 0
    calls: int = 0
    agents: int = 0
    dropped_failed_subagents: int = 0
    dropped_calls_failed_subagents: int = 0
    skipped_missing_ids: int = 0
    merged_calls: int = 0
    missing_logprobs: int = 0
    skipped_rollouts: list[str] = field(default_factory=list)


def _calls(agent: AgentTrajectory, on_missing: OnMissing, stats: RowStats, rollout_id: str) -> list[_Call]:
    out = []
    for t in agent.turns:
        if t.prompt_token_ids is None or t.completion_token_ids is None:
            if on_missing == "raise":
                raise MissingTokenIds(
                    f"rollout {rollout_id}, agent {agent.agent_id}, turn {t.turn}: the server returned no "
                    f"token "
                    "ids (ask for them with return_token_ids; vLLM and the in-actor endpoint return them)"
                )
            stats.skipped_missing_ids += 1
            continue
        lp = t.logprobs
        if lp is not None and len(lp) != len(t.completion_token_ids):
            raise ValueError(
                f"rollout {rollout_id}, agent {agent.agent_id}, turn {t.turn}: {len(lp)} logprobs for "
                f"{len(t.completion_token_ids)} generated tokens"
            )
        out.append(
            _Call(
                t.turn,
                list(t.prompt_token_ids),
                list(t.completion_token_ids),
                list(lp) if lp is not None else None,
                t.finish_reason,
                t,
            )
        )
    return out


def _merge(calls: list[_Call], stats: RowStats) -> list[list[_Call]]:
    """Group consecutive calls whose prompt extends the previous call's prompt+completion token for token."""
    groups: list[list[_Call]] = []
    for c in calls:
        if groups:
            last = groups[-1][-1]
            seen = last.prompt_ids + last.completion_ids
            if len(c.prompt_ids) >= len(seen) and c.prompt_ids[: len(seen)] == seen:
                groups[-1].append(c)
                stats.merged_calls += 1
                continue
        groups.append([c])
    return groups


def _row_from_group(group: list[_Call]) -> tuple[list[int], list[tuple[int, int]], list[float] | None, bool]:
    final = group[-1]
    tokens = final.prompt_ids + final.completion_ids
    ranges = []
    for c in group:
        start = len(c.prompt_ids)
        ranges.append((start, start + len(c.completion_ids)))
    logprobs: list[float] | None
    if all(c.logprobs is not None for c in group):
        logprobs = [0.0] * len(tokens)
        for c, (start, end) in zip(group, ranges):
            logprobs[start:end] = c.logprobs  # type: ignore[assignment]
    else:
        logprobs = None
    truncated = final.finish_reason == "length"
    return tokens, ranges, logprobs, truncated


def trajectory_to_rows(
    trajectory: Trajectory,
    reward: float | None = None,
    *,
    prompt: str | None = None,
    label: str | None = None,
    scores: float | None = None,
    extra_logs: dict[str, float] | None = None,
    merge_prefix: bool = False,
    on_missing: OnMissing = "raise",
    stats: RowStats | None = None,
) -> list[dict[str, Any]]:
    """Every kept generation call of one rollout as an OpenRLHF row (see the module docstring).

    ``reward`` defaults to ``trajectory.reward``; it is forced to 0.0 when the lead failed (spec section 5).
    ``prompt``/``label`` default to the question and ``""`` (OpenRLHF groups rows of one task by them).
    ``merge_prefix`` folds consecutive calls of one agent into one row with several action ranges, only when
    the later prompt starts with the earlier prompt+completion exactly. ``on_missing="skip"`` drops calls
    without token ids (offline export of runs against servers that return none) instead of raising.
    """
    stats = stats if stats is not None else RowStats()
    succeeded = rollout_succeeded(trajectory)
    if reward is None:
        reward = trajectory.reward
    if not succeeded and reward is not None:
        reward = 0.0
    if scores is None:
        scores = reward
    rid = trajectory.rollout_id
    agents = kept_agents(trajectory)
    kept_ids = {id(a) for a in agents}
    dropped = [a for a in trajectory.agents if id(a) not in kept_ids]
    stats.dropped_failed_subagents += len(dropped)
    stats.dropped_calls_failed_subagents += sum(len(a.turns) for a in dropped)

    per_agent: list[tuple[AgentTrajectory, list[list[_Call]]]] = []
    for agent in agents:
        calls = _calls(agent, on_missing, stats, rid)
        if not calls:
            continue
        groups = _merge(calls, stats) if merge_prefix else [[c] for c in calls]
        per_agent.append((agent, groups))

    n_agents = len(per_agent)
    rows: list[dict[str, Any]] = []
    for agent, groups in per_agent:
        token_total = sum(len(c.completion_ids) for g in groups for c in g)
        for g in groups:
            tokens, ranges, logprobs, truncated = _row_from_group(g)
            if logprobs is None:
                stats.missing_logprobs += 1
            rows.append(
                {
                    "prompt": prompt if prompt is not None else trajectory.question,
                    "label": label if label is not None else "",
                    "observation_tokens": tokens,
                    "action_ranges": ranges,
                    "rollout_log_probs": logprobs,
                    "reward": reward,
                    "scores": scores,
                    "truncated": truncated,
                    "extra_logs": dict(extra_logs or {}),
                    "wideseek": {
                        "rollout_id": rid,
                        "agent_id": agent.agent_id,
                        "role": agent.role,
                        "turn": g[0].turn,
                        "turns": [c.turn for c in g],
                        "num_agents": n_agents,
                        "agent_weight": 1.0 / n_agents,
                        "agent_token_total": token_total,
                    },
                }
            )
            stats.calls += len(g)
    stats.rows += len(rows)
    stats.agents += n_agents
    return rows


def validate_row(row: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless a row's tokens, action ranges and logprobs line up (the invariants the
    trainer relies on: ranges inside the sequence, disjoint and increasing, logprobs 0.0 outside them)."""
    tokens = row["observation_tokens"]
    n = len(tokens)
    prev_end = 0
    for start, end in row["action_ranges"]:
        if not (prev_end <= start <= end <= n):
            raise ValueError(f"action range {(start, end)} out of order or outside a {n}-token sequence")
        prev_end = end
    lp = row["rollout_log_probs"]
    if lp is not None:
        if len(lp) != n:
            raise ValueError(f"{len(lp)} rollout logprobs for {n} tokens")
        inside: set[int] = set()
        for start, end in row["action_ranges"]:
            inside.update(range(start, end))
        bad = [i for i, v in enumerate(lp) if i not in inside and v != 0.0]
        if bad:
            raise ValueError(f"non-zero logprob outside the actions at positions {bad[:5]}")
        if any(v > 0.0 for i, v in enumerate(lp) if i in inside):
            raise ValueError("a logprob is positive")
    w = row["wideseek"]
    if abs(w["agent_weight"] * w["num_agents"] - 1.0) > 1e-9:
        raise ValueError("agent_weight is not 1/num_agents")


# --- offline export -----------------------------------------------------------------------------------------


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["action_ranges"] = [list(r) for r in row["action_ranges"]]
    return out


def iter_rows(
    trajectories: Iterable[Trajectory],
    *,
    merge_prefix: bool = False,
    on_missing: OnMissing = "skip",
    with_messages: bool = False,
    stats: RowStats | None = None,
) -> Iterator[dict[str, Any]]:
    """Rows of many trajectories, rewards taken from each trajectory (``None`` when it has none).

    ``with_messages`` adds the call's OpenAI-format ``messages``, ``tools`` and ``completion`` (of the last
    merged call) for SFT pipelines that want text next to the ids.
    """
    stats = stats if stats is not None else RowStats()
    for traj in trajectories:
        rows = trajectory_to_rows(traj, merge_prefix=merge_prefix, on_missing=on_missing, stats=stats)
        if not rows:
            stats.skipped_rollouts.append(traj.rollout_id)
        if with_messages:
            by_key = {(a.agent_id, t.turn): t for a in traj.agents for t in a.turns}
        for row in rows:
            if with_messages:
                w = row["wideseek"]
                rec = by_key[(w["agent_id"], w["turns"][-1])]
                row["messages"] = rec.messages
                row["tools"] = rec.tools
                row["completion"] = rec.completion.model_dump()
            yield row


def export_rows(
    trajectories_path: str | Path,
    rows_path: str | Path,
    *,
    merge_prefix: bool = False,
    on_missing: OnMissing = "skip",
    with_messages: bool = False,
) -> RowStats:
    """Convert a trajectories JSONL (``wideseek run --trajectory`` / ``wideseek eval``) into a rows JSONL.

    Writes to a temporary file first and renames it, so a bad input line leaves no half-written output.
    """
    stats = RowStats()
    out = Path(rows_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for row in iter_rows(
                read_jsonl(trajectories_path),
                merge_prefix=merge_prefix,
                on_missing=on_missing,
                with_messages=with_messages,
                stats=stats,
            ):
                f.write(json.dumps(_jsonable(row), ensure_ascii=False))
                f.write("\n")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return stats
