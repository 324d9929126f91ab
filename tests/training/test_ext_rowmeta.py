"""The row contract as the extension reads it: stamping, and clear errors on broken results."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parent / "stubs"))
from ext_fixtures import make_rollout, make_row

from training.openrlhf_ext.errors import RowContractError
from training.openrlhf_ext.rowmeta import representative_row, stamp_rollout

AGENTS = {"lead": [(5, 3), (9, 2)], "sub-1": [(4, 4)], "sub-2": [(3, 1), (6, 2)]}


def test_stamps_every_row_with_group_sample_and_agent():
    rows = make_rollout("r-1", 0.7, AGENTS)
    out = stamp_rollout(rows, group=4, sample=2)
    assert len(out) == 5
    assert {st.rollout_key for _, st in out} == {(4, 2)}
    assert [st.meta.agent_id for _, st in out] == ["lead", "lead", "sub-1", "sub-2", "sub-2"]
    assert out[0][1].agent_key == (4, 2, "lead")
    assert all(st.meta.num_agents == 3 for _, st in out)


def test_plain_single_row_dict_is_one_agent_rollout():
    row = make_rollout("x", 1.0, {"lead": [(3, 4)]})[0]
    del row["wideseek"]
    ((r, st),) = stamp_rollout(row, group=0, sample=1)
    assert r is row and st.meta.num_agents == 1 and st.meta.agent_token_total == 4


def test_empty_list_is_a_rollout_without_rows():
    assert stamp_rollout([], group=0, sample=0) == []


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda rows: rows[1]["wideseek"].update(rollout_id="other"), "rollout ids"),
        (lambda rows: rows[2].update(reward=0.1), "different rewards"),
        (lambda rows: [r["wideseek"].update(num_agents=2, agent_weight=0.5) for r in rows], "num_agents=2"),
        (lambda rows: rows[0]["wideseek"].update(agent_weight=0.5), "1/num_agents"),
        (lambda rows: rows[0]["wideseek"].update(agent_token_total=99), "disagree on agent_token_total"),
        (lambda rows: [r["wideseek"].update(agent_token_total=4) for r in rows[:2]], "generated 5 tokens"),
        (lambda rows: rows[3].pop("wideseek"), "needs the 'wideseek' entry"),
        (lambda rows: rows[3]["wideseek"].update(role="boss"), "bad 'wideseek' entry"),
        (lambda rows: rows[0].update(action_ranges=[(5, 99)]), "outside the row"),
        (lambda rows: rows[0].update(rollout_log_probs=[0.0]), "rollout_log_probs has 1"),
        (lambda rows: rows[0].update(reward=None), "finite number"),
        (lambda rows: rows[0].pop("observation_tokens"), "lacks keys"),
        (lambda rows: rows[4].update(extra_logs={"other": 1.0}), "extra_logs keys"),
    ],
)
def test_contract_violations_are_named(mutate, message):
    rows = make_rollout("r-1", 0.7, AGENTS)
    mutate(rows)
    with pytest.raises(RowContractError, match=message) as info:
        stamp_rollout(rows, group=3, sample=1)
    assert "task group 3, sample 1" in str(info.value)


def test_non_list_result_is_rejected():
    with pytest.raises(RowContractError, match="list of row dicts"):
        stamp_rollout("rows", group=0, sample=0)


def test_representative_row_is_the_leads_last_turn():
    rows = stamp_rollout(
        make_rollout("r", 1.0, {"lead": [(2, 1), (3, 1)], "sub": [(2, 1)]}), group=0, sample=0
    )
    assert representative_row(rows) == 1
    with pytest.raises(RowContractError):
        representative_row([])


def test_make_row_matches_contract_shape():
    row = make_row(
        prompt_ids=[1, 2],
        completion_ids=[3],
        reward=1.0,
        rollout_id="r",
        agent_id="lead",
        role="lead",
        turn=0,
        num_agents=1,
        agent_token_total=1,
    )
    assert row["action_ranges"] == [(2, 3)] and len(row["rollout_log_probs"]) == 3
