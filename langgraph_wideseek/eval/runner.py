"""The evaluation runner: N agent trials per task, appended as they finish, resumable; then scoring.

Layout of an output folder::

    results.jsonl       one line per finished trial: instance_id, sample, response, status, errors, usage,
                        elapsed
    trajectories.jsonl  one line per finished trial: instance_id, sample, trajectory (the rollout)
    scores.jsonl        one TrialScore per (task, sample), rewritten by every scoring pass
    summary.json        EvalSummary: Avg@N / Max@N / Min@N per language and pooled
    report.md, scores.png
    judge_cache/        the judge's on-disk cache (CLI default), so re-scoring costs no judge calls

A trial's line is written (and fsynced, in a worker thread: an fsync takes milliseconds) the moment it
finishes, so a killed run loses only trials in flight; running again skips every (instance_id, sample) already
in ``results.jsonl``. A failed agent run is a finished trial too: it is recorded with its errors and scores 0
(``retry_failed`` runs those again).

The runner scores table tasks (WideSearch); a task list holding QA tasks is rejected before any agent runs,
with :class:`~langgraph_wideseek.errors.UnsupportedTaskError` naming them (score QA answers with
:func:`langgraph_wideseek.eval.reward.compute_reward`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ..errors import UnsupportedTaskError
from ..graph.trajectory import AgentStatus, Status
from ..runtime import DurableAppender, atomic_write_text
from ..runtime.files import trim_partial_tail
from .report import write_report
from .scorer import TrialScore, TrialStatus, score_response, zero_score
from .summary import EvalSummary, summarize
from .tasks import Task, read_text_file

log = logging.getLogger(__name__)

__all__ = [
    "MAX_SAMPLES",
    "Agent",
    "TrialRecord",
    "load_responses",
    "read_results",
    "require_table_tasks",
    "run_eval",
    "run_trials",
    "score_records",
]

Agent = Callable[[str], Awaitable[Any]]
"""``await agent(question)`` returns a :class:`~langgraph_wideseek.WideSeekResult` (or anything with
``answer``,
and optionally ``status``, ``errors``, ``usage`` and ``trajectory``)."""

RESULTS = "results.jsonl"
TRAJECTORIES = "trajectories.jsonl"


class TrialRecord(BaseModel):
    """One finished trial (a line of ``results.jsonl``)."""

    instance_id: str
    sample: int
    response: str | None = None
    status: AgentStatus = Status.OK
    errors: list[str] = Field(default_factory=list)
    usage: dict[str, Any] = Field(default_factory=dict)
    elapsed: float = 0.0


# ------------------------------------------------------------------------------------------------------------
# results files
# ------------------------------------------------------------------------------------------------------------


def require_table_tasks(tasks: Iterable[Task]) -> None:
    """Raise :class:`UnsupportedTaskError` naming the QA tasks among ``tasks`` (the runner scores tables
    only)."""
    qa = [t.instance_id for t in tasks if t.kind != "table"]
    if qa:
        shown = ", ".join(qa[:5]) + (" ..." if len(qa) > 5 else "")
        raise UnsupportedTaskError(
            f"{len(qa)} task(s) are QA tasks, which the evaluation runner does not score: {shown}. Leave "
            f"them out "
            "(--ids), or score QA answers with langgraph_wideseek.eval.reward.compute_reward"
        )


def read_results(path: str | Path) -> list[TrialRecord]:
    """Finished trials of a results file; for a trial recorded twice (a retried failure) the last one wins."""
    p = Path(path)
    if not p.exists():
        return []
    latest: dict[tuple[str, int], TrialRecord] = {}
    lines = p.read_text(encoding="utf-8").split("\n")
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = TrialRecord.model_validate_json(line)
        except ValueError as e:
            if lineno == len(lines):  # an unterminated last line from a killed run: that trial runs again
                break
            raise ValueError(f"{p}:{lineno}: not a trial record: {e}") from None
        latest[(rec.instance_id, rec.sample)] = rec
    return list(latest.values())


#: Trials per task that ``wideseek eval`` and ``wideseek score`` accept (the N of Avg@N; the paper uses 4). A
#: bound, so that a typo such as ``"sample": 1000000`` cannot make a score file of millions of empty trials.
MAX_SAMPLES = 1_000


def load_responses(path: str | Path) -> list[TrialRecord]:
    """Existing responses for ``wideseek score``: ``{"instance_id", "sample", "response"}`` per line.

    ``sample`` may be missing (numbered per task in file order) or given as ``trial_idx`` (the official
    runner's name).
    """
    p = Path(path)
    out: list[TrialRecord] = []
    counters: dict[str, int] = {}
    if not p.is_file():
        raise ValueError(f"responses file {p} not found")
    for lineno, line in enumerate(read_text_file(p, "responses file", ValueError).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            iid = str(obj["instance_id"])
            sample = obj.get("sample", obj.get("trial_idx"))
            if sample is None:
                sample = counters.get(iid, 0)
            if (
                isinstance(sample, bool)
                or not isinstance(sample, int | str)
                or not 0 <= int(sample) < MAX_SAMPLES
            ):
                raise ValueError(f"sample must be an integer from 0 to {MAX_SAMPLES - 1}, not {sample!r}")
            counters[iid] = int(sample) + 1
            response = obj.get("response")
            if response is not None and not isinstance(response, str):
                raise ValueError("response must be a string or null")
            out.append(
                TrialRecord(
                    instance_id=iid,
                    sample=int(sample),
                    response=response,
                    status=obj.get("status", Status.OK),
                    errors=list(obj.get("errors") or []),
                )
            )
        except (json.JSONDecodeError, KeyError, ValueError, TypeError) as e:
            raise ValueError(f"{p}:{lineno}: not a response record ({type(e).__name__}: {e})") from None
    return out


# ------------------------------------------------------------------------------------------------------------
# running the agent
# ------------------------------------------------------------------------------------------------------------


def _dump(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


async def _run_one(agent: Agent, task: Task, sample: int, timeout: float | None) -> tuple[TrialRecord, Any]:
    started = time.perf_counter()
    try:
        if timeout is not None:
            result = await asyncio.wait_for(agent(task.query), timeout)
        else:
            result = await agent(task.query)
    except TimeoutError:
        error = f"agent run exceeded {timeout} s"
    except Exception as e:  # a crashing run is a failed trial, recorded, not a crashed eval
        log.warning("task %s sample %d: the agent raised", task.instance_id, sample, exc_info=True)
        error = f"agent raised {type(e).__name__}: {e}"
    else:
        return _record(task, sample, result, started), _dump(getattr(result, "trajectory", None))
    return TrialRecord(
        instance_id=task.instance_id,
        sample=sample,
        status=Status.FAILED,
        errors=[error],
        elapsed=time.perf_counter() - started,
    ), None


def _record(task: Task, sample: int, result: Any, started: float) -> TrialRecord:
    answer = getattr(result, "answer", None)
    errors = [str(e) for e in (getattr(result, "errors", None) or [])]
    status: AgentStatus = Status.OK if getattr(result, "status", Status.OK) == Status.OK else Status.FAILED
    if answer is None and status == Status.OK:
        status = Status.FAILED
        errors.append("the agent returned no answer")
    no_evidence = getattr(result, "no_evidence", None)
    if isinstance(no_evidence, str) and status == Status.OK:
        status = Status.FAILED  # the search service failed, not the model: never scored as the model's 0
        errors.append(no_evidence)
    usage = _dump(getattr(result, "usage", None)) or {}
    return TrialRecord(
        instance_id=task.instance_id,
        sample=sample,
        response=answer,
        status=status,
        errors=errors,
        usage=usage if isinstance(usage, dict) else {},
        elapsed=time.perf_counter() - started,
    )


class _Progress:
    """A rich progress bar on stderr (or nothing)."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self._bar = None
        self.failed = 0
        if enabled and total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]eval"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._task = self._bar.add_task("eval", total=total, completed=done, failed=0)
            self._bar.start()

    def advance(self, failed: bool) -> None:
        self.failed += int(failed)
        if self._bar is not None:
            self._bar.update(self._task, advance=1, failed=self.failed)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


async def run_trials(
    tasks: list[Task],
    agent: Agent,
    out_dir: str | Path,
    *,
    samples: int = 4,
    concurrency: int = 4,
    trial_timeout: float | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    fsync: bool = True,
) -> list[TrialRecord]:
    """Run every (task, sample) not yet in ``out_dir/results.jsonl``; returns all finished trials.

    Trials run ``concurrency`` at a time, in task order. Each finished trial is appended at once (trajectory
    first, then its results line, which marks it finished).
    """
    if samples < 1 or concurrency < 1:
        raise ValueError("samples and concurrency must be >= 1")
    require_table_tasks(tasks)
    out = Path(out_dir)
    results_path = out / RESULTS
    previous = await asyncio.to_thread(_finished_trials, results_path)
    done = {(r.instance_id, r.sample) for r in previous if not (retry_failed and r.status == Status.FAILED)}
    pending = [(t, k) for t in tasks for k in range(samples) if (t.instance_id, k) not in done]
    wanted = {(t.instance_id, k) for t in tasks for k in range(samples)}

    results = DurableAppender(results_path)
    trajectories = DurableAppender(out / TRAJECTORIES)
    bar = _Progress(progress, len(wanted), len(wanted) - len(pending))
    queue: asyncio.Queue[tuple[Task, int]] = asyncio.Queue()
    for item in pending:
        queue.put_nowait(item)

    async def worker() -> None:
        while True:
            try:
                task, sample = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            rec, trajectory = await _run_one(agent, task, sample, trial_timeout)
            if trajectory is not None:
                await trajectories.append(
                    json.dumps(
                        {"instance_id": task.instance_id, "sample": sample, "trajectory": trajectory},
                        ensure_ascii=False,
                    ),
                    sync=False,
                )
            await results.append(rec.model_dump_json(), sync=fsync)
            bar.advance(rec.status == Status.FAILED)

    try:
        await asyncio.gather(*(worker() for _ in range(min(concurrency, max(1, len(pending))))))
    finally:
        bar.close()
        results.close()
        trajectories.close()
    return await asyncio.to_thread(read_results, results_path)


def _finished_trials(results_path: Path) -> list[TrialRecord]:
    results_path.parent.mkdir(parents=True, exist_ok=True)
    trim_partial_tail(results_path)
    return read_results(results_path)


# ------------------------------------------------------------------------------------------------------------
# scoring
# ------------------------------------------------------------------------------------------------------------


async def score_records(
    tasks: list[Task],
    records: Iterable[TrialRecord],
    judge: Any,
    out_dir: str | Path,
    *,
    samples: int,
    judge_name: str | None = None,
    concurrency: int = 16,
    title: str = "WideSearch evaluation",
) -> EvalSummary:
    """Score every (task, sample) and write ``scores.jsonl``, ``summary.json``, ``report.md`` and the plot.

    A trial without a record scores 0 as ``missing``; a failed agent run scores 0 as ``agent_failed``, with
    its errors. Records of tasks not in ``tasks`` are ignored.
    """
    require_table_tasks(tasks)
    by_key = {(r.instance_id, r.sample): r for r in records}
    slots = asyncio.Semaphore(concurrency)

    async def one(task: Task, sample: int) -> TrialScore:
        rec = by_key.get((task.instance_id, sample))
        if rec is None:
            return zero_score(
                task, TrialStatus.MISSING, ["no response recorded for this trial"], sample=sample
            )
        if rec.status == Status.FAILED:
            return zero_score(
                task, TrialStatus.AGENT_FAILED, rec.errors or ["the agent run failed"], sample=sample
            )
        async with slots:
            return await score_response(task, rec.response, judge=judge, sample=sample)

    scores = await asyncio.gather(*(one(t, k) for t in tasks for k in range(samples)))
    name = judge_name or getattr(judge, "name", None) or type(judge).__name__
    if hasattr(judge, "model"):
        name = f"{name}:{judge.model}"
    summary = summarize(scores, samples=samples, judge=name)
    # files and the plot are written in a worker thread: the caller's loop may be serving other work
    warnings = await asyncio.to_thread(_write_scores, Path(out_dir), scores, summary, title)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    return summary


def _write_scores(out: Path, scores: list[TrialScore], summary: EvalSummary, title: str) -> list[str]:
    atomic_write_text(out / "scores.jsonl", "".join(s.model_dump_json() + "\n" for s in scores))
    atomic_write_text(out / "summary.json", summary.model_dump_json(indent=2))
    return write_report(summary, out, title=title)


async def run_eval(
    tasks: list[Task],
    agent: Agent,
    judge: Any,
    out_dir: str | Path,
    *,
    samples: int = 4,
    concurrency: int = 4,
    trial_timeout: float | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    judge_name: str | None = None,
) -> EvalSummary:
    """Run the agent over every task ``samples`` times (resuming), then score everything and write reports."""
    records = await run_trials(
        tasks,
        agent,
        out_dir,
        samples=samples,
        concurrency=concurrency,
        trial_timeout=trial_timeout,
        retry_failed=retry_failed,
        progress=progress,
    )
    return await score_records(tasks, records, judge, out_dir, samples=samples, judge_name=judge_name)
