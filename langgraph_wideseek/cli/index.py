"""``wideseek index``: build the local search index of a corpus ahead of time."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "index",
        help="build the local search index of a JSONL corpus",
        description="Index FILE.jsonl ({url, title, text} per line) for --search local. "
        "The index is cached; running this again on an unchanged corpus is instant.",
    )
    p.add_argument("corpus", help="the corpus file")
    p.add_argument("--index-dir", help="cache folder (default: ~/.cache/langgraph-wideseek/index)")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if a current index exists")
    p.set_defaults(func=index_command)


def index_command(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..tools.local import LocalIndex

    t0 = time.perf_counter()
    try:
        index = LocalIndex.open(args.corpus, args.index_dir, rebuild=args.rebuild)
    except ConfigError as e:  # a missing, unreadable or malformed corpus; an index folder we cannot write
        print(f"wideseek: {e}", file=sys.stderr)
        return 2
    print(
        f"indexed {index.num_pages} pages as {index.num_passages} passages in "
        f"{time.perf_counter() - t0:.2f}s -> {index.path}"
    )
    return 0
