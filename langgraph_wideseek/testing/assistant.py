"""A general assistant for the simulated server: enough of a model for LangChain code that is not WideSeek.

:class:`AssistantPolicy` answers any chat request by reading it, deterministically, so LangChain's standard
chat-model integration tests (and a user's own chains and agents) can run against
:class:`~langgraph_wideseek.testing.server.FakeOpenAIServer` on 127.0.0.1:

- ``response_format`` ``json_schema``: a JSON object that fits the schema; ``json_object``: an object with the
  keys the prompt names in quotes;
- tools bound and the last message from the user: one call of the named tool (``tool_choice`` naming one),
  else of the tool the text names, else of the first tool, unless ``tool_choice`` is ``"none"``. Arguments
  fit the tool's schema and are taken from the text where it has them: integers in order of appearance,
  quoted text for strings;
- after a tool result: a sentence quoting it; otherwise a sentence that quotes the question.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .script import tool_names
from .server import Reply

__all__ = ["AssistantPolicy", "example_value"]

_INT = re.compile(r"-?\d+")
_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"")


def _text(message: dict[str, Any]) -> str:
    c = message.get("content")
    if isinstance(c, list):
        return "".join(p.get("text", "") for p in c if isinstance(p, dict))
    return c or ""


class _Filler:
    """Values taken from the prompt, in order: integers and quoted strings."""

    def __init__(self, text: str) -> None:
        self.ints = [int(i) for i in _INT.findall(text)]
        self.strings = [a or b for a, b in _QUOTED.findall(text)]
        skip = {"what", "using", "with"}
        self.words = [w for w in re.findall(r"[A-Za-z]{4,}", text) if w.lower() not in skip]

    def integer(self) -> int:
        return self.ints.pop(0) if self.ints else 1

    def string(self, name: str) -> str:
        if self.strings:
            return self.strings.pop(0)
        return self.words.pop() if self.words else f"a {name}"


def example_value(
    schema: dict[str, Any],
    fill: _Filler | None = None,
    *,
    name: str = "value",
    root: dict[str, Any] | None = None,
) -> Any:
    """A value that fits a JSON schema (refs, ``anyOf``, enums, objects, arrays, scalars)."""
    fill = fill or _Filler("")
    root = root or schema
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target.get(part, {})
        return example_value(target, fill, name=name, root=root)
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return example_value(options[0], fill, name=name, root=root)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: example_value(v, fill, name=k, root=root) for k, v in props.items()}
    if kind == "array":
        return [example_value(schema.get("items") or {}, fill, name=name, root=root)]
    if kind == "integer":
        return fill.integer()
    if kind == "number":
        return float(fill.integer())
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return fill.string(name)


class AssistantPolicy:
    """A deterministic general assistant (see the module docstring); ``requests`` counts what it answered."""

    def __init__(self) -> None:
        self.requests = 0

    def __call__(self, request: dict[str, Any]) -> Reply:
        self.requests += 1
        messages = request["messages"]
        last = messages[-1]
        user = next((_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
        fmt = request.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema") or {}
            return Reply(content=json.dumps(example_value(schema, _Filler(user)), ensure_ascii=False))
        if fmt.get("type") == "json_object":
            keys = [a or b for a, b in _QUOTED.findall(user)] or ["answer"]
            return Reply(content=json.dumps({k: f"the {k}" for k in keys}, ensure_ascii=False))
        tools = request.get("tools") or []
        choice = request.get("tool_choice")
        if tools and choice != "none" and last.get("role") == "user":
            return Reply(tool_calls=[self._call(tools, choice, user)])
        if last.get("role") == "tool":
            return Reply(content=f"The tool answered: {_text(last)}")
        return Reply(content=f"Hello! You asked: {user[:200]}" if user else "Hello!")

    def _call(self, tools: list[dict[str, Any]], choice: Any, text: str) -> dict[str, Any]:
        by_name = {t["function"]["name"]: t["function"] for t in tools}
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
        else:
            names = sorted((n for n in tool_names({"tools": tools}) if n), key=len, reverse=True)
            name = next((n for n in names if n in text), None)
        fn = by_name.get(name) or tools[0]["function"]
        args = example_value(fn.get("parameters") or {"type": "object"}, _Filler(text))
        return {"name": fn["name"], "arguments": args}
