"""Shared fixtures of the evaluation tests: the sample tasks and a fake judge model.

The fake judge answers the prompts of :class:`~langgraph_wideseek.eval.OpenAIJudge` over real HTTP (through
``FakeOpenAIServer``) in the official reply formats: identity alignment plus optional synonyms, and exact
grading after whitespace removal.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from langgraph_wideseek.eval import load_tasks
from langgraph_wideseek.testing import Reply

DATA = Path(__file__).resolve().parents[1] / "data" / "widesearch"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def sample_tasks():
    return {t.instance_id: t for t in load_tasks(DATA / "widesearch_sample.jsonl", DATA / "widesearch_gold")}


def _list_after(prompt: str, label: str) -> list[str]:
    line = prompt.split(label, 1)[1].split("\n", 2)[1]
    return json.loads(line)


class FakeJudgeModel:
    """A policy for FakeOpenAIServer that plays the judge; ``synonyms`` maps response values to gold ones."""

    def __init__(self, synonyms: dict[str, str] | None = None) -> None:
        self.synonyms = synonyms or {}
        self.prompts: list[str] = []

    def __call__(self, body: dict) -> Reply:
        prompt = body["messages"][-1]["content"]
        self.prompts.append(prompt)
        if "Rows to check" in prompt:
            rows = json.loads(re.search(r"\(\"target\"\):\n(\{.*?\n\})\n", prompt, re.DOTALL).group(1))
            scores = {
                k: int("".join(v["response"].split()) == "".join(v["target"].split()))
                for k, v in rows.items()
            }
            return Reply(content="Row by row, done.\n```json\n" + json.dumps(scores) + "\n```")
        a = _list_after(prompt, "List A")
        b = set(_list_after(prompt, "List B"))
        mapping = {x: x for x in a if x in b}
        mapping.update({x: y for x, y in self.synonyms.items() if x in a and y in b})
        return Reply(content="Matched.\n```json\n" + json.dumps(mapping, ensure_ascii=False) + "\n```")


@pytest.fixture
def fake_judge_model():
    return FakeJudgeModel
