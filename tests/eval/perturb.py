"""Seeded perturbations of a task's gold table, written back as a reply (tests and benchmarks/scoring.py)."""

from __future__ import annotations

import random
import re

from langgraph_wideseek.eval.table import to_markdown
from langgraph_wideseek.eval.tasks import Task

_NUM = re.compile(r"\d[\d,]*\.?\d*")


def _drop(rng, cols, rows, task):
    k = max(1, len(rows) // 5)
    for i in sorted(rng.sample(range(len(rows)), min(k, len(rows))), reverse=True):
        del rows[i]
    return cols, rows


def _extra(rng, cols, rows, task):
    key = list(task.required).index(task.unique_columns[0])
    for _ in range(rng.randint(1, 3)):
        r = list(rng.choice(rows))
        r[key] = r[key] + f" extra{rng.randint(0, 999)}"
        rows.insert(rng.randrange(len(rows) + 1), r)
    return cols, rows


def _wrong(rng, cols, rows, task):
    free = [i for i, c in enumerate(task.required) if c not in task.unique_columns]
    for r in rng.sample(rows, max(1, len(rows) // 10)):
        if free:
            r[rng.choice(free)] = rng.choice(["wrong", "unknown", "2022", "2022.0", "n/a"])
    return cols, rows


def _duplicate(rng, cols, rows, task):
    free = [i for i, c in enumerate(task.required) if c not in task.unique_columns] or [0]
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(rows))
        r = list(rows[i])
        r[rng.choice(free)] = "changed"
        rows.insert(i + rng.choice([0, 1]), r)
    return cols, rows


def _missing(rng, cols, rows, task):
    for r in rng.sample(rows, max(1, len(rows) // 8)):
        r[rng.randrange(len(cols))] = rng.choice(["N/A", "", "-", "null", "None", "NaN"])
    return cols, rows


def _numbers(rng, cols, rows, task):
    for r in rng.sample(rows, max(1, len(rows) // 4)):
        j = rng.randrange(len(cols))
        m = _NUM.search(r[j])
        if m:
            v = float(m.group(0).replace(",", "")) * (1 + rng.uniform(-0.1, 0.1))
            r[j] = (
                r[j][: m.start()] + (f"{v:.2f}" if rng.random() < 0.5 else f"{round(v):,}") + r[j][m.end() :]
            )
    return cols, rows


def _collide(rng, cols, rows, task):
    key = list(task.required).index(task.unique_columns[-1])
    r = list(rng.choice(rows))
    r[key] = r[key].upper() if r[key].upper() != r[key] else r[key] + " "
    rows.append(r)
    return cols, rows


def _headers(rng, cols, rows, task):
    cols = [c.title() if rng.random() < 0.5 else c for c in cols]
    if rng.random() < 0.3:
        cols = cols + ["Notes"]
        rows = [r + ["-"] for r in rows]
    elif rng.random() < 0.3:
        j = rng.randrange(len(cols))
        cols[j] = cols[j] + " (renamed)"
    return cols, rows


def _shuffle(rng, cols, rows, task):
    rng.shuffle(rows)
    return cols, rows


def _long_row(rng, cols, rows, task):
    if rows:
        i = rng.choice([0, rng.randrange(len(rows))])
        rows[i] = rows[i] + ["surplus"]
    return cols, rows


PERTURBATIONS = [
    _drop,
    _extra,
    _wrong,
    _duplicate,
    _missing,
    _numbers,
    _collide,
    _headers,
    _shuffle,
    _long_row,
]


def perturbed_replies(task: Task, n: int, seed: int = 0) -> list[str]:
    """``n`` replies: the first is the gold table as is, the others carry 1-3 random perturbations."""
    rng = random.Random(f"{seed}:{task.instance_id}")
    out = []
    for k in range(n):
        cols, rows = list(task.required), [list(r) for r in task.gold.rows()]
        if k:
            for fn in rng.sample(PERTURBATIONS, rng.randint(1, 3)):
                cols, rows = fn(rng, cols, rows, task)
        fence = k == 0 or rng.random() < 0.85
        out.append("Here is the table.\n\n" + to_markdown(cols, rows, fence=fence) + "\n")
    return out
