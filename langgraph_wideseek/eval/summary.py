"""Aggregating trial scores the way WideSearch reports them (spec section 7).

Per task and metric: the mean over its N trials (Avg@N), the max (Max@N; for success this is Pass@N) and the
min (Min@N). Then the unweighted mean over tasks, times 100. Computed per language and pooled.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from pydantic import BaseModel, Field

from .scorer import TrialScore

__all__ = ["METRICS", "EvalSummary", "GroupSummary", "MetricStats", "TaskSummary", "summarize"]

METRICS = ("item_f1", "row_f1", "success", "item_precision", "item_recall", "row_precision", "row_recall")


class MetricStats(BaseModel):
    """Avg@N, Max@N (Pass@N for success) and Min@N of one metric, x100."""

    avg: float
    max: float
    min: float


class TaskSummary(BaseModel):
    instance_id: str
    language: str
    trials: int
    metrics: dict[str, MetricStats]
    statuses: dict[str, int]
    judge_failures: int = 0


class GroupSummary(BaseModel):
    tasks: int
    trials: int
    metrics: dict[str, MetricStats]


class EvalSummary(BaseModel):
    """What ``summary.json`` holds."""

    samples: int = Field(description="N of Avg@N / Max@N / Min@N: the trials asked for per task")
    judge: str = Field(description="which judge scored the run (published numbers used gpt-4.1-2025-04-14)")
    pooled: GroupSummary
    by_language: dict[str, GroupSummary]
    statuses: dict[str, int] = Field(
        description="trials per scoring status (ok, no_table, agent_failed, ...)"
    )
    failed_trials: int = Field(description="trials whose agent run failed (scored 0, still counted)")
    judge_calls: int
    judge_failures: int
    trials_with_judge_failures: int
    incomplete_tasks: list[str] = Field(description="tasks with fewer than `samples` trials")
    tasks: list[TaskSummary]


def _value(s: TrialScore, metric: str) -> float:
    v = getattr(s, metric)
    return float(v)


def _stats(per_task: list[dict[str, MetricStats]], metric: str) -> MetricStats:
    n = len(per_task)
    if n == 0:
        return MetricStats(avg=0.0, max=0.0, min=0.0)
    return MetricStats(
        avg=sum(t[metric].avg for t in per_task) / n,
        max=sum(t[metric].max for t in per_task) / n,
        min=sum(t[metric].min for t in per_task) / n,
    )


def summarize(scores: Iterable[TrialScore], *, samples: int, judge: str = "unknown") -> EvalSummary:
    """Aggregate trial scores (one per task and sample) into :class:`EvalSummary`.

    Every trial counts, whatever its status: a failed agent run or an unreadable table is a zero, as in the
    official aggregation. Tasks with fewer trials than ``samples`` are listed in ``incomplete_tasks`` and
    averaged over the trials they have.
    """
    by_task: dict[str, list[TrialScore]] = defaultdict(list)
    for s in scores:
        by_task[s.instance_id].append(s)
    tasks: list[TaskSummary] = []
    for iid, trials in by_task.items():
        metrics = {}
        for m in METRICS:
            vals = [_value(s, m) * 100.0 for s in trials]
            metrics[m] = MetricStats(avg=sum(vals) / len(vals), max=max(vals), min=min(vals))
        tasks.append(
            TaskSummary(
                instance_id=iid,
                language=trials[0].language,
                trials=len(trials),
                metrics=metrics,
                statuses=dict(Counter(s.status for s in trials)),
                judge_failures=sum(s.judge_failures for s in trials),
            )
        )
    tasks.sort(key=lambda t: t.instance_id)

    def group(members: list[TaskSummary]) -> GroupSummary:
        ms = [t.metrics for t in members]
        return GroupSummary(
            tasks=len(members),
            trials=sum(t.trials for t in members),
            metrics={m: _stats(ms, m) for m in METRICS},
        )

    all_scores = [s for trials in by_task.values() for s in trials]
    languages = sorted({t.language for t in tasks})
    return EvalSummary(
        samples=samples,
        judge=judge,
        pooled=group(tasks),
        by_language={lang: group([t for t in tasks if t.language == lang]) for lang in languages},
        statuses=dict(Counter(s.status for s in all_scores)),
        failed_trials=sum(1 for s in all_scores if s.status == "agent_failed"),
        judge_calls=sum(s.judge_calls for s in all_scores),
        judge_failures=sum(s.judge_failures for s in all_scores),
        trials_with_judge_failures=sum(1 for s in all_scores if s.judge_failures),
        incomplete_tasks=sorted(t.instance_id for t in tasks if t.trials < samples),
        tasks=tasks,
    )
