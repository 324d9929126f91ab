"""The hot-path shortcuts taken for speed and memory must not change any value."""

from __future__ import annotations

import pydantic
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from langgraph_wideseek.graph.trajectory import TurnRecord
from langgraph_wideseek.graph.turns import build_agent_trajectory
from langgraph_wideseek.model.chat import intern_token_ids, parse_completion
from langgraph_wideseek.model.transport import dumps as _dumps
from langgraph_wideseek.model.transport import loads as _loads


def test_interned_token_ids_are_equal_and_shared() -> None:
    a = intern_token_ids([151_000, 5, 70_000, 5])
    b = intern_token_ids([int("151000"), 70_000])
    assert a == [151_000, 5, 70_000, 5]
    assert a[0] is b[0] and a[2] is b[1]
    for odd in (None, [], [1.5, 2.0], ["1"], [-1, 3], [1 << 21], "abc"):
        assert intern_token_ids(odd) == odd


def test_json_codec_round_trips_and_accepts_python_specials() -> None:
    payload = {
        "messages": [{"role": "user", "content": 'é ü 中文 "q"'}],
        "n": 1,
        "x": 1.5,
        "b": True,
        "z": None,
    }
    assert _loads(_dumps(payload)) == payload
    assert _loads(b'{"logprob": -Infinity}') == {"logprob": float("-inf")}
    assert _loads(_dumps({"t": (1, 2)})) == {"t": [1, 2]}
    with pytest.raises(ValueError):
        _loads(b"{not json")


def _reply(**meta) -> AIMessage:
    data = {
        "id": "x",
        "model": "m",
        "choices": [
            {
                "message": {"role": "assistant", "content": "done", "reasoning_content": "why"},
                "finish_reason": "stop",
                "token_ids": [7, 8],
                "logprobs": {"content": [{"logprob": -0.5}, {"logprob": -1}]},
            }
        ],
        "prompt_token_ids": [1, 2, 3],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }
    ai = parse_completion(data)
    ai.response_metadata.update(meta)
    return ai


def _traj(reply: AIMessage):
    msgs = [SystemMessage("s"), HumanMessage("u"), reply]
    return build_agent_trajectory(
        "a", "subagent", msgs, [{"turn": 1, "n_messages": 2, "reply_index": 2}], [], status="ok", index=1
    )


def test_constructed_turn_records_equal_validated_ones() -> None:
    traj = _traj(_reply())
    rec = traj.turns[0]
    again = TurnRecord.model_validate(rec.model_dump())
    assert again == rec and rec.model_dump_json() == again.model_dump_json()
    assert (
        rec.prompt_token_ids == [1, 2, 3]
        and rec.logprobs == [-0.5, -1.0]
        and rec.completion.reasoning == "why"
    )


def test_foreign_metadata_shapes_are_read_or_noted_never_fatal() -> None:
    # ChatOpenAI(logprobs=True)'s shape is read
    rec = _traj(_reply(logprobs={"content": [{"token": "a", "logprob": -0.5}], "refusal": None})).turns[0]
    assert rec.logprobs == [-0.5] and rec.notes is None
    assert _traj(_reply(prompt_token_ids=(1, 2))).turns[0].prompt_token_ids == [1, 2]  # tuples are read
    assert _traj(_reply(logprobs={"content": None})).turns[0].logprobs is None  # none given: nothing to say
    # shapes the record cannot hold are left out, and the record says what it could not keep
    odd = _traj(_reply(logprobs="high", token_ids=["a", "b"], finish_reason=3)).turns[0]
    assert odd.logprobs is None and odd.completion_token_ids is None and odd.finish_reason is None
    assert odd.notes == [
        "token_ids in an unknown shape (list) not recorded",
        "logprobs in an unknown shape (str) not recorded",
        "finish_reason of type int not recorded",
    ]
    assert TurnRecord.model_validate(odd.model_dump()) == odd


def test_tune_gc_sets_and_returns_thresholds() -> None:
    import gc

    from langgraph_wideseek.runtime import tune_gc

    before = gc.get_threshold()
    try:
        assert tune_gc(10_000, 5, 7, freeze=False) == before
        assert gc.get_threshold() == (10_000, 5, 7)
        with pytest.raises(ValueError):
            tune_gc(0)
    finally:
        gc.set_threshold(*before)


async def test_plain_trajectory_data_round_trips_without_copies() -> None:
    """The graph state holds trajectories as plain data; to_plain / from_plain must equal
    model_dump(mode="json") / model_validate, share containers, and still validate odd data."""
    from langgraph_wideseek.graph.trajectory import Trajectory, from_plain, to_plain

    def trajectory_from_plain(data):
        return from_plain(Trajectory, data)

    agent = _traj(_reply())
    traj = Trajectory(rollout_id="r", question="q", answer="a", agents=[agent])
    plain = to_plain(traj)
    assert plain == traj.model_dump(mode="json")
    assert plain["agents"][0]["turns"][0]["prompt_token_ids"] is agent.turns[0].prompt_token_ids
    back = trajectory_from_plain(plain)
    assert back == Trajectory.model_validate(plain) and back.model_dump_json() == traj.model_dump_json()
    assert back.agents[0].turns[0].messages is plain["agents"][0]["turns"][0]["messages"]
    odd = {
        **plain,
        "agents": [
            {
                **plain["agents"][0],
                "turns": [{**plain["agents"][0]["turns"][0], "prompt_token_ids": ["1", "2"]}],
            }
        ],
    }
    assert trajectory_from_plain(odd).agents[0].turns[0].prompt_token_ids == [1, 2]  # validated (lax) path
    with pytest.raises(pydantic.ValidationError):
        trajectory_from_plain({**plain, "agents": [{"agent_id": "x", "role": "boss"}]})
    assert type(back.agents[0].role) is type(traj.agents[0].role)  # enum members, as validation makes them
