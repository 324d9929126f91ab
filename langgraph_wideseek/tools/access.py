"""The ``access`` tool: read each URL concurrently, cut the page, summarise it for ``info_to_extract``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..errors import MODEL_MISTAKES, BackendError, SummaryError, raise_if_strict
from ..prompts import Prompts
from .args import items_of, text_field
from .base import Page, PageReader
from .summarize import PageSummarizer
from .tally import record

__all__ = ["AccessTool", "parse_access_args"]

log = logging.getLogger(__name__)

# When the summariser fails the model still gets the start of the raw page, marked as such.
_RAW_FALLBACK_CHARS = 5_000


def parse_access_args(args: Any, *, max_items: int) -> tuple[list[tuple[str, str]], int]:
    """Return ((url, info_to_extract) pairs, number dropped over the limit) or raise ``ToolArgumentError``."""
    items, dropped = items_of(
        args,
        "urls",
        noun="URL",
        max_items=max_items,
        usage='access expects {"urls": [{"url": str, "info_to_extract": str}, ...]}',
    )
    out = [
        (text_field(item, "url", where), text_field(item, "info_to_extract", where, main=False))
        for where, item in items
    ]
    return out, dropped


class AccessTool:
    """Runs one ``access`` call: reader -> truncate to ``page_chars`` -> optional summariser."""

    def __init__(
        self,
        reader: PageReader,
        prompts: Prompts,
        *,
        summarizer: PageSummarizer | None = None,
        max_items: int = 5,
        page_chars: int = 25_000,
        strict: bool = False,
    ) -> None:
        self.reader = reader
        self.strict = strict
        self.prompts = prompts
        self.summarizer = summarizer
        self.max_items = max_items
        self.page_chars = page_chars

    def _block(self, url: str, info: str, result: str) -> str:
        return f"# Access URL: {url}\n# Info to extract: {info}\n# Result:\n{result}"

    async def _one(self, url: str, info: str) -> tuple[str, str | None]:
        name = getattr(self.reader, "name", "?")
        try:
            page = await self.reader.read(url)
        except BackendError as e:
            raise_if_strict(e, self.strict)
            log.log(
                logging.DEBUG if isinstance(e, MODEL_MISTAKES) else logging.INFO,
                "page reader %s failed for %s: %s",
                name,
                url,
                e,
            )
            return self._block(url, info, self.prompts.text("access_failed", reason=str(e))), f"{url}: {e}"
        except Exception as e:  # a bug or a library error costs this URL, not the agent
            raise_if_strict(e, self.strict)
            log.exception("page reader %s raised for %s", name, url)
            reason = f"internal error {type(e).__name__}"
            return self._block(
                url, info, self.prompts.text("access_failed", reason=reason)
            ), f"{url}: {reason}"
        if not isinstance(page, Page):  # an injected reader that ignores the protocol
            try:
                page = Page.model_validate(page)
            except ValueError as e:
                raise_if_strict(e, self.strict)
                log.warning("page reader %s returned an invalid page for %s: %s", name, url, e)
                reason = "the page reader returned an invalid page"
                failed = self.prompts.text("access_failed", reason=reason)
                return self._block(url, info, failed), f"{url}: {reason}"
        text = page.text[: self.page_chars]
        if not text.strip():
            return self._block(
                url, info, self.prompts.text("access_failed", reason="the page has no text")
            ), f"{url}: empty page"
        if self.summarizer is None:
            return self._block(url, info, text), None
        try:
            return self._block(url, info, await self.summarizer.summarize(url, text, info)), None
        except SummaryError as e:
            raise_if_strict(e, self.strict)
            log.warning("summariser failed for %s: %s", url, e)
            note = f"[Summary unavailable ({e}); the start of the page text follows.]\n"
            return self._block(url, info, note + text[:_RAW_FALLBACK_CHARS]), f"{url}: summariser failed: {e}"

    async def run(self, args: Any) -> tuple[str, list[str]]:
        pairs, dropped = parse_access_args(args, max_items=self.max_items)
        results = await asyncio.gather(*(self._one(u, i) for u, i in pairs))
        record("access", len(results), sum(r[1] is not None for r in results))
        text = "\n\n".join(r[0] for r in results)
        if dropped:
            text += "\n\n" + self.prompts.text("dropped_items", max=self.max_items, dropped=dropped)
        return text, [r[1] for r in results if r[1]]
