"""Helpers shared by the core tests: the generated corpus, and builders/readers of fake-server traffic."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from langgraph_wideseek.testing import Reply, is_lead, turn_index

# ----------------------------------------------------------------------------------------------- the corpus
# A small fictional world, so that no answer can come from anywhere but the corpus.
RIVERS: dict[str, dict[str, str]] = {
    "Amsel": {"length": "412 km", "mouth": "Northern Sea", "source": "Kessel Mountains"},
    "Brenna": {"length": "287 km", "mouth": "Lake Orrin", "source": "Velt Plateau"},
    "Corvo": {"length": "655 km", "mouth": "Gulf of Tamar", "source": "Kessel Mountains"},
    "Dunmere": {"length": "198 km", "mouth": "Northern Sea", "source": "Hollow Fen"},
}
LIST_URL = "https://wiki.example.org/Rivers_of_Veloria"
ZH_URL = "https://zh.example.org/青河"


def river_url(name: str) -> str:
    return f"https://wiki.example.org/{name}_River"


def corpus_records() -> list[dict[str, str]]:
    recs = [
        {
            "url": LIST_URL,
            "title": "Rivers of Veloria",
            "text": "Veloria is a small inland country.\n"
            "The major rivers of Veloria are the " + ", ".join(RIVERS) + ".\n"
            "Each of them is navigable for part of its course.",
        }
    ]
    for name, f in RIVERS.items():
        recs.append(
            {
                "url": river_url(name),
                "title": f"{name} River",
                "text": f"The {name} is a river in Veloria.\n"
                f"It rises in the {f['source']} and flows into the {f['mouth']}.\n"
                f"The {name} is {f['length']} long.\n" + "Fishing villages line its lower course. " * 30,
            }
        )
    recs += [
        {
            "url": ZH_URL,
            "title": "青河",
            "text": "青河是维洛里亚东部的一条河流，全长三百公里，最终注入北海。\n沿岸有许多古老的渔村。",
        },
        {
            "url": "https://zh.example.org/山城",
            "title": "山城",
            "text": "山城是一座位于高原上的城市，以茶叶闻名。",
        },
        {
            "url": "https://wiki.example.org/Cpp",
            "title": "C++ (programming language)",
            "text": "C++ is a programming language. "
            "Expressions like a && b || !c and title:foo are common in text.",
        },
        {
            "url": "https://wiki.example.org/Tamar",
            "title": "Gulf of Tamar",
            "text": "The Gulf of Tamar is a bay on the southern coast of Veloria.",
        },
    ]
    return recs


# ------------------------------------------------------------------------------------------- fake servers
def is_summary_request(req: dict[str, Any]) -> bool:
    """The page summariser calls the model without tools; the agents always bind theirs."""
    return not req.get("tools")


def echo_summary(req: dict[str, Any]) -> Reply:
    """A summariser that returns the page text it was given, so facts really travel through it."""
    user = next(m["content"] for m in req["messages"] if m["role"] == "user")
    page = user.split("# Page content\n", 1)[-1]
    return Reply(content="Extracted: " + " ".join(page.split())[:1500])


Policy = Callable[[dict[str, Any]], Any]


def with_summarizer(policy: Policy, summary: Callable[[dict[str, Any]], Reply] = echo_summary) -> Policy:
    """Route summariser requests to ``summary`` and agent requests to ``policy``."""

    def route(req: dict[str, Any]) -> Any:
        return summary(req) if is_summary_request(req) else policy(req)

    return route


# --------------------------------------------------------------------------------------- request helpers
def user_texts(req: dict[str, Any]) -> list[str]:
    return [m["content"] for m in req["messages"] if m["role"] == "user"]


def tool_texts(req: dict[str, Any]) -> list[str]:
    return [m["content"] for m in req["messages"] if m["role"] == "tool"]


def last_tool_text(req: dict[str, Any]) -> str:
    texts = tool_texts(req)
    return texts[-1] if texts else ""


def subtask_of(req: dict[str, Any]) -> str:
    """The subtask in a subagent request's first user message."""
    first = user_texts(req)[0]
    m = re.search(r"# Your subtask\n(.*?)(?:\n\n\(|$)", first, re.DOTALL)
    assert m, f"not a subagent request: {first[:200]!r}"
    return m.group(1).strip()


def call(name: str, **arguments: Any) -> dict[str, Any]:
    """One scripted tool call."""
    return {"name": name, "arguments": arguments}


def spawn(*prompts: str) -> Reply:
    """A lead turn creating one subagent per prompt."""
    return Reply(
        reasoning="Split the task.",
        tool_calls=[call("create_sub_agents", sub_agents=[{"prompt": p} for p in prompts])],
    )


# ------------------------------------------------------------------------------- a scripted research team
QUESTION = "List every major river of Veloria with its length and the body of water it flows into."
LIST_TASK = "Find the list of all major rivers of Veloria and report their names."


def river_task(name: str) -> str:
    return f"Find the length and the mouth of the {name} river in Veloria."


class VeloriaAgents:
    """A scripted model that really depends on what the tools return: queries come from the subtask, the URL
    to read from the search results, and every fact in a report or in the final table is parsed out of the
    text the agent was sent. A wrong tool result, a lost report or a mixed-up context gives a wrong table."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, req: dict[str, Any]) -> Reply:
        k = turn_index(req)
        return self.lead(req, k) if is_lead(req) else self.subagent(req, k)

    def lead(self, req: dict[str, Any], k: int) -> Reply:
        if k == 0:
            return spawn(LIST_TASK)
        if k == 1:
            m = re.search(r"RIVERS: (.+)", last_tool_text(req))
            assert m, last_tool_text(req)
            self.names = [n.strip() for n in m.group(1).split(",")]
            return spawn(*(river_task(n) for n in self.names))
        rows = re.findall(r"^(\w+) \| (\d+ km) \| (.+)$", last_tool_text(req), re.MULTILINE)
        table = "\n".join(f"| {n} | {length} | {mouth} |" for n, length, mouth in rows)
        return Reply(
            reasoning="All reports are in.",
            content="```markdown\n| River | Length | Mouth |\n|---|---|---|\n" + table + "\n```",
        )

    def subagent(self, req: dict[str, Any], k: int) -> Reply:
        task = subtask_of(req)
        river = re.search(r"the (\w+) river", task)
        if k == 0:
            query = f"{river.group(1)} river" if river else "major rivers of Veloria"
            return Reply(reasoning="Search first.", tool_calls=[call("search", queries=[{"query": query}])])
        if k == 1:
            url = re.search(r"\[Doc 1\]\((.+?)\):", last_tool_text(req)).group(1)
            return Reply(tool_calls=[call("access", urls=[{"url": url, "info_to_extract": task}])])
        page = last_tool_text(req)
        if river is None:
            m = re.search(r"major rivers of Veloria are the (.+?)\.", page)
            assert m, page
            names = m.group(1)
            return Reply(reasoning="Found the list.", content="RIVERS: " + names.replace(" and ", ", "))
        length = re.search(r"is (\d+ km) long", page).group(1)
        mouth = re.search(r"flows into the (.+?)\.", page).group(1)
        return Reply(reasoning="Found the facts.", content=f"{river.group(1)} | {length} | {mouth}")
