"""Task files -> OpenRLHF prompt datasets.

OpenRLHF reads a prompt dataset through ``--data.prompt_dataset FILE --data.input_key prompt --data.label_key
label`` and hands each record's ``prompt`` and ``label`` (both strings) to ``AgentExecutor.execute``. Here the
prompt is the task text the lead receives, and the label is a JSON :class:`TaskLabel` holding what the reward
needs (the gold table or answers, key and required columns, the WideSearch evaluation spec when there is one).
``datasource`` groups OpenRLHF's eval metrics (``width``, ``depth``, ``widesearch``, ``synthetic``).

Sources:

- WideSeek-R1 training files (``width_20k.jsonl``, ``depth_20k.jsonl``, ``hybrid_20k.jsonl`` of
  ``RLinf/WideSeek-R1-train-data``): ``question``, ``answer`` (markdown table, or a string / list for QA),
  ``is_markdown``, ``unique_columns``, ``evaluation`` (JSON with ``required``), ``instance_id``, ``language``;
- WideSearch-format tasks (``instance_id``, ``query``, ``evaluation``, ``language``) plus the gold CSV folder;
- synthetic tasks: generated from the benchmark's synthetic world (``--world-seed``, which also writes the
  world's corpus for the local search backend), or read from files in either format above.

    python -m training.data wideseek-r1 hybrid_20k.jsonl --out data/train.jsonl --eval-out data/eval.jsonl
    --eval-size 64 python -m training.data widesearch --tasks widesearch.jsonl --gold widesearch_gold --out
    data/ws.parquet python -m training.data synthetic --world-seed 0 --corpus-out data/synth_corpus.jsonl
    --out data/synth.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from langgraph_wideseek.errors import TrainingError
from langgraph_wideseek.graph.answer import extract_markdown_fence, parse_markdown_table

LABEL_VERSION = 1
Kind = Literal["table", "qa"]
GoldFormat = Literal["markdown", "csv"]


class TaskLabel(BaseModel):
    """Everything the reward needs about one task, carried through OpenRLHF as a JSON string."""

    model_config = ConfigDict(extra="forbid")

    v: int = LABEL_VERSION
    instance_id: str
    kind: Kind
    language: str = "en"
    source: str = Field(description="Where the task came from: wideseek-r1, widesearch, synthetic.")
    gold_table: str | None = Field(None, description="Gold table text (table tasks).")
    gold_format: GoldFormat | None = None
    unique_columns: list[str] = Field(default_factory=list)
    required_columns: list[str] = Field(default_factory=list)
    evaluation: dict[str, Any] | None = Field(
        None, description="The task's evaluation spec (WideSearch: unique_columns, required, eval_pipeline)."
    )
    answers: list[str] = Field(default_factory=list, description="Accepted answers (QA tasks).")

    def to_label(self) -> str:
        return self.model_dump_json(exclude_none=True)


def parse_label(label: str | dict[str, Any]) -> TaskLabel:
    """Read a label written by this module; a clear ``ValueError`` for anything else."""
    try:
        data = json.loads(label) if isinstance(label, str) else label
    except json.JSONDecodeError as e:
        raise ValueError(f"label is not JSON ({e}); build datasets with `python -m training.data`") from None
    if not isinstance(data, dict):
        raise ValueError("label is not a JSON object; build datasets with `python -m training.data`")
    if data.get("v") != LABEL_VERSION:
        raise ValueError(f"label version {data.get('v')!r} is not {LABEL_VERSION}; rebuild the dataset")
    try:
        return TaskLabel.model_validate(data)
    except ValidationError as e:
        raise ValueError(f"malformed label: {e}") from None


def normalize_column(name: str) -> str:
    """WideSearch's column-name normalisation: lowercase, every space removed."""
    return "".join(name.strip().lower().split())


class RecordError(TrainingError, ValueError):
    """A dataset record cannot be converted into a training row; the message says why."""


def _json_field(value: Any, name: str) -> Any:
    if isinstance(value, str):
        s = value.strip()
        if s.startswith(("{", "[")):
            try:
                return json.loads(s)
            except json.JSONDecodeError as e:
                raise RecordError(f"{name} is not valid JSON: {e}") from None
    return value


def _str_list(value: Any, name: str) -> list[str]:
    value = _json_field(value, name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise RecordError(f"{name} must be a string or a list of strings, got {type(value).__name__}")


def _gold_markdown(answer: str) -> str:
    fenced = extract_markdown_fence(answer)
    return (fenced if fenced is not None else answer).strip()


def convert_wideseek_record(rec: dict[str, Any], *, source: str = "wideseek-r1") -> dict[str, str]:
    """One WideSeek-R1 training record -> ``{prompt, label, datasource, instance_id}``."""
    question = rec.get("question")
    if not isinstance(question, str) or not question.strip():
        raise RecordError("missing or empty 'question'")
    iid = str(rec.get("instance_id") or "").strip()
    if not iid:
        raise RecordError("missing 'instance_id'")
    answer = rec.get("answer")
    if answer is None:
        raise RecordError("missing 'answer'")
    evaluation = _json_field(rec.get("evaluation"), "evaluation")
    if evaluation is not None and not isinstance(evaluation, dict):
        raise RecordError("'evaluation' must be a JSON object")
    is_markdown = rec.get("is_markdown")
    if isinstance(is_markdown, str):
        is_markdown = is_markdown.strip().lower() in ("1", "true", "yes")
    language = str(rec.get("language") or "en")
    if is_markdown:
        if not isinstance(answer, str):
            raise RecordError("table task whose 'answer' is not a markdown string")
        gold = _gold_markdown(answer)
        try:
            gold_rows = parse_markdown_table(gold)
        except ValueError:
            raise RecordError("table task whose 'answer' holds no markdown table") from None
        if not gold_rows:
            raise RecordError("table task whose gold table has no rows")
        header = [normalize_column(h) for h in gold_rows[0]]
        unique = [normalize_column(c) for c in _str_list(rec.get("unique_columns"), "unique_columns")]
        if not unique and evaluation:
            unique = [
                normalize_column(c) for c in _str_list(evaluation.get("unique_columns"), "unique_columns")
            ]
        required = [normalize_column(c) for c in _str_list((evaluation or {}).get("required"), "required")]
        if not required:
            required = header
        missing = [c for c in [*unique, *required] if c not in header]
        if missing:
            raise RecordError(f"columns {missing} are not in the gold table's header {header}")
        label = TaskLabel(
            instance_id=iid,
            kind="table",
            language=language,
            source=source,
            gold_table=gold,
            gold_format="markdown",
            unique_columns=unique,
            required_columns=required,
            evaluation=evaluation,
        )
        datasource = "width" if source == "wideseek-r1" else source
    else:
        try:
            answers = _str_list(answer, "answer")
        except RecordError:  # an answer that merely starts with a bracket, e.g. "[1] Ada"
            answers = [answer] if isinstance(answer, str) else []
        answers = [a.strip() for a in answers if a.strip()]
        if not answers:
            raise RecordError("QA task with an empty 'answer'")
        label = TaskLabel(
            instance_id=iid,
            kind="qa",
            language=language,
            source=source,
            answers=answers,
            evaluation=evaluation,
        )
        datasource = "depth" if source == "wideseek-r1" else source
    return {"prompt": question, "label": label.to_label(), "datasource": datasource, "instance_id": iid}


def convert_widesearch_record(
    rec: dict[str, Any], gold_dir: Path, *, source: str = "widesearch"
) -> dict[str, str]:
    """One WideSearch task plus its gold CSV file -> ``{prompt, label, datasource, instance_id}``."""
    iid = str(rec.get("instance_id") or "").strip()
    if not iid:
        raise RecordError("missing 'instance_id'")
    gold_path = gold_dir / f"{iid}.csv"
    try:
        gold = gold_path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise RecordError(f"no gold table {gold_path}") from None
    except UnicodeDecodeError as e:
        raise RecordError(f"gold table {gold_path} is not UTF-8: {e}") from None
    return convert_widesearch_task(rec, gold, source=source)


def convert_widesearch_task(rec: dict[str, Any], gold: str, *, source: str = "widesearch") -> dict[str, str]:
    """One WideSearch-format task plus its gold CSV text -> ``{prompt, label, datasource, instance_id}``."""
    iid = str(rec.get("instance_id") or "").strip()
    if not iid:
        raise RecordError("missing 'instance_id'")
    query = rec.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RecordError("missing or empty 'query'")
    evaluation = _json_field(rec.get("evaluation"), "evaluation")
    if not isinstance(evaluation, dict) or "required" not in evaluation or "unique_columns" not in evaluation:
        raise RecordError("'evaluation' must be a JSON object with 'unique_columns' and 'required'")
    if gold.startswith("\ufeff"):
        gold = gold[1:]
    label = TaskLabel(
        instance_id=iid,
        kind="table",
        language=str(rec.get("language") or "en"),
        source=source,
        gold_table=gold,
        gold_format="csv",
        unique_columns=[str(c) for c in evaluation["unique_columns"]],
        required_columns=[str(c) for c in evaluation["required"]],
        evaluation=evaluation,
    )
    return {"prompt": query, "label": label.to_label(), "datasource": source, "instance_id": iid}


def read_records(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, record)`` pairs from a JSONL, JSON-array or parquet file (``where`` names file and line)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    if p.suffix == ".parquet":
        from datasets import Dataset

        for i, rec in enumerate(Dataset.from_parquet(str(p))):
            yield f"{p}:row {i + 1}", dict(rec)
        return
    with p.open(encoding="utf-8") as f:
        head = f.read(1)
        while head and head.isspace():
            head = f.read(1)
        f.seek(0)
        if head == "[":
            try:
                items = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}: not valid JSON: {e}") from None
            for i, rec in enumerate(items):
                yield f"{p}:item {i + 1}", rec
            return
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield f"{p}:{lineno}", json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}:{lineno}: not valid JSON: {e}") from None


@dataclass
class ConvertStats:
    written: int = 0
    eval_written: int = 0
    skipped: list[str] = field(default_factory=list)
    duplicates: int = 0
    by_datasource: Counter = field(default_factory=Counter)


def convert_all(
    items: Iterable[tuple[str, dict[str, Any]]],
    convert: Any,
    *,
    on_error: Literal["raise", "skip"] = "raise",
    stats: ConvertStats,
) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for where, rec in items:
        if not isinstance(rec, dict):
            err = f"{where}: a record must be a JSON object"
            if on_error == "raise":
                raise ValueError(err)
            stats.skipped.append(err)
            continue
        try:
            row = convert(rec)
        except RecordError as e:
            if on_error == "raise":
                raise ValueError(f"{where}: {e}") from None
            stats.skipped.append(f"{where}: {e}")
            continue
        if row["instance_id"] in seen:
            stats.duplicates += 1  # the same task twice would double its weight in every epoch
            continue
        seen.add(row["instance_id"])
        out.append(row)
    return out


def synthetic_world_rows(
    seed: int,
    categories: int,
    entities: int,
    named_count: int,
    corpus_out: Path,
    *,
    on_error: Literal["raise", "skip"] = "raise",
    stats: ConvertStats,
) -> list[dict[str, str]]:
    """Generate the benchmark's synthetic world (``langgraph_wideseek.testing``), write its corpus, and
    return its tasks (a list task and a named task per category) as dataset rows."""
    from langgraph_wideseek.testing import World

    world = World.generate(seed, categories, entities)
    world.write_corpus(corpus_out)
    tasks = world.tasks(named_count=min(named_count, entities))
    golds = {t.instance_id: t.gold_csv() for t in tasks}
    items = ((f"world {seed}: {t.instance_id}", t.record()) for t in tasks)
    return convert_all(
        items,
        lambda r: convert_widesearch_task(r, golds[r["instance_id"]], source="synthetic"),
        on_error=on_error,
        stats=stats,
    )


def write_dataset(rows: list[dict[str, str]], path: str | Path) -> None:
    """Write rows with ``datasets`` as JSONL (``.jsonl``/``.json``) or parquet (``.parquet``)."""
    from datasets import Dataset, Features, Value

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    features = Features({k: Value("string") for k in ("prompt", "label", "datasource", "instance_id")})
    ds = (
        Dataset.from_list(rows, features=features)
        if rows
        else Dataset.from_dict({k: [] for k in features}, features=features)
    )
    tmp = p.with_name(p.name + ".part")
    try:
        if p.suffix == ".parquet":
            ds.to_parquet(str(tmp))
        elif p.suffix in (".jsonl", ".json"):
            ds.to_json(str(tmp), lines=True, force_ascii=False)
        else:
            raise ValueError(f"{p}: output must end in .jsonl, .json or .parquet")
        tmp.replace(p)
    finally:
        tmp.unlink(missing_ok=True)


def split_and_write(
    rows: list[dict[str, str]],
    out: str | Path,
    *,
    eval_out: str | Path | None,
    eval_size: int,
    shuffle: bool,
    seed: int,
    limit: int | None,
    stats: ConvertStats,
) -> None:
    if shuffle:
        random.Random(seed).shuffle(rows)
    eval_rows: list[dict[str, str]] = []
    if eval_out is not None:
        if eval_size <= 0 or eval_size >= len(rows):
            raise ValueError(f"--eval-size must be between 1 and {len(rows) - 1} for {len(rows)} tasks")
        eval_rows, rows = rows[:eval_size], rows[eval_size:]
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise ValueError("no tasks to write")
    write_dataset(rows, out)
    stats.written = len(rows)
    stats.by_datasource.update(r["datasource"] for r in rows)
    if eval_out is not None:
        write_dataset(eval_rows, eval_out)
        stats.eval_written = len(eval_rows)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output .jsonl or .parquet")
    p.add_argument("--eval-out", help="also write a held-out eval set here (for --eval.dataset)")
    p.add_argument("--eval-size", type=int, default=0, help="tasks held out into --eval-out")
    p.add_argument("--shuffle", action="store_true", help="shuffle before splitting (seeded)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="keep at most N training tasks")
    p.add_argument(
        "--on-error",
        choices=["raise", "skip"],
        default="raise",
        help="a malformed record stops the run (default) or is skipped and reported",
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.data", description="Build OpenRLHF prompt datasets for WideSeek training."
    )
    sub = p.add_subparsers(dest="source", required=True)
    w = sub.add_parser("wideseek-r1", help="WideSeek-R1 training files (width/depth/hybrid format)")
    w.add_argument("inputs", nargs="+", help=".jsonl/.json/.parquet files")
    _common(w)
    ws = sub.add_parser("widesearch", help="WideSearch-format tasks plus gold CSVs")
    ws.add_argument("--tasks", required=True, help="tasks .jsonl (instance_id, query, evaluation, language)")
    ws.add_argument("--gold", required=True, help="folder of <instance_id>.csv gold tables")
    _common(ws)
    syn = sub.add_parser(
        "synthetic",
        help="synthetic tasks: generated from the benchmark world (--world-seed), or read from files "
        "in WideSeek-R1 or WideSearch format",
    )
    syn.add_argument("inputs", nargs="*", help="task files (omit with --world-seed)")
    syn.add_argument("--gold", help="gold CSV folder, when the task files are in WideSearch format")
    syn.add_argument("--world-seed", type=int, help="generate a synthetic world with this seed")
    syn.add_argument("--categories", type=int, default=20, help="categories of the generated world")
    syn.add_argument("--entities", type=int, default=8, help="entities per category")
    syn.add_argument("--named-count", type=int, default=4, help="entities named in each 'named' task")
    syn.add_argument(
        "--corpus-out",
        help="with --world-seed: write the world's corpus here (JSONL) for the local search backend",
    )
    _common(syn)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # one summary line instead of a progress bar per file
    stats = ConvertStats()
    try:
        if args.source == "widesearch":
            gold = Path(args.gold)
            if not gold.is_dir():
                raise ValueError(f"--gold {gold} is not a folder")
            rows = convert_all(
                read_records(args.tasks),
                lambda r: convert_widesearch_record(r, gold),
                on_error=args.on_error,
                stats=stats,
            )
        elif args.source == "synthetic" and args.world_seed is not None:
            if args.inputs:
                raise ValueError("give task files or --world-seed, not both")
            if not args.corpus_out:
                raise ValueError("--world-seed needs --corpus-out (the corpus the generated tasks are about)")
            rows = synthetic_world_rows(
                args.world_seed,
                args.categories,
                args.entities,
                args.named_count,
                Path(args.corpus_out),
                on_error=args.on_error,
                stats=stats,
            )
        else:
            if not args.inputs:
                raise ValueError("no task files given")
            source = "wideseek-r1" if args.source == "wideseek-r1" else "synthetic"

            def items() -> Iterator[tuple[str, dict[str, Any]]]:
                for path in args.inputs:
                    yield from read_records(path)

            def convert(rec: dict[str, Any]) -> dict[str, str]:
                if source == "synthetic" and "query" in rec and "question" not in rec:
                    if not args.gold:
                        raise RecordError("WideSearch-format synthetic task: pass --gold")
                    return convert_widesearch_record(rec, Path(args.gold), source=source)
                return convert_wideseek_record(rec, source=source)

            rows = convert_all(items(), convert, on_error=args.on_error, stats=stats)
        split_and_write(
            rows,
            args.out,
            eval_out=args.eval_out,
            eval_size=args.eval_size,
            shuffle=args.shuffle,
            seed=args.seed,
            limit=args.limit,
            stats=stats,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for s in stats.skipped:
        print(f"skipped {s}", file=sys.stderr)
    parts = ", ".join(f"{k}: {v}" for k, v in sorted(stats.by_datasource.items()))
    print(
        f"wrote {stats.written} tasks to {args.out} ({parts})"
        + (f"; {stats.eval_written} to {args.eval_out}" if args.eval_out else "")
        + (f"; skipped {len(stats.skipped)}" if stats.skipped else "")
        + (f"; dropped {stats.duplicates} duplicate ids" if stats.duplicates else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
