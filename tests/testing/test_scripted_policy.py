"""The scripted WideSeek policy: it reads only what it is sent, and a correct pipeline makes it score 1.0."""

from __future__ import annotations

import json

import aiohttp
import pytest

from benchmarks.protocol import MemoryCorpus, RawClient
from langgraph_wideseek.testing.policy import WideSeekPolicy, filler_text, match_field, page_sections
from langgraph_wideseek.testing.server import FakeOpenAIServer, LatencyModel, toy_tokenize
from langgraph_wideseek.testing.synthetic import World, page_url

SEARCH = {"type": "function", "function": {"name": "search", "parameters": {}}}
ACCESS = {"type": "function", "function": {"name": "access", "parameters": {}}}
LEAD = {"type": "function", "function": {"name": "create_sub_agents", "parameters": {}}}


@pytest.fixture(scope="module")
def world() -> World:
    return World.generate(seed=11, n_categories=3, entities_per_category=13)


def _call(name: str, args: dict) -> dict:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
        ],
    }


def _subagent_request(prompt: str, *tool_messages: str) -> dict:
    msgs = [{"role": "system", "content": "sub"}, {"role": "user", "content": f"# Main task\nq\n\n{prompt}"}]
    for t in tool_messages:
        msgs += [_call("search", {}), {"role": "tool", "tool_call_id": "c1", "content": t}]
    return {"messages": msgs, "tools": [SEARCH, ACCESS]}


async def _run(world: World, tasks, policy: WideSeekPolicy, **client_kw):
    corpus = MemoryCorpus(world.corpus_records())
    async with FakeOpenAIServer(policy) as srv, aiohttp.ClientSession() as s:
        client = RawClient(s, srv.base_url, "m", corpus, **client_kw)
        return [await client.rollout(t.query) for t in tasks], srv


async def test_list_task_needs_discovery_then_waves_and_scores_perfectly(world: World) -> None:
    policy = WideSeekPolicy(max_per_wave=5)
    task = world.list_task(0)
    (run,), srv = await _run(world, [task], policy)
    assert run.errors == [] and policy.failures == []
    assert task.mismatches(run.answer) == []
    # lead: discovery, ceil(13/5)=3 waves, final; every subagent: search, access, report
    assert policy.stats.calls["lead"] == 5
    assert policy.stats.calls["subagent"] == 3 * (1 + 13)
    waves = [
        json.loads(r["messages"][-2]["tool_calls"][0]["function"]["arguments"])["sub_agents"]
        for r in srv.requests
        if r["tools"][0]["function"]["name"] == "create_sub_agents" and r["messages"][-1]["role"] == "tool"
    ]
    assert [len(w) for w in waves] == [1, 5, 5, 3]


async def test_named_tasks_skip_discovery(world: World) -> None:
    policy = WideSeekPolicy()
    tasks = [world.named_task(i, 6) for i in range(3)]
    runs, _ = await _run(world, tasks, policy)
    for t, r in zip(tasks, runs):
        assert r.errors == [] and t.mismatches(r.answer) == []
        assert r.calls == 2 + 6 * 3
    assert policy.failures == []


async def test_dropped_subagents_are_asked_for_again(world: World) -> None:
    """A harness that caps a wave below the policy's wave size drops entries; the lead notices the missing
    reports in its context and sends them again, so the table is still complete."""
    policy = WideSeekPolicy(max_per_wave=10)
    task = world.named_task(1, 8)
    (run,), _ = await _run(world, [task], policy, max_subagents=3)
    assert task.mismatches(run.answer) == []
    assert policy.stats.calls["lead"] == 3 + 1  # 8 entities at 3 per wave (3, 3, 2), then the answer


async def test_broken_pipeline_shows_up_as_wrong_table(world: World) -> None:
    """If the harness serves the wrong page for a URL (here: each member's text rotated to the next member),
    the policy reports what it read and the table is wrong: the check is not vacuous."""
    task = world.named_task(2, 3)
    names = [r[0] for r in task.gold_rows]
    recs = {r["title"]: r for r in world.corpus_records()}
    corrupted = [
        {**r, "text": recs[names[(names.index(r["title"]) + 1) % 3]]["text"]} if r["title"] in names else r
        for r in world.corpus_records()
    ]
    policy = WideSeekPolicy()
    async with FakeOpenAIServer(policy) as srv, aiohttp.ClientSession() as s:
        run = await RawClient(s, srv.base_url, "m", MemoryCorpus(corrupted)).rollout(task.query)
    assert run.errors == [] and len(task.mismatches(run.answer)) == 3 * 4


def test_subagent_prefers_the_exact_page_over_look_alikes(world: World) -> None:
    ent = world.categories[0].entities[0]
    prompt = (
        f'Find the page of "{ent.name}" (one of the {world.categories[0].label}) and report these fields, '
        f'one per line as "Field: value": Length (km); Mouth.'
    )
    search = (
        f"# Search query: {ent.name}\n# Result:\n[Doc 1]({page_url(ent.name + ' Bridge')}): a bridge\n"
        f"[Doc 2]({page_url(ent.name)}): the river\n"
    )
    reply = WideSeekPolicy()(_subagent_request(prompt, search))
    assert reply.tool_calls == [
        {
            "name": "access",
            "arguments": {"urls": [{"url": page_url(ent.name), "info_to_extract": "Length (km); Mouth"}]},
        }
    ]


def test_subagent_searches_again_then_gives_up_explicitly() -> None:
    prompt = (
        'Find the page of "Nowhere River" (one of the rivers of Atlantis) and report these fields, '
        'one per line as "Field: value": Length (km).'
    )
    miss = "# Search query: Nowhere River\n# Result:\n[Doc 1](https://synthpedia.example/wiki/Other_River): x"
    policy = WideSeekPolicy()
    second = policy(_subagent_request(prompt, miss))
    assert second.tool_calls[0]["name"] == "search"
    assert second.tool_calls[0]["arguments"]["queries"][0]["query"] == "Nowhere River rivers of Atlantis"
    final = policy(_subagent_request(prompt, miss, miss))
    assert final.tool_calls == [] and "could not find a page for Nowhere River" in final.content
    assert policy.failures == []


def test_summariser_returns_only_the_page_sections(world: World) -> None:
    ent = world.categories[1].entities[0]
    page = next(r["text"] for r in world.corpus_records() if r["title"] == ent.name)
    request = {
        "messages": [
            {"role": "system", "content": "You summarise pages."},
            {
                "role": "user",
                "content": "Rules:\n- Be brief\n- Quote numbers\nInformation to extract: Founded\n"
                f"Page:\n{page}",
            },
        ]
    }
    reply = WideSeekPolicy()(request)
    lines = reply.content.splitlines()[1:]
    assert lines == page_sections(page) and len(lines) == 4
    assert not any("Be brief" in ln for ln in lines)
    empty = WideSeekPolicy()({"messages": [{"role": "user", "content": "nothing here"}]})
    assert "does not contain" in empty.content


def test_field_matching_and_unknown_requests() -> None:
    facts = [
        ("Length", "412.5 km"),
        ("Tower height", "20.5 m"),
        ("Birth date", "1 May 1990"),
        ("Range", "9 nmi"),
    ]
    assert match_field("Length (km)", facts) == "412.5 km"
    assert match_field("Height (m)", facts) == "20.5 m"
    assert match_field("Date of birth", facts) == "1 May 1990"
    assert match_field("Range (nmi)", facts) == "9 nmi"
    assert match_field("Operator", facts) is None
    policy = WideSeekPolicy()
    bad = policy(
        {
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "calculator"}}],
        }
    )
    assert bad.status == 500 and policy.failures
    lead_bad = policy({"messages": [{"role": "user", "content": "hello"}], "tools": [LEAD]})
    assert lead_bad.status == 500 and "columns" in policy.failures[-1]


async def test_think_and_reply_tokens_lengthen_generations(world: World) -> None:
    assert abs(len(toy_tokenize(filler_text(400))) - 400) <= 2
    task = world.named_task(0, 2)
    totals = []
    for think, reply in ((0, 0), (200, 100)):
        policy = WideSeekPolicy(think_tokens=think, reply_tokens=reply)
        (run,), srv = await _run(world, [task], policy)
        assert task.mismatches(run.answer) == []
        totals.append(srv.stats.completion_tokens)
    calls = 2 + 2 * 3
    assert totals[1] - totals[0] >= calls * 200 + 2 * 100


async def test_latency_model_is_exercised_by_the_policy(world: World) -> None:
    policy = WideSeekPolicy(think_tokens=50)
    task = world.named_task(0, 4)
    corpus = MemoryCorpus(world.corpus_records())
    async with (
        FakeOpenAIServer(policy, latency=LatencyModel(base=0.1, per_token=1e-5)) as srv,
        aiohttp.ClientSession() as s,
    ):
        run = await RawClient(s, srv.base_url, "m", corpus).rollout(task.query)
    assert task.mismatches(run.answer) == []
    assert srv.stats.peak_inflight == 4
