"""A scripted model that plays the WideSeek protocol over the synthetic world by reading what it is sent.

:class:`WideSeekPolicy` is a ``policy`` for :class:`~langgraph_wideseek.testing.server.FakeOpenAIServer`. It
never looks at the world: like a model, it only sees the request (system prompt, task, tool messages) and must
act on it. That makes it a check of the whole pipeline: if a tool message is mangled, a report dropped or a
URL lost on the way, the policy's final table is wrong and the scorer says so.

Roles are told apart by the tools a request carries:

* **lead** (``create_sub_agents``): parses the task (the query templates of
  :mod:`~langgraph_wideseek.testing.synthetic`); for a "table of all X" task it first sends one subagent to
  read the list page, then, from the reports it got back, one subagent per member in waves of at most
  ``max_per_wave``; when every member has a report it replies with the fenced markdown table. It is
  stateless: each turn re-derives what is known from the ``# Subtask i`` / ``# Result`` blocks in its context,
  so retries, dropped subagents and parallel rollouts need no bookkeeping.
* **subagent** (``search``/``access``): searches for its target, picks the search hit whose URL names the
  target (not merely the first hit: the world plants look-alike pages), accesses it with ``info_to_extract``,
  and reports ``Field: value`` lines (or ``- name`` lines for a list), trying the next candidate when a page
  is missing.
* **page summariser** (no tools): answers with the lines of the page that carry facts or list members.

``think_tokens`` and ``reply_tokens`` make each reply longer (reasoning text, and padding in reports) so a
latency model that charges per generated token has work to simulate.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from .script import first_user_text, tool_names
from .server import Reply

_LIST_Q = re.compile(r"I need a table of all (?P<label>.+?)\. For each one")
_NAMED_Q = re.compile(r"I need a table about these (?P<label>.+?): (?P<names>.+?)\. For each one")
_COLUMNS = re.compile(r"with the following columns:\s*\n(?P<cols>[^\n]+)")
_LIST_SUBTASK = re.compile(r'Find the list page "(?P<title>[^"]+)"')
_ENTITY_SUBTASK = re.compile(
    r'Find the page of "(?P<name>[^"]+)" \(one of the (?P<label>[^)]+)\) and report these fields, one per '
    r"line "
    r'as "Field: value": (?P<fields>[^\n]+?)\.(?:\s|$)'
)
_SUBTASK_BLOCK = re.compile(r"^# Subtask (\d+):[ \t]*\n?", re.MULTILINE)
_DOC = re.compile(r"\[Doc \d+\]\((?P<url>[^)\s]+)\)")
_ACCESS_BLOCK = re.compile(r"^# Access URL:[ \t]*(?P<url>\S*)", re.MULTILINE)
_BULLET = re.compile(r"^\s*[-*] (?P<name>.+?)(?:\s+—.*)?\s*$")
_STOP = {"of", "the", "a", "an", "in", "date", "year"}
_NOT_FOUND = "not found"


def _text(message: dict[str, Any]) -> str:
    c = message.get("content")
    if isinstance(c, list):
        return "".join(p.get("text", "") for p in c if isinstance(p, dict))
    return c or ""


def _title_from_url(url: str) -> str:
    """The page title a wiki-style URL names: its last path segment with underscores as spaces."""
    last = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    return unquote(last).replace("_", " ")


def _words(label: str) -> set[str]:
    label = re.sub(r"\([^)]*\)", " ", label.lower())
    return {w for w in re.findall(r"[a-z0-9]+", label) if w not in _STOP}


def fact_lines(text: str) -> list[tuple[str, str]]:
    """``(label, value)`` for each ``Label: value`` line with a short label (how pages state facts)."""
    out = []
    for line in text.splitlines():
        head, sep, tail = line.strip().partition(": ")
        if sep and head and len(head.split()) <= 4 and tail.strip() and not head.startswith("#"):
            out.append((head.strip(), tail.strip()))
    return out


def match_field(column: str, facts: list[tuple[str, str]]) -> str | None:
    """The value of the fact whose label best matches a column name: an exact (unit-free, case-insensitive)
    match first, else the label sharing the largest fraction of its words with the column."""
    want = re.sub(r"\s*\([^)]*\)", "", column).strip().lower()
    for label, value in facts:
        if label.lower() == want:
            return value
    cw = _words(column)
    best, best_score = None, 0.0
    for label, value in facts:
        lw = _words(label)
        if lw and cw:
            score = len(cw & lw) / len(lw | cw)
            if score > best_score:
                best, best_score = value, score
    return best


def bullet_names(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        m = _BULLET.match(line)
        if m:
            out.append(m.group("name").strip())
    return out


def page_sections(text: str) -> list[str]:
    """The lines of a page's ``Facts`` and ``Members`` sections (the world's page layout), so that whatever
    instructions surround the page in a summariser prompt are not mistaken for page content."""
    out: list[str] = []
    section = None
    for line in text.splitlines():
        s = line.strip()
        if s in ("Facts", "Members"):
            section = s
            continue
        if (section == "Facts" and fact_lines(s)) or (section == "Members" and _BULLET.match(s)):
            out.append(s)
        else:
            section = None
    return out


def filler_text(n_tokens: int, seed: str = "") -> str:
    """About ``n_tokens`` tokens of plausible reasoning filler (a word plus a space is two toy tokens)."""
    if n_tokens <= 0:
        return ""
    vocab = (
        "check the evidence again and compare each source with the task before deciding what to do "
        "next while keeping the final format in mind"
    ).split()
    start = sum(map(ord, seed)) % len(vocab)
    return " ".join(vocab[(start + i) % len(vocab)] for i in range(max(1, n_tokens // 2))) + "."


@dataclass
class _Subtask:
    prompt: str
    result: str


def subtask_blocks(tool_text: str) -> list[_Subtask]:
    """Split the lead's tool message into its ``# Subtask i:`` / ``# Result:`` blocks."""
    out = []
    marks = list(_SUBTASK_BLOCK.finditer(tool_text))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(tool_text)
        body = tool_text[m.end() : end]
        prompt, sep, result = body.partition("# Result:")
        out.append(_Subtask(prompt.strip(), result.strip() if sep else ""))
    return out


@dataclass
class PolicyStats:
    calls: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


class WideSeekPolicy:
    """``FakeOpenAIServer(WideSeekPolicy())``: a correct WideSeek player for the synthetic world.

    ``max_per_wave`` must not exceed the graph's ``max_subagents`` for the run to need the fewest waves (extra
    entries would be dropped by the graph; the lead notices the missing reports and asks again).
    ``search_count`` is the top-k it asks for; ``extra_searches`` adds search turns per subagent (more work
    per subagent for scaling benchmarks). ``hermes_text=True`` emulates a server without tool/reasoning
    parsers. ``others`` answers the requests that are not a WideSeek role's (tools it does not know, such as
    a LangChain agent holding the graph as its ``wide_search`` tool), as one served model answers every
    caller; without it such a request fails (HTTP 500).
    """

    def __init__(
        self,
        *,
        think_tokens: int = 0,
        reply_tokens: int = 0,
        max_per_wave: int = 10,
        search_count: int = 5,
        extra_searches: int = 0,
        max_attempts: int = 2,
        hermes_text: bool = False,
        others: Callable[[dict[str, Any]], Reply] | None = None,
    ) -> None:
        if max_per_wave < 1:
            raise ValueError("max_per_wave must be >= 1")
        self.think_tokens = think_tokens
        self.reply_tokens = reply_tokens
        self.max_per_wave = max_per_wave
        self.search_count = search_count
        self.extra_searches = extra_searches
        self.max_attempts = max_attempts
        self.hermes_text = hermes_text
        self.others = others
        self.stats = PolicyStats()

    @property
    def failures(self) -> list[str]:
        return self.stats.failures

    def __call__(self, request: dict[str, Any]) -> Reply:
        names = tool_names(request)
        if "create_sub_agents" in names:
            role, fn = "lead", self._lead
        elif names & {"search", "access"}:
            role, fn = "subagent", self._subagent
        elif not names:
            role, fn = "summarizer", self._summarize
        elif self.others is not None:
            return self.others(request)
        else:
            return self._fail(f"request with unknown tools {sorted(n or '' for n in names)}")
        self.stats.calls[role] += 1
        try:
            return fn(request)
        except Exception as e:  # noqa: BLE001 - a policy bug is a failed request, never a wrong reply
            return self._fail(f"{role} policy error: {type(e).__name__}: {e}")

    # --- replies ------------------------------------------------------------------------------------------
    def _reply(
        self,
        plan: str,
        *,
        content: str | None = None,
        tool: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> Reply:
        reasoning = plan
        if self.think_tokens:
            reasoning += " " + filler_text(self.think_tokens, plan)
        calls = [{"name": tool, "arguments": arguments or {}}] if tool else []
        return Reply(content=content, reasoning=reasoning, tool_calls=calls, hermes_text=self.hermes_text)

    def _fail(self, why: str) -> Reply:
        self.stats.failures.append(why)
        return Reply(status=500, error=f"policy error: {why}")

    # --- lead ---------------------------------------------------------------------------------------------
    def _lead(self, request: dict[str, Any]) -> Reply:
        task = first_user_text(request)
        cols_m = _COLUMNS.search(task)
        if cols_m is None:
            return self._fail("lead: the task names no table columns")
        columns = [c.strip() for c in cols_m.group("cols").split(",") if c.strip()]
        fields = columns[1:]
        named, listed = _NAMED_Q.search(task), _LIST_Q.search(task)
        if named is None and listed is None:
            return self._fail("lead: task is not a synthetic-world query")
        label = (named or listed).group("label")  # type: ignore[union-attr]

        blocks = [b for m in request["messages"] if m.get("role") == "tool" for b in subtask_blocks(_text(m))]
        reports: dict[str, dict[str, str]] = {}
        attempts: Counter[str] = Counter()
        members: list[str] | None = None
        list_attempts = 0
        for b in blocks:
            if _LIST_SUBTASK.search(b.prompt) is not None:
                list_attempts += 1
                found = bullet_names(b.result)
                if found:
                    members = found
            elif (em := _ENTITY_SUBTASK.search(b.prompt)) is not None:
                name = em.group("name")
                attempts[name] += 1
                got = {
                    c: v for c in fields if (v := match_field(c, fact_lines(b.result))) and v != _NOT_FOUND
                }
                if got:
                    reports[name] = got
        if named is not None:
            members = [n.strip() for n in named.group("names").split(";") if n.strip()]

        if members is None:
            if list_attempts < self.max_attempts:
                title = f"List of {label}"
                prompt = (
                    f'Find the list page "{title}" and report the names of all its members, one per line '
                    'as "- name".'
                )
                return self._reply(
                    f"First I need the members of {label}; one subagent reads the list page.",
                    tool="create_sub_agents",
                    arguments={"sub_agents": [{"prompt": prompt}]},
                )
            members = []  # the list could not be found: answer with an empty table rather than loop

        todo = [n for n in members if n not in reports and attempts[n] < self.max_attempts]
        if todo:
            wave = todo[: self.max_per_wave]
            prompts = [
                {
                    "prompt": f'Find the page of "{n}" (one of the {label}) and report these fields, one per '
                    f'line as "Field: value": {"; ".join(fields)}.'
                }
                for n in wave
            ]
            return self._reply(
                f"{len(members)} members known, {len(reports)} reported; sending {len(wave)} subagents.",
                tool="create_sub_agents",
                arguments={"sub_agents": prompts},
            )

        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for n in members:
            row = reports.get(n, {})
            lines.append("| " + " | ".join([n] + [row.get(c, "N/A") for c in fields]) + " |")
        table = "```markdown\n" + "\n".join(lines) + "\n```"
        return self._reply(
            f"All {len(members)} members are covered; writing the table.",
            content=f"Here is the table of {label}.\n\n{table}",
        )

    # --- subagent -----------------------------------------------------------------------------------------
    def _subagent(self, request: dict[str, Any]) -> Reply:
        text = first_user_text(request)
        if (lm := _LIST_SUBTASK.search(text)) is not None:
            target, label, fields = lm.group("title"), "", None
        elif (em := _ENTITY_SUBTASK.search(text)) is not None:
            target, label = em.group("name"), em.group("label")
            fields = [f.strip() for f in em.group("fields").split(";") if f.strip()]
        else:
            return self._fail(f"subagent: unrecognised subtask {text[:200]!r}")

        searches, candidates, accessed = 0, [], []  # what this agent's own context says happened so far
        page_result: str | None = None
        for m in request["messages"]:
            if m.get("role") != "tool":
                continue
            body = _text(m)
            if "# Search query:" in body:
                searches += 1
                candidates += [u for u in _DOC.findall(body) if u not in candidates]
            for url, result in _access_blocks(body):
                accessed.append(url)
                ok = bullet_names(result) if fields is None else fact_lines(result)
                if ok and _title_from_url(url).casefold() == target.casefold():
                    page_result = result

        if page_result is not None:
            return self._report(target, fields, page_result)
        if searches < 1 + self.extra_searches:
            query = target if searches == 0 else f"{target} {label}".strip()
            return self._reply(
                f"I will search for {target}.",
                tool="search",
                arguments={"queries": [{"query": query, "count": self.search_count}]},
            )
        exact = [
            u for u in candidates if _title_from_url(u).casefold() == target.casefold() and u not in accessed
        ]
        if exact and len(accessed) < self.max_attempts + 1:
            info = "the names of all members" if fields is None else "; ".join(fields)
            return self._reply(
                f"The page {exact[0]} is about {target}; reading it.",
                tool="access",
                arguments={"urls": [{"url": exact[0], "info_to_extract": info}]},
            )
        if searches < 2 + self.extra_searches:
            return self._reply(
                f"No result names {target} exactly; searching again.",
                tool="search",
                arguments={"queries": [{"query": f"{target} {label}".strip(), "count": self.search_count}]},
            )
        return self._reply(
            f"I could not find a page for {target}.",
            content=f"I could not find a page for {target}; its fields are {_NOT_FOUND}.",
        )

    def _report(self, target: str, fields: list[str] | None, page: str) -> Reply:
        if fields is None:
            names = bullet_names(page)
            body = f"Members of {target} ({len(names)}):\n" + "\n".join(f"- {n}" for n in names)
        else:
            facts = fact_lines(page)
            body = f"Report on {target}.\n" + "\n".join(
                f"{c}: {match_field(c, facts) or _NOT_FOUND}" for c in fields
            )
        if self.reply_tokens:
            body += "\n\nNotes. " + filler_text(self.reply_tokens, target)
        return self._reply(f"I have what the task asks about {target}; reporting.", content=body)

    # --- page summariser ----------------------------------------------------------------------------------
    def _summarize(self, request: dict[str, Any]) -> Reply:
        text = "\n".join(_text(m) for m in request["messages"] if m.get("role") != "system")
        lines = page_sections(text)
        if not lines:
            return Reply(content="The page does not contain the requested information.")
        return Reply(content="Relevant information from the page:\n" + "\n".join(lines))


def _access_blocks(body: str) -> list[tuple[str, str]]:
    """``(url, result text)`` for each ``# Access URL:`` block of an access tool message."""
    marks = list(_ACCESS_BLOCK.finditer(body))
    out = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(body)
        chunk = body[m.end() : end]
        _, sep, result = chunk.partition("# Result:")
        out.append((m.group("url"), result.strip() if sep else ""))
    return out
