"""``wideseek eval`` (run the agent over WideSearch tasks, then score) and ``wideseek score`` (score
replies)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .common import add_agent_args, build_graph, config_from_args


def _add_task_args(p: argparse.ArgumentParser, *, responses: bool) -> None:
    g = p.add_argument_group("tasks")
    g.add_argument(
        "--tasks",
        default="hf",
        help="WideSearch tasks: a JSONL file (WideSearch or WideSeek-R1 training format), or 'hf' for "
        "the hub dataset ByteDance-Seed/WideSearch (default)",
    )
    g.add_argument(
        "--gold",
        help="folder of <instance_id>.csv gold tables (default: widesearch_gold/ beside the "
        "tasks file, or the hub copy)",
    )
    g.add_argument("--limit", type=int, help="only the first N tasks")
    g.add_argument("--ids", help="only these instance ids (comma-separated)")
    if responses:
        g.add_argument(
            "--responses",
            required=True,
            help='JSONL of replies to score: {"instance_id", "sample", "response"} per line',
        )
    g.add_argument("--out", required=True, help="output folder (scores.jsonl, summary.json, report.md, ...)")
    g.add_argument(
        "--samples",
        type=int,
        default=None if responses else 4,
        help="trials per task, the N of Avg@N"
        + (" (default: from the responses)" if responses else " (default 4)"),
    )


def _add_judge_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "judge (column mapping, key alignment and llm_judge columns; the published numbers used gpt-4.1)"
    )
    g.add_argument(
        "--judge-base-url",
        default=os.environ.get("WIDESEEK_JUDGE_BASE_URL"),
        help="OpenAI-compatible endpoint of the judge model (env WIDESEEK_JUDGE_BASE_URL)",
    )
    g.add_argument(
        "--judge-model",
        default=os.environ.get("WIDESEEK_JUDGE_MODEL"),
        help="judge model name (env WIDESEEK_JUDGE_MODEL)",
    )
    g.add_argument(
        "--judge-api-key",
        default=None,
        help="judge API key (prefer the WIDESEEK_JUDGE_API_KEY variable; OPENAI_API_KEY is not used, "
        "so the agent's key never goes to the judge's host)",
    )
    g.add_argument(
        "--judge-temperature", type=float, help="sent only when given (the official scorer sent none)"
    )
    g.add_argument("--judge-max-tokens", type=int)
    g.add_argument("--judge-concurrency", type=int, default=16, help="judge requests in flight (default 16)")
    g.add_argument(
        "--judge-cache", help="judge reply cache folder (default OUT/judge_cache; 'none' disables)"
    )
    g.add_argument(
        "--exact-judge",
        action="store_true",
        help="no model: identity alignment and string-equal grading (offline, stricter than a model)",
    )


def build_judge(args: argparse.Namespace) -> tuple[Any, str | None]:
    """The judge the flags ask for, and a warning to print (or None)."""
    from ..eval import ExactJudge, OpenAIJudge

    if args.exact_judge or not args.judge_base_url:
        warning = (
            None
            if args.exact_judge
            else (
                "no --judge-base-url given: scoring with the exact judge (string equality for llm_judge "
                "columns); "
                "numbers are not comparable with published ones"
            )
        )
        return ExactJudge(), warning
    if not args.judge_model:
        raise SystemExit("wideseek: --judge-model is required with --judge-base-url")
    cache: str | None = args.judge_cache or str(Path(args.out) / "judge_cache")
    if cache == "none":
        cache = None
    key = args.judge_api_key or os.environ.get("WIDESEEK_JUDGE_API_KEY")
    judge = OpenAIJudge(
        args.judge_base_url,
        args.judge_model,
        key,
        temperature=args.judge_temperature,
        max_tokens=args.judge_max_tokens,
        concurrency=args.judge_concurrency,
        cache_dir=cache,
    )
    return judge, None


def _load(args: argparse.Namespace) -> list[Any] | None:
    """The tasks the flags name (table tasks only), or ``None`` after printing why there are none."""
    from ..eval import TaskLoadError, UnsupportedTaskError, load_tasks
    from ..eval.runner import require_table_tasks

    ids = [i.strip() for i in args.ids.split(",") if i.strip()] if args.ids else None
    try:
        tasks = load_tasks(args.tasks, args.gold, limit=args.limit, ids=ids)
        require_table_tasks(tasks)
    except (TaskLoadError, UnsupportedTaskError) as e:
        print(f"wideseek: {e}", file=sys.stderr)
        return None
    return tasks


def _print_summary(summary: Any, out: str) -> None:
    n = summary.samples
    m = summary.pooled.metrics
    print(
        f"tasks {summary.pooled.tasks}, trials {summary.pooled.trials} (failed runs {summary.failed_trials}, "
        f"judge failures {summary.judge_failures}), judge {summary.judge}"
    )
    print(f"item F1  Avg@{n} {m['item_f1'].avg:5.1f}  Max@{n} {m['item_f1'].max:5.1f}")
    print(f"row F1   Avg@{n} {m['row_f1'].avg:5.1f}  Max@{n} {m['row_f1'].max:5.1f}")
    print(f"success  Avg@{n} {m['success'].avg:5.1f}  Pass@{n} {m['success'].max:5.1f}")
    print(f"report: {Path(out) / 'report.md'}")


async def _close(obj: Any) -> None:
    close = getattr(obj, "aclose", None)
    if close is not None:
        await close()


def _check_counts(args: argparse.Namespace) -> str | None:
    """Why the numeric flags are out of range, or None."""
    from ..eval.runner import MAX_SAMPLES

    if args.samples is not None and not 1 <= args.samples <= MAX_SAMPLES:
        return f"--samples must be from 1 to {MAX_SAMPLES}, not {args.samples}"
    if args.limit is not None and args.limit < 1:
        return f"--limit must be >= 1, not {args.limit}"
    for flag in ("concurrency", "judge_concurrency"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            return f"--{flag.replace('_', '-')} must be >= 1, not {value}"
    return None


def _check_out(args: argparse.Namespace) -> bool:
    """Whether OUT can be written (checked before any task is loaded or model called); prints why not."""
    from ..runtime import OutputPathError, check_writable_dir

    try:
        check_writable_dir(args.out, "output folder (--out)")
    except OutputPathError as e:
        print(f"wideseek: {e}", file=sys.stderr)
        return False
    return True


async def eval_command(args: argparse.Namespace) -> int:
    from ..eval.runner import run_eval

    problem = _check_counts(args)
    if problem:
        print(f"wideseek: {problem}", file=sys.stderr)
        return 2
    tasks = _load(args)
    if tasks is None or not _check_out(args):
        return 2
    cfg = config_from_args(args)
    judge, warning = build_judge(args)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)

    graph = build_graph(cfg)
    if graph is None:
        return 2
    try:
        summary = await run_eval(
            tasks,
            graph.arun,
            judge,
            args.out,
            samples=args.samples,
            concurrency=args.concurrency,
            trial_timeout=args.trial_timeout,
            retry_failed=args.retry_failed,
            progress=not args.no_progress,
        )
    finally:
        await _close(graph)
        await _close(judge)
    _print_summary(summary, args.out)
    return 0


async def score_command(args: argparse.Namespace) -> int:
    from ..eval.runner import load_responses, score_records

    problem = _check_counts(args)
    if problem:
        print(f"wideseek: {problem}", file=sys.stderr)
        return 2
    tasks = _load(args)
    if tasks is None or not _check_out(args):
        return 2
    try:
        records = load_responses(args.responses)
    except (OSError, ValueError) as e:
        print(f"wideseek: {e}", file=sys.stderr)
        return 2
    known = {t.instance_id for t in tasks}
    stray = sorted({r.instance_id for r in records if r.instance_id not in known})
    if stray:
        print(
            f"warning: {len(stray)} instance id(s) in the responses are not among the tasks and are ignored: "
            f"{', '.join(stray[:5])}{' ...' if len(stray) > 5 else ''}",
            file=sys.stderr,
        )
    samples = args.samples or max((r.sample + 1 for r in records if r.instance_id in known), default=1)
    beyond = sorted(
        {(r.instance_id, r.sample) for r in records if r.instance_id in known and r.sample >= samples}
    )
    if beyond:
        iid, sample = beyond[0]
        print(
            f"wideseek: {args.responses}: {len(beyond)} response(s) have a sample index beyond --samples "
            f"{samples} (e.g. {iid!r} sample {sample}); sample indices run from 0 to --samples - 1",
            file=sys.stderr,
        )
        return 2
    judge, warning = build_judge(args)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        summary = await score_records(tasks, records, judge, args.out, samples=samples)
    finally:
        await _close(judge)
    _print_summary(summary, args.out)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="run the agent over WideSearch tasks N times each, then score (resumable)",
        description=(
            "Run the WideSeek graph over every task --samples times (--concurrency at a time), appending "
            "each finished trial to OUT/results.jsonl (and its rollout to OUT/trajectories.jsonl); a rerun "
            "with the same OUT skips finished trials. Then score with the exact WideSearch algorithm and "
            "write OUT/scores.jsonl, OUT/summary.json, OUT/report.md and OUT/scores.png."
        ),
    )
    _add_task_args(p, responses=False)
    g = p.add_argument_group("run")
    g.add_argument("--concurrency", type=int, default=4, help="trials in flight (default 4)")
    g.add_argument(
        "--trial-timeout", type=float, help="seconds one trial may take before it is a failed trial"
    )
    g.add_argument("--retry-failed", action="store_true", help="run failed trials of an earlier run again")
    g.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    _add_judge_args(p)
    add_agent_args(p)
    p.set_defaults(func=eval_command)

    s = sub.add_parser(
        "score",
        help="score existing replies with the exact WideSearch algorithm",
        description=(
            'Score replies ({"instance_id", "sample", "response"} per line; \'trial_idx\' is accepted '
            "for 'sample') and write OUT/scores.jsonl, OUT/summary.json, OUT/report.md and OUT/scores.png. "
            "Trials without a reply score 0 as missing."
        ),
    )
    _add_task_args(s, responses=True)
    _add_judge_args(s)
    s.set_defaults(func=score_command)
