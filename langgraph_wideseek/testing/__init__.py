"""The simulator: a stand-in for the model server and for the world it searches, for tests, benchmarks and
demos.

This package is the one public entry to it; import what you need from here, not from its modules::

    from langgraph_wideseek.testing import FakeOpenAIServer, WideSeekPolicy, World

    world = World.generate(seed=0)                      # a generated corpus and tasks with gold tables
    async with FakeOpenAIServer(WideSeekPolicy()) as server:   # an OpenAI-compatible server on 127.0.0.1
        cfg = WideSeekConfig(base_url=server.base_url, corpus=world.write_corpus("corpus.jsonl"))

- the server (:class:`FakeOpenAIServer`, :class:`ThreadedServer`): speaks the real wire protocol with vLLM's
  extras (token ids, logprobs, context-length errors), played by a *policy*: a callable from the request
  body to a :class:`Reply`; :class:`LatencyModel` adds simulated generation time;
- policies: :class:`WideSeekPolicy` plays the whole WideSeek protocol by reading what it is sent (it never
  looks at the world), :class:`ScriptedPolicy` replays fixed turns keyed by agent (:func:`is_lead`,
  :func:`first_user_text`, :func:`turn_index` identify the caller); :class:`AssistantPolicy` plays a small
  general assistant (tool calls, JSON output) for LangChain code that is not WideSeek;
- the world (:class:`World`, :class:`SyntheticTask`): entities, list pages and look-alike pages in a corpus,
  and tasks in the WideSearch format with gold tables.

Nothing in the package's production floors imports this (docs/architecture.md) except ``wideseek simulate``
(``cli/simulate.py``), which serves it to users over a generated world (docs/simulate.md).
"""

from .assistant import AssistantPolicy
from .policy import WideSeekPolicy, filler_text
from .script import ScriptedPolicy, first_user_text, is_lead, tool_names, turn_index
from .server import (
    FakeOpenAIServer,
    LatencyModel,
    PrefixTracker,
    Reply,
    ServerStats,
    ThreadedServer,
    render_prompt,
    request_role,
    toy_logprob,
    toy_tokenize,
)
from .synthetic import SyntheticTask, World, page_url, write_tasks

__all__ = [
    "AssistantPolicy",
    "FakeOpenAIServer",
    "LatencyModel",
    "PrefixTracker",
    "Reply",
    "ScriptedPolicy",
    "ServerStats",
    "SyntheticTask",
    "ThreadedServer",
    "WideSeekPolicy",
    "World",
    "filler_text",
    "first_user_text",
    "is_lead",
    "page_url",
    "render_prompt",
    "request_role",
    "tool_names",
    "toy_logprob",
    "toy_tokenize",
    "turn_index",
    "write_tasks",
]
