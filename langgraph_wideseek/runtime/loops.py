"""Objects that belong to one event loop, and the limits built from them.

asyncio primitives and HTTP connection pools bind to the loop that first uses them, so a graph (or a backend,
or a judge) used by successive ``asyncio.run`` calls, or from a thread with its own loop, needs one of each
per loop. :class:`LoopLocal` is the one helper for that: it builds the object lazily on the running loop, keys
it weakly by loop, and, given ``close``, closes it on its own loop when that loop shuts down (``asyncio.run``
closes every live async generator before it closes the loop, and each closable object is held open by one) or
on :meth:`LoopLocal.aclose`. Everything loop-bound in the package goes through it: HTTP sessions of the model
transport and the retrieval client, Tavily clients, semaphores, rate-limit buckets, micro-batch queues.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["ENDPOINT_LIMITERS", "EndpointLimiters", "LoopLocal", "LoopLocalSemaphore", "RateLimiter"]


class LoopLocal(Generic[T]):
    """One ``T`` per running event loop, built by ``factory`` on first use.

    ``close`` (an async function) makes the objects closable: each is closed on its own loop when that loop
    shuts down, or when :meth:`aclose` is awaited on it. ``stale(obj)`` says an object can no longer be used
    (a session closed by someone else): the next :meth:`get` builds a new one.
    """

    def __init__(
        self,
        factory: Callable[[], T],
        *,
        close: Callable[[T], Awaitable[object]] | None = None,
        stale: Callable[[T], bool] | None = None,
    ) -> None:
        self._factory = factory
        self._close = close
        self._stale = stale
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[T, AsyncGenerator[None, None] | None]
        ] = weakref.WeakKeyDictionary()

    def get(self) -> T:
        """This loop's object (built now if there is none). Must be called from a running loop."""
        loop = asyncio.get_running_loop()
        entry = self._by_loop.get(loop)
        if entry is not None and (self._stale is None or not self._stale(entry[0])):
            return entry[0]
        value = self._factory()
        keeper = None
        if self._close is not None:
            keeper = self._keep(value)
            _run_to_first_yield(keeper)
        self._by_loop[loop] = (value, keeper)
        return value

    def peek(self) -> T | None:
        """This loop's object if it exists (``None`` outside a loop or before first use); never builds one."""
        try:
            entry = self._by_loop.get(asyncio.get_running_loop())
        except RuntimeError:
            return None
        return None if entry is None else entry[0]

    async def aclose(self) -> None:
        """Close this loop's object now (objects of other loops close when their loop shuts down)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        entry = self._by_loop.pop(loop, None)
        if entry is None:
            return
        _, keeper = entry
        if keeper is not None:
            await keeper.aclose()  # runs the keeper's finally: the one place objects are closed

    async def _keep(self, value: T) -> AsyncGenerator[None, None]:
        """Hold ``value`` open until :meth:`aclose` or the loop's shutdown, then close it on that loop."""
        try:
            yield
        finally:
            loop = asyncio.get_running_loop()
            entry = self._by_loop.get(loop)
            if entry is not None and entry[0] is value:
                del self._by_loop[loop]
            assert self._close is not None
            await self._close(value)


def _run_to_first_yield(agen: AsyncGenerator[None, None]) -> None:
    """Start ``agen`` synchronously (its body does not await before the first ``yield``).

    Starting it registers it with the running loop's async-generator hooks, which is what makes
    ``asyncio.run`` close it (and with it, the object it holds) before the loop closes.
    """
    step = agen.__anext__()
    try:
        step.send(None)
    except StopIteration:
        return
    raise RuntimeError("a LoopLocal keeper awaited before its first yield")


class LoopLocalSemaphore:
    """A semaphore of ``limit`` slots per running event loop."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self._sems: LoopLocal[asyncio.Semaphore] = LoopLocal(lambda: asyncio.Semaphore(limit))

    def get(self) -> asyncio.Semaphore:
        return self._sems.get()

    def in_use(self) -> int:
        sem = self._sems.peek()
        return 0 if sem is None else self.limit - sem._value  # read-only peek for stats

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._sems.get():
            yield


@dataclass
class _Bucket:
    tokens: float
    stamp: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RateLimiter:
    """A token bucket: at most ``rate`` acquisitions per second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.burst = burst or max(1, int(rate))
        self._buckets: LoopLocal[_Bucket] = LoopLocal(lambda: _Bucket(float(self.burst)))

    async def acquire(self) -> None:
        b = self._buckets.get()
        async with b.lock:
            while True:
                now = time.monotonic()
                b.tokens = min(self.burst, b.tokens + (now - b.stamp) * self.rate)
                b.stamp = now
                if b.tokens >= 1:
                    b.tokens -= 1
                    return
                await asyncio.sleep((1 - b.tokens) / self.rate)


class EndpointLimiters:
    """One :class:`LoopLocalSemaphore` per endpoint URL: every client of one server shares its slots."""

    def __init__(self) -> None:
        self._by_endpoint: dict[tuple[str, int], LoopLocalSemaphore] = {}

    def for_endpoint(self, base_url: str, limit: int) -> LoopLocalSemaphore:
        key = (base_url, limit)
        sem = self._by_endpoint.get(key)
        if sem is None:
            sem = self._by_endpoint[key] = LoopLocalSemaphore(limit)
        return sem


# The process-wide registry: an explicit cache, so that several graphs pointed at one server share its limit.
ENDPOINT_LIMITERS = EndpointLimiters()
