"""Scoring one response against one WideSearch task, step for step as the official scorer does.

1. Read the table (:mod:`.table`): first ``markdown`` fence, else a pipe run; official clean-up; pandas-2.3.1
   tokenizing and whole-column typing. No table: all zero. A table pandas could not read: all zero.
2. Normalise headers; if they differ from ``required``, one judge call maps them; still different (a column
   missing or extra): all zero.
3. De-duplicate both tables on the key columns (first row wins), before any normalisation.
4. For each key column scored by ``exact_match`` or ``llm_judge``, one judge call aligns response values onto
   gold values; a failed call leaves the column unchanged.
5. Preprocess every column of both tables; inner-join on the key columns (many-to-many, like ``pd.merge``).
6. Score joined cells: keys 1; ``exact_match``/``number_near``/``date_near``/``url_match`` per cell;
   ``llm_judge`` with one judge call per column (a failed call scores the column 0 and is counted).
7. Row/item precision, recall, F1 and success (spec section 6).

Unlike the original, nothing is silent: every judge failure is counted on the :class:`TrialScore` and every
reason for a zero is in ``status`` and ``errors``.

Two deliberate shortcuts, both score-neutral for a judge that follows its instructions: no alignment call is
made for a key column whose response values all occur verbatim among the gold values (identical strings must
map to themselves), and no grading call is made for a column with no joined rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from ..errors import IncompleteGrade, TableParseError, UnsupportedTaskError
from .judge import map_columns
from .metrics import CELL_METRICS
from .preprocess import preprocess_column
from .table import Frame, first_occurrences, norm_column, read_response_table
from .tasks import Task

__all__ = ["ColumnResult", "TrialScore", "TrialStatus", "score_response", "zero_score"]

log = logging.getLogger(__name__)


class TrialStatus(StrEnum):
    """Why a trial scored what it did (``OK``: scored normally; anything else scores 0)."""

    OK = "ok"
    NO_RESPONSE = "no_response"  # the record holds no reply
    NO_TABLE = "no_table"  # the reply holds no table
    PARSE_ERROR = "parse_error"  # the table cannot be read
    COLUMN_MISMATCH = "column_mismatch"  # its columns are not the required ones
    ERROR = "error"  # the gold table or the scoring failed
    AGENT_FAILED = "agent_failed"  # the agent run failed
    MISSING = "missing"  # no record for the trial


_SHOWN_KEYS = 20


class ColumnResult(BaseModel):
    """What one score column contributed: ``matched`` of ``rows`` joined rows scored 1."""

    column: str
    metric: str
    key: bool = False
    matched: float = 0.0
    rows: int = 0
    judge_failed: bool = False


class TrialScore(BaseModel):
    """The score of one response (one trial) with enough detail to see why it scored what it did."""

    instance_id: str
    sample: int | None = None
    language: str = "en"
    status: TrialStatus = TrialStatus.OK
    item_precision: float = 0.0
    item_recall: float = 0.0
    item_f1: float = 0.0
    row_precision: float = 0.0
    row_recall: float = 0.0
    row_f1: float = 0.0
    success: bool = False
    num_response_rows: int = 0
    num_gold_rows: int = 0
    num_joined_rows: int = 0
    num_columns: int = 0
    judge_calls: int = 0
    judge_failures: int = 0
    errors: list[str] = Field(default_factory=list)
    column_map: dict[str, str] = Field(default_factory=dict)
    missing_columns: list[str] = Field(default_factory=list)
    extra_columns: list[str] = Field(default_factory=list)
    columns: list[ColumnResult] = Field(default_factory=list)
    unmatched_response_keys: list[list[str]] = Field(default_factory=list)
    unmatched_gold_keys: list[list[str]] = Field(default_factory=list)


def zero_score(
    task: Task, status: TrialStatus, errors: Sequence[str] = (), *, sample: int | None = None, **detail: Any
) -> TrialScore:
    """A trial that scores 0 on every metric, with the reason recorded (it still counts in every average)."""
    return TrialScore(
        instance_id=task.instance_id,
        sample=sample,
        language=task.language,
        status=status,
        num_columns=len(task.required),
        errors=list(errors),
        **detail,
    )


class _Trial:
    def __init__(self, task: Task, judge: Any, sample: int | None) -> None:
        self.task = task
        self.judge = judge
        self.sample = sample
        self.errors: list[str] = []
        self.judge_calls = 0
        self.judge_failures = 0

    def zero(self, status: TrialStatus, **detail: Any) -> TrialScore:
        return zero_score(
            self.task,
            status,
            self.errors,
            sample=self.sample,
            judge_calls=self.judge_calls,
            judge_failures=self.judge_failures,
            **detail,
        )

    def judge_failed(self, what: str, error: BaseException) -> None:
        self.judge_failures += 1
        self.errors.append(f"judge {what} failed: {type(error).__name__}: {error}")
        log.info("task %s: judge %s failed: %s: %s", self.task.instance_id, what, type(error).__name__, error)

    async def run(self, response: str | None) -> TrialScore:
        task = self.task
        if response is None:
            self.errors.append("no response")
            return self.zero(TrialStatus.NO_RESPONSE)
        try:
            frame = read_response_table(response)
        except TableParseError as e:
            self.errors.append(f"table not readable: {e}")
            return self.zero(TrialStatus.PARSE_ERROR)
        if frame is None:
            self.errors.append("no markdown table in the response")
            return self.zero(TrialStatus.NO_TABLE)

        required = list(task.required)
        columns = [norm_column(c) for c in frame.columns]
        column_map: dict[str, str] = {}
        if set(columns) != set(required):
            self.judge_calls += 1
            try:
                mapping = await map_columns(self.judge, columns, required)
            except Exception as e:  # noqa: BLE001 - any judge failure leaves the headers as they are
                self.judge_failed("column mapping", e)
                mapping = {}
            renamed = []
            for c in columns:
                new = mapping.get(c, c)
                new = new if isinstance(new, str) else str(new)
                if new != c:
                    column_map[c] = new
                renamed.append(new)
            columns = renamed
        if set(columns) != set(required):
            missing = [c for c in required if c not in columns]
            extra = [c for c in columns if c not in required]
            self.errors.append(f"columns differ from the required ones: missing {missing}, extra {extra}")
            return self.zero(
                TrialStatus.COLUMN_MISMATCH,
                column_map=column_map,
                missing_columns=missing,
                extra_columns=extra,
            )
        if len(columns) != len(required):
            dups = sorted({c for c in columns if columns.count(c) > 1})
            self.errors.append(f"several response columns carry the name(s) {dups}")
            return self.zero(TrialStatus.ERROR, column_map=column_map)

        gold = task.prepared_gold()
        if gold.error is not None:
            self.errors.append(gold.error)
            return self.zero(TrialStatus.ERROR, column_map=column_map)
        try:
            return await self._score(Frame(tuple(columns), frame.data), column_map)
        except Exception as e:  # the original scored any evaluator exception as 0; we say why
            log.warning("task %s: scoring failed", task.instance_id, exc_info=True)
            self.errors.append(f"scoring failed: {type(e).__name__}: {e}")
            return self.zero(TrialStatus.ERROR, column_map=column_map)

    async def _score(self, frame: Frame, column_map: dict[str, str]) -> TrialScore:
        task = self.task
        gold = task.prepared_gold()
        keys = task.unique_columns

        # 3. de-duplicate the response on its (rendered, unnormalised) keys
        rows = first_occurrences([frame.column(k) for k in keys])
        resp: dict[str, list[str]] = {c: [frame.column(c)[i] for i in rows] for c in task.required}
        n_resp = len(rows)

        # 4. align key values onto gold values
        for k in keys:
            spec = task.key_spec(k)
            if spec is None or not ({"exact_match", "llm_judge"} & set(spec.metric)):
                continue
            values = resp[k]
            reference = gold.raw[k]
            ref_set = set(reference)
            if not values or all(v in ref_set for v in values):
                continue
            self.judge_calls += 1
            try:
                mapping = await self.judge.align(list(values), list(reference))
            except Exception as e:  # noqa: BLE001
                self.judge_failed(f"key alignment of column {k!r}", e)
                continue
            resp[k] = [_cell(mapping.get(v, v)) for v in values]

        # 5. preprocess, then join on the preprocessed keys
        for col, spec in task.eval_pipeline.items():
            resp[col] = preprocess_column(resp[col], spec.preprocess)
        pairs: list[tuple[int, int]] = []  # (gold row, response row)
        resp_index: dict[tuple[str, ...], list[int]] = {}
        for j, key in enumerate(zip(*(resp[k] for k in keys))):
            resp_index.setdefault(key, []).append(j)
        for key, gold_rows in gold.index.items():
            for i in gold_rows:
                for j in resp_index.get(key, ()):
                    pairs.append((i, j))
        pairs.sort()  # pandas' inner merge keeps the left (gold) order
        unmatched_resp = [list(k) for k in resp_index if k not in gold.index]
        unmatched_gold = [list(k) for k in gold.index if k not in resp_index]

        # 6. cell scores, one list per score column
        score_columns: list[list[float]] = []
        results: list[ColumnResult] = []
        n_pairs = len(pairs)
        for col in task.required:
            if col in keys:
                score_columns.append([1.0] * n_pairs)
                results.append(
                    ColumnResult(column=col, metric="key", key=True, matched=float(n_pairs), rows=n_pairs)
                )
                continue
            spec = task.eval_pipeline[col]
            r_vals = [resp[col][j] for _, j in pairs]
            g_vals = [gold.cells[col][i] for i, _ in pairs]
            for metric in spec.metric:
                failed = False
                if metric == "llm_judge":
                    scores, failed = await self._grade(col, spec.judge_criterion, list(zip(r_vals, g_vals)))
                else:
                    fn = CELL_METRICS[metric]
                    scores = [fn(r, g, spec.criterion) for r, g in zip(r_vals, g_vals)]
                score_columns.append(scores)
                results.append(
                    ColumnResult(
                        column=col,
                        metric=metric,
                        matched=float(sum(scores)),
                        rows=n_pairs,
                        judge_failed=failed,
                    )
                )

        # 7. metrics
        tp_row = sum(min(cells) for cells in zip(*score_columns)) if n_pairs else 0.0
        tp_item = sum(sum(col) for col in score_columns)
        n_gold = gold.num_rows
        n_cols = len(task.required)
        row_p = tp_row / n_resp if n_resp > 0 else 0.0
        row_r = tp_row / n_gold if n_gold > 0 else 0.0
        item_p = tp_item / (n_resp * n_cols) if n_resp * n_cols > 0 else 0.0
        item_r = tp_item / (n_gold * n_cols) if n_gold * n_cols > 0 else 0.0
        row_f1 = _f1(row_p, row_r)
        item_f1 = _f1(item_p, item_r)
        success = item_p == item_r == item_f1 == 1.0 and row_p == row_r == row_f1 == 1.0
        return TrialScore(
            instance_id=task.instance_id,
            sample=self.sample,
            language=task.language,
            status=TrialStatus.OK,
            item_precision=item_p,
            item_recall=item_r,
            item_f1=item_f1,
            row_precision=row_p,
            row_recall=row_r,
            row_f1=row_f1,
            success=success,
            num_response_rows=n_resp,
            num_gold_rows=n_gold,
            num_joined_rows=n_pairs,
            num_columns=n_cols,
            judge_calls=self.judge_calls,
            judge_failures=self.judge_failures,
            errors=self.errors,
            column_map=column_map,
            columns=results,
            unmatched_response_keys=unmatched_resp[:_SHOWN_KEYS],
            unmatched_gold_keys=unmatched_gold[:_SHOWN_KEYS],
        )

    async def _grade(
        self, col: str, criterion: str, pairs: list[tuple[str, str]]
    ) -> tuple[list[float], bool]:
        """One judge call for the whole column; a failure scores its rows 0 (or keeps the rows it read)."""
        if not pairs:
            return [], False
        self.judge_calls += 1
        failed = False
        try:
            scores = await self.judge.grade(criterion, pairs)
        except IncompleteGrade as e:
            self.judge_failed(f"grading of column {col!r}", e)
            scores, failed = e.scores, True
        except Exception as e:  # noqa: BLE001
            self.judge_failed(f"grading of column {col!r}", e)
            return [0.0] * len(pairs), True
        if len(scores) != len(pairs):
            if not failed:
                self.judge_failed(
                    f"grading of column {col!r}", ValueError(f"{len(scores)} scores for {len(pairs)} rows")
                )
            return [0.0] * len(pairs), True
        return [1.0 if s == 1 else 0.0 for s in scores], failed


def _cell(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 1e-9 else 0.0


async def score_response(
    task: Task, response: str | None, *, judge: Any, sample: int | None = None
) -> TrialScore:
    """Score one response (the final reply, reasoning excluded) against a table task.

    ``judge`` is any object with ``align`` and ``grade`` coroutines (see :mod:`.judge`). The result never
    raises for bad responses: the reason for a zero is in ``status`` and ``errors``.
    """
    if task.kind != "table":
        raise UnsupportedTaskError(
            f"task {task.instance_id} is a QA task; score it with "
            f"langgraph_wideseek.eval.reward.compute_reward"
        )
    return await _Trial(task, judge, sample).run(response)
