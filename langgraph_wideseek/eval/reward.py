"""The WideSeek-R1 training reward of one multi-agent rollout (spec section 5 of wideseek-r1.md).

    R = item_F1(answer table, gold) + 0.1 (answer well formed) + 0.05 (any ``access`` call in the rollout)
        - 0.1 * clip((L - 3000) / 2000, 0, 1),   L = the longest single generation (tokens) of any agent

R is 0 when the lead failed, when no table can be read from its answer, or when the table's columns are not
the required ones. Table tasks are scored by :func:`~langgraph_wideseek.eval.score_response`:

* ``mode="generic"`` (training): every non-key column is graded by the judge with one generic criterion
  (same meaning or same entity), one call per column; keys are aligned by the judge and matched exactly;
* ``mode="benchmark"``: each column's own WideSearch metric (``number_near``, ``url_match``, ...).

QA tasks (``\\boxed{}`` answers): the judge says whether the boxed answer is equivalent to a label (1/0), plus
the same bonuses and penalty. "Well formed" means the answer carries a fenced ``markdown`` table that reads
with the required columns (table tasks) or a ``\\boxed{}`` answer (QA tasks).
"""

from __future__ import annotations

import json
import logging
import re
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ..graph.answer import extract_boxed, extract_markdown_fence, strip_thinking
from ..graph.result import WideSeekResult
from ..graph.trajectory import Role, Status, Trajectory
from .judge import QA_CRITERION, ExactJudge
from .scorer import TrialScore, TrialStatus, score_response
from .table import norm_column, read_gold_csv, read_response_table
from .tasks import Task, table_task_from_gold, training_pipeline

log = logging.getLogger(__name__)

__all__ = [
    "RewardBreakdown",
    "RewardConfig",
    "RewardMode",
    "compute_reward",
    "generic_task",
    "task_from_label",
]

RewardMode = Literal["generic", "benchmark", "train", "eval"]
_MODES = {"generic": "generic", "train": "generic", "benchmark": "benchmark", "eval": "benchmark"}


class RewardConfig(BaseModel):
    """The reward's constants (the paper's values by default)."""

    model_config = ConfigDict(frozen=True)

    format_bonus: float = 0.1
    access_bonus: float = 0.05
    length_weight: float = 0.1
    length_threshold: int = 3000
    length_span: int = 2000


class RewardBreakdown(BaseModel):
    """The reward and its parts. For QA tasks ``item_f1`` holds the judged correctness (1.0 or 0.0)."""

    total: float
    item_f1: float = 0.0
    format_bonus: float = 0.0
    access_bonus: float = 0.0
    length_penalty: float = 0.0
    longest_generation: int = 0
    kind: Literal["table", "qa"] = "table"
    reason: str = "ok"
    judge_failures: int = 0
    trial: TrialScore | None = None


def generic_task(task: Task) -> Task:
    """The training-style variant of a table task: non-key columns judged with the generic criterion
    (:func:`~langgraph_wideseek.eval.tasks.training_pipeline`); key columns keep their own spec if they have
    one."""
    pipeline = training_pipeline(task.required, task.unique_columns)
    pipeline.update({c: task.eval_pipeline[c] for c in task.unique_columns if c in task.eval_pipeline})
    return task.model_copy(update={"eval_pipeline": pipeline})


def task_from_label(label: Any) -> Task:
    """A :class:`Task` from a training label (``training/data.py``'s ``TaskLabel``: a model, dict or JSON).

    Table labels carry the gold table as markdown or CSV text, key and required columns and, for WideSearch
    tasks, the evaluation spec; without an ``eval_pipeline`` the training recipe applies. QA labels carry
    their answers. Results are cached per label, since every rollout of a group shares one.
    """
    if hasattr(label, "model_dump_json"):
        label = label.model_dump_json()
    if not isinstance(label, str):
        label = json.dumps(label, sort_keys=True, ensure_ascii=False)
    return _task_from_label_json(label)


@lru_cache(maxsize=4096)
def _task_from_label_json(text: str) -> Task:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("a task label must be a JSON object")  # bad input, one error type
    iid = str(data.get("instance_id", ""))
    language = str(data.get("language") or "en")
    if data.get("kind") == "qa":
        return Task(
            instance_id=iid,
            query="",
            language=language,
            kind="qa",
            answers=tuple(str(a) for a in data.get("answers") or ()),
            source="training",
        )
    gold_text = data.get("gold_table")
    if not isinstance(gold_text, str):
        raise ValueError(f"table label {iid!r} has no gold_table")
    if data.get("gold_format") == "csv":
        frame = read_gold_csv(gold_text.encode("utf-8"))
    else:
        found = read_response_table(gold_text)
        if found is None:
            raise ValueError(f"table label {iid!r}: gold_table holds no markdown table")
        frame = found.rename([norm_column(c) for c in found.columns])
    ev = data.get("evaluation") or {}
    if isinstance(ev, str):
        ev = json.loads(ev)
    try:
        return table_task_from_gold(
            iid,
            "",
            language,
            frame,
            ev,
            unique_columns=data.get("unique_columns"),
            required_columns=data.get("required_columns"),
        )
    except ValueError as e:
        raise ValueError(f"table label {iid!r}: {e}") from None


def _source(source: WideSeekResult | Trajectory) -> tuple[str | None, bool, Trajectory | None]:
    """(answer, lead failed, trajectory) of a result or a bare trajectory."""
    if isinstance(source, WideSeekResult):
        return source.answer, source.status == Status.FAILED, source.trajectory
    if isinstance(source, Trajectory):
        leads = [a for a in source.agents if a.role == Role.LEAD]
        failed = bool(leads) and leads[0].status == Status.FAILED
        return source.answer, failed, source
    raise TypeError(f"expected a WideSeekResult or a Trajectory, got {type(source).__name__}")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


async def compute_reward(
    source: WideSeekResult | Trajectory,
    task: Task | Any,
    *,
    judge: Any = None,
    mode: RewardMode = "generic",
    config: RewardConfig | None = None,
) -> RewardBreakdown:
    """The reward of one rollout for ``task`` (table or QA), with every part and the reason for a zero.

    ``task`` may also be a training label (see :func:`task_from_label`). ``judge=None`` uses
    :class:`~langgraph_wideseek.eval.ExactJudge` (string equality: stricter than a model judge). ``mode`` is
    ``"generic"`` (alias ``"train"``) or ``"benchmark"`` (alias ``"eval"``).
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {sorted(_MODES)}, got {mode!r}")
    mode = _MODES[mode]  # type: ignore[assignment]
    if not isinstance(task, Task):
        task = task_from_label(task)
    if judge is None:
        judge = ExactJudge()
    cfg = config or RewardConfig()
    answer, lead_failed, trajectory = _source(source)
    longest = trajectory.longest_generation() if trajectory is not None else 0
    access = cfg.access_bonus if trajectory is not None and trajectory.used_access() else 0.0
    excess = (longest - cfg.length_threshold) / cfg.length_span
    penalty = cfg.length_weight * min(1.0, max(0.0, excess))
    kind = task.kind

    def breakdown(total: float, reason: str, **parts: Any) -> RewardBreakdown:
        return RewardBreakdown(total=total, reason=reason, longest_generation=longest, kind=kind, **parts)

    if lead_failed or answer is None:
        return breakdown(0.0, "the lead failed" if lead_failed else "no final answer")
    text = strip_thinking(answer)

    if task.kind == "qa":
        boxed = extract_boxed(text)
        if boxed is None:
            return breakdown(0.0, "no \\boxed{} answer")
        failures = 0
        correct = any(_norm(boxed) == _norm(label) for label in task.answers)
        reason = "ok"
        if not correct:
            try:
                grades = await judge.grade(QA_CRITERION, [(boxed, label) for label in task.answers])
                correct = any(g == 1 for g in grades)
            except Exception as e:  # noqa: BLE001 - reported on the breakdown; the caller decides what to do
                log.warning("task %s: the QA judge failed: %s: %s", task.instance_id, type(e).__name__, e)
                failures = 1
                reason = f"judge failed: {type(e).__name__}: {e}"
        score = 1.0 if correct else 0.0
        return breakdown(
            score + cfg.format_bonus + access - penalty,
            reason,
            item_f1=score,
            format_bonus=cfg.format_bonus,
            access_bonus=access,
            length_penalty=penalty,
            judge_failures=failures,
        )

    scored_task = task.derived("generic", generic_task) if mode == "generic" else task
    trial = await score_response(scored_task, text, judge=judge)
    if trial.status != TrialStatus.OK:
        reasons = {
            TrialStatus.NO_TABLE: "no table in the answer",
            TrialStatus.PARSE_ERROR: "the table cannot be read",
            TrialStatus.COLUMN_MISMATCH: "the table's columns are not the required ones",
        }
        why = reasons.get(trial.status, "; ".join(trial.errors) or trial.status)
        return breakdown(0.0, why, judge_failures=trial.judge_failures, trial=trial)
    fmt = cfg.format_bonus if extract_markdown_fence(text) is not None else 0.0
    reason = "ok" if not trial.judge_failures else f"{trial.judge_failures} judge call(s) failed"
    return breakdown(
        trial.item_f1 + fmt + access - penalty,
        reason,
        item_f1=trial.item_f1,
        format_bonus=fmt,
        access_bonus=access,
        length_penalty=penalty,
        judge_failures=trial.judge_failures,
        trial=trial,
    )
