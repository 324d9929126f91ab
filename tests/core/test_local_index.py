"""The local backend: tantivy index + page store over a JSONL corpus, built once and cached."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from langgraph_wideseek.tools.base import PageNotFound
from langgraph_wideseek.tools.local import CorpusError, LocalIndex, LocalReader, LocalSearch, split_passages

from .helpers import LIST_URL, RIVERS, ZH_URL, corpus_records, river_url


@pytest.fixture(scope="module")
def index(corpus_path: Path, index_dir: Path) -> LocalIndex:
    return LocalIndex.open(corpus_path, index_dir)


def write_corpus(path: Path, records: list[dict], extra_lines: list[str] = ()) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        for line in extra_lines:
            f.write(line + "\n")
    return path


def test_build_counts(index):
    assert index.num_pages == len(corpus_records())
    assert index.num_passages >= index.num_pages


def test_english_search_ranks_the_right_page_first(index):
    hits = index.search("Corvo river length", 3)
    assert hits[0].url == river_url("Corvo")
    assert "655 km" in hits[0].snippet
    assert hits[0].title == "Corvo River" and hits[0].score > 0
    urls = {h.url for h in index.search("Kessel Mountains", 5)}
    assert {river_url("Amsel"), river_url("Corvo")} <= urls
    assert index.search("major rivers of Veloria", 1)[0].url == LIST_URL


def test_results_are_unique_pages_and_capped(index):
    hits = index.search("river Veloria", 3)
    assert len(hits) == 3
    assert len({h.url for h in hits}) == 3


@pytest.mark.parametrize(
    "query, url", [("青河", ZH_URL), ("茶叶 城市", "https://zh.example.org/山城"), ("维洛里亚 河流", ZH_URL)]
)
def test_cjk_search(index, query, url):
    assert index.search(query, 2)[0].url == url


@pytest.mark.parametrize(
    "query", ['C++ && (title:foo OR "bar', "a:b AND NOT", "[1 TO 5}", "^~*?\\/", "-)(", "title:", '"""']
)
def test_query_syntax_characters_never_raise(index, query):
    hits = index.search(query, 3)
    assert isinstance(hits, list)


def test_query_syntax_characters_are_searched_as_words(index):
    assert index.search('C++ (programming "language', 1)[0].url == "https://wiki.example.org/Cpp"


def test_empty_and_punctuation_only_queries_find_nothing(index):
    assert index.search("", 3) == [] and index.search("  !!! ", 3) == [] and index.search("Amsel", 0) == []


async def test_backends_over_the_index(index):
    hits = await LocalSearch(index).search("Dunmere", 2)
    assert hits[0].url == river_url("Dunmere")
    page = await LocalReader(index).read(river_url("Dunmere"))
    assert page.title == "Dunmere River" and RIVERS["Dunmere"]["length"] in page.text
    assert (await LocalReader(index).read(river_url("Dunmere") + "/")).url == river_url("Dunmere")
    with pytest.raises(PageNotFound, match="not in the corpus"):
        await LocalReader(index).read("https://wiki.example.org/Nowhere")


def test_whole_page_text_is_stored_not_just_passages(index):
    page = index.get_page(river_url("Amsel"))
    rec = next(r for r in corpus_records() if r["url"] == river_url("Amsel"))
    assert page.text == rec["text"]


def test_malformed_lines_raise_corpus_error_naming_them(tmp_path):
    good = corpus_records()[:2]
    path = write_corpus(
        tmp_path / "bad.jsonl",
        good,
        [
            '{"url": "https://x", "title": "t"',
            "",
            '{"url": "https://y", "title": "t"}',
            '{"url": 5, "title": "t", "text": "x"}',
            "[1, 2]",
        ],
    )
    with pytest.raises(CorpusError) as ei:
        LocalIndex.open(path, tmp_path / "idx")
    msg = str(ei.value)
    assert "line 3" in msg and "line 5" in msg and "line 6" in msg and "line 7" in msg
    assert "line 4" not in msg  # a blank line is allowed
    assert "{url, title, text}" in msg
    assert not any((tmp_path / "idx").glob("*/READY"))  # nothing half-built is left to be reused


def test_missing_and_empty_corpus(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        LocalIndex.open(tmp_path / "absent.jsonl", tmp_path / "idx")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(CorpusError, match="no pages"):
        LocalIndex.open(empty, tmp_path / "idx")


def test_cache_is_reused_and_a_changed_corpus_is_reindexed(tmp_path, monkeypatch):
    path = write_corpus(tmp_path / "c.jsonl", corpus_records()[:3])
    first = LocalIndex.open(path, tmp_path / "idx")
    built = []
    original = LocalIndex.build

    def counting_build(*args, **kwargs):
        built.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(LocalIndex, "build", staticmethod(counting_build))
    again = LocalIndex.open(path, tmp_path / "idx")
    assert again.path == first.path and built == []

    write_corpus(
        path,
        corpus_records()[:3]
        + [{"url": "https://new.example/p", "title": "Zephyr", "text": "Zephyrine lagoon facts."}],
    )
    changed = LocalIndex.open(path, tmp_path / "idx")
    assert changed.path != first.path and len(built) == 1
    assert changed.search("Zephyrine", 1)[0].url == "https://new.example/p"

    LocalIndex.open(path, tmp_path / "idx", rebuild=True)
    assert len(built) == 2


def test_duplicate_urls_keep_the_first_record(tmp_path):
    recs = [
        {"url": "https://d", "title": "first", "text": "alpha text"},
        {"url": "https://d", "title": "second", "text": "beta text"},
    ]
    idx = LocalIndex.open(write_corpus(tmp_path / "d.jsonl", recs), tmp_path / "idx")
    assert idx.num_pages == 1 and idx.get_page("https://d").title == "first"
    meta = json.loads((idx.path / "READY").read_text())
    assert meta["duplicate_urls"] == 1


def test_default_cache_lives_under_xdg_cache_home(tmp_path, isolated_env):
    path = write_corpus(tmp_path / "c.jsonl", corpus_records()[:2])
    idx = LocalIndex.open(path)
    assert str(idx.path).startswith(str(isolated_env / ".cache" / "langgraph-wideseek" / "index"))


def test_concurrent_builds_of_one_corpus_both_succeed(tmp_path):
    path = write_corpus(tmp_path / "c.jsonl", corpus_records())
    results: list[object] = []

    def open_it() -> None:
        try:
            results.append(LocalIndex.open(path, tmp_path / "idx").num_pages)
        except Exception as e:  # recorded and asserted below
            results.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [len(corpus_records())] * 3
    assert not list((tmp_path / "idx").glob(".*tmp*"))


def test_split_passages_bounds():
    text = "\n".join(["word " * 50] * 5)
    passages = split_passages(text)
    assert all(len(p.split()) <= 120 for p in passages) and sum(len(p.split()) for p in passages) == 250
    long_cjk = "河" * 600
    assert [len(p) for p in split_passages(long_cjk)] == [240, 240, 120]
    assert split_passages("") == []
