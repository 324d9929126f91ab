"""On-disk cache of pages read from the web or through Tavily.

An eval of 200 tasks x 4 samples reads many pages more than once; a cache makes reruns cheap and repeatable.
Entries live under ``<cache_dir>/pages/<2 hex>/<sha256 of the URL>.json``: the file name never reveals the
URL, writes are atomic (:func:`~langgraph_wideseek.runtime.atomic_write_text`), so concurrent workers and
crashes never leave a half-written entry, and a corrupt or expired entry reads as a miss. File I/O runs in a
worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from pathlib import Path

from pydantic import ValidationError

from ..runtime import atomic_write_text
from .base import Page

__all__ = ["DEFAULT_TTL", "PageCache"]

log = logging.getLogger(__name__)

DEFAULT_TTL = 7 * 24 * 3600.0
_FORMAT = 1


class PageCache:
    """Pages by URL with a time to live (seconds; ``None`` keeps entries forever)."""

    def __init__(
        self, root: str | Path, *, ttl: float | None = DEFAULT_TTL, namespace: str = "pages"
    ) -> None:
        if ttl is not None and ttl <= 0:
            raise ValueError("ttl must be > 0 or None")
        self.root = Path(root).expanduser() / namespace
        self.ttl = ttl

    def path_for(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode("utf-8")).hexdigest()
        return self.root / digest[:2] / f"{digest}.json"

    # Synchronous versions do the work; the async ones keep file I/O off the event loop.
    def get_sync(self, url: str, *, now: float | None = None) -> Page | None:
        path = self.path_for(url)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("page cache: cannot read %s: %s", path, e.strerror)
            return None
        try:
            entry = json.loads(raw)
            if entry.get("format") != _FORMAT or entry.get("url") != url:
                raise ValueError("unexpected entry")  # a hash collision or an older layout
            stored = float(entry["stored_at"])
            page = Page.model_validate(entry["page"])
        except (ValueError, KeyError, TypeError, ValidationError):
            log.warning("page cache: dropping unreadable entry %s", path.name)
            path.unlink(missing_ok=True)
            return None
        now = time.time() if now is None else now
        if self.ttl is not None and now - stored > self.ttl:
            return None
        return page

    def put_sync(self, url: str, page: Page, *, now: float | None = None) -> None:
        path = self.path_for(url)
        entry = {
            "format": _FORMAT,
            "url": url,
            "stored_at": time.time() if now is None else now,
            "page": page.model_dump(),
        }
        try:
            atomic_write_text(path, json.dumps(entry, ensure_ascii=False))
        except OSError as e:
            # A full or read-only disk must not fail the read the agent asked for.
            log.warning("page cache: cannot write %s: %s", path.name, e.strerror)

    async def get(self, url: str) -> Page | None:
        return await asyncio.to_thread(self.get_sync, url)

    async def put(self, url: str, page: Page) -> None:
        await asyncio.to_thread(self.put_sync, url, page)
