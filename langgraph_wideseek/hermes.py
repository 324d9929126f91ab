"""Qwen3 output conventions: ``<think>`` reasoning and hermes-style ``<tool_call>`` blocks.

vLLM parses both server-side when started with ``--reasoning-parser qwen3 --tool-call-parser hermes``. These
functions do the same on the client (for servers started without the parsers) and inside the training
endpoint, so every path turns raw model text into the same OpenAI-shaped tool calls.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any


def split_reasoning(text: str) -> tuple[str | None, str]:
    """Split raw text into (reasoning, content).

    Handles a full ``<think>...</think>`` block and a dangling ``</think>`` (Qwen3's template opens the tag in
    the prompt). Text with no closing tag but an opening one is unfinished thinking: all of it is reasoning.
    """
    if "</think>" in text:
        head, tail = text.split("</think>", 1)
        reasoning = head.split("<think>", 1)[1] if "<think>" in head else head
        return reasoning.strip(), tail.lstrip("\n")
    if text.lstrip().startswith("<think>"):
        return text.lstrip()[len("<think>"):].strip(), ""
    return None, text


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def parse_hermes(text: str) -> tuple[str, list[dict[str, Any]], list[dict[str, str]]]:
    """Extract hermes tool calls from model text.

    Returns ``(content, tool_calls, errors)``: ``content`` is the text outside the blocks (stripped),
    ``tool_calls`` are OpenAI-shaped ``{"id", "type": "function", "function": {"name", "arguments": str}}``,
    and ``errors`` holds ``{"raw", "error"}`` for every block that is not valid JSON with a string ``name``
    and object ``arguments`` (including an unterminated ``<tool_call>`` at the end of the text).
    """
    calls: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    outside: list[str] = []
    for raw, closed in _blocks(text, outside):
        if not closed:  # generation stopped inside a block
            errors.append({"raw": raw, "error": "unterminated <tool_call>"})
            continue
        call, error = _parse_block(raw)
        if call is not None:
            calls.append(call)
        else:
            errors.append({"raw": raw, "error": error})
    return "".join(outside).strip(), calls, errors


_OPEN, _CLOSE = "<tool_call>", "</tool_call>"


def _blocks(text: str, outside: list[str]) -> Iterator[tuple[str, bool]]:
    """Yield (body, closed) for each ``<tool_call>`` block; collect the text between blocks into ``outside``.

    A block normally ends at the first closing tag, but a JSON string inside it may itself contain
    ``</tool_call>`` (a query about the tag, say): the block then ends at the first closing tag after which
    its body parses as JSON. If none does, the first closing tag ends it and the body is reported as invalid.
    """
    pos = 0
    while True:
        start = text.find(_OPEN, pos)
        if start < 0:
            outside.append(text[pos:])
            return
        outside.append(text[pos:start])
        body = start + len(_OPEN)
        end = text.find(_CLOSE, body)
        if end < 0:
            yield text[body:].strip(), False
            return
        cand = end
        while cand >= 0:
            try:
                json.loads(text[body:cand])
                end = cand
                break
            except json.JSONDecodeError:
                cand = text.find(_CLOSE, cand + len(_CLOSE))
        yield text[body:end].strip(), True
        pos = end + len(_CLOSE)


def _parse_block(raw: str) -> tuple[dict[str, Any] | None, str]:
    """(OpenAI-shaped tool call, "") or (None, why the block is not a valid call)."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        return None, f"tool call is not valid JSON: {e.msg} at position {e.pos}"
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None, "tool call must be a JSON object with a string 'name'"
    args = obj.get("arguments", {})
    if isinstance(args, str):  # some models double-encode the arguments
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return None, "tool call 'arguments' is a string that is not JSON"
    if not isinstance(args, dict):
        return None, "tool call 'arguments' must be a JSON object"
    return {
        "id": new_call_id(),
        "type": "function",
        "function": {"name": obj["name"], "arguments": json.dumps(args, ensure_ascii=False)},
    }, ""


def render_hermes(name: str, arguments: dict[str, Any]) -> str:
    """The text form of one tool call, as Qwen3's chat template writes it."""
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + "\n</tool_call>"


# --- vLLM's server-side parsing, reproduced ------------------------------------------------------------------
# What vLLM 0.29 answers for `--reasoning-parser qwen3 --tool-call-parser hermes --enable-auto-tool-choice`
# (non-streaming). The in-actor training endpoint uses these so a graph sees, in training, the same messages as
# from a vLLM server; tests/conformance/ holds them to vLLM's own code. Unlike ``split_reasoning`` and
# ``parse_hermes`` above (the client's lenient fallback for servers without parsers), nothing is stripped and a
# malformed block leaves the whole text as content, as vLLM does.

_QWEN3_TAGS = re.compile(r"(<think>|</think>|<tool_call>)")
_HERMES_BLOCKS = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", re.DOTALL)


def split_reasoning_vllm(text: str, *, thinking: bool = True) -> tuple[str | None, str | None]:
    """(reasoning, content) as vLLM's ``qwen3`` reasoning parser splits generated text.

    With thinking on (the default; ``chat_template_kwargs={"enable_thinking": False}`` turns it off) the text
    *starts* as reasoning: a leading ``<think>`` is dropped, ``</think>`` ends the reasoning (later ones are
    dropped from the content), and a ``<tool_call>`` inside the reasoning ends it too (the call stays in the
    content). Text without ``</think>`` is all reasoning. Both parts are verbatim; an empty part is ``None``.
    """
    if not thinking:
        return None, text
    reasoning: list[str] = []
    content: list[str] = []
    in_reasoning = True
    for part in _QWEN3_TAGS.split(text):
        if part == "</think>":
            in_reasoning = False
            continue
        if in_reasoning:
            if part == "<think>":
                continue
            if part == "<tool_call>":
                in_reasoning = False
        (reasoning if in_reasoning else content).append(part)
    return "".join(reasoning) or None, "".join(content) or None


def vllm_call_id() -> str:
    """A tool-call id in vLLM's form."""
    return "chatcmpl-tool-" + uuid.uuid4().hex[:16]


def parse_hermes_vllm(content: str) -> tuple[str | None, list[dict[str, Any]]] | None:
    """vLLM's ``hermes`` tool parser: ``(content, tool_calls)``, or ``None`` when the text calls no tool.

    Every ``<tool_call>`` block (the last one may be unterminated) must be JSON with a string ``name`` and an
    ``arguments`` key, else none is taken (``None``: the whole text stays content). ``arguments`` is passed on
    re-encoded whatever its JSON type. The content is the text before the first block (``None`` when blank);
    text after the blocks is dropped.
    """
    if "<tool_call>" not in content:
        return None
    calls = []
    try:
        for closed, tail in _HERMES_BLOCKS.findall(content):
            obj = json.loads(closed if closed else tail)
            name = obj["name"]
            if not isinstance(name, str):
                return None
            calls.append({"id": vllm_call_id(), "type": "function",
                          "function": {"name": name, "arguments": json.dumps(obj["arguments"], ensure_ascii=False)}})
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    before = content[: content.find("<tool_call>")]
    return (before if before.strip() else None), calls
