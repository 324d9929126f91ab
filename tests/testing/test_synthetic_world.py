"""The synthetic world: seeded determinism, and gold tables that agree with what the pages say."""

from __future__ import annotations

import csv
import json

import pytest

from langgraph_wideseek.testing.synthetic import (
    BASE_URL,
    KINDS,
    SyntheticTask,
    World,
    _cell_ok,
    norm_column,
    page_url,
)

ALLOWED = {
    "exact_match": "norm_str",
    "number_near": "extract_number",
    "date_near": "norm_date",
    "url_match": "norm_str",
}


@pytest.fixture(scope="module")
def world() -> World:
    return World.generate(seed=7, n_categories=6, entities_per_category=9)


def _facts(text: str) -> dict[str, str]:
    lines = text.splitlines()
    start = lines.index("Facts") + 1
    out = {}
    for line in lines[start:]:
        head, sep, tail = line.partition(": ")
        if not sep:
            break
        out[head] = tail
    return out


def test_same_seed_same_world_byte_for_byte() -> None:
    a = World.generate(seed=3, n_categories=4, entities_per_category=5)
    b = World.generate(seed=3, n_categories=4, entities_per_category=5)
    assert a.corpus_records() == b.corpus_records()
    assert [t.model_dump() for t in a.tasks()] == [t.model_dump() for t in b.tasks()]
    c = World.generate(seed=4, n_categories=4, entities_per_category=5)
    assert a.corpus_records() != c.corpus_records()
    assert [t.gold_rows for t in a.tasks()] != [t.gold_rows for t in c.tasks()]


def test_corpus_records_are_unique_well_formed_pages(world: World) -> None:
    recs = world.corpus_records()
    urls = [r["url"] for r in recs]
    assert len(urls) == len(set(urls))
    assert all(
        set(r) == {"url", "title", "text"} and r["text"] and r["url"] == page_url(r["title"]) for r in recs
    )
    assert all(u.startswith(BASE_URL) for u in urls)
    names = [e.name for c in world.categories for e in c.entities]
    assert len(names) == len(set(names)) == 6 * 9
    # every kind is used, and categories beyond the fifth open a second region
    assert {c.kind.key for c in world.categories} == {k.key for k in KINDS}
    assert len({c.region for c in world.categories}) == 2


def test_gold_cells_agree_with_the_entity_pages(world: World) -> None:
    """Read each gold row back from the page text (not from the world's internals)."""
    pages = {r["url"]: r["text"] for r in world.corpus_records()}
    checked = 0
    for i, cat in enumerate(world.categories):
        task = world.list_task(i)
        spec = json.loads(task.evaluation)["eval_pipeline"]
        labels = {a.column: a.label for a in cat.kind.attributes}
        for row in task.gold_rows:
            facts = _facts(pages[page_url(row[0])])
            for col, gold in zip(task.columns[1:], row[1:]):
                step = spec[norm_column(col)]
                assert _cell_ok(facts[labels[col]], gold, step["metric"][0], step.get("criterion")), (
                    row[0],
                    col,
                )
                checked += 1
    assert checked == 6 * 9 * 4


def test_list_pages_name_exactly_the_members_and_traps_have_no_pages(world: World) -> None:
    pages = {r["url"]: r["text"] for r in world.corpus_records()}
    for cat in world.categories:
        text = pages[page_url(cat.list_title)]
        listed = [ln[2:].split(" — ")[0] for ln in text.splitlines() if ln.startswith("- ")]
        assert listed == [e.name for e in cat.entities]
        proposed = pages[page_url(f"List of proposed {cat.label}")]
        fake = [ln[2:].split(" — ")[0] for ln in proposed.splitlines() if ln.startswith("- ")]
        assert fake and not any(page_url(n) in pages for n in fake)


def test_related_pages_contradict_their_entity(world: World) -> None:
    """Look-alike pages carry the same labels with other values: taking them instead of the entity's own
    page must cost correctness, or they would test nothing."""
    pages = {r["title"]: r["text"] for r in world.corpus_records()}
    related = [
        (t, e)
        for c in world.categories
        for e in c.entities
        for t in pages
        if t.startswith(e.name + " ") and t != e.name
    ]
    assert len(related) >= 10
    differing = sum(_facts(pages[t]) != _facts(pages[e.name]) for t, e in related)
    assert differing == len(related)


def test_tasks_are_widesearch_records(world: World) -> None:
    tasks = world.tasks(named_count=3)
    assert len(tasks) == 12 and len({t.instance_id for t in tasks}) == 12
    for t in tasks:
        rec = t.record()
        assert set(rec) == {"instance_id", "query", "evaluation", "language"}
        ev = json.loads(rec["evaluation"])
        assert ev["required"] == [norm_column(c) for c in t.columns]
        assert ev["unique_columns"] == [ev["required"][0]]
        assert set(ev["eval_pipeline"]) == set(ev["required"])
        for step in ev["eval_pipeline"].values():
            assert step["preprocess"] == [ALLOWED[step["metric"][0]]]
            if step["metric"] == ["number_near"]:
                assert 0.0 <= step["criterion"] <= 0.1
        assert ", ".join(t.columns) in t.query and "```markdown" in t.query
    named = [t for t in tasks if "_named" in t.instance_id]
    assert all(len(t.gold_rows) == 3 for t in named)
    assert all(all(r[0] in t.query for r in t.gold_rows) for t in named)


def test_write_tasks_and_corpus_match_benchmark_files(tmp_path, world: World) -> None:
    jsonl, gold = world.write_tasks(tmp_path / "tasks")
    tasks = world.tasks()
    lines = jsonl.read_text(encoding="utf-8").splitlines()
    assert [json.loads(ln) for ln in lines] == [t.record() for t in tasks]
    for t in tasks:
        raw = (gold / f"{t.instance_id}.csv").read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw and raw.count(b"\n") == raw.count(b"\r\n")
        with (gold / f"{t.instance_id}.csv").open(encoding="utf-8-sig", newline="") as f:
            back = list(csv.reader(f))
        assert back[0] == t.columns and back[1:] == t.gold_rows
    path = world.write_corpus(tmp_path / "c" / "corpus.jsonl")
    assert [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines()] == world.corpus_records()


def test_tasks_written_with_widesearch_gold_load_without_naming_the_gold(tmp_path, world: World) -> None:
    from langgraph_wideseek.eval import load_tasks

    jsonl, gold = world.write_tasks(tmp_path, gold_dir="widesearch_gold")
    assert gold == tmp_path / "widesearch_gold"
    loaded = load_tasks(jsonl)  # the gold folder is found beside the tasks file
    assert [t.instance_id for t in loaded] == [t.instance_id for t in world.tasks()]


def test_mismatches_finds_every_kind_of_error(world: World) -> None:
    t = world.list_task(0)
    assert t.mismatches(t.gold_markdown()) == []
    assert t.mismatches("no table here") == ["the answer holds no fenced markdown table"]
    wrong = t.model_copy(deep=True)
    wrong.gold_rows[1][1] = str(float(wrong.gold_rows[1][1]) * 2)  # length, number_near 1%
    wrong.gold_rows[2][4] = "1650-01-01"  # date, far off
    probs = t.mismatches(wrong.gold_markdown())
    assert len(probs) == 2 and all("!=" in p for p in probs)
    short = SyntheticTask(**{**t.model_dump(), "gold_rows": t.gold_rows[:-1]})
    assert t.mismatches(short.gold_markdown()) == [f"missing row {t.gold_rows[-1][0]!r}"]
    assert short.mismatches(t.gold_markdown()) == [f"extra row {t.gold_rows[-1][0].lower()!r}"]


def test_named_task_bounds_and_bad_arguments(world: World) -> None:
    t = world.named_task(1, 4, start=2)
    assert [r[0] for r in t.gold_rows] == [e.name for e in world.categories[1].entities[2:6]]
    with pytest.raises(ValueError):
        world.named_task(1, 3, start=100)
    with pytest.raises(ValueError):
        World.generate(seed=0, n_categories=0)
    with pytest.raises(ValueError):
        World.generate(seed=0, distractor_rate=1.5)
