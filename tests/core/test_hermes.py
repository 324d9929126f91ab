"""Qwen3 output conventions parsed on the client: <think> reasoning and hermes <tool_call> blocks."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from langgraph_wideseek.model.hermes import parse_hermes, render_hermes, split_reasoning


def test_split_full_think_block():
    assert split_reasoning("<think>\nstep 1\n</think>\n\nanswer") == ("step 1", "answer")


def test_split_dangling_close_tag():
    # Qwen3's template opens <think> in the prompt, so only the closing tag reaches the reply
    assert split_reasoning("step 1\n</think>\nanswer") == ("step 1", "answer")


def test_split_unfinished_thinking_is_all_reasoning():
    assert split_reasoning("<think>still going") == ("still going", "")


def test_split_plain_text_has_no_reasoning():
    assert split_reasoning("just an answer") == (None, "just an answer")


def test_parse_two_calls_and_surrounding_text():
    text = (
        "I will search.\n"
        + render_hermes("search", {"queries": [{"query": "Amsel"}]})
        + "\n"
        + render_hermes("access", {"urls": [{"url": "https://a", "info_to_extract": "length"}]})
    )
    content, calls, errors = parse_hermes(text)
    assert content == "I will search."
    assert errors == []
    assert [c["function"]["name"] for c in calls] == ["search", "access"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"queries": [{"query": "Amsel"}]}
    assert all(c["type"] == "function" and c["id"].startswith("call_") for c in calls)
    assert calls[0]["id"] != calls[1]["id"]


def test_parse_double_encoded_arguments():
    inner = json.dumps({"queries": [{"query": "x"}]})
    raw = "<tool_call>\n" + json.dumps({"name": "search", "arguments": inner}) + "\n</tool_call>"
    _, calls, errors = parse_hermes(raw)
    assert errors == []
    assert json.loads(calls[0]["function"]["arguments"]) == {"queries": [{"query": "x"}]}


def test_parse_errors_name_what_is_wrong():
    text = (
        "<tool_call>{not json}</tool_call>"
        '<tool_call>{"arguments": {}}</tool_call>'
        '<tool_call>{"name": "search", "arguments": [1]}</tool_call>'
        '<tool_call>{"name": "search", "arguments": "nope"}</tool_call>'
    )
    content, calls, errors = parse_hermes(text)
    assert calls == [] and content == ""
    assert [e["raw"] for e in errors][0] == "{not json}"
    msgs = [e["error"] for e in errors]
    assert "not valid JSON" in msgs[0]
    assert "string 'name'" in msgs[1]
    assert "must be a JSON object" in msgs[2]
    assert "string that is not JSON" in msgs[3]


def test_unterminated_block_is_an_error_not_content():
    content, calls, errors = parse_hermes('Let me search.\n<tool_call>\n{"name": "search", "argu')
    assert content == "Let me search."
    assert calls == []
    assert errors == [{"raw": '{"name": "search", "argu', "error": "unterminated <tool_call>"}]


def test_closing_tag_inside_a_json_string_does_not_end_the_block():
    args = {"queries": [{"query": "what does </tool_call> mean"}]}
    text = "Looking it up.\n" + render_hermes("search", args) + "\ntrailing"
    content, calls, errors = parse_hermes(text)
    assert errors == [] and content == "Looking it up.\n\ntrailing"
    assert json.loads(calls[0]["function"]["arguments"]) == args


def test_a_bad_block_does_not_swallow_the_next_one():
    text = (
        "<tool_call>{broken</tool_call> between <tool_call>"
        + '{"name": "search", "arguments": {}}</tool_call><tool_call>{"name": "acc'
    )
    content, calls, errors = parse_hermes(text)
    assert content == "between"
    assert [c["function"]["name"] for c in calls] == ["search"]
    assert [e["raw"] for e in errors] == ["{broken", '{"name": "acc']
    assert errors[1]["error"] == "unterminated <tool_call>"


def test_text_without_blocks_is_untouched():
    assert parse_hermes("  plain answer  ") == ("plain answer", [], [])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=10,
)


@given(
    name=st.from_regex(r"[a-z_]{1,20}", fullmatch=True),
    args=st.dictionaries(st.text(max_size=10), json_values, max_size=4),
)
def test_render_then_parse_round_trips(name, args):
    content, calls, errors = parse_hermes(render_hermes(name, args))
    assert errors == [] and content == ""
    assert calls[0]["function"]["name"] == name
    assert json.loads(calls[0]["function"]["arguments"]) == args
