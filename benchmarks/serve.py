"""The simulated vLLM endpoint as its own process, so a benchmark's process CPU is the client's alone.

``python -m benchmarks.serve --policy wideseek --think-tokens 100 --base 0.02 --per-token 1e-4`` prints
``PORT <n>`` on stdout once it listens on 127.0.0.1, then serves until terminated. ``GET /stats`` returns the
counters, ``POST /stats/reset`` zeroes them (between warm-up and measurement).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from langgraph_wideseek.testing import FakeOpenAIServer, LatencyModel, Reply, WideSeekPolicy, filler_text


class StaticPolicy:
    """Every request gets the same typical subagent turn: some reasoning and one ``search`` call (the
    reference-point loops measure client cost per call, not protocol logic)."""

    def __init__(self, think_tokens: int) -> None:
        self.reply = Reply(
            reasoning=filler_text(think_tokens, "static"),
            tool_calls=[{"name": "search", "arguments": {"queries": [{"query": "q", "count": 3}]}}],
        )

    def __call__(self, request: dict) -> Reply:
        return self.reply


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--policy", choices=["wideseek", "static"], default="wideseek")
    p.add_argument("--think-tokens", type=int, default=0)
    p.add_argument("--reply-tokens", type=int, default=0)
    p.add_argument("--max-per-wave", type=int, default=10)
    p.add_argument("--base", type=float, default=0.0, help="seconds per request")
    p.add_argument("--per-token", type=float, default=0.0, help="seconds per generated token")
    p.add_argument(
        "--per-token-inflight",
        type=float,
        default=0.0,
        help="extra seconds per generated token for each other request in flight",
    )
    p.add_argument(
        "--fixed-tokens",
        type=int,
        default=None,
        help="charge this many generated tokens per request instead of the real count",
    )
    p.add_argument("--track-prefix", action="store_true")
    return p


async def serve(args: argparse.Namespace) -> None:
    if args.policy == "static":
        policy = StaticPolicy(args.think_tokens)
    else:
        policy = WideSeekPolicy(
            think_tokens=args.think_tokens, reply_tokens=args.reply_tokens, max_per_wave=args.max_per_wave
        )
    latency = LatencyModel(args.base, args.per_token, args.per_token_inflight, args.fixed_tokens)
    server = FakeOpenAIServer(policy, latency=latency, record_requests=False, track_prefix=args.track_prefix)
    await server.start()
    print(f"PORT {server.port}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:  # the server is harness, not subject: make it as cheap as possible so it never is the bottleneck
        import uvloop
    except ImportError:
        asyncio.run(serve(args))
    else:
        uvloop.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
