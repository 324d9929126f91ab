"""vLLM 0.29's qwen3 reasoning / hermes tool parsing as reproduced in hermes.py (used by the in-actor endpoint).

Expected values are what vLLM's own server answered for the same text (tests/conformance runs them against
vLLM itself); these run without vLLM."""

from __future__ import annotations

import json

import pytest

from langgraph_wideseek.hermes import parse_hermes_vllm, split_reasoning_vllm


@pytest.mark.parametrize(("text", "thinking", "expected"), [
    ("<think>\nI should search.\n</think>\n\nLet me look.", True, ("\nI should search.\n", "\n\nLet me look.")),
    ("Just text, no thinking.", True, ("Just text, no thinking.", None)),  # no </think>: all reasoning
    ("I think so.\n</think>\n\nAnswer: 5", True, ("I think so.\n", "\n\nAnswer: 5")),
    ("<think>\n\n</think>\n\nHi", True, ("\n\n", "\n\nHi")),
    ("</think>Hi", True, (None, "Hi")),
    ("<think>a</think>b</think>c", True, ("a", "bc")),
    ("<think>\nstill", True, ("\nstill", None)),
    ("<think>\nr\n<tool_call>\n{}", True, ("\nr\n", "<tool_call>\n{}")),
    ("<think>x</think>Hello", False, (None, "<think>x</think>Hello")),
])
def test_split_reasoning_like_vllm(text, thinking, expected):
    assert split_reasoning_vllm(text, thinking=thinking) == expected


def call(name, args):
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


def test_parse_hermes_like_vllm():
    assert parse_hermes_vllm("no calls here") is None
    content, calls = parse_hermes_vllm("\n\nLet me look.\n" + call("search", {"q": "é"}) + "\n" + call("access", {}))
    assert content == "\n\nLet me look.\n"
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("search", '{"q": "é"}'), ("access", "{}")]
    assert all(c["type"] == "function" and c["id"].startswith("chatcmpl-tool-") for c in calls)
    # blank content before the calls is None; text after the last block is dropped
    assert parse_hermes_vllm("  \n" + call("a", {}) + "\nafter")[0] is None
    # the last block may be unterminated
    assert parse_hermes_vllm('<tool_call>\n{"name": "a", "arguments": {"x": 1}}')[1][0]["function"]["arguments"] == \
        '{"x": 1}'
    # arguments of any JSON type are re-encoded as they are (a double-encoded object stays a string)
    assert parse_hermes_vllm(call("a", '{"x": 1}'))[1][0]["function"]["arguments"] == '"{\\"x\\": 1}"'


@pytest.mark.parametrize("text", [
    '<tool_call>\n{"name": "search", "arguments": {"queries": [}\n</tool_call>',  # not JSON
    '<tool_call>\n{"name": "search"}\n</tool_call>',  # no arguments
    '<tool_call>\n{"name": 5, "arguments": {}}\n</tool_call>',  # name not a string
    '<tool_call>\n["search"]\n</tool_call>',
    call("ok", {}) + '<tool_call>\n{"name": "b", "arg',  # one bad block spoils all
    call("search", {"q": "</tool_call>"}),  # vLLM's block ends at the first closing tag
])
def test_any_bad_block_means_no_calls(text):
    assert parse_hermes_vllm(text) is None
