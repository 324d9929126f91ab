"""The ``wideseek`` command. Each subcommand lives in its own module exposing ``register(subparsers)``."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import sys
from collections.abc import Sequence

from .exits import EXIT_INTERRUPTED

# Subcommand modules, in help order. A module missing from an install (a trimmed build) is skipped.
SUBCOMMANDS = ("run", "index", "eval", "serve_index", "simulate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wideseek",
        description=(
            "WideSeek-R1 on LangGraph: a lead agent with parallel subagents for broad information seeking."
        ),
    )
    version = f"wideseek {_version()}"
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging on stderr (-vv: debug)"
    )
    parser.add_argument("--version", action="version", version=version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":
                continue
            raise
        module.register(sub)
    for command in sub.choices.values():  # `wideseek COMMAND --version` works too
        command.add_argument("--version", action="version", version=version)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    func = args.func
    try:
        result = func(args)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
