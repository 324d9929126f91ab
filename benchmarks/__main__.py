"""``python -m benchmarks [--quick] [--only NAME ...]``: run every benchmark, then render the page
docs/benchmarks.md."""

from __future__ import annotations

import argparse
import time

from . import overhead, prefix, scale, search, width
from .harness import write_result
from .report import render

BENCHMARKS = {"width": width, "overhead": overhead, "scale": scale, "search": search, "prefix": prefix}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller sizes: a smoke run of a minute or two")
    p.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    args = p.parse_args()
    for name in args.only or list(BENCHMARKS):
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        data = BENCHMARKS[name].run(args.quick)
        write_result(name, {"quick": args.quick, **data})
        print(f"== {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    print(render())


if __name__ == "__main__":
    main()
