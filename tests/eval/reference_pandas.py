"""A reference scorer that runs the official WideSearch algorithm on pandas DataFrames, as the original did.

It exists to check ``score_response`` end to end (tests) and to give the benchmark a comparison point; it is
not part of the package. Every data step is the pandas operation the official scorer used: ``read_csv`` with
``sep="|"`` for the reply and default options for the gold CSV, ``astype(str)`` on whole columns,
``drop_duplicates`` on the keys, ``Series.apply`` for alignment and preprocessing, an inner ``merge`` on the
keys and ``min``/``sum`` over the score frame. Cell metrics and preprocessors are the package's (tested
separately). It always asks the judge, as the original did (our scorer skips alignment calls whose answer is
forced).
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from langgraph_wideseek.eval.judge import map_columns
from langgraph_wideseek.eval.metrics import CELL_METRICS
from langgraph_wideseek.eval.preprocess import PREPROCESSORS
from langgraph_wideseek.eval.tasks import Task

ZERO = {
    "item_precision": 0.0,
    "item_recall": 0.0,
    "item_f1": 0.0,
    "row_precision": 0.0,
    "row_recall": 0.0,
    "row_f1": 0.0,
    "success": False,
}


def _norm(c: str) -> str:
    return c.strip().lower().replace(" ", "")


def reply_frame(response: str) -> pd.DataFrame | None:
    found = re.findall(r"```markdown(.*?)```", response, re.DOTALL)
    if not found:
        pipes = [m.start() for m in re.finditer(r"\|", response)]
        if len(pipes) >= 4:
            start = response.rfind("\n", 0, pipes[0])
            start = 0 if start == -1 else start
            end = response.find("\n", pipes[-1])
            end = len(response) if end == -1 else end
            found = re.findall(r"((?:\|.*\n?)+)", response[start:end])
    if not found:
        return None
    lines = found[0].strip().split("\n")
    lines[0] = lines[0].replace(" ", "").lower()
    kept = []
    for line in (x.strip() for x in lines):
        if set(line.strip()).issubset(set("|- :")) or "|" not in line:
            continue
        kept.append("|".join(p.strip() for p in line.split("|")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = pd.read_csv(io.StringIO("\n".join(kept)), sep="|")
    return df.loc[:, ~df.columns.str.startswith("Unnamed")]


async def reference_score(task: Task, response: str, gold_csv: Path, judge: Any) -> dict[str, Any]:
    """The six metrics and success of one reply; any exception scores 0, as in the original."""
    try:
        return await _score(task, response, gold_csv, judge)
    except Exception:  # the original's catch-all
        return dict(ZERO)


async def _score(task: Task, response: str, gold_csv: Path, judge: Any) -> dict[str, Any]:
    required, unique = list(task.required), list(task.unique_columns)
    answer = pd.read_csv(gold_csv)
    answer.columns = [_norm(c) for c in answer.columns]
    answer = answer[required].copy()
    df = reply_frame(response)
    if df is None:
        return dict(ZERO)
    df.columns = [_norm(c) for c in df.columns]
    if set(required) != set(df.columns):
        df = df.rename(columns=await map_columns(judge, df.columns.tolist(), required))
    if set(required) != set(df.columns):
        return dict(ZERO)
    for col in required:
        answer[col] = answer[col].astype(str)
        df[col] = df[col].astype(str)
    df = df.drop_duplicates(subset=unique)
    answer = answer.drop_duplicates(subset=unique)
    for col in unique:
        spec = task.eval_pipeline.get(col)
        if spec is not None and {"llm_judge", "exact_match"} & set(spec.metric):
            mapping = await judge.align(df[col].tolist(), answer[col].tolist())
            df[col] = df[col].apply(lambda x, m=mapping: m.get(x, x))
    for col, spec in task.eval_pipeline.items():
        for name in spec.preprocess:
            df[col] = df[col].apply(PREPROCESSORS[name])
            answer[col] = answer[col].apply(PREPROCESSORS[name])
    inner = pd.merge(answer, df, on=unique, how="inner", suffixes=("_query", "_response"))
    scores = pd.DataFrame(index=inner.index)
    for col in required:
        if col in unique:
            scores[f"{col}_key"] = 1.0
            continue
        spec = task.eval_pipeline[col]
        for metric in spec.metric:
            r, t = inner[col + "_response"].tolist(), inner[col + "_query"].tolist()
            if metric == "llm_judge":
                vals = await judge.grade(spec.judge_criterion, list(zip(r, t)))
            else:
                vals = [CELL_METRICS[metric](a, b, spec.criterion) for a, b in zip(r, t)]
            scores[f"{col}_{metric}"] = [float(v) for v in vals]
    tp_row = scores.min(axis=1).sum()
    tp_item = scores.sum().sum()
    n_r, n_g, c = len(df), len(answer), len(required)
    rp = tp_row / n_r if n_r else 0.0
    rr = tp_row / n_g if n_g else 0.0
    ip = tp_item / (n_r * c) if n_r else 0.0
    ir = tp_item / (n_g * c) if n_g else 0.0

    def f1(p: float, r: float) -> float:
        return 2 * p * r / (p + r) if p + r > 1e-9 else 0.0

    out = {
        "item_precision": float(ip),
        "item_recall": float(ir),
        "item_f1": float(f1(ip, ir)),
        "row_precision": float(rp),
        "row_recall": float(rr),
        "row_f1": float(f1(rp, rr)),
    }
    out["success"] = (
        out["item_precision"] == out["item_recall"] == out["item_f1"] == 1.0
        and out["row_precision"] == out["row_recall"] == out["row_f1"] == 1.0
    )
    return out
