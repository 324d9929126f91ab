"""MicroBatcher: coalescing, per-item errors, whole-batch failures, cancelled waiters."""

from __future__ import annotations

import asyncio

import pytest

from langgraph_wideseek.runtime.batcher import MicroBatcher


async def test_same_tick_submissions_form_one_batch() -> None:
    batches: list[list[int]] = []

    async def run(items: list[int]) -> list[int | BaseException]:
        batches.append(items)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    b = MicroBatcher(run, max_batch=10, max_wait=0)
    out = await asyncio.gather(*(b.submit(i) for i in range(4)), return_exceptions=True)
    assert batches == [[0, 1, 2, 3]]
    assert out[0] == 0 and out[2] == 20
    assert isinstance(out[1], ValueError) and str(out[3]) == "odd 3"


async def test_max_batch_splits_and_a_failing_batch_fails_its_waiters_only() -> None:
    batches: list[list[str]] = []

    async def run(items: list[str]) -> list[str | BaseException]:
        batches.append(items)
        if "bad" in items:
            raise RuntimeError("server down")
        return [s.upper() for s in items]

    b = MicroBatcher(run, max_batch=2, max_wait=0.01)
    out = await asyncio.gather(*(b.submit(s) for s in ["a", "bad", "c", "d", "e"]), return_exceptions=True)
    assert batches == [["a", "bad"], ["c", "d"], ["e"]]
    assert isinstance(out[0], RuntimeError) and isinstance(out[1], RuntimeError)
    assert out[2:] == ["C", "D", "E"]


async def test_wrong_result_count_is_an_error_not_a_hang() -> None:
    async def run(items: list[int]) -> list[int | BaseException]:
        return [1]

    b = MicroBatcher(run, max_wait=0)
    with pytest.raises(RuntimeError, match="returned 1 results for 2 items"):
        await asyncio.gather(b.submit(1), b.submit(2))


async def test_cancelled_waiters_drop_out_of_the_batch() -> None:
    seen: list[list[int]] = []

    async def run(items: list[int]) -> list[int | BaseException]:
        seen.append(items)
        return items

    b = MicroBatcher(run, max_wait=0.05)
    doomed = asyncio.create_task(b.submit(1))
    kept = asyncio.create_task(b.submit(2))
    await asyncio.sleep(0)
    doomed.cancel()
    assert await kept == 2
    assert seen == [[2]]


def test_parameters_are_validated() -> None:
    async def run(items: list[int]) -> list[int | BaseException]:
        return items

    with pytest.raises(ValueError):
        MicroBatcher(run, max_batch=0)
    with pytest.raises(ValueError):
        MicroBatcher(run, max_wait=-1)
