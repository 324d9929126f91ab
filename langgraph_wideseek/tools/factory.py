"""Build the configured search backend and page reader."""

from __future__ import annotations

from ..config import WideSeekConfig
from ..errors import BackendConfigError
from .base import PageReader, SearchBackend

__all__ = ["BackendConfigError", "build_backends"]


def build_backends(cfg: WideSeekConfig) -> tuple[SearchBackend, PageReader]:
    """(search backend, page reader) for ``cfg.search``."""
    if cfg.search == "local":
        if cfg.corpus is None:
            raise BackendConfigError(
                "search='local' needs a corpus: pass corpus=FILE.jsonl (--corpus, WIDESEEK_CORPUS), "
                "or choose another backend with search='tavily'|'web'|'retriever'"
            )
        from .local import LocalIndex, LocalReader, LocalSearch

        index = LocalIndex.open(cfg.corpus, cfg.index_dir)
        return LocalSearch(index), LocalReader(index)
    if cfg.search == "tavily":
        from .tavily import build_tavily_backends

        return build_tavily_backends(cfg)
    if cfg.search == "web":
        from .web import build_web_backends

        return build_web_backends(cfg)
    if cfg.search == "retriever":
        if not cfg.retriever_url:
            raise BackendConfigError(
                "search='retriever' needs the server's URL: pass retriever_url=http://HOST:PORT "
                "(--retriever-url, WIDESEEK_RETRIEVER_URL); `wideseek serve-index FILE.jsonl` starts one"
            )
        from .retriever import build_retriever_backends

        return build_retriever_backends(cfg)
    raise BackendConfigError(f"search backend {cfg.search!r} is not available in this build")
