"""The floor to compare against: the WideSeek protocol hand-written as a minimal asyncio loop over raw
aiohttp.

No LangChain, no LangGraph, no pydantic on the hot path: one ``ClientSession``, JSON in and out, the lead and
its subagents as plain coroutines. It formats tool results exactly as spec section 2 says (the same text the
graph produces), so the scripted policy plays it the same way, and its CPU per model call is the lowest a
Python client of this protocol can reasonably reach. It is a measuring stick, not a product: no retries, no
context accounting, no trajectories.

Also here: :class:`MemoryCorpus`, a tiny in-memory search/page backend (an inverted index over title and text)
satisfying the package's ``SearchBackend``/``PageReader`` protocols, so benchmarks can run the full graph with
near-zero tool cost and measure orchestration alone.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from langgraph_wideseek.tools.base import Page, PageNotFound, SearchHit

_TOKEN = re.compile(r"[a-z0-9]+")

LEAD_SYSTEM = (
    "You are the lead agent. Break the task into independent subtasks and delegate them to "
    "subagents with create_sub_agents; they run in parallel. Reply with the final answer when done."
)
SUB_SYSTEM = (
    "You are a subagent. Complete your subtask with search and access, then reply with a clear "
    "report for the lead."
)

TOOLS_LEAD = [
    {
        "type": "function",
        "function": {
            "name": "create_sub_agents",
            "description": "Create subagents that run in parallel; each gets one subtask prompt.",
            "parameters": {
                "type": "object",
                "properties": {
                    "sub_agents": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"prompt": {"type": "string"}},
                            "required": ["prompt"],
                        },
                    }
                },
                "required": ["sub_agents"],
            },
        },
    }
]
TOOLS_SUB = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search; returns page URLs with short summaries.",
            "parameters": {
                "type": "object",
                "properties": {
                    "queries": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"query": {"type": "string"}, "count": {"type": "integer"}},
                            "required": ["query"],
                        },
                    }
                },
                "required": ["queries"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "access",
            "description": "Read a URL returned by search and extract information.",
            "parameters": {
                "type": "object",
                "properties": {
                    "urls": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"url": {"type": "string"}, "info_to_extract": {"type": "string"}},
                            "required": ["url", "info_to_extract"],
                        },
                    }
                },
                "required": ["urls"],
            },
        },
    },
]


class MemoryCorpus:
    """Search and page access over an in-memory corpus: an inverted index with idf-weighted term overlap
    (title terms count triple). Cheap enough that tool time never hides orchestration time."""

    name = "memory"

    def __init__(self, records: Iterable[dict[str, str]]) -> None:
        self.pages: dict[str, dict[str, str]] = {}
        self._postings: dict[str, dict[int, float]] = defaultdict(dict)
        self._urls: list[str] = []
        for r in records:
            doc = len(self._urls)
            self._urls.append(r["url"])
            self.pages[r["url"]] = r
            for t in _TOKEN.findall(r["text"].lower()):
                self._postings[t][doc] = self._postings[t].get(doc, 0.0) + 1.0
            for t in _TOKEN.findall(r.get("title", "").lower()):
                self._postings[t][doc] = self._postings[t].get(doc, 0.0) + 3.0
        n = max(1, len(self._urls))
        self._idf = {t: math.log(1 + n / len(p)) for t, p in self._postings.items()}

    def search_sync(self, query: str, count: int) -> list[SearchHit]:
        scores: dict[int, float] = defaultdict(float)
        for t in set(_TOKEN.findall(query.lower())):
            idf = self._idf.get(t)
            if idf is None:
                continue
            for doc, tf in self._postings[t].items():
                scores[doc] += idf * tf / (tf + 1.0)
        best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:count]
        hits = []
        for doc, s in best:
            rec = self.pages[self._urls[doc]]
            hits.append(
                SearchHit(url=rec["url"], title=rec.get("title", ""), snippet=rec["text"][:300], score=s)
            )
        return hits

    async def search(self, query: str, count: int) -> list[SearchHit]:
        return self.search_sync(query, count)

    async def read(self, url: str) -> Page:
        rec = self.pages.get(url)
        if rec is None:
            raise PageNotFound(f"{url} is not in the corpus")
        return Page(url=url, title=rec.get("title", ""), text=rec["text"])


# --- tool results, as spec section 2 words them -----------------------------------------------------------
def format_search(corpus: MemoryCorpus, queries: list[dict[str, Any]], max_items: int = 5) -> str:
    blocks = []
    for q in queries[:max_items]:
        hits = corpus.search_sync(q["query"], int(q.get("count") or 3))
        lines = [f"# Search query: {q['query']}", "# Result:"]
        if not hits:
            lines.append("No results found for this query.")
        lines += [f"[Doc {k}]({h.url}): {h.snippet[:5000]}" for k, h in enumerate(hits, 1)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def format_access(corpus: MemoryCorpus, urls: list[dict[str, Any]], max_items: int = 5) -> str:
    blocks = []
    for u in urls[:max_items]:
        rec = corpus.pages.get(u["url"])
        result = (
            rec["text"][:25_000] if rec else f"Could not access {u['url']}: page not found. Try another URL."
        )
        blocks.append(
            f"# Access URL: {u['url']}\n# Info to extract: {u.get('info_to_extract', '')}\n"
            f"# Result:\n{result}"
        )
    return "\n\n".join(blocks)


@dataclass
class RawRun:
    answer: str | None = None
    calls: int = 0
    errors: list[str] = field(default_factory=list)


class RawClient:
    """One aiohttp session, a semaphore on requests in flight, and the protocol as two coroutines."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        model: str,
        corpus: MemoryCorpus,
        *,
        max_inflight: int = 256,
        max_subagents: int = 10,
        lead_turns: int = 10,
        sub_turns: int = 20,
    ):
        self.session, self.url, self.model, self.corpus = (
            session,
            base_url.rstrip("/") + "/chat/completions",
            model,
            corpus,
        )
        self.sem = asyncio.Semaphore(max_inflight)
        self.max_subagents, self.lead_turns, self.sub_turns = max_subagents, lead_turns, sub_turns

    async def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], run: RawRun) -> dict:
        body = {
            "model": self.model,
            "messages": messages,
            "tools": tools,
            "temperature": 1.0,
            "top_p": 1.0,
            "return_token_ids": True,
            "logprobs": True,
        }
        async with self.sem:
            async with self.session.post(self.url, json=body) as r:
                data = await r.json(content_type=None)
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}: {data}")
        run.calls += 1
        msg = data["choices"][0]["message"]
        out = {"role": "assistant", "content": msg.get("content")}
        if msg.get("reasoning_content"):
            out["reasoning_content"] = msg["reasoning_content"]
        if msg.get("tool_calls"):
            out["tool_calls"] = msg["tool_calls"]
        return out

    async def subagent(self, question: str, prompt: str, run: RawRun) -> str:
        messages = [
            {"role": "system", "content": SUB_SYSTEM},
            {"role": "user", "content": f"# Main task\n{question}\n\n# Your subtask\n{prompt}"},
        ]
        for _ in range(self.sub_turns):
            reply = await self.chat(messages, TOOLS_SUB, run)
            messages.append(reply)
            calls = reply.get("tool_calls") or []
            if not calls:
                return reply.get("content") or ""
            call = calls[0]
            args = json.loads(call["function"]["arguments"])
            if call["function"]["name"] == "search":
                result = format_search(self.corpus, args.get("queries", []))
            elif call["function"]["name"] == "access":
                result = format_access(self.corpus, args.get("urls", []))
            else:
                result = f"Unknown tool {call['function']['name']!r}."
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        return "The subagent failed: it reached its turn limit without a final report."

    async def rollout(self, question: str) -> RawRun:
        run = RawRun()
        messages = [
            {"role": "system", "content": LEAD_SYSTEM},
            {"role": "user", "content": f"# Task\n{question}"},
        ]
        try:
            for _ in range(self.lead_turns):
                reply = await self.chat(messages, TOOLS_LEAD, run)
                messages.append(reply)
                calls = reply.get("tool_calls") or []
                if not calls:
                    run.answer = reply.get("content")
                    return run
                subs = json.loads(calls[0]["function"]["arguments"]).get("sub_agents", [])[
                    : self.max_subagents
                ]
                reports = await asyncio.gather(*(self.subagent(question, s["prompt"], run) for s in subs))
                text = "\n\n".join(
                    f"# Subtask {i}:\n{s['prompt']}\n# Result:\n{r}"
                    for i, (s, r) in enumerate(zip(subs, reports), 1)
                )
                messages.append({"role": "tool", "tool_call_id": calls[0]["id"], "content": text})
            run.errors.append("lead reached its turn limit")
        except Exception as e:  # a benchmark counts failures; it must not hide them
            run.errors.append(f"{type(e).__name__}: {e}")
        return run
