"""The local search backend: a tantivy BM25 index over a JSONL corpus, plus a SQLite page store.

Corpus: one page per line, ``{"url": str, "title": str, "text": str}``. Pages are split into passages of about
120 words (or 240 CJK characters) — the unit search ranks and returns as snippets — while ``access`` reads the
whole page from the page store. Why tantivy: see docs/search.md (of the libraries we compared at 100k
passages it answered fastest, at the median and at p99, builds on disk, and needs no server).

The index is built on first use and cached under a folder named by the corpus's path, size and modification
time, so a changed corpus is re-indexed and an unchanged one opens in milliseconds. ``wideseek index`` builds
it ahead of time. Builds write to a temporary folder that is renamed into place, so a crashed or concurrent
build never leaves a half-written index behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import tantivy

from ..errors import BackendError, CorpusError, PageNotFound
from ..runtime import check_writable_dir
from .base import Page, SearchHit

__all__ = [
    "BuildStats",
    "CorpusError",
    "LocalIndex",
    "LocalReader",
    "LocalSearch",
    "iter_corpus",
    "split_passages",
]

INDEX_VERSION = 1
_TOKENIZER = "wideseek"
# One token per CJK character, one per run of letters/digits elsewhere.
_TOKEN_PATTERN = r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]|[\p{L}\p{N}]+"
_QUERY_CLEAN = re.compile(r"[^\w\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
PASSAGE_WORDS = 120
PASSAGE_CJK_CHARS = 240


@dataclass(frozen=True)
class BuildStats:
    pages: int
    passages: int
    duplicate_urls: int
    seconds: float


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "langgraph-wideseek" / "index"


def corpus_fingerprint(corpus: Path) -> str:
    st = corpus.stat()
    raw = f"{corpus.resolve()}|{st.st_size}|{st.st_mtime_ns}|v{INDEX_VERSION}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def iter_corpus(corpus: Path) -> Iterator[tuple[int, str, str, str]]:
    """Yield (line number, url, title, text); raise :class:`CorpusError` naming the first bad lines."""
    if not corpus.is_file():
        raise CorpusError(f"corpus file not found: {corpus}")
    bad: list[str] = []
    lineno = 0
    try:
        with corpus.open(encoding="utf-8") as f:
            for lineno, rec in _corpus_lines(f, bad):
                yield lineno, *rec
    except UnicodeDecodeError:
        raise CorpusError(
            f"corpus {corpus} is not UTF-8 text (after line {lineno}); expected JSON lines "
            "{url, title, text} (is it a binary file?)"
        ) from None
    except OSError as e:
        raise CorpusError(f"cannot read corpus {corpus}: {e.strerror or e}") from None
    if bad:
        raise CorpusError(
            f"{corpus} has malformed records (expected {{url, title, text}} per line): " + "; ".join(bad)
        )


def _corpus_lines(f: Iterable[str], bad: list[str]) -> Iterator[tuple[int, tuple[str, str, str]]]:
    """(line number, (url, title, text)) of each good line of ``f``; bad lines go to ``bad`` (at most 5)."""
    for lineno, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            url, text = rec["url"], rec["text"]
            title = rec.get("title") or ""
            if not isinstance(url, str) or not url or not isinstance(text, str) or not isinstance(title, str):
                raise TypeError("url and text must be strings, url non-empty")
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            bad.append(f"line {lineno}: {type(e).__name__}: {e}")
            if len(bad) >= 5:
                break
            continue
        yield lineno, (url, title, text)


def split_passages(text: str) -> list[str]:
    """Cut a page into passages on paragraph boundaries, about PASSAGE_WORDS words (or CJK chars) each."""
    out: list[str] = []
    buf: list[str] = []
    size = 0
    for para in (p.strip() for p in text.split("\n")):
        if not para:
            continue
        cjk = bool(_CJK.search(para))
        units = len(para) if cjk else len(para.split())
        limit = PASSAGE_CJK_CHARS if cjk else PASSAGE_WORDS
        if units > limit:  # a long paragraph is cut on its own
            if buf:
                out.append("\n".join(buf))
                buf, size = [], 0
            if cjk:
                out.extend(para[i : i + limit] for i in range(0, len(para), limit))
            else:
                words = para.split()
                out.extend(" ".join(words[i : i + limit]) for i in range(0, len(words), limit))
            continue
        if size + units > limit and buf:
            out.append("\n".join(buf))
            buf, size = [], 0
        buf.append(para)
        size += units
    if buf:
        out.append("\n".join(buf))
    return out


def _analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(_TOKEN_PATTERN))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def _schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("url", stored=True, tokenizer_name="raw")
    sb.add_text_field("title", stored=True, tokenizer_name=_TOKENIZER)
    sb.add_text_field("body", stored=True, tokenizer_name=_TOKENIZER)
    return sb.build()


class LocalIndex:
    """A built index, opened for search. Thread-safe for concurrent searches."""

    def __init__(self, path: Path) -> None:
        self.path = path
        meta = json.loads((path / "READY").read_text())
        if meta.get("version") != INDEX_VERSION:
            raise CorpusError(f"index at {path} has format {meta.get('version')}, expected {INDEX_VERSION}")
        self.num_pages: int = meta["pages"]
        self.num_passages: int = meta["passages"]
        self._index = tantivy.Index.open(str(path / "tantivy"))
        self._index.register_tokenizer(_TOKENIZER, _analyzer())
        self._searcher = self._index.searcher()
        self._db_path = path / "pages.sqlite"
        self._local = threading.local()

    # --- build / open --------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, corpus: str | Path, index_dir: str | Path | None = None, *, rebuild: bool = False
    ) -> LocalIndex:
        """Open the cached index of ``corpus``, building it first if needed."""
        corpus = Path(corpus)
        if not corpus.is_file():
            raise CorpusError(f"corpus file not found: {corpus}")
        root = Path(index_dir) if index_dir else default_cache_root()
        target = root / f"{corpus.stem}-{corpus_fingerprint(corpus)}"
        if rebuild and target.exists():
            shutil.rmtree(target)
        if not (target / "READY").is_file():
            check_writable_dir(root, "index folder")  # before reading a large corpus, not after
            cls.build(corpus, target)
        return cls(target)

    @staticmethod
    def build(corpus: Path, target: Path, *, heap_mb: int = 256) -> BuildStats:
        """Index ``corpus`` into ``target`` (atomically: built aside, then renamed into place)."""
        t0 = time.perf_counter()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        (tmp / "tantivy").mkdir(parents=True)
        index = tantivy.Index(_schema(), path=str(tmp / "tantivy"))
        index.register_tokenizer(_TOKENIZER, _analyzer())
        writer = index.writer(heap_size=heap_mb * 1024 * 1024)
        db = sqlite3.connect(tmp / "pages.sqlite")
        db.execute("CREATE TABLE pages (url TEXT PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL)")
        pages = passages = dups = 0
        seen: set[str] = set()
        try:
            batch: list[tuple[str, str, str]] = []
            for _, url, title, text in iter_corpus(corpus):
                if url in seen:
                    dups += 1
                    continue
                seen.add(url)
                pages += 1
                batch.append((url, title, text))
                for passage in split_passages(text) or [""]:
                    writer.add_document(tantivy.Document(url=url, title=title, body=passage))
                    passages += 1
                if len(batch) >= 1000:
                    db.executemany("INSERT INTO pages VALUES (?, ?, ?)", batch)
                    batch.clear()
            db.executemany("INSERT INTO pages VALUES (?, ?, ?)", batch)
            db.commit()
            writer.commit()
            writer.wait_merging_threads()
        except BaseException:
            db.close()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        db.close()
        if pages == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CorpusError(f"corpus {corpus} holds no pages")
        stats = BuildStats(pages, passages, dups, time.perf_counter() - t0)
        (tmp / "READY").write_text(
            json.dumps(
                {
                    "version": INDEX_VERSION,
                    "corpus": str(corpus.resolve()),
                    "pages": pages,
                    "passages": passages,
                    "duplicate_urls": dups,
                    "build_seconds": round(stats.seconds, 3),
                }
            )
        )
        try:
            tmp.rename(target)
        except OSError:  # another process finished the same build first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
            if not (target / "READY").is_file():
                raise
        return stats

    # --- queries -------------------------------------------------------------------------------------------
    def search(self, query: str, k: int = 3) -> list[SearchHit]:
        """The ``k`` best pages for ``query`` (best passage of each), BM25 over title and passage text."""
        cleaned = _QUERY_CLEAN.sub(" ", query).strip()
        if not cleaned or k <= 0:
            return []
        q, _errors = self._index.parse_query_lenient(cleaned, ["title", "body"])
        hits: list[SearchHit] = []
        seen: set[str] = set()
        for score, addr in self._searcher.search(q, limit=max(k * 4, 10)).hits:
            doc = self._searcher.doc(addr)
            url = doc["url"][0]
            if url in seen:
                continue
            seen.add(url)
            hits.append(SearchHit(url=url, title=doc["title"][0], snippet=doc["body"][0], score=float(score)))
            if len(hits) >= k:
                break
        return hits

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite3.connect(f"file:{self._db_path}?mode=ro", uri=True)
        return conn

    def get_page(self, url: str) -> Page | None:
        row = self._db().execute("SELECT url, title, text FROM pages WHERE url = ?", (url,)).fetchone()
        if row is None and url.endswith("/"):
            row = (
                self._db().execute("SELECT url, title, text FROM pages WHERE url = ?", (url[:-1],)).fetchone()
            )
        return None if row is None else Page(url=row[0], title=row[1], text=row[2])


class LocalSearch:
    """:class:`~langgraph_wideseek.tools.base.SearchBackend` over a :class:`LocalIndex`."""

    name = "local"

    def __init__(self, index: LocalIndex) -> None:
        self.index = index

    async def search(self, query: str, count: int) -> list[SearchHit]:
        # Runs on the event loop on purpose. Queries take 0.07-0.11 ms at the median up to 100k passages and
        # 0.36 ms at 1M (p99 4.8 ms there; docs/benchmarks.md), and tantivy-py holds the GIL while it searches
        # (measured: the loop thread stalls for the length of a query running in another thread), so a worker
        # thread would not free the loop; it would only add its hop, 60-140 us per query on our machine.
        # Corpora where the tail matters belong behind `wideseek serve-index`, in another process.
        try:
            return self.index.search(query, count)
        except ValueError as e:
            raise BackendError(f"the local index could not run this query: {e}") from e


class LocalReader:
    """:class:`~langgraph_wideseek.tools.base.PageReader` over a :class:`LocalIndex`'s page store."""

    name = "local"

    def __init__(self, index: LocalIndex) -> None:
        self.index = index

    async def read(self, url: str) -> Page:
        # A primary-key lookup is fast, but SQLite is file I/O all the same: on the event loop it stalls every
        # other agent, and `langgraph dev` (blockbuster) rejects it outright. Each worker thread keeps its own
        # read-only connection.
        page = await asyncio.to_thread(self.index.get_page, url)
        if page is None:
            raise PageNotFound("this URL is not in the corpus")
        return page
