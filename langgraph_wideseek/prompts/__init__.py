"""Prompt texts (English and Chinese) as package data, and the loader that lets users override any of them.

Every agent of one role gets byte-identical system prompts and tool schemas, with the variable parts (the
task, the subtask) last, so that vLLM's prefix cache serves the shared prefix of all of them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

PROMPT_FILES = (
    "lead_system.md",
    "subagent_system.md",
    "lead_user.md",
    "subagent_user.md",
    "summarizer_system.md",
    "summarizer_user.md",
)
TEXTS_FILE = "texts.json"


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill(template: str, **values: Any) -> str:
    """Replace ``{name}`` placeholders by value; other braces (JSON, LaTeX) are left alone.

    One pass over the template only: a value that itself contains ``{subtask}`` or ``{page}`` (user questions,
    page text) is inserted verbatim, never filled in turn.
    """
    return _PLACEHOLDER.sub(
        lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template
    )


@dataclass(frozen=True)
class Prompts:
    """All texts the agents see, for one language."""

    language: str
    lead_system: str
    subagent_system: str
    lead_user: str
    subagent_user: str
    summarizer_system: str
    summarizer_user: str
    texts: dict[str, Any] = field(default_factory=dict)

    def text(self, key: str, **values: Any) -> str:
        return fill(self.texts[key], **values)

    def tool_description(self, key: str) -> str:
        return self.texts["tool_descriptions"][key]


def _read_packaged(language: str, name: str) -> str:
    return resources.files(__package__).joinpath(language, name).read_text(encoding="utf-8")


@lru_cache(maxsize=16)
def _load(language: str, prompt_dir: str | None) -> Prompts:
    if language not in ("en", "zh"):
        raise ValueError(f"unsupported prompt language {language!r}: use 'en' or 'zh'")
    override = Path(prompt_dir) if prompt_dir else None
    if override is not None and not override.is_dir():
        raise FileNotFoundError(f"prompt_dir {override} is not a directory")

    def read(name: str) -> str:
        if override is not None:
            for cand in (override / language / name, override / name):
                if cand.is_file():
                    return cand.read_text(encoding="utf-8")
        return _read_packaged(language, name)

    texts = json.loads(_read_packaged(language, TEXTS_FILE))
    if override is not None:
        for cand in (override / language / TEXTS_FILE, override / TEXTS_FILE):
            if cand.is_file():
                user = json.loads(cand.read_text(encoding="utf-8"))
                descriptions = {**texts["tool_descriptions"], **user.pop("tool_descriptions", {})}
                texts = {**texts, **user, "tool_descriptions": descriptions}
                break
    bodies = {name[:-3]: read(name).rstrip("\n") for name in PROMPT_FILES}
    return Prompts(language=language, texts=texts, **bodies)


def load_prompts(language: str = "en", prompt_dir: str | Path | None = None) -> Prompts:
    """The prompts of ``language``; files in ``prompt_dir`` (or ``prompt_dir/<language>``) override ours."""
    return _load(language, str(prompt_dir) if prompt_dir else None)
