"""Coalesce concurrent single-item requests into one batched request.

The tool layer reads the (up to 5) items of a call concurrently, and during training hundreds of subagents
call tools at once. Servers that take lists (a retrieval server's ``/retrieve`` and ``/access``, Tavily's
``/extract``) answer one request of N items far more cheaply than N requests, so backends submit single items
here and a short window gathers them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .loops import LoopLocal

K = TypeVar("K")
V = TypeVar("V")

#: Runs one batch; returns one value per item, in order, or an exception for an item that failed on its own.
BatchFn = Callable[[list[K]], Awaitable[list["V | BaseException"]]]


@dataclass
class _Pending(Generic[K, V]):
    items: list[tuple[K, asyncio.Future[V]]] = field(default_factory=list)
    timer: asyncio.Handle | None = None
    running: set[asyncio.Task[None]] = field(default_factory=set)


class MicroBatcher(Generic[K, V]):
    """Gathers items submitted within ``max_wait`` seconds (or until ``max_batch``) into one ``run`` call.

    ``max_wait=0`` still batches everything submitted in the same loop iteration, which is what a tool call's
    ``asyncio.gather`` over its items produces.
    """

    def __init__(self, run: BatchFn[K, V], *, max_batch: int = 32, max_wait: float = 0.005) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        if max_wait < 0:
            raise ValueError("max_wait must be >= 0")
        self._run = run
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._state: LoopLocal[_Pending[K, V]] = LoopLocal(_Pending)

    async def submit(self, item: K) -> V:
        st = self._state.get()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[V] = loop.create_future()
        st.items.append((item, fut))
        if len(st.items) >= self.max_batch:
            self._flush(st)
        elif st.timer is None:
            st.timer = (
                loop.call_soon(self._flush, st)
                if self.max_wait == 0
                else loop.call_later(self.max_wait, self._flush, st)
            )
        return await fut

    def _flush(self, st: _Pending[K, V]) -> None:
        if st.timer is not None:
            st.timer.cancel()
            st.timer = None
        batch = [(k, f) for k, f in st.items if not f.done()]  # callers cancelled while waiting drop out
        st.items = []
        if batch:
            task = asyncio.get_running_loop().create_task(self._run_batch(batch))
            st.running.add(
                task
            )  # keep a reference until it finishes, or the task may be collected mid-flight
            task.add_done_callback(st.running.discard)

    async def _run_batch(self, batch: list[tuple[K, asyncio.Future[V]]]) -> None:
        try:
            results = await self._run([k for k, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} items")
        except asyncio.CancelledError:
            for _, fut in batch:
                fut.cancel()
            raise
        except Exception as e:  # noqa: BLE001 - every waiter must learn why its batch failed
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        for (_, fut), res in zip(batch, results):
            if fut.done():
                continue
            if isinstance(res, BaseException):
                fut.set_exception(res)
            else:
                fut.set_result(res)
