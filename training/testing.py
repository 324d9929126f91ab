"""A scripted stand-in for the rollout engine, for tests and dry runs without a GPU.

:class:`ScriptedEngine` has the shape of OpenRLHF's ``RolloutRayActor.generate`` and returns vLLM-shaped
``RequestOutput`` objects. It decodes the prompt ids with the real tokenizer, asks a script for the raw text
the model "writes" (``<think>`` reasoning, hermes ``<tool_call>`` blocks and all), and encodes that text back
into token ids followed by the end-of-turn token; so everything downstream (decoding, reasoning split, tool-call
parsing, rows) runs on real token ids through the real code.

:class:`TextScript` keys replies the way the graph's tests do: the lead by its ``create_sub_agents`` tool, a
subagent by a substring of its first user message, the turn by the number of assistant turns in its context.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

from langgraph_wideseek.hermes import parse_hermes, render_hermes, split_reasoning

from .engine import CompletionOutput, Logprob, RequestOutput

# the tool list of a rendered system turn: one JSON schema per line between <tools> lines
_TOOLS_BLOCK = re.compile(r"<tools>\n(.*?)</tools>", re.DOTALL)
_TURN = re.compile(r"<\|im_start\|>(system|user|assistant)\n(.*?)<\|im_end\|>\n", re.DOTALL)
_TOOL_RESPONSE = re.compile(r"<tool_response>\n(.*?)\n</tool_response>", re.DOTALL)
_TOOLS_HEADER = "# Tools\n\n"



def model_text(content: str = "", *, reasoning: str | None = None,
               tool_calls: list[tuple[str, dict[str, Any]]] | None = None) -> str:
    """The raw text a Qwen3 model writes for one turn."""
    parts = []
    if reasoning is not None:
        parts.append(f"<think>\n{reasoning}\n</think>\n\n")
    parts.append(content)
    for name, args in tool_calls or []:
        if parts[-1] and not parts[-1].endswith("\n"):
            parts.append("\n")
        parts.append(render_hermes(name, args))
    return "".join(parts)


def default_logprob(position: int, token_id: int) -> float:
    """Deterministic, distinct, negative logprobs, so alignment errors show up in tests."""
    return -round(0.01 + ((token_id * 7 + position * 3) % 97) / 50.0, 4)


class ScriptedEngine:
    """``await engine.generate(prompt_token_ids, sampling_params)`` -> a vLLM-shaped ``RequestOutput``.

    ``script(prompt_text) -> str`` gives the raw completion text. The completion is cut at
    ``sampling_params.max_tokens`` (finish ``"length"``), else ends with ``<|im_end|>`` (finish ``"stop"``), or
    earlier at the token that completes one of ``sampling_params.stop`` (finish ``"stop"``, ``stop_reason`` the
    string), as vLLM's engine does.
    Every call is kept in ``calls`` as ``(prompt_token_ids, sampling_params)``.
    """

    def __init__(self, tokenizer: Any, script: Callable[[str], str], *,
                 logprob: Callable[[int, int], float] = default_logprob, delay: float = 0.0,
                 end_token: str = "<|im_end|>") -> None:
        self.tokenizer = tokenizer
        self.script = script
        self.logprob = logprob
        self.delay = delay
        self.end_id = tokenizer.convert_tokens_to_ids(end_token)
        self.calls: list[tuple[list[int], Any]] = []
        self.failures: list[str] = []

    async def generate(self, prompt_token_ids: list[int], sampling_params: Any,
                       multi_modal_data: Any = None) -> RequestOutput:
        self.calls.append((list(prompt_token_ids), sampling_params))
        if self.delay:
            await asyncio.sleep(self.delay)
        prompt = self.tokenizer.decode(prompt_token_ids, skip_special_tokens=False)
        text = self.script(prompt)
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + [self.end_id]
        finish, stop_reason = "stop", None
        stops = [s for s in getattr(sampling_params, "stop", None) or [] if s]
        if stops:  # vLLM's engine stops at the first token whose text completes a stop string
            for k in range(1, len(ids) + 1):
                so_far = self.tokenizer.decode(ids[:k], skip_special_tokens=False)
                hit = next((s for s in stops if s in so_far), None)
                if hit is not None:
                    ids, stop_reason = ids[:k], hit
                    break
        limit = getattr(sampling_params, "max_tokens", None)
        if limit is not None and len(ids) > limit:
            ids, finish, stop_reason = ids[:limit], "length", None
        want = getattr(sampling_params, "logprobs", None) is not None
        logprobs = None
        if want:
            logprobs = [{t: Logprob(self.logprob(i, t), rank=1)} for i, t in enumerate(ids)]
        visible = ids[:-1] if finish == "stop" and stop_reason is None else ids
        out_text = self.tokenizer.decode(visible, skip_special_tokens=False)
        if stop_reason is not None:
            out_text = out_text[:out_text.find(stop_reason)]
        out = CompletionOutput(
            index=0, text=out_text, token_ids=ids,
            cumulative_logprob=sum(next(iter(d.values())).logprob for d in logprobs) if logprobs else None,
            logprobs=logprobs, finish_reason=finish, stop_reason=stop_reason)
        return RequestOutput(request_id=uuid.uuid4().hex, prompt=None, prompt_token_ids=list(prompt_token_ids),
                             outputs=[out])


def _first_user_message(prompt: str) -> str:
    start = prompt.find("<|im_start|>user\n")
    if start < 0:
        return ""
    start += len("<|im_start|>user\n")
    end = prompt.find("<|im_end|>", start)
    return prompt[start:end if end >= 0 else None]


class TextScript:
    """Replies by role and turn: ``lead[k]`` for the lead's k-th call, ``subagents[key][k]`` for the k-th call of
    the subagent whose first user message contains ``key``; ``default_subagent(prompt, k)`` for the rest.
    An entry is raw model text or a callable of the prompt text. A missing entry is a test bug: it is
    recorded in ``failures`` and answered with text that makes the agent fail fast (it raises)."""

    def __init__(self, lead: list[Any], subagents: dict[str, list[Any]] | None = None, *,
                 default_subagent: Callable[[str, int], str] | None = None) -> None:
        self.lead = lead
        self.subagents = subagents or {}
        self.default_subagent = default_subagent
        self.failures: list[str] = []
        self._lock = threading.Lock()

    @staticmethod
    def is_lead(prompt: str) -> bool:
        return "create_sub_agents" in tool_schema_names(prompt)

    @staticmethod
    def turn(prompt: str) -> int:
        return prompt.count("<|im_start|>assistant") - 1

    def __call__(self, prompt: str) -> str:
        k = self.turn(prompt)
        if self.is_lead(prompt):
            return self._pick(self.lead, k, prompt, "lead")
        first = _first_user_message(prompt)
        for key, turns in self.subagents.items():
            if key in first:
                return self._pick(turns, k, prompt, f"subagent {key!r}")
        if self.default_subagent is not None:
            return self.default_subagent(prompt, k)
        return self._fail(f"no script for subagent with first message {first[:200]!r}")

    def _pick(self, turns: list[Any], k: int, prompt: str, who: str) -> str:
        if k >= len(turns):
            return self._fail(f"script for {who} has no turn {k}")
        entry = turns[k]
        return entry(prompt) if callable(entry) else entry

    def _fail(self, why: str) -> str:
        with self._lock:
            self.failures.append(why)
        raise RuntimeError(f"test script error: {why}")


def tool_schema_names(prompt: str) -> list[str]:
    """Names of the tools rendered into a prompt (for assertions)."""
    m = _TOOLS_BLOCK.search(prompt)
    if m is None:
        return []
    body = m.group(1)
    names = []
    for line in body.strip().splitlines():
        try:
            names.append(json.loads(line)["function"]["name"])
        except (ValueError, KeyError, TypeError):
            continue
    return names


def parse_rendered_chat(prompt: str) -> dict[str, Any]:
    """Read a prompt rendered by the test tokenizer's chat template back into an OpenAI-style request
    (``messages`` and ``tools``), so request-level scripted policies can drive the token-level engine."""
    tools = []
    m = _TOOLS_BLOCK.search(prompt)
    if m is not None:
        tools = [json.loads(line) for line in m.group(1).strip().splitlines() if line.strip()]
    messages: list[dict[str, Any]] = []
    for role, body in _TURN.findall(prompt):
        if role == "system":
            text = body.split("\n\n" + _TOOLS_HEADER, 1)[0] if _TOOLS_HEADER in body else body
            if text.startswith(_TOOLS_HEADER):
                continue  # tools only, no system prompt
            messages.append({"role": "system", "content": text})
        elif role == "user" and body.lstrip("\n").startswith("<tool_response>"):
            messages.extend({"role": "tool", "content": c} for c in _TOOL_RESPONSE.findall(body))
        elif role == "assistant":
            reasoning, rest = split_reasoning(body)
            content, calls, _ = parse_hermes(rest)
            msg: dict[str, Any] = {"role": "assistant", "content": content}
            if reasoning:
                msg["reasoning_content"] = reasoning
            if calls:
                msg["tool_calls"] = calls
            messages.append(msg)
        else:
            messages.append({"role": role, "content": body})
    return {"messages": messages, "tools": tools}


class PolicyScript:
    """Adapts a request-level policy (``policy(request) -> Reply``, e.g.
    :class:`langgraph_wideseek.testing.policy.WideSeekPolicy`) to :class:`ScriptedEngine`: the rendered prompt
    is read back into a request and the reply is written as raw model text (reasoning, content, hermes calls).
    A reply with an error status raises, which the endpoint answers with HTTP 500."""

    def __init__(self, policy: Callable[[dict[str, Any]], Any]) -> None:
        self.policy = policy

    def __call__(self, prompt: str) -> str:
        reply = self.policy(parse_rendered_chat(prompt))
        if getattr(reply, "status", 200) != 200:
            raise RuntimeError(f"policy error: {reply.error}")
        calls = []
        for tc in reply.tool_calls:
            args = tc.get("arguments", {})
            calls.append((tc["name"], json.loads(args) if isinstance(args, str) else args))
        return model_text(reply.content or "", reasoning=reply.reasoning, tool_calls=calls)
