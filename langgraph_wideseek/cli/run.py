"""``wideseek run``: answer one question; the answer goes to stdout, progress to stderr.

Exit status (also in the README and docs/failure-modes.md):

- 0: answered;
- 1: no answer: the lead agent failed, or its answer is empty;
- 2: invalid input or configuration, or an output path that cannot be written: nothing was run;
- 3: an answer, but every search call failed, so it rests on no search results at all;
- 4: an answer (printed), but the trajectory could not be written;
- 130: interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..config import WideSeekConfig
from ..errors import OutputPathError
from ..graph.result import WideSeekResult
from ..graph.trajectory import Status
from ..runtime import check_writable_file
from .common import add_agent_args, build_graph, config_from_args
from .exits import EXIT_NO_ANSWER, EXIT_NO_EVIDENCE, EXIT_OK, EXIT_OUTPUT_FAILED, EXIT_USAGE


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="answer one question with the lead agent and parallel subagents",
        description="Answer QUESTION (or '-' to read it from stdin). The final answer is printed "
        "on stdout; progress of lead turns and subagents goes to stderr.",
    )
    p.add_argument("question", help="the task, or '-' for stdin")
    add_agent_args(p)
    p.add_argument("--trajectory", help="append the rollout trajectory (JSONL) to this file")
    p.add_argument(
        "--json", action="store_true", help="print one JSON object: answer, table, errors, usage, ..."
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run_command)


class Progress:
    """Progress lines on stderr, one per event (plain text: it is often piped to a log)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.done = 0
        self.wave_size = 0

    def __call__(self, ev: dict[str, Any]) -> None:
        if not self.enabled:
            return
        kind = ev.get("type")
        if kind == "lead_turn":
            line = f"[lead] turn {ev['turn']}"
        elif kind == "wave":
            self.done, self.wave_size = 0, ev["subagents"]
            line = f"[lead] wave {ev['wave']}: {ev['subagents']} subagent(s) started"
        elif kind == "subagent_done":
            self.done += 1
            status = "ok" if ev["status"] == Status.OK else f"FAILED ({ev.get('error')})"
            line = (
                f"[subagent {ev['agent_id']}] {status} after {ev['turns']} turn(s) "
                f"[{self.done}/{self.wave_size}]"
            )
        elif kind == "final":
            line = f"[lead] finished: {ev['status']}"
        else:
            return
        print(line, file=sys.stderr, flush=True)


async def run_command(args: argparse.Namespace) -> int:
    question = sys.stdin.read() if args.question == "-" else args.question
    if not question.strip():
        print("wideseek: the question is empty", file=sys.stderr)
        return 2
    cfg = config_from_args(args)
    if args.trajectory:
        try:  # before any model call: a path we cannot write must not cost a whole run
            check_writable_file(args.trajectory, "trajectory file")
        except OutputPathError as e:
            print(f"wideseek: {e}", file=sys.stderr)
            return EXIT_USAGE
    return await run_question(cfg, question, trajectory=args.trajectory, as_json=args.json, quiet=args.quiet)


def outcome(result: WideSeekResult) -> tuple[int, str | None]:
    """(exit status, why the run did not succeed) of a finished run; see the module docstring."""
    if result.status != Status.OK or result.answer is None:
        lead = next((e for e in result.errors if e.startswith("lead: ")), None)
        return EXIT_NO_ANSWER, "the lead agent failed to produce an answer" + (f" ({lead})" if lead else "")
    if not result.answer.strip():
        return EXIT_NO_ANSWER, "the lead agent's answer is empty"
    if result.no_evidence:
        return EXIT_NO_EVIDENCE, result.no_evidence
    return EXIT_OK, None


def tool_summary(result: WideSeekResult) -> str:
    """One line of tool counts per tool: calls, calls whose every item failed, failed items."""
    counts = sorted(result.tools.items())
    return "; ".join(
        f"{name}: {c.calls} call(s), {c.failed} failed entirely, {c.failed_items} of {c.items} item(s) failed"
        for name, c in counts
    )


async def run_question(
    cfg: WideSeekConfig, question: str, *, trajectory: str | None, as_json: bool, quiet: bool
) -> int:
    from ..graph.trajectory import write_jsonl

    graph = build_graph(cfg)
    if graph is None:
        return 2
    try:
        result = await graph.arun(question, on_event=Progress(not quiet))
    finally:
        await graph.aclose()
    code, reason = outcome(result)
    write_error = None
    if trajectory:
        try:
            write_jsonl(trajectory, [result.trajectory])
        except OSError as e:  # checked up front, yet the disk may fill or the path change meanwhile
            write_error = f"cannot write the trajectory to {trajectory!r}: {e.strerror or e}"
            code, reason = (code, reason) if code else (EXIT_OUTPUT_FAILED, write_error)
    # The answer first: whatever failed afterwards, what the run produced is not lost.
    if as_json:
        out = {
            "answer": result.answer,
            "table": result.table,
            "boxed": result.boxed,
            "status": Status.OK.value if code == EXIT_OK else Status.FAILED.value,
            "exit_code": code,
            "reason": reason,
            "errors": result.errors + ([write_error] if write_error else []),
            "tools": {name: c.model_dump() for name, c in result.tools.items()},
            "usage": result.usage.model_dump(),
            "rollout_id": result.trajectory.rollout_id,
        }
        print(json.dumps(out, ensure_ascii=False), flush=True)
    elif result.answer is not None:
        print(result.answer, flush=True)
    if not quiet and not as_json:
        for err in result.errors:
            print(f"[error] {err}", file=sys.stderr)
        if any(c.failed_items for c in result.tools.values()):  # partial failures: counted, not fatal
            print(f"[tools] {tool_summary(result)}", file=sys.stderr)
    if write_error:
        print(f"wideseek: {write_error}", file=sys.stderr)
    if reason and reason != write_error:
        print(f"wideseek: {reason}", file=sys.stderr)
    return code
