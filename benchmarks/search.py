"""Local search (tantivy, ``tools/local.py``): build rate and query latency at 10k, 100k and 1M passages.

Passages are generated text: words drawn from a Zipf-distributed 50k-word vocabulary, 60-120 words each (the
index's passage size is about 120 words, so each page is one passage); queries are 2-5 words from the
mid-frequency range, like entity-name queries. Corpora are cached under ``.bench-cache/search/``
(git-ignored); each index is rebuilt from scratch to time the build (``LocalIndex.build``, the same code
``wideseek index`` runs). Queries run one at a time on one pinned core, through ``LocalIndex.search(query,
k=3)``, the call the search tool makes.

Run alone: ``python -m benchmarks.search [--quick]``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from .harness import CACHE, cli, percentile, write_result

SIZES = [10_000, 100_000, 1_000_000]
VOCAB = 50_000
QUERIES = 2_000


def _vocab(rng) -> list[str]:
    import numpy as np

    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(3, 11, size=VOCAB * 2)
    words, seen = [], set()
    for n in lengths:
        w = "".join(rng.choice(letters, size=int(n)))
        if w not in seen:
            seen.add(w)
            words.append(w)
            if len(words) == VOCAB:
                break
    return words


def corpus_path(n: int) -> Path:
    """The cached corpus of ``n`` passages (generated on first use; deterministic)."""
    import numpy as np

    path = CACHE / "search" / f"passages-{n}.jsonl"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    words = np.array(_vocab(rng))
    p = 1.0 / np.arange(1, VOCAB + 1)
    cdf = np.cumsum(p / p.sum())
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        chunk = 10_000
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            lens = rng.integers(60, 121, size=m)
            ids = np.searchsorted(cdf, rng.random(int(lens.sum())))
            toks = words[ids]
            pos = 0
            lines = []
            for i, k in enumerate(lens):
                text = " ".join(toks[pos : pos + k].tolist())
                pos += k
                doc = start + i
                lines.append(
                    json.dumps(
                        {"url": f"https://passages.example/p/{doc}", "title": f"Passage {doc}", "text": text}
                    )
                )
            f.write("\n".join(lines) + "\n")
    tmp.rename(path)
    return path


def queries(n: int = QUERIES) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(99)
    words = _vocab(np.random.default_rng(1234))
    mid = words[100:10_000]
    return [" ".join(rng.choice(mid, size=int(rng.integers(2, 6))).tolist()) for _ in range(n)]


def _measure(n: int) -> dict[str, Any]:
    from langgraph_wideseek.tools.local import LocalIndex

    t0 = time.perf_counter()
    corpus = corpus_path(n)
    gen_s = time.perf_counter() - t0
    target = CACHE / "search" / f"index-{n}"
    if target.exists():
        shutil.rmtree(target)
    stats = LocalIndex.build(corpus, target)
    index = LocalIndex(target)
    qs = queries()
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})  # one core, as the goal says
    try:
        for q in qs[:100]:
            index.search(q, 3)
        lat = []
        for q in qs:
            t = time.perf_counter()
            hits = index.search(q, 3)
            lat.append((time.perf_counter() - t) * 1000)
            assert hits, f"no hit for {q!r}"
    finally:
        os.sched_setaffinity(0, affinity)
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    del index
    shutil.rmtree(target)  # the corpus stays cached; indexes are rebuilt (and timed) every run anyway
    return {
        "passages": stats.passages,
        "pages": stats.pages,
        "build_s": stats.seconds,
        "build_passages_per_s": stats.passages / stats.seconds,
        "corpus_generate_s": gen_s,
        "corpus_mb": corpus.stat().st_size / 2**20,
        "index_mb": size / 2**20,
        "queries": len(qs),
        "p50_ms": percentile(lat, 0.5),
        "p99_ms": percentile(lat, 0.99),
        "mean_ms": statistics.mean(lat),
    }


def run(quick: bool = False) -> dict[str, Any]:
    sizes = SIZES[:2] if quick else SIZES
    rows = []
    for n in sizes:
        r = _measure(n)
        rows.append(r)
        print(
            f"  {n:>9,} passages: build {r['build_s']:.1f} s ({r['build_passages_per_s']:,.0f}/s), "
            f"query p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms, index {r['index_mb']:.0f} MB",
            flush=True,
        )
    return {"sizes": sizes, "k": 3, "results": rows}


def main() -> None:
    args = cli("Local search: build rate and query latency.")
    data = run(args.quick)
    print(write_result("search", {"quick": args.quick, **data}))
    if not args.no_report:
        from .report import render

        render()


if __name__ == "__main__":
    main()
