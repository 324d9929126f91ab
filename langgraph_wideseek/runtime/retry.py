"""Retry with exponential backoff and jitter, shared by the model client, the judge and the backends."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ..errors import RetryableError

T = TypeVar("T")

__all__ = ["RetryPolicy", "RetryableError", "parse_retry_after", "retry_async"]


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` extra attempts after the first; delay ``base_delay * 2**k`` capped at ``max_delay``."""

    retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    jitter: float = 0.25

    def delay(self, attempt: int, hint: float | None = None) -> float:
        if (
            hint is not None and hint >= 0
        ):  # a server's Retry-After wins, capped so a bad header cannot stall us
            return min(hint, self.max_delay * 3)
        d = min(self.max_delay, self.base_delay * (2**attempt))
        return d * (1 + random.uniform(-self.jitter, self.jitter))


async def retry_async(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Run ``attempt`` until it returns, retrying :class:`RetryableError` up to ``policy.retries`` times.

    The last error propagates unchanged, so callers see why the request finally failed.
    """
    k = 0
    while True:
        try:
            return await attempt()
        except RetryableError as e:
            if k >= policy.retries:
                raise
            wait = policy.delay(k, e.retry_after)
            if on_retry is not None:
                on_retry(k + 1, e, wait)
            k += 1
            await asyncio.sleep(wait)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff
