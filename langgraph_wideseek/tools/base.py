"""The backend interface every search and page-access implementation satisfies.

A backend does one thing (find pages, or read one page) and reports failure by raising
:class:`BackendError` (or :class:`PageNotFound`) with a message that is safe to show the model: it never
contains secrets. The tool layer (``tools/search.py``, ``tools/access.py``) turns hits and pages into the
tool-result text the model was trained on, runs the items of one call concurrently, and converts every
``BackendError`` (and any unexpected exception) into an explicit line for the model, or, in strict mode,
lets it propagate (see :mod:`langgraph_wideseek.errors`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from ..errors import BackendError, PageNotFound

__all__ = ["BackendError", "Closeable", "Page", "PageNotFound", "PageReader", "SearchBackend", "SearchHit"]


class SearchHit(BaseModel):
    """One search result: the page URL and a short text about it."""

    url: str
    title: str = ""
    snippet: str = ""
    score: float | None = None


class Page(BaseModel):
    """The readable text of one page."""

    url: str
    title: str = ""
    text: str


@runtime_checkable
class SearchBackend(Protocol):
    """Finds pages for a query."""

    name: str

    async def search(self, query: str, count: int) -> list[SearchHit]:
        """Return up to ``count`` hits, best first. Raise :class:`BackendError` on failure."""
        ...


@runtime_checkable
class PageReader(Protocol):
    """Reads the text of one page."""

    name: str

    async def read(self, url: str) -> Page:
        """Return the page's main text. Raise :class:`PageNotFound` or :class:`BackendError` on failure."""
        ...


@runtime_checkable
class Closeable(Protocol):
    async def aclose(self) -> None: ...
