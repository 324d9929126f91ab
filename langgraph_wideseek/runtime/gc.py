"""Process-level settings for processes that run many rollouts at once (evaluation, RL rollout actors).

CPython's cyclic garbage collector runs a young-generation pass every 700 net allocations of container
objects and a full pass as the heap grows. An agent rollout allocates many short-lived containers (messages,
JSON bodies, LangChain/LangGraph bookkeeping) and keeps large live ones (histories, token-id lists), so with
hundreds of concurrent rollouts the collector spends its time re-scanning live data: measured at 300
concurrent rollouts (docs/benchmarks.md), it took half of the client's CPU. :func:`tune_gc` makes passes
rarer; memory per rollout did not change measurably, because rollout state is freed by reference counting,
not by the collector.

This changes a process-wide setting, so the library never calls it on its own: call it once at start-up in
a process whose job is running rollouts.
"""

from __future__ import annotations

import gc


def tune_gc(
    young: int = 50_000, middle: int = 20, old: int = 100, *, freeze: bool = True
) -> tuple[int, int, int]:
    """Raise the collector's thresholds (defaults 700, 10, 10) and, with ``freeze``, move every object alive
    now (imported modules, compiled graphs) out of the collector's sight. Returns the previous thresholds."""
    if young < 1 or middle < 1 or old < 1:
        raise ValueError("gc thresholds must be >= 1 (use gc.disable() to turn collection off)")
    previous = gc.get_threshold()
    gc.set_threshold(young, middle, old)
    if freeze:
        gc.collect()
        gc.freeze()
    return previous
