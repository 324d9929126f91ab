"""The ``search`` tool: validate the call, run every query concurrently, format the results as trained."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..errors import BackendError, ToolArgumentError, raise_if_strict
from ..prompts import Prompts
from .args import items_of, text_field
from .base import SearchBackend, SearchHit
from .tally import record

__all__ = ["SearchTool", "format_hits", "parse_search_args"]

log = logging.getLogger(__name__)


def parse_search_args(
    args: Any, *, max_items: int, count_default: int, count_max: int
) -> tuple[list[tuple[str, int]], int]:
    """Return ((query, count) pairs, number dropped over the limit) or raise :class:`ToolArgumentError`."""
    items, dropped = items_of(
        args,
        "queries",
        noun="query",
        max_items=max_items,
        usage='search expects {"queries": [{"query": str, "count": int}, ...]}',
    )
    out: list[tuple[str, int]] = []
    for where, item in items:
        if isinstance(item, str):  # a bare string is an obvious intent; accept it
            item = {"query": item}
        query = text_field(item, "query", where)
        count = item.get("count", count_default)
        if isinstance(count, str) and count.strip().isdigit():
            count = int(count)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ToolArgumentError(f"{where}.count must be a positive integer")
        out.append((query, min(count, count_max)))
    return out, dropped


def format_hits(query: str, hits: list[SearchHit], prompts: Prompts, snippet_chars: int) -> str:
    lines = [f"# Search query: {query}", "# Result:"]
    if not hits:
        lines.append(prompts.text("search_no_results"))
    for k, h in enumerate(hits, 1):
        snippet = h.snippet
        if h.title and not snippet.startswith(h.title):
            snippet = f"{h.title}\n{snippet}"
        lines.append(f"[Doc {k}]({h.url}):")
        lines.append(snippet[:snippet_chars])
    return "\n".join(lines)


class SearchTool:
    """Runs one ``search`` call against a backend."""

    def __init__(
        self,
        backend: SearchBackend,
        prompts: Prompts,
        *,
        max_items: int = 5,
        count_default: int = 3,
        count_max: int = 10,
        snippet_chars: int = 5_000,
        strict: bool = False,
    ) -> None:
        self.backend = backend
        self.strict = strict
        self.prompts = prompts
        self.max_items = max_items
        self.count_default = count_default
        self.count_max = count_max
        self.snippet_chars = snippet_chars

    def _failed(self, query: str, reason: str) -> str:
        return f"# Search query: {query}\n# Result:\n" + self.prompts.text("search_failed", reason=reason)

    async def _one(self, query: str, count: int) -> tuple[str, str | None]:
        name = getattr(self.backend, "name", "?")
        try:
            hits = await self.backend.search(query, count)
        except BackendError as e:
            raise_if_strict(e, self.strict)
            log.info("search backend %s failed: %s", name, e)
            return self._failed(query, str(e)), str(e)
        except Exception as e:  # a bug or a library error costs this query, not the agent
            raise_if_strict(e, self.strict)
            log.exception("search backend %s raised", name)
            reason = f"internal error {type(e).__name__}"
            return self._failed(query, reason), reason
        try:  # an injected backend may hand back dicts (or worse): accept what validates, report the rest
            hits = [h if isinstance(h, SearchHit) else SearchHit.model_validate(h) for h in hits]
        except (TypeError, ValueError) as e:
            raise_if_strict(e, self.strict)
            log.warning("search backend %s returned invalid hits: %s", name, e)
            reason = "the search backend returned an invalid result"
            return self._failed(query, reason), reason
        unique: list[SearchHit] = []
        seen: set[str] = set()
        for h in hits:
            if h.url not in seen:
                seen.add(h.url)
                unique.append(h)
        return format_hits(query, unique[:count], self.prompts, self.snippet_chars), None

    async def run(self, args: Any) -> tuple[str, list[str]]:
        """Return (tool message text, backend error messages)."""
        pairs, dropped = parse_search_args(
            args, max_items=self.max_items, count_default=self.count_default, count_max=self.count_max
        )
        results = await asyncio.gather(*(self._one(q, c) for q, c in pairs))
        record("search", len(results), sum(r[1] is not None for r in results))
        text = "\n\n".join(r[0] for r in results)
        if dropped:
            text += "\n\n" + self.prompts.text("dropped_items", max=self.max_items, dropped=dropped)
        return text, [r[1] for r in results if r[1]]
