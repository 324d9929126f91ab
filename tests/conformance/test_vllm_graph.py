"""The WideSeek graph through vLLM 0.29's own OpenAI server, and through the in-actor endpoint, on the same
scripted model: a full two-wave run on the synthetic world.

The scripted WideSeek player acts only on what it is sent (it reads the rendered prompt back), so a message,
tool call or report lost or mangled by either server shows up as a wrong table. The two runs must then record
the same trajectory: per turn the same messages, prompt token ids, completion token ids, logprobs and finish
reasons (tool-call ids are random by nature and compared by position).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from conformance.conftest import HAVE_VLLM, MAX_MODEL_LEN
from conformance.test_vllm_endpoint_parity import f32_logprob

from langgraph_wideseek.config import WideSeekConfig
from langgraph_wideseek.graph import WideSeekGraph
from langgraph_wideseek.llm import ChatVLLM
from langgraph_wideseek.testing.policy import WideSeekPolicy
from langgraph_wideseek.testing.synthetic import World
from training.endpoint import ChatEndpoint
from training.engine import SamplingParamsLite
from training.testing import PolicyScript, ScriptedEngine

pytestmark = pytest.mark.skipif(not HAVE_VLLM, reason="vLLM is not installed (the conformance tier: make test-vllm)")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World.generate(seed=5, n_categories=1, entities_per_category=6)
    d = tmp_path_factory.mktemp("world")
    return w, w.write_corpus(d / "corpus.jsonl"), d / "index"


async def run_graph(base_url: str, model: str, world, *, context_tokens: int) -> tuple[Any, WideSeekPolicy, Any]:
    w, corpus, index_dir = world
    cfg = WideSeekConfig(base_url=base_url, model=model, search="local", corpus=corpus, index_dir=index_dir,
                         summarize_pages=True, max_retries=0, context_tokens=context_tokens,
                         max_prompt_tokens=min(4096, context_tokens - 1), temperature=1.0, top_p=1.0)
    llm = ChatVLLM.from_config(cfg)
    graph = WideSeekGraph(cfg, llm=llm)
    try:
        result = await graph.arun(w.list_task(0).query)
    finally:
        await llm.aclose()
        summarizer = getattr(graph.access_tool.summarizer, "llm", None)
        if summarizer is not None and summarizer is not llm and hasattr(summarizer, "aclose"):
            await summarizer.aclose()
    return result


def comparable(result) -> list[dict[str, Any]]:
    """Every agent's turns with tool-call ids replaced by their order of appearance."""
    ids: dict[str, str] = {}

    def rename(text: str) -> str:
        return re.sub(r"(chatcmpl-tool-[0-9a-f]{16}|call_[0-9a-f]{24})",
                      lambda m: ids.setdefault(m.group(1), f"call#{len(ids)}"), text)

    out = []
    traj = result.trajectory
    for agent in [traj.lead, *traj.subagents]:
        for t in agent.turns:
            d = t.model_dump(mode="json")
            out.append({"agent": agent.agent_id, "status": agent.status, "turn": d["turn"],
                        "messages": rename(repr(d["messages"])), "completion": rename(repr(d["completion"])),
                        "prompt_token_ids": d["prompt_token_ids"], "completion_token_ids": d["completion_token_ids"],
                        "logprobs": d["logprobs"], "finish_reason": d["finish_reason"], "usage": d["usage"]})
    return out


@pytest.mark.slow
async def test_graph_through_vllm_and_through_the_endpoint_records_the_same_trajectory(served, tok, world):
    w = world[0]
    task = w.list_task(0)

    policy = WideSeekPolicy(max_per_wave=10)
    served.engine = ScriptedEngine(tok, PolicyScript(policy), logprob=f32_logprob)
    via_vllm = await run_graph(served.base_url, served.model_name, world, context_tokens=MAX_MODEL_LEN)
    assert policy.failures == []
    assert via_vllm.status == "ok", via_vllm.errors
    assert task.mismatches(via_vllm.answer) == []  # the table is exactly right
    subs = via_vllm.trajectory.subagents
    assert len(subs) == 1 + 6 and all(a.status == "ok" for a in subs)
    turns = [t for a in [via_vllm.trajectory.lead, *subs] for t in a.turns]
    assert all(t.prompt_token_ids and t.completion_token_ids and t.logprobs for t in turns)
    assert all(len(t.logprobs) == len(t.completion_token_ids) for t in turns)
    assert {t.finish_reason for t in turns} <= {"stop", "tool_calls"}
    calls_vllm = len(served.engine.calls)

    policy2 = WideSeekPolicy(max_per_wave=10)
    engine2 = ScriptedEngine(tok, PolicyScript(policy2), logprob=f32_logprob)
    base = SamplingParamsLite(temperature=1.0, top_p=1.0, top_k=-1, max_tokens=None, min_tokens=1,
                              skip_special_tokens=False, logprobs=None)
    ep = ChatEndpoint(tok, engine=engine2, sampling_params=base, max_length=MAX_MODEL_LEN,
                      model_name=served.model_name)
    url = await ep.start()
    try:
        via_endpoint = await run_graph(url, served.model_name, world, context_tokens=MAX_MODEL_LEN)
    finally:
        await ep.aclose()
    assert policy2.failures == [] and via_endpoint.status == "ok"
    assert via_endpoint.answer == via_vllm.answer
    assert len(engine2.calls) == calls_vllm  # summaries included
    a, b = comparable(via_vllm), comparable(via_endpoint)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x == y


@pytest.mark.slow
async def test_without_clamping_vllm_refuses_the_graphs_estimated_budgets(served, tok, world, monkeypatch):
    """Why ChatVLLM.clamp_max_tokens exists: the graph's budget leaves out the tool schemas, so with
    context_tokens equal to vLLM's max_model_len vLLM refuses the agents' first calls with a 400."""
    original = ChatVLLM.from_config.__func__

    def unclamped(cls, cfg, **overrides):
        return original(cls, cfg, **{**overrides, "clamp_max_tokens": False})

    monkeypatch.setattr(ChatVLLM, "from_config", classmethod(unclamped))
    served.engine = ScriptedEngine(tok, PolicyScript(WideSeekPolicy(max_per_wave=10)), logprob=f32_logprob)
    result = await run_graph(served.base_url, served.model_name, world, context_tokens=MAX_MODEL_LEN)
    assert result.status == "failed"
    assert any("maximum context length" in e for e in result.errors), result.errors
