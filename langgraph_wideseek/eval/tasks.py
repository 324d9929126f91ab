"""Evaluation tasks: WideSearch (local files or the hub) and the WideSeek-R1 training-data format.

Both load into one :class:`Task` type. A table task carries its gold table already read and rendered exactly
as the official scorer saw it (:mod:`.table`), plus the per-column pipeline; a QA task carries its labels.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from ..errors import TableParseError, TaskLoadError
from .judge import GENERIC_CRITERION
from .metrics import CELL_METRICS
from .preprocess import PREPROCESSORS, preprocess_column
from .table import Frame, first_occurrences, norm_column, read_gold_csv, read_response_table

__all__ = [
    "HUB_DATASET",
    "ColumnSpec",
    "PreparedGold",
    "Task",
    "TaskLoadError",
    "load_tasks",
    "training_pipeline",
]

log = logging.getLogger(__name__)

HUB_DATASET = "ByteDance-Seed/WideSearch"
_METRICS = set(CELL_METRICS) | {"llm_judge"}


class ColumnSpec(BaseModel):
    """How one required column is scored: preprocessors, then metric(s) with an optional criterion."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    preprocess: tuple[str, ...] = ()
    metric: tuple[str, ...]
    criterion: str | float | None = None

    @field_validator("preprocess")
    @classmethod
    def _known_preprocess(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [p for p in v if p not in PREPROCESSORS]
        if unknown:
            raise ValueError(f"unknown preprocess {unknown}; known: {sorted(PREPROCESSORS)}")
        return v

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [m for m in v if m not in _METRICS]
        if unknown:
            raise ValueError(f"unknown metric {unknown}; known: {sorted(_METRICS)}")
        if not v:
            raise ValueError("a column needs at least one metric")
        return v

    @model_validator(mode="after")
    def _criterion_fits(self) -> ColumnSpec:
        if "number_near" in self.metric:
            try:
                float(self.criterion)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ValueError(f"number_near needs a numeric tolerance, got {self.criterion!r}") from None
        return self

    @property
    def judge_criterion(self) -> str:
        return "" if self.criterion is None else str(self.criterion)


@dataclass(frozen=True)
class PreparedGold:
    """The gold side of scoring, computed once per task: de-duplicated on the keys, then preprocessed.

    ``raw`` holds the de-duplicated cells before preprocessing (what key alignment is asked about);
    ``cells`` the preprocessed ones; ``index`` maps a preprocessed key tuple to its gold rows, in order.
    """

    raw: dict[str, list[str]]
    cells: dict[str, list[str]]
    num_rows: int
    index: dict[tuple[str, ...], list[int]]
    error: str | None = None


class Task(BaseModel):
    """One evaluation task. Table tasks: ``required`` columns, ``unique_columns`` keys, ``eval_pipeline`` per
    column and the ``gold`` table (columns = ``required``). QA tasks: ``answers`` (any one is correct)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    instance_id: str
    query: str
    language: str = "en"
    kind: Literal["table", "qa"] = "table"
    unique_columns: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    eval_pipeline: dict[str, ColumnSpec] = Field(default_factory=dict)
    gold: Frame | None = None
    answers: tuple[str, ...] = ()
    source: Literal["widesearch", "training"] = "widesearch"

    _prepared: PreparedGold | None = PrivateAttr(default=None)
    _derived: dict[str, Task] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Task:
        if self.kind == "qa":
            if not self.answers:
                raise ValueError("a QA task needs at least one answer")
            return self
        if not self.required:
            raise ValueError("a table task needs required columns")
        if len(set(self.required)) != len(self.required):
            raise ValueError(f"duplicate required columns: {list(self.required)}")
        if not self.unique_columns:
            raise ValueError("a table task needs at least one key (unique) column")
        missing = [c for c in self.unique_columns if c not in self.required]
        if missing:
            raise ValueError(f"key columns {missing} are not required columns")
        extra = [c for c in self.eval_pipeline if c not in self.required]
        if extra:
            raise ValueError(f"eval_pipeline names columns that are not required: {extra}")
        unscored = [c for c in self.required if c not in self.unique_columns and c not in self.eval_pipeline]
        if unscored:
            raise ValueError(f"required columns without an eval_pipeline entry: {unscored}")
        if self.gold is None:
            raise ValueError("a table task needs its gold table")
        if tuple(self.gold.columns) != tuple(self.required):
            raise ValueError("gold columns must be the required columns, in order")
        return self

    def key_spec(self, column: str) -> ColumnSpec | None:
        return self.eval_pipeline.get(column)

    def prepared_gold(self) -> PreparedGold:
        """De-duplicated, preprocessed gold (cached: the gold side is the same for every trial)."""
        if self._prepared is None:
            self._prepared = _prepare_gold(self)
        return self._prepared

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Task:
        """A copy whose caches start empty (the prepared gold depends on the pipeline being replaced)."""
        copy = super().model_copy(update=update, deep=deep)
        copy._prepared = None
        copy._derived = {}
        return copy

    def derived(self, key: str, build: Callable[[Task], Task]) -> Task:
        """``build(self)``, computed once per task and key (e.g. the training-style variant)."""
        if key not in self._derived:
            self._derived[key] = build(self)
        return self._derived[key]


def _prepare_gold(task: Task) -> PreparedGold:
    assert task.gold is not None
    gold = task.gold
    keys = task.unique_columns
    rows = first_occurrences([gold.column(k) for k in keys])
    raw = {c: [gold.column(c)[i] for i in rows] for c in task.required}
    cells = dict(raw)
    try:
        for col, spec in task.eval_pipeline.items():
            cells[col] = preprocess_column(cells[col], spec.preprocess)
    except Exception as e:  # noqa: BLE001 - e.g. dateparser failing on a gold cell: every trial of it scores 0
        log.warning("task %s: preprocessing the gold table failed: %r", task.instance_id, e)
        return PreparedGold(raw, raw, len(rows), {}, error=f"preprocessing the gold table failed: {e!r}")
    index: dict[tuple[str, ...], list[int]] = {}
    for i, key in enumerate(zip(*(cells[k] for k in keys))):
        index.setdefault(key, []).append(i)
    return PreparedGold(raw, cells, len(rows), index)


# ------------------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------------------


def _parse_evaluation(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise TypeError("evaluation must be a JSON object (or a string holding one)")
    return value


def _widesearch_task(
    rec: dict[str, Any], gold_dir: Path | None, gold_frames: dict[str, Frame] | None
) -> Task:
    iid = str(rec["instance_id"])
    ev = _parse_evaluation(rec["evaluation"])
    required = [str(c) for c in ev["required"]]
    unique = [str(c) for c in ev["unique_columns"]]
    pipeline = {
        str(c): ColumnSpec.model_validate(spec) for c, spec in (ev.get("eval_pipeline") or {}).items()
    }
    if gold_frames is not None and iid in gold_frames:
        frame = gold_frames[iid]
    else:
        if gold_dir is None:
            raise ValueError("no gold directory given (pass gold_dir / --gold)")
        path = gold_dir / f"{iid}.csv"
        if not path.is_file():
            raise ValueError(f"gold table {path} not found")
        frame = read_gold_csv(path)
    absent = [c for c in required if c not in frame.columns]
    if absent:
        raise ValueError(f"gold table lacks required columns {absent} (it has {list(frame.columns)})")
    dups = sorted({c for c in required if frame.columns.count(c) > 1})
    if dups:
        raise ValueError(f"gold table has several columns normalising to {dups}")
    return Task(
        instance_id=iid,
        query=str(rec["query"]),
        language=str(rec.get("language") or ("zh" if "_zh_" in iid else "en")),
        unique_columns=tuple(unique),
        required=tuple(required),
        eval_pipeline=pipeline,
        gold=frame.select(required),
        source="widesearch",
    )


def training_pipeline(required: Iterable[str], unique: Iterable[str]) -> dict[str, ColumnSpec]:
    """The training recipe: keys matched exactly (after alignment), every other cell judged generically."""
    keys = set(unique)
    return {
        c: ColumnSpec(preprocess=("norm_str",), metric=("exact_match",))
        if c in keys
        else ColumnSpec(preprocess=("norm_str",), metric=("llm_judge",), criterion=GENERIC_CRITERION)
        for c in required
    }


def _training_task(rec: dict[str, Any], lineno: int) -> Task:
    iid = str(rec.get("instance_id", lineno))
    language = str(rec.get("language") or ("zh" if "zh" in iid else "en"))
    answer = rec["answer"]
    if not rec.get("is_markdown", isinstance(answer, str) and answer.count("|") >= 4):
        answers = answer if isinstance(answer, list) else [answer]
        return Task(
            instance_id=iid,
            query=str(rec["question"]),
            language=language,
            kind="qa",
            answers=tuple(str(a) for a in answers),
            source="training",
        )
    frame = read_response_table(str(answer))
    if frame is None:
        raise ValueError("answer holds no markdown table")
    frame = frame.rename([norm_column(c) for c in frame.columns])
    ev = _parse_evaluation(rec["evaluation"]) if rec.get("evaluation") else {}
    try:
        return table_task_from_gold(
            iid, str(rec["question"]), language, frame, ev, unique_columns=rec.get("unique_columns")
        )
    except ValueError as e:
        raise ValueError(f"answer table: {e} (it has {list(frame.columns)})") from None


def table_task_from_gold(
    instance_id: str,
    query: str,
    language: str,
    frame: Frame,
    evaluation: dict[str, Any],
    *,
    unique_columns: Iterable[str] | None = None,
    required_columns: Iterable[str] | None = None,
) -> Task:
    """A table task from a gold frame (columns normalised) and its evaluation spec; without an
    ``eval_pipeline`` the training recipe's pipeline applies. Shared by training-data files and trainer
    labels."""
    required = [norm_column(str(c)) for c in required_columns or evaluation.get("required") or frame.columns]
    unique = [norm_column(str(c)) for c in unique_columns or evaluation.get("unique_columns") or ()]
    absent = [c for c in required if c not in frame.columns]
    if absent:
        raise ValueError(f"gold table lacks required columns {absent}")
    if evaluation.get("eval_pipeline"):
        pipeline = {str(c): ColumnSpec.model_validate(s) for c, s in evaluation["eval_pipeline"].items()}
    else:
        pipeline = training_pipeline(required, unique)
    return Task(
        instance_id=instance_id,
        query=query,
        language=language,
        unique_columns=tuple(unique),
        required=tuple(required),
        eval_pipeline=pipeline,
        gold=frame.select(required),
        source="training",
    )


def _records(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    text = read_text_file(path, "task file", TaskLoadError)
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise TaskLoadError(f"{path}: not JSON: {e}") from None
        yield from enumerate(data if isinstance(data, list) else [data], 1)
        return
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise TaskLoadError(f"{path}:{lineno}: not JSON: {e}") from None


def read_text_file(path: Path, what: str, error: type[Exception]) -> str:
    """The UTF-8 text of ``path``, or ``error`` naming the file: unreadable, or binary rather than text."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise error(
            f"{what} {path} is not UTF-8 text (byte {e.start}); expected JSON lines (is it a binary file?)"
        ) from None
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from None


def _task_from_record(
    rec: Any, gold_dir: Path | None, where: str, gold_frames: dict[str, Frame] | None = None
) -> Task:
    if not isinstance(rec, dict):
        raise TaskLoadError(f"{where}: expected a JSON object")
    try:
        if "query" in rec and "evaluation" in rec:
            return _widesearch_task(rec, gold_dir, gold_frames)
        if "question" in rec and "answer" in rec:
            return _training_task(rec, int(where.rsplit(":", 1)[-1]) if ":" in where else 0)
    except TaskLoadError:
        raise
    except (KeyError, ValueError, TypeError, TableParseError) as e:
        iid = rec.get("instance_id", "?")
        msg = f"missing field {e}" if isinstance(e, KeyError) else str(e)
        raise TaskLoadError(f"{where} (task {iid}): {msg}") from None
    raise TaskLoadError(
        f"{where}: unknown record format; expected WideSearch fields (instance_id, query, evaluation) or "
        f"training fields (question, answer, unique_columns, is_markdown)"
    )


def load_tasks(
    source: str | Path = "hf",
    gold_dir: str | Path | None = None,
    *,
    hub: bool = False,
    limit: int | None = None,
    ids: Iterable[str] | None = None,
) -> list[Task]:
    """Load tasks from a JSONL/JSON file, or from the hub with ``source="hf"`` / ``hub=True``.

    WideSearch records need their gold CSVs: ``gold_dir/<instance_id>.csv`` (default: a ``widesearch_gold``
    folder beside the file). Training-format records carry their gold table (markdown) or QA labels inline.
    ``ids`` keeps only those instance ids; ``limit`` keeps the first N tasks.
    """
    if hub or str(source) == "hf":
        tasks = _load_hub(Path(gold_dir) if gold_dir is not None else None)
    else:
        path = Path(source)
        if not path.is_file():
            raise TaskLoadError(f"task file {path} not found")
        gdir = Path(gold_dir) if gold_dir is not None else None
        if gdir is None and (path.parent / "widesearch_gold").is_dir():
            gdir = path.parent / "widesearch_gold"
        if gdir is not None and not gdir.is_dir():
            raise TaskLoadError(f"gold directory {gdir} not found")
        tasks = [_task_from_record(rec, gdir, f"{path}:{lineno}") for lineno, rec in _records(path)]
        if not tasks:
            raise TaskLoadError(f"task file {path} holds no tasks")
    seen: set[str] = set()
    for t in tasks:
        if t.instance_id in seen:
            raise TaskLoadError(f"duplicate instance_id {t.instance_id!r}")
        seen.add(t.instance_id)
    if ids is not None:
        wanted = list(ids)
        unknown = [i for i in wanted if i not in seen]
        if unknown:
            raise TaskLoadError(f"unknown instance ids: {unknown}")
        keep = set(wanted)
        tasks = [t for t in tasks if t.instance_id in keep]
    return tasks[:limit] if limit is not None else tasks


def _load_hub(gold_dir: Path | None) -> list[Task]:
    """The ``full`` split of the hub dataset; gold CSVs from ``gold_dir`` or the dataset repository."""
    try:
        import datasets
    except ImportError:
        raise TaskLoadError(
            "loading WideSearch from the hub needs the 'datasets' package: pip install "
            "'langgraph-wideseek[eval]'"
        ) from None
    hint = (
        "If this machine is offline, download the dataset elsewhere (widesearch.jsonl and the "
        "widesearch_gold/ "
        "folder) and pass --tasks FILE.jsonl --gold DIR."
    )
    try:
        ds = datasets.load_dataset(HUB_DATASET, split="full")
    except Exception as e:  # noqa: BLE001 - network, auth and cache errors all mean "cannot load from the hub"
        raise TaskLoadError(
            f"could not load {HUB_DATASET} from the Hugging Face hub ({type(e).__name__}: {e}). {hint}"
        ) from None
    if gold_dir is None:
        try:
            from huggingface_hub import snapshot_download

            root = snapshot_download(HUB_DATASET, repo_type="dataset", allow_patterns=["widesearch_gold/*"])
        except Exception as e:  # noqa: BLE001
            raise TaskLoadError(
                f"could not fetch the gold tables of {HUB_DATASET} ({type(e).__name__}: {e}). {hint}"
            ) from None
        gold_dir = Path(root) / "widesearch_gold"
    return [_task_from_record(dict(rec), gold_dir, f"{HUB_DATASET}[{i}]") for i, rec in enumerate(ds)]
