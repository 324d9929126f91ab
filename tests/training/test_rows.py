"""trajectory -> rows: the contract the multi-row extension consumes (train-common.md)."""

from __future__ import annotations

import json

import pytest

from langgraph_wideseek.graph.trajectory import (
    AgentTrajectory,
    Completion,
    Trajectory,
    TurnRecord,
    write_jsonl,
)
from training.rows import (
    MissingTokenIds,
    RowStats,
    export_rows,
    trajectory_to_rows,
    validate_row,
)


def turn(
    i: int,
    prompt: list[int],
    completion: list[int],
    *,
    logprobs: bool = True,
    finish: str = "stop",
    ids: bool = True,
) -> TurnRecord:
    return TurnRecord(
        turn=i,
        messages=[{"role": "user", "content": f"turn {i}"}],
        completion=Completion(content=f"reply {i}"),
        prompt_token_ids=prompt if ids else None,
        completion_token_ids=completion if ids else None,
        logprobs=[-0.5 - 0.01 * k for k in range(len(completion))] if (logprobs and ids) else None,
        finish_reason=finish,
    )


def rollout(*, lead_ok: bool = True, sub_status: tuple[str, ...] = ("ok", "failed", "ok")) -> Trajectory:
    lead = AgentTrajectory(
        agent_id="lead",
        role="lead",
        status="ok" if lead_ok else "failed",
        turns=[
            turn(1, [1, 2, 3], [10, 11]),
            turn(2, [1, 2, 3, 10, 11, 4, 5], [12, 13, 14]),
        ],
    )
    subs = []
    for k, st in enumerate(sub_status):
        subs.append(
            AgentTrajectory(
                agent_id=f"sub{k}",
                role="subagent",
                status=st,
                index=k,
                turns=[
                    turn(1, [7, 8], [20 + k] * (k + 1)),
                    turn(2, [7, 8, 9], [30 + k] * 4),
                ],
            )
        )
    return Trajectory(rollout_id="r1", question="q?", agents=[lead, *subs])


def test_one_row_per_call_with_exact_ids_and_aligned_logprobs():
    traj = rollout()
    rows = trajectory_to_rows(traj, 0.75, prompt="q?", label='{"k": 1}')
    # lead 2 calls + sub0 2 + sub2 2; sub1 failed and the run succeeded -> dropped
    assert len(rows) == 6
    assert [r["wideseek"]["agent_id"] for r in rows] == ["lead", "lead", "sub0", "sub0", "sub2", "sub2"]
    r = rows[1]
    assert r["observation_tokens"] == [1, 2, 3, 10, 11, 4, 5, 12, 13, 14]
    assert r["action_ranges"] == [(7, 10)]
    assert r["rollout_log_probs"][:7] == [0.0] * 7
    assert r["rollout_log_probs"][7:] == pytest.approx([-0.5, -0.51, -0.52])
    for row in rows:
        validate_row(row)
        assert row["reward"] == 0.75 and row["scores"] == 0.75
        assert row["prompt"] == "q?" and row["label"] == '{"k": 1}'
        assert row["wideseek"]["rollout_id"] == "r1"
        assert row["wideseek"]["num_agents"] == 3
        assert row["wideseek"]["agent_weight"] == pytest.approx(1 / 3)


def test_agent_token_total_sums_generated_tokens_over_the_agents_kept_turns():
    rows = trajectory_to_rows(rollout(), 1.0)
    totals = {r["wideseek"]["agent_id"]: r["wideseek"]["agent_token_total"] for r in rows}
    assert totals == {"lead": 2 + 3, "sub0": 1 + 4, "sub2": 3 + 4}


def test_lead_failure_keeps_every_row_and_forces_reward_zero():
    stats = RowStats()
    rows = trajectory_to_rows(rollout(lead_ok=False), 0.9, stats=stats)
    assert len(rows) == 8
    assert {r["reward"] for r in rows} == {0.0}
    assert rows[0]["wideseek"]["num_agents"] == 4
    assert stats.dropped_failed_subagents == 0


def test_failed_subagents_are_counted_in_stats():
    stats = RowStats()
    trajectory_to_rows(rollout(sub_status=("failed", "failed", "ok")), 0.1, stats=stats)
    assert stats.dropped_failed_subagents == 2
    assert stats.dropped_calls_failed_subagents == 4
    assert stats.rows == 4 and stats.agents == 2


def test_truncated_flag_follows_finish_reason_length():
    traj = rollout(sub_status=())
    traj.agents[0].turns[1].finish_reason = "length"
    rows = trajectory_to_rows(traj, 0.0)
    assert [r["truncated"] for r in rows] == [False, True]


def test_missing_ids_raise_by_default_and_can_be_skipped():
    traj = rollout(sub_status=("ok",))
    traj.agents[1].turns[0] = turn(1, [], [], ids=False)
    with pytest.raises(MissingTokenIds, match="sub0.*turn 1"):
        trajectory_to_rows(traj, 1.0)
    stats = RowStats()
    rows = trajectory_to_rows(traj, 1.0, on_missing="skip", stats=stats)
    assert stats.skipped_missing_ids == 1
    assert len(rows) == 3
    sub_rows = [r for r in rows if r["wideseek"]["agent_id"] == "sub0"]
    assert sub_rows[0]["wideseek"]["agent_token_total"] == 4


def test_missing_logprobs_give_none_not_zeros():
    traj = rollout(sub_status=())
    traj.agents[0].turns[0].logprobs = None
    rows = trajectory_to_rows(traj, 1.0)
    assert rows[0]["rollout_log_probs"] is None
    assert rows[1]["rollout_log_probs"] is not None


def test_logprob_count_mismatch_is_an_error():
    traj = rollout(sub_status=())
    traj.agents[0].turns[0].logprobs = [-1.0]
    with pytest.raises(ValueError, match="1 logprobs for 2 generated tokens"):
        trajectory_to_rows(traj, 1.0)


def test_merge_only_when_the_token_prefix_matches_exactly():
    traj = rollout(sub_status=("ok",))
    stats = RowStats()
    rows = trajectory_to_rows(traj, 1.0, merge_prefix=True, stats=stats)
    # lead turn 2's prompt starts with turn 1's prompt+completion -> one row with two actions;
    # sub0 turn 2's prompt [7,8,9] does not extend [7,8,20] -> two rows.
    assert len(rows) == 3 and stats.merged_calls == 1
    lead = rows[0]
    assert lead["observation_tokens"] == [1, 2, 3, 10, 11, 4, 5, 12, 13, 14]
    assert lead["action_ranges"] == [(3, 5), (7, 10)]
    assert lead["wideseek"]["turns"] == [1, 2]
    lp = lead["rollout_log_probs"]
    assert lp[3:5] == pytest.approx([-0.5, -0.51]) and lp[5:7] == [0.0, 0.0]
    validate_row(lead)
    # the agent's token total is unchanged by merging
    assert lead["wideseek"]["agent_token_total"] == 5


def test_validate_row_catches_misalignment():
    row = trajectory_to_rows(rollout(sub_status=()), 1.0)[0]
    bad = dict(row, rollout_log_probs=row["rollout_log_probs"][:-1])
    with pytest.raises(ValueError, match="rollout logprobs"):
        validate_row(bad)
    bad = dict(row, action_ranges=[(2, 9)])
    with pytest.raises(ValueError, match="outside"):
        validate_row(bad)
    lp = list(row["rollout_log_probs"])
    lp[0] = -1.0
    with pytest.raises(ValueError, match="outside the actions"):
        validate_row(dict(row, rollout_log_probs=lp))


def test_rollout_without_a_lead_is_rejected():
    traj = Trajectory(rollout_id="x", question="q", agents=[])
    with pytest.raises(ValueError, match="exactly one lead"):
        trajectory_to_rows(traj, 1.0)


def test_export_rows_writes_jsonl_with_messages(tmp_path):
    src = tmp_path / "traj.jsonl"
    a = rollout()
    a.reward = 0.5
    b = rollout(lead_ok=False)
    b.rollout_id = "r2"
    write_jsonl(src, [a, b])
    out = tmp_path / "rows" / "rows.jsonl"
    stats = export_rows(src, out, with_messages=True)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == stats.rows == 6 + 8
    assert lines[0]["reward"] == 0.5 and lines[-1]["reward"] is None  # r2 has no reward recorded
    assert lines[1]["messages"] == [{"role": "user", "content": "turn 2"}]
    assert lines[1]["completion"]["content"] == "reply 2"
    assert lines[1]["action_ranges"] == [[7, 10]]
    assert not (tmp_path / "rows" / "rows.jsonl.part").exists()


def test_export_rows_bad_input_leaves_no_output(tmp_path):
    src = tmp_path / "traj.jsonl"
    src.write_text('{"not": "a trajectory"}\n')
    out = tmp_path / "rows.jsonl"
    with pytest.raises(ValueError, match="not a trajectory"):
        export_rows(src, out)
    assert not out.exists()
    assert not (tmp_path / "rows.jsonl.part").exists()
