"""Task loading: WideSearch files + gold CSVs, the training-data format, the hub, and clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from langgraph_wideseek.eval import ExactJudge, TaskLoadError, load_tasks, score_response
from langgraph_wideseek.eval.judge import GENERIC_CRITERION
from langgraph_wideseek.eval.table import to_markdown

REPO = Path(__file__).resolve().parents[2]


def test_loads_the_sample(sample_dir):
    tasks = load_tasks(sample_dir / "widesearch_sample.jsonl")  # gold folder found beside the file
    assert [t.instance_id for t in tasks][:2] == ["ws_en_001", "ws_en_002"] and len(tasks) == 20
    assert {t.language for t in tasks} == {"en", "zh"}
    t = tasks[0]
    assert t.required[:2] == ("subject", "university") and t.unique_columns == ("subject", "university")
    assert (
        t.gold.columns == t.required and t.gold.num_rows == 25
    )  # the extra gold column "country" is dropped
    assert t.eval_pipeline["homepage"].metric == ("url_match",)


def test_limit_and_ids(sample_dir):
    f = sample_dir / "widesearch_sample.jsonl"
    assert [t.instance_id for t in load_tasks(f, limit=3)] == ["ws_en_001", "ws_en_002", "ws_en_003"]
    assert [t.instance_id for t in load_tasks(f, ids=["ws_zh_002"])] == ["ws_zh_002"]
    with pytest.raises(TaskLoadError, match="unknown instance ids"):
        load_tasks(f, ids=["ws_xx_999"])


def _copy_sample(sample_dir, tmp_path, n=2):
    lines = (sample_dir / "widesearch_sample.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    f = tmp_path / "tasks.jsonl"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    gold = tmp_path / "gold"
    gold.mkdir()
    for line in lines:
        iid = json.loads(line)["instance_id"]
        shutil.copy(sample_dir / "widesearch_gold" / f"{iid}.csv", gold / f"{iid}.csv")
    return f, gold, lines


def test_missing_gold_file(sample_dir, tmp_path):
    f, gold, _ = _copy_sample(sample_dir, tmp_path)
    (gold / "ws_en_002.csv").unlink()
    with pytest.raises(
        TaskLoadError, match=r"tasks.jsonl:2 \(task ws_en_002\): gold table .*ws_en_002.csv not found"
    ):
        load_tasks(f, gold)
    with pytest.raises(TaskLoadError, match="no gold directory"):
        load_tasks(f)


def test_bad_lines_are_reported_with_their_place(sample_dir, tmp_path):
    f, gold, lines = _copy_sample(sample_dir, tmp_path)
    f.write_text(lines[0] + "\n{not json\n", encoding="utf-8")
    with pytest.raises(TaskLoadError, match="tasks.jsonl:2: not JSON"):
        load_tasks(f, gold)
    rec = json.loads(lines[0])
    ev = json.loads(rec["evaluation"])
    ev["eval_pipeline"]["homepage"]["metric"] = ["fuzzy_match"]
    rec["evaluation"] = json.dumps(ev)
    f.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    with pytest.raises(TaskLoadError, match="unknown metric"):
        load_tasks(f, gold)
    f.write_text(json.dumps({"instance_id": "x", "prompt": "?"}) + "\n", encoding="utf-8")
    with pytest.raises(TaskLoadError, match="unknown record format"):
        load_tasks(f, gold)


def test_gold_without_a_required_column(sample_dir, tmp_path):
    f, gold, _ = _copy_sample(sample_dir, tmp_path, n=1)
    p = gold / "ws_en_001.csv"
    p.write_bytes(p.read_bytes().replace(b"Home Page", b"Website"))
    with pytest.raises(TaskLoadError, match=r"lacks required columns \['homepage'\]"):
        load_tasks(f, gold)


def test_number_near_needs_a_tolerance(sample_dir, tmp_path):
    f, gold, _ = _copy_sample(sample_dir, tmp_path, n=4)
    recs = [json.loads(x) for x in f.read_text().splitlines()]
    ev = json.loads(recs[3]["evaluation"])
    ev["eval_pipeline"]["launchprice(usd)"]["criterion"] = "five percent"
    recs[3]["evaluation"] = ev  # a dict is accepted as well as a JSON string
    f.write_text("\n".join(json.dumps(r) for r in recs))
    with pytest.raises(TaskLoadError, match="numeric tolerance"):
        load_tasks(f, gold)


TABLE_RECORD = {
    "instance_id": "width_7",
    "question": "List the cities and their countries.",
    "answer": (
        "| City | Country | Population |\n|---|---|---|\n"
        "| Paris | France | 2102650 |\n| Rome | Italy | 2746984 |"
    ),
    "unique_columns": ["city"],
    "evaluation": json.dumps({"required": ["city", "country", "population"]}),
    "is_markdown": True,
    "language": "en",
}
QA_RECORD = {
    "instance_id": "depth_3",
    "question": "Who wrote Hamlet?",
    "answer": ["William Shakespeare"],
    "is_markdown": False,
}


async def test_training_format(tmp_path):
    f = tmp_path / "hybrid.jsonl"
    f.write_text(json.dumps(TABLE_RECORD) + "\n" + json.dumps(QA_RECORD) + "\n", encoding="utf-8")
    table, qa = load_tasks(f)
    assert (table.kind, table.source, table.unique_columns) == ("table", "training", ("city",))
    assert table.gold.column("population") == ("2102650", "2746984")
    assert table.eval_pipeline["city"].metric == ("exact_match",)
    assert table.eval_pipeline["country"].criterion == GENERIC_CRITERION
    assert (qa.kind, qa.answers) == ("qa", ("William Shakespeare",))
    reply = to_markdown(["City", "Country", "Population"], [["Rome", "Italy", "2746984"]])
    s = await score_response(table, reply, judge=ExactJudge())
    assert (s.row_precision, s.row_recall) == (1.0, 0.5)
    with pytest.raises(ValueError, match="QA task"):
        await score_response(qa, "\\boxed{William Shakespeare}", judge=ExactJudge())


def test_training_table_without_a_table(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({**TABLE_RECORD, "answer": "Paris, Rome"}) + "\n")
    with pytest.raises(TaskLoadError, match="holds no markdown table"):
        load_tasks(f)


def test_hub_without_datasets_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(TaskLoadError, match=r"pip install 'langgraph-wideseek\[eval\]'"):
        load_tasks("hf")


def test_hub_offline_gives_a_clear_error(tmp_path):
    # a fresh process so the hub libraries read the offline switches at import time
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "PYTHONPATH": str(REPO),
    }
    code = (
        "from langgraph_wideseek.eval import load_tasks, TaskLoadError\n"
        "try:\n    load_tasks('hf')\nexcept TaskLoadError as e:\n    print('ERR', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.stdout.startswith("ERR could not load ByteDance-Seed/WideSearch from the Hugging Face hub")
    assert "--tasks FILE.jsonl --gold DIR" in out.stdout
