"""Which full-text library backs the local index: tantivy, bm25s or SQLite FTS5, measured on the same
passages.

    python -m benchmarks.search_choice [--passages 100000] [--queries 300]

Writes docs/benchmarks/search_choice.json. Passages are synthetic (Zipf-distributed vocabulary, 60-120 words)
so that term statistics look like natural text; queries are 3-6 words drawn from the same distribution.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "search_choice.json"


def make_vocab(n: int, rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(n)]


def make_passages(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    vocab = make_vocab(50_000, rng)
    weights = [1 / (i + 1) for i in range(len(vocab))]
    cum = list(_accumulate(weights))
    passages = [" ".join(rng.choices(vocab, cum_weights=cum, k=rng.randint(60, 120))) for _ in range(n)]
    queries = [" ".join(rng.choices(vocab[50:5000], k=rng.randint(3, 6))) for _ in range(1000)]
    return passages, queries


def _accumulate(ws):
    s = 0.0
    for w in ws:
        s += w
        yield s


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def time_queries(fn, queries: list[str]) -> dict[str, float]:
    for q in queries[:20]:
        fn(q)
    lat = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        lat.append((time.perf_counter() - t) * 1000)
    return {
        "p50_ms": round(pct(lat, 0.5), 3),
        "p99_ms": round(pct(lat, 0.99), 3),
        "mean_ms": round(statistics.mean(lat), 3),
    }


def bench_tantivy(passages, queries, tmp: Path) -> dict:
    import tantivy

    from langgraph_wideseek.tools.local import _TOKENIZER, _analyzer, _schema

    t = time.perf_counter()
    (tmp / "tantivy").mkdir()
    index = tantivy.Index(_schema(), path=str(tmp / "tantivy"))
    index.register_tokenizer(_TOKENIZER, _analyzer())
    w = index.writer(heap_size=256 * 1024 * 1024, num_threads=1)
    for i, p in enumerate(passages):
        w.add_document(tantivy.Document(url=f"u{i}", title="", body=p))
    w.commit()
    w.wait_merging_threads()
    index.reload()
    build = time.perf_counter() - t
    searcher = index.searcher()

    def q(text):
        query, _ = index.parse_query_lenient(text, ["title", "body"])
        return [searcher.doc(a)["url"][0] for _, a in searcher.search(query, 10).hits]

    return {"build_s": round(build, 2), **time_queries(q, queries)}


def bench_bm25s(passages, queries, tmp: Path) -> dict:
    import bm25s

    t = time.perf_counter()
    tokens = bm25s.tokenize(passages, stopwords="en", show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(tokens, show_progress=False)
    build = time.perf_counter() - t

    def q(text):
        qt = bm25s.tokenize([text], stopwords="en", show_progress=False)
        return retriever.retrieve(qt, k=10, show_progress=False)

    return {"build_s": round(build, 2), **time_queries(q, queries)}


def bench_fts5(passages, queries, tmp: Path) -> dict:
    t = time.perf_counter()
    db = sqlite3.connect(tmp / "fts.sqlite")
    db.execute("CREATE VIRTUAL TABLE p USING fts5(url UNINDEXED, body)")
    db.executemany("INSERT INTO p VALUES (?, ?)", ((f"u{i}", s) for i, s in enumerate(passages)))
    db.commit()
    build = time.perf_counter() - t

    def q(text):
        match = " OR ".join(f'"{w}"' for w in text.split())
        return db.execute("SELECT url FROM p WHERE p MATCH ? ORDER BY bm25(p) LIMIT 10", (match,)).fetchall()

    return {"build_s": round(build, 2), **time_queries(q, queries)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--passages", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    passages, queries = make_passages(args.passages)
    queries = queries[: args.queries]
    results = {"passages": args.passages, "queries": len(queries), "libraries": {}}
    for name, fn in (("tantivy", bench_tantivy), ("bm25s", bench_bm25s), ("sqlite_fts5", bench_fts5)):
        with tempfile.TemporaryDirectory() as d:
            results["libraries"][name] = fn(passages, queries, Path(d))
        print(name, results["libraries"][name], flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
