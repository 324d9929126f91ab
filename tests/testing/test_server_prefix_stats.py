"""The fake server's benchmark counters: prefix-cache reuse per role, and stats over HTTP."""

from __future__ import annotations

import aiohttp
import pytest

from langgraph_wideseek.testing.server import (
    FakeOpenAIServer,
    LatencyModel,
    PrefixTracker,
    Reply,
    request_role,
)

LEAD_TOOLS = [{"type": "function", "function": {"name": "create_sub_agents"}}]
SUB_TOOLS = [
    {"type": "function", "function": {"name": "search"}},
    {"type": "function", "function": {"name": "access"}},
]


def test_prefix_tracker_counts_whole_leading_blocks_per_role() -> None:
    t = PrefixTracker(block=4)
    assert t.observe("a", b"abcdefgh") == 0
    assert t.observe("a", b"abcdefghij") == 8  # both blocks seen; the 2-byte tail is not a block
    assert t.observe("a", b"abcdXXXXabcd") == 4  # reuse stops at the first differing block
    assert t.observe("b", b"abcdefgh") == 0  # roles do not share a cache
    assert t.observe("a", b"XXXXefgh") == 0  # a block is identified by everything before it too


def test_fixed_tokens_makes_latency_independent_of_reply_length() -> None:
    lat = LatencyModel(base=0.5, per_token=0.01, per_token_inflight=0.001, fixed_tokens=100)
    assert lat(1, 5) == lat(1, 5000) == 0.5 + 100 * 0.01
    assert lat(11, 5) == 0.5 + 100 * (0.01 + 10 * 0.001)
    assert LatencyModel(per_token=0.01)(1, 30) == 30 * 0.01


def test_request_role() -> None:
    assert request_role({"tools": LEAD_TOOLS}) == "lead"
    assert request_role({"tools": SUB_TOOLS}) == "subagent"
    assert request_role({}) == "summarizer"
    assert request_role({"tools": [{"type": "function", "function": {"name": "calc"}}]}) == "other"


async def test_stats_endpoint_and_reset() -> None:
    async with (
        FakeOpenAIServer(lambda r: Reply(content="ok"), track_prefix=True) as srv,
        aiohttp.ClientSession() as s,
    ):
        system = {"role": "system", "content": "You are a subagent. " * 20}
        for task in ("first subtask", "second subtask"):
            body = {"model": "m", "tools": SUB_TOOLS, "messages": [system, {"role": "user", "content": task}]}
            async with s.post(srv.base_url + "/chat/completions", json=body) as r:
                assert r.status == 200
        root = srv.base_url.removesuffix("/v1")
        async with s.get(root + "/stats") as r:
            stats = await r.json()
        assert stats["requests"] == 2
        (first, second) = stats["prefix_samples"]
        assert first[0] == second[0] == "subagent" and first[2] == 0 and first[3] == second[3] == 0
        assert second[4] > 20 * len("You are a subagent. ")  # tools + system prompt were reusable
        # the second request reuses the tools and system prompt, i.e. all but the last ~2 blocks
        assert second[1] - 128 <= second[2] < second[1]
        assert stats["shared_prefix_bytes"]["subagent"] == second[2]
        async with s.post(root + "/stats/reset") as r:
            assert r.status == 200
        async with s.get(root + "/stats") as r:
            assert (await r.json())["requests"] == 0


def test_part_by_part_token_ids_equal_whole_prompt_ids() -> None:
    """The server tokenizes (and caches) message by message; ids must equal tokenizing the whole prompt,
    including contents that start or end with whitespace next to the chat markup."""
    from langgraph_wideseek.testing.server import _TokenCache, render_parts, render_prompt, toy_tokenize

    messages = [
        {"role": "system", "content": "  leading spaces\n"},
        {"role": "user", "content": "\n\nnewlines first, then words  "},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": " think ",
            "tool_calls": [{"function": {"name": "search", "arguments": '{"q": 1}'}}],
        },
        {"role": "tool", "content": [{"type": "text", "text": "\tpart"}]},
    ]
    cache = _TokenCache(max_entries=2)
    for _ in range(3):  # second and third passes come (partly) from the cache, which also overflows
        assert cache.ids(render_parts(messages, SUB_TOOLS)) == toy_tokenize(
            render_prompt(messages, SUB_TOOLS)
        )


async def test_replies_name_the_server_model_when_not_echoing_and_bind_the_given_port() -> None:
    """What `wideseek simulate` relies on: every reply names the simulated model whatever was asked for, and
    the server listens on the port it was given (a busy port fails at start, leaving nothing running)."""
    async with FakeOpenAIServer(lambda body: Reply(content="hi"), model="sim", echo_model=False) as first:
        assert first.port
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{first.base_url}/chat/completions",
                json={"model": "RLinf/WideSeek-R1-4b", "messages": [{"role": "user", "content": "x"}]},
            ) as r:
                assert (await r.json())["model"] == "sim"
        busy = FakeOpenAIServer(lambda body: Reply(content="hi"), port=first.port)
        with pytest.raises(OSError):
            await busy.start()
        assert busy._runner is None
