"""``wideseek run``: answer one question; the answer goes to stdout, progress to stderr."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..config import WideSeekConfig
from ..graph.trajectory import Status
from .common import add_agent_args, build_graph, config_from_args


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
    return await run_question(cfg, question, trajectory=args.trajectory, as_json=args.json, quiet=args.quiet)


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
    if trajectory:
        write_jsonl(trajectory, [result.trajectory])
    if as_json:
        out = {
            "answer": result.answer,
            "table": result.table,
            "boxed": result.boxed,
            "status": result.status,
            "errors": result.errors,
            "usage": result.usage.model_dump(),
            "rollout_id": result.trajectory.rollout_id,
        }
        print(json.dumps(out, ensure_ascii=False))
    elif result.answer is not None:
        print(result.answer)
    for err in result.errors if not quiet and not as_json else []:
        print(f"[error] {err}", file=sys.stderr)
    if result.status != Status.OK:
        print("wideseek: the lead agent failed to produce an answer", file=sys.stderr)
        return 1
    return 0
