"""Orchestration CPU per model call: the full graph against reference clients, measured in the same run.

The server (zero latency) runs in its own process; each client runs in a fresh child process of its own and
reports ``time.process_time()`` spent over N calls after a warm-up, so imports, connection set-up and other
clients never leak into a number. Reference points, cheapest first:

* ``raw_aiohttp``: a hand-written loop, JSON in and out over one aiohttp session;
* ``openai_sdk``: ``AsyncOpenAI.chat.completions.create``;
* ``chatopenai``: LangChain's ``ChatOpenAI`` with the tools bound;
* ``chatopenai_send``: the same inside a LangGraph graph that fans out with ``Send``;
* ``chatvllm`` / ``chatvllm_send``: the project's model client, alone and inside a Send graph;
* ``raw_protocol``: the whole WideSeek protocol (lead + subagents + tools) hand-written over raw aiohttp;
* ``wideseek_graph``: the whole WideSeek graph (``WideSeekGraph.arun``), tools on an in-memory corpus;
* ``wideseek_graph_subgraph``: the same with ``subagent_subgraph=True`` (one graph step per subagent turn).

Every single-call client sends the same request (a typical subagent turn, asking for token ids and logprobs)
and gets the same reply (reasoning plus one ``search`` call); ``IN_FLIGHT`` requests are in flight at once.
Run alone: ``python -m benchmarks.overhead [--quick]``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import operator
import subprocess
import sys
import time
from typing import Annotated, Any, TypedDict

from .harness import ROOT, ServerProcess, cli, write_result

IN_FLIGHT = 64
THINK_TOKENS = 64
SYSTEM = (
    "You are a subagent of a research team. Complete one part of a larger task with evidence: think "
    "first, use search for discovery and access for details, reflect each turn, and finish with a clear "
    "report. "
) * 6
USER = "# Main task\nFind facts about Velmora River.\n\n# Your subtask\nFind the length and the mouth."
REFERENCES = ["raw_aiohttp", "openai_sdk", "chatopenai", "chatopenai_send", "chatvllm", "chatvllm_send"]
PROTOCOLS = ["raw_protocol", "wideseek_graph", "wideseek_graph_subgraph"]


def _tools() -> list[dict[str, Any]]:
    from .protocol import TOOLS_SUB

    return TOOLS_SUB


def _body(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
        "tools": _tools(),
        "temperature": 1.0,
        "top_p": 1.0,
        "logprobs": True,
        "return_token_ids": True,
    }


class _FanOut(TypedDict):
    n: int
    done: Annotated[list[int], operator.add]


# --- single-call clients: each returns an async ``call()`` and a cleanup ----------------------------------
async def _raw_aiohttp(base_url: str):
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT))
    url, body = base_url + "/chat/completions", _body("m")

    async def call() -> None:
        async with session.post(url, json=body) as r:
            data = await r.json()
        msg = data["choices"][0]["message"]
        assert msg["tool_calls"], "expected a tool call"

    return call, session.close


async def _openai_sdk(base_url: str):
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
    body = _body("m")
    extra = {"return_token_ids": True}

    async def call() -> None:
        r = await client.chat.completions.create(
            model="m",
            messages=body["messages"],
            tools=body["tools"],
            temperature=1.0,
            top_p=1.0,
            logprobs=True,
            extra_body=extra,
        )
        assert r.choices[0].message.tool_calls

    return call, client.close


def _lc_messages():
    from langchain_core.messages import HumanMessage, SystemMessage

    return [SystemMessage(SYSTEM), HumanMessage(USER)]


async def _chatopenai(base_url: str, send: bool = False):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        model="m",
        base_url=base_url,
        api_key="sk-bench",
        max_retries=0,
        temperature=1.0,
        top_p=1.0,
        logprobs=True,
        extra_body={"return_token_ids": True},
    ).bind_tools(_tools())
    return _lc_call(llm, send), _noop


async def _chatvllm(base_url: str, send: bool = False):
    from langgraph_wideseek import WideSeekConfig
    from langgraph_wideseek.model.chat import ChatVLLM

    cfg = WideSeekConfig(base_url=base_url, model="m", max_inflight_requests=IN_FLIGHT)
    llm = ChatVLLM.from_config(cfg).bind_tools(_tools())
    return _lc_call(llm, send), _noop


async def _noop() -> None:
    return None


def _lc_call(llm, send: bool):
    msgs = _lc_messages()

    async def call() -> None:
        r = await llm.ainvoke(msgs)
        assert r.tool_calls

    return call if not send else ("send", llm, msgs)


async def _send_graph_run(llm, msgs, n: int) -> None:
    """n model calls as n Send branches of one LangGraph graph, IN_FLIGHT at a time."""
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send

    async def call(state: dict) -> dict:
        r = await llm.ainvoke(msgs)
        assert r.tool_calls
        return {"done": [1]}

    g = StateGraph(_FanOut)
    g.add_node("call", call)
    g.add_conditional_edges(START, lambda s: [Send("call", {"i": i}) for i in range(s["n"])])
    g.add_edge("call", END)
    app = g.compile()
    out = await app.ainvoke({"n": n, "done": []}, {"max_concurrency": IN_FLIGHT})
    assert len(out["done"]) == n


async def _measure_single(kind: str, base_url: str, calls: int) -> dict[str, Any]:
    maker = {
        "raw_aiohttp": _raw_aiohttp,
        "openai_sdk": _openai_sdk,
        "chatopenai": _chatopenai,
        "chatopenai_send": lambda u: _chatopenai(u, send=True),
        "chatvllm": _chatvllm,
        "chatvllm_send": lambda u: _chatvllm(u, send=True),
    }[kind]
    call, close = await maker(base_url)

    async def batch(n: int) -> None:
        if isinstance(call, tuple):
            await _send_graph_run(call[1], call[2], n)
            return
        sem = asyncio.Semaphore(IN_FLIGHT)

        async def one() -> None:
            async with sem:
                await call()

        await asyncio.gather(*(one() for _ in range(n)))

    await batch(min(100, calls))  # warm-up: connections, caches, lazy imports
    gc.collect()
    cpu0, t0 = time.process_time(), time.perf_counter()
    await batch(calls)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    await close()
    return {"calls": calls, "cpu_s": cpu, "wall_s": wall}


# --- whole-protocol clients -------------------------------------------------------------------------------
def _world_and_task(entities: int):
    from langgraph_wideseek.testing import World

    world = World.generate(seed=5, n_categories=1, entities_per_category=max(entities, 10))
    return world, world.named_task(0, entities)


async def _measure_protocol(kind: str, base_url: str, rollouts: int, entities: int) -> dict[str, Any]:
    from .protocol import MemoryCorpus, RawClient

    world, task = _world_and_task(entities)
    corpus = MemoryCorpus(world.corpus_records())
    if kind == "raw_protocol":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT))
        client = RawClient(session, base_url, "m", corpus, max_inflight=IN_FLIGHT)

        async def rollout() -> tuple[str | None, int, list[str]]:
            r = await client.rollout(task.query)
            return r.answer, r.calls, r.errors

        close = session.close
    else:
        from langgraph_wideseek import WideSeekConfig, WideSeekGraph

        cfg = WideSeekConfig(
            base_url=base_url, model="m", max_inflight_requests=IN_FLIGHT, summarize_pages=False
        )
        graph = WideSeekGraph(cfg, search=corpus, reader=corpus, subagent_subgraph=kind.endswith("_subgraph"))

        async def rollout() -> tuple[str | None, int, list[str]]:
            r = await graph.arun(task.query)
            return r.answer, r.trajectory.num_calls(), [str(e) for e in r.errors]

        close = _noop

    async def batch(n: int) -> list[tuple[str | None, int, list[str]]]:
        return await asyncio.gather(*(rollout() for _ in range(n)))

    await batch(2)
    gc.collect()
    cpu0, t0 = time.process_time(), time.perf_counter()
    results = await batch(rollouts)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    await close()
    wrong = sum(bool(task.mismatches(a)) for a, _, _ in results)
    errors = sum(bool(e) for _, _, e in results)
    from .clients import Scorer

    scorer = Scorer([task])
    f1 = await scorer.min_item_f1(task.instance_id, [a for a, _, _ in results])
    scorer.close()
    return {
        "calls": sum(c for _, c, _ in results),
        "rollouts": rollouts,
        "cpu_s": cpu,
        "wall_s": wall,
        "wrong_tables": wrong,
        "errored_rollouts": errors,
        "item_f1_min": f1,
    }


def _child(kind: str, base_url: str, n: int) -> None:
    """Entry point of one measurement's own process: prints one JSON line."""
    if kind in PROTOCOLS:
        out = asyncio.run(_measure_protocol(kind, base_url, rollouts=n, entities=10))
    else:
        out = asyncio.run(_measure_single(kind, base_url, calls=n))
    print(json.dumps(out))


def measure(kind: str, base_url: str, n: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.overhead", "--child", kind, base_url, str(n)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail)}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["cpu_ms_per_call"] = 1000 * out["cpu_s"] / out["calls"]
    return out


def run(quick: bool = False) -> dict[str, Any]:
    calls = 300 if quick else 1000
    rollouts = 8 if quick else 32  # x 32 calls each (lead 2 + 10 subagents x 3)
    repeats = 1 if quick else 3
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in REFERENCES + PROTOCOLS}
    # Round-robin repeats: this machine may be shared, and drift then hits every client alike; each number
    # reported is the median run of its client.
    for rep in range(repeats):
        print(f"  round {rep + 1}/{repeats}", flush=True)
        with ServerProcess(policy="static", think_tokens=THINK_TOKENS) as srv:
            for kind in REFERENCES:
                runs[kind].append(measure(kind, srv.base_url, calls))
                print(f"    {kind:24s} {_fmt(runs[kind][-1])}", flush=True)
        with ServerProcess(policy="wideseek", think_tokens=THINK_TOKENS) as srv:
            for kind in PROTOCOLS:
                runs[kind].append(measure(kind, srv.base_url, rollouts))
                print(f"    {kind:24s} {_fmt(runs[kind][-1])}", flush=True)
    rows: dict[str, Any] = {}
    for kind, rs in runs.items():
        ok = sorted((r for r in rs if "error" not in r), key=lambda r: r["cpu_ms_per_call"])
        rows[kind] = (
            {**ok[len(ok) // 2], "cpu_ms_per_call_runs": [r["cpu_ms_per_call"] for r in ok]} if ok else rs[0]
        )
    return {
        "in_flight": IN_FLIGHT,
        "think_tokens": THINK_TOKENS,
        "calls": calls,
        "rollouts": rollouts,
        "repeats": repeats,
        "results": rows,
    }


def _fmt(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"ERROR {r['error']}"
    return f"{r['cpu_ms_per_call']:.3f} ms CPU/call over {r['calls']} calls ({r['wall_s']:.2f} s wall)"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    args = cli("Orchestration CPU per model call, against reference clients.")
    data = run(args.quick)
    print(write_result("overhead", {"quick": args.quick, **data}))
    if not args.no_report:
        from .report import render

        render()


if __name__ == "__main__":
    main()
