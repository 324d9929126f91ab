"""The loop's worlds and tasks: a training world (SFT and RL tasks), a validation world (which SFT checkpoint to
keep) and a test world (held out: its entities never appear in SFT or RL), all from the synthetic world of
``langgraph_wideseek.testing``, each with its own corpus for the local search backend.

A task is a WideSearch-format table task ("a table about these companies of X: A; B; C ...") over 2-4
members of one category, converted to OpenRLHF's ``{prompt, label}`` by ``training.data`` exactly as real
training data is.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph_wideseek.testing.synthetic import SyntheticTask, World
from training.data import convert_widesearch_task

from .config import LoopConfig


# Short system prompts and tool descriptions for a model of a few million parameters, through the graph's
# documented override (``prompt_dir``): the protocol (tools, arguments, message structure, hints) is unchanged,
# but every row is about half as long, so SFT sees twice the rollouts in the same time.
SHORT_PROMPTS = {
    "lead_system.md": "You are the lead agent. For each item of the task, create one subagent with "
                      "create_sub_agents. When every report is back, answer with the table in a markdown fence.",
    "subagent_system.md": "You are a subagent. Search, read the right page with access, then report the fields.",
    "texts.json": json.dumps({"tool_descriptions": {
        "create_sub_agents": "Create subagents that run in parallel.",
        "create_sub_agents.sub_agents": "One object per subtask.",
        "create_sub_agents.prompt": "The subtask.",
        "search": "Search pages; returns URLs with summaries.",
        "search.queries": "Queries.",
        "search.query": "The query.",
        "search.count": "Results to return.",
        "access": "Read pages returned by search.",
        "access.urls": "Pages.",
        "access.url": "A URL from search.",
        "access.info_to_extract": "What to extract.",
    }}, indent=1),
}


@dataclass
class Split:
    name: str
    world: World
    tasks: list[SyntheticTask]
    corpus: Path
    index_dir: Path
    prompt_dir: Path | None = None

    def rows(self, tasks: list[SyntheticTask] | None = None) -> list[dict[str, str]]:
        """OpenRLHF dataset records (``prompt``, ``label``) of these tasks."""
        return [convert_widesearch_task(t.record(), t.gold_csv(), source=f"synthetic-{self.name}")
                for t in (self.tasks if tasks is None else tasks)]

    def entity_names(self) -> set[str]:
        return {e.name for c in self.world.categories for e in c.entities}


def _named_tasks(world: World, sizes: tuple[int, int]) -> list[SyntheticTask]:
    lo, hi = sizes
    out = []
    for ci, cat in enumerate(world.categories):
        for count in range(lo, hi + 1):
            for start in range(0, len(cat.entities) - count + 1):
                out.append(world.named_task(ci, count, start=start))
    return out


def build_splits(cfg: LoopConfig, work: Path) -> dict[str, Split]:
    """Generate the three worlds, write their corpora under ``work/worlds`` and draw their tasks (seeded)."""
    specs = {"train": (cfg.train_world_seed, cfg.train_categories), "val": (cfg.val_world_seed, cfg.val_categories),
             "test": (cfg.test_world_seed, cfg.test_categories)}
    splits = {}
    for name, (seed, categories) in specs.items():
        world = World.generate(seed=seed, n_categories=categories, entities_per_category=cfg.entities_per_category,
                               filler_sentences=cfg.filler_sentences)
        tasks = _named_tasks(world, cfg.task_entities)
        random.Random(f"{cfg.seed}-{name}").shuffle(tasks)
        folder = work / "worlds" / name
        corpus = world.write_corpus(folder / "corpus.jsonl")
        splits[name] = Split(name, world, tasks, corpus, folder / "index", _prompt_dir(cfg, work))
    train = splits["train"].entity_names()
    for name in ("val", "test"):
        shared = train & splits[name].entity_names()
        if shared:
            raise ValueError(f"the {name} world shares entities with the training world: {sorted(shared)[:5]}; "
                             "pick other world seeds")
    return splits


def _prompt_dir(cfg: LoopConfig, work: Path) -> Path | None:
    if not cfg.short_prompts:
        return None
    folder = work / "prompts"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in SHORT_PROMPTS.items():
        (folder / name).write_text(text + "\n", encoding="utf-8")
    return folder


def executor_graph_settings(cfg: LoopConfig, split: Split) -> dict[str, Any]:
    """The graph settings every rollout of this split runs with (``ExecutorSettings.graph``)."""
    out: dict[str, Any] = {"search": "local", "corpus": str(split.corpus), "index_dir": str(split.index_dir),
                           "summarize_pages": False, "max_retries": 0, "max_lead_turns": cfg.max_lead_turns,
                           "max_subagent_turns": cfg.max_subagent_turns, "request_timeout": 900.0}
    if split.prompt_dir is not None:
        out["prompt_dir"] = str(split.prompt_dir)
    return out


def write_manifest(splits: dict[str, Split], path: Path) -> None:
    """What each split holds, for the results file (world seeds, sizes, task ids)."""
    data = {name: {"world_seed": s.world.seed, "categories": len(s.world.categories),
                   "entities": len(s.entity_names()), "pages": len(s.world.pages), "tasks": len(s.tasks)}
            for name, s in splits.items()}
    path.write_text(json.dumps(data, indent=2))
