"""The on-disk page cache: round trip, TTL, atomic writes, corrupt entries, keys that hide the URL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from langgraph_wideseek.tools.base import Page
from langgraph_wideseek.tools.page_cache import PageCache


def test_round_trip_and_ttl(tmp_path: Path) -> None:
    cache = PageCache(tmp_path, ttl=60)
    url = "https://example.org/a?q=secret-ish"
    page = Page(url=url, title="T", text="body ü 中文")
    assert cache.get_sync(url) is None
    cache.put_sync(url, page, now=1000.0)
    assert cache.get_sync(url, now=1059.0) == page
    assert cache.get_sync(url, now=1061.0) is None  # expired
    assert PageCache(tmp_path, ttl=None).get_sync(url, now=1e12) == page  # no TTL: kept forever
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 1 and "example" not in str(files[0]) and files[0].suffix == ".json"


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path: Path) -> None:
    cache = PageCache(tmp_path)
    for i in range(20):
        cache.put_sync("https://e.org/x", Page(url="https://e.org/x", text=f"version {i}"))
    assert cache.get_sync("https://e.org/x").text == "version 19"
    assert not list(tmp_path.rglob(".tmp-*"))


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"format": 1, "url": "https://other/", "stored_at": 0, "page": {"url": "u", "text": "t"}}),
        json.dumps({"format": 1, "url": "https://e.org/c", "stored_at": "x"}),
        json.dumps({"format": 99}),
    ],
)
def test_unreadable_entries_are_misses_and_are_removed(tmp_path: Path, content: str) -> None:
    cache = PageCache(tmp_path)
    path = cache.path_for("https://e.org/c")
    path.parent.mkdir(parents=True)
    path.write_text(content)
    assert cache.get_sync("https://e.org/c") is None
    assert not path.exists()


def test_unwritable_cache_does_not_fail_the_caller(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = PageCache(blocker)  # root is below a regular file: every write fails
    cache.put_sync("https://e.org/", Page(url="https://e.org/", text="t"))
    assert cache.get_sync("https://e.org/") is None


async def test_async_api(tmp_path: Path) -> None:
    cache = PageCache(tmp_path, namespace="web-pages")
    await cache.put("https://e.org/p", Page(url="https://e.org/p", text="hello"))
    assert (await cache.get("https://e.org/p")).text == "hello"
    assert (tmp_path / "web-pages").is_dir()
    assert os.listdir(tmp_path) == ["web-pages"]


def test_bad_ttl_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        PageCache(tmp_path, ttl=0)
