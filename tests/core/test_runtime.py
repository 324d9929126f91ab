"""The async helpers floor: loop-local objects closed with their loop, atomic and durable writes, and the
state reducers applied from their one declaration."""

from __future__ import annotations

import asyncio
import operator
import os
import threading
from pathlib import Path

import pytest

from langgraph_wideseek.graph.state import RESET, LeadState, SubagentState, _reducers, apply_update
from langgraph_wideseek.runtime import DurableAppender, LoopLocal, atomic_write_text


class Resource:
    def __init__(self) -> None:
        self.closed = False
        self.loop = asyncio.get_running_loop()

    async def close(self) -> None:
        assert asyncio.get_running_loop() is self.loop  # closed on its own loop
        self.closed = True


async def _close(r: Resource) -> None:
    await r.close()


def test_one_object_per_loop_closed_when_asyncio_run_ends():
    local: LoopLocal[Resource] = LoopLocal(Resource, close=_close)
    seen: list[Resource] = []

    async def use() -> None:
        a, b = local.get(), local.get()
        assert a is b and local.peek() is a
        seen.append(a)

    asyncio.run(use())
    asyncio.run(use())
    assert len(seen) == 2 and seen[0] is not seen[1]
    assert all(r.closed for r in seen)  # nobody called aclose: the loop's shutdown did


def test_aclose_closes_now_and_the_next_get_builds_anew():
    local: LoopLocal[Resource] = LoopLocal(Resource, close=_close)

    async def go() -> None:
        first = local.get()
        await local.aclose()
        assert first.closed and local.peek() is None
        second = local.get()
        assert second is not first and not second.closed

    asyncio.run(go())


def test_stale_objects_are_replaced_and_loops_in_threads_get_their_own():
    local: LoopLocal[Resource] = LoopLocal(Resource, stale=lambda r: r.closed)
    assert local.peek() is None  # outside a loop

    async def go() -> Resource:
        r = local.get()
        r.closed = True
        assert local.get() is not r
        return local.get()

    main = asyncio.run(go())
    other: list[Resource] = []
    t = threading.Thread(target=lambda: other.append(asyncio.run(go())))
    t.start()
    t.join()
    assert other[0] is not main


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path: Path):
    target = tmp_path / "sub" / "f.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two" and sorted(os.listdir(target.parent)) == ["f.json"]
    with pytest.raises(TypeError):  # a failed write leaves the old file and no temporary behind
        atomic_write_text(target, 3)  # type: ignore[arg-type]
    assert target.read_text() == "two" and sorted(os.listdir(target.parent)) == ["f.json"]


async def test_durable_appender_writes_in_order_off_the_loop_and_cuts_a_partial_tail(tmp_path: Path):
    path = tmp_path / "lines.jsonl"
    path.write_text('{"a": 1}\n{"half": ', encoding="utf-8")  # a killed writer's last line
    out = DurableAppender(path)
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = out._write

    def spy(line: str, sync: bool) -> None:
        seen.append(threading.get_ident())
        original(line, sync)

    out._write = spy  # type: ignore[method-assign]
    await asyncio.gather(*(out.append(str(i), sync=i % 2 == 0) for i in range(20)))
    out.close()
    assert path.read_text(encoding="utf-8").splitlines() == ['{"a": 1}'] + [str(i) for i in range(20)]
    assert loop_thread not in seen


def test_reducers_come_from_the_state_declaration():
    base = {"messages": ["m1"], "turn": 1, "tool_errors": [], "status": "running"}
    out = apply_update(SubagentState, base, {"messages": ["m2"], "turn": 2, "tool_errors": ["e"]})
    assert out == {"messages": ["m1", "m2"], "turn": 2, "tool_errors": ["e"], "status": "running"}
    assert base["messages"] == ["m1"]  # not mutated
    lead = apply_update(LeadState, {"reports": [1, 2], "errors": ["x"]}, {"reports": RESET, "errors": ["y"]})
    assert lead == {"reports": [], "errors": ["x", "y"]}
    assert dict(_reducers(SubagentState))["messages"] is operator.add
