"""Task files -> OpenRLHF prompt datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.data import (
    TaskLabel,
    convert_widesearch_record,
    convert_wideseek_record,
    main,
    parse_label,
)

ASSETS = Path(__file__).parent / "assets" / "widesearch"

TABLE = {
    "instance_id": "width_0001",
    "question": (
        "List the albums of Band X with their year. Answer in a markdown table with columns Album, Year."
    ),
    "answer": "```markdown\n| Album | Year |\n|---|---|\n| First | 1999 |\n| Second | 2003 |\n```",
    "is_markdown": True,
    "unique_columns": ["Album"],
    "evaluation": json.dumps({"required": ["album", "year"]}),
    "language": "en",
}
QA = {
    "instance_id": "depth_0001",
    "question": "Who founded the company that makes product Y? Put the answer in \\boxed{}.",
    "answer": '["Ada Lovelace", "A. Lovelace"]',
    "is_markdown": False,
    "unique_columns": [],
    "evaluation": "{}",
    "language": "en",
}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_table_record_becomes_prompt_and_json_label():
    row = convert_wideseek_record(TABLE)
    assert row["prompt"] == TABLE["question"]
    assert row["datasource"] == "width" and row["instance_id"] == "width_0001"
    label = parse_label(row["label"])
    assert label.kind == "table" and label.gold_format == "markdown"
    assert label.unique_columns == ["album"] and label.required_columns == ["album", "year"]
    assert label.gold_table.startswith("| Album | Year |") and "```" not in label.gold_table


def test_qa_record_keeps_every_accepted_answer():
    row = convert_wideseek_record(QA)
    label = parse_label(row["label"])
    assert row["datasource"] == "depth"
    assert label.kind == "qa" and label.answers == ["Ada Lovelace", "A. Lovelace"]
    plain = convert_wideseek_record(dict(QA, answer="Ada Lovelace", is_markdown="false"))
    assert parse_label(plain["label"]).answers == ["Ada Lovelace"]
    bracket = convert_wideseek_record(dict(QA, answer="[1] Ada"))
    assert parse_label(bracket["label"]).answers == ["[1] Ada"]


def test_required_columns_default_to_the_gold_header():
    row = convert_wideseek_record(dict(TABLE, evaluation=None))
    assert parse_label(row["label"]).required_columns == ["album", "year"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"question": ""}, "question"),
        ({"answer": "no table here", "is_markdown": True}, "no markdown table"),
        ({"unique_columns": ["Artist"]}, "not in the gold table"),
        ({"evaluation": "{broken"}, "evaluation is not valid JSON"),
        ({"instance_id": None}, "instance_id"),
    ],
)
def test_malformed_records_are_rejected_with_the_reason(change, message):
    with pytest.raises(ValueError, match=message):
        convert_wideseek_record(dict(TABLE, **change))


def test_widesearch_task_carries_its_gold_csv_and_eval_spec():
    rec = json.loads((ASSETS / "tasks.jsonl").read_text(encoding="utf-8").splitlines()[0])
    row = convert_widesearch_record(rec, ASSETS / "gold")
    label = parse_label(row["label"])
    assert row["prompt"] == rec["query"] and row["datasource"] == "widesearch"
    assert label.gold_format == "csv" and label.gold_table.startswith("Brand,Product")  # BOM removed
    assert label.evaluation == json.loads(rec["evaluation"])
    assert label.unique_columns == label.evaluation["unique_columns"]


def test_widesearch_task_without_gold_is_an_error(tmp_path):
    rec = json.loads((ASSETS / "tasks.jsonl").read_text(encoding="utf-8").splitlines()[0])
    with pytest.raises(ValueError, match="no gold table"):
        convert_widesearch_record(rec, tmp_path)


def test_parse_label_rejects_foreign_labels():
    with pytest.raises(ValueError, match="not JSON"):
        parse_label("42 is the answer")
    with pytest.raises(ValueError, match="version"):
        parse_label('{"answer": "x"}')
    with pytest.raises(ValueError, match="malformed"):
        parse_label('{"v": 1, "kind": "table"}')
    assert isinstance(parse_label(convert_wideseek_record(QA)["label"]), TaskLabel)


def test_cli_wideseek_jsonl_with_eval_split(tmp_path, capsys):
    src = write_jsonl(
        tmp_path / "hybrid.jsonl",
        [dict(TABLE, instance_id=f"w{i}") for i in range(6)]
        + [dict(QA, instance_id=f"d{i}") for i in range(4)],
    )
    out, ev = tmp_path / "out" / "train.jsonl", tmp_path / "out" / "eval.jsonl"
    rc = main(
        [
            "wideseek-r1",
            str(src),
            "--out",
            str(out),
            "--eval-out",
            str(ev),
            "--eval-size",
            "3",
            "--shuffle",
            "--seed",
            "1",
        ]
    )
    assert rc == 0
    train = [json.loads(x) for x in out.read_text().splitlines()]
    held = [json.loads(x) for x in ev.read_text().splitlines()]
    assert len(train) == 7 and len(held) == 3
    assert {r["instance_id"] for r in train}.isdisjoint({r["instance_id"] for r in held})
    assert set(train[0]) == {"prompt", "label", "datasource", "instance_id"}
    assert "wrote 7 tasks" in capsys.readouterr().out


def test_cli_reads_back_with_openrlhf_style_loading(tmp_path):
    # OpenRLHF loads .jsonl/.parquet prompt datasets with datasets.load_dataset("json"/"parquet",
    # data_files=...)
    from datasets import load_dataset

    src = write_jsonl(tmp_path / "w.jsonl", [TABLE, QA])
    for name, kind in (("t.jsonl", "json"), ("t.parquet", "parquet")):
        out = tmp_path / name
        assert main(["wideseek-r1", str(src), "--out", str(out)]) == 0
        ds = load_dataset(kind, data_files=str(out))["train"]
        assert ds.column_names == ["prompt", "label", "datasource", "instance_id"]
        assert parse_label(ds[1]["label"]).answers == ["Ada Lovelace", "A. Lovelace"]


def test_cli_widesearch(tmp_path):
    out = tmp_path / "ws.jsonl"
    assert (
        main(
            [
                "widesearch",
                "--tasks",
                str(ASSETS / "tasks.jsonl"),
                "--gold",
                str(ASSETS / "gold"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [r["instance_id"] for r in rows] == ["ws_en_002", "ws_zh_003"]
    assert parse_label(rows[1]["label"]).language == "zh"


def test_cli_synthetic_accepts_both_formats(tmp_path):
    ws = (ASSETS / "tasks.jsonl").read_text(encoding="utf-8").splitlines()[:1]
    src = tmp_path / "syn.jsonl"
    src.write_text(ws[0] + "\n" + json.dumps(TABLE) + "\n", encoding="utf-8")
    out = tmp_path / "syn_out.jsonl"
    assert main(["synthetic", str(src), "--gold", str(ASSETS / "gold"), "--out", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert {r["datasource"] for r in rows} == {"synthetic"}
    assert [parse_label(r["label"]).gold_format for r in rows] == ["csv", "markdown"]


def test_cli_bad_record_fails_loudly_or_is_skipped_and_reported(tmp_path, capsys):
    src = write_jsonl(tmp_path / "w.jsonl", [TABLE, dict(QA, answer=""), dict(TABLE)])
    out = tmp_path / "o.jsonl"
    assert main(["wideseek-r1", str(src), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "w.jsonl:2" in err and "empty 'answer'" in err
    assert not out.exists()
    assert main(["wideseek-r1", str(src), "--out", str(out), "--on-error", "skip"]) == 0
    cap = capsys.readouterr()
    assert "skipped" in cap.err and "dropped 1 duplicate" in cap.out
    assert len(out.read_text().splitlines()) == 1


def test_cli_invalid_json_line_names_the_line(tmp_path, capsys):
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps(TABLE) + "\n{oops\n")
    assert main(["wideseek-r1", str(src), "--out", str(tmp_path / "o.jsonl")]) == 1
    assert "bad.jsonl:2: not valid JSON" in capsys.readouterr().err


def test_cli_synthetic_world_writes_tasks_and_their_corpus(tmp_path, capsys):
    from langgraph_wideseek.testing import World

    out, corpus = tmp_path / "syn.jsonl", tmp_path / "corpus.jsonl"
    assert (
        main(
            [
                "synthetic",
                "--world-seed",
                "3",
                "--categories",
                "2",
                "--entities",
                "3",
                "--corpus-out",
                str(corpus),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    world = World.generate(3, 2, 3)
    tasks = {t.instance_id: t for t in world.tasks(named_count=3)}
    assert [r["instance_id"] for r in rows] == list(tasks)
    for r in rows:
        label = parse_label(r["label"])
        task = tasks[r["instance_id"]]
        assert r["prompt"] == task.query and r["datasource"] == "synthetic"
        assert label.gold_table == task.gold_csv() and label.gold_format == "csv"
        assert label.evaluation == json.loads(task.evaluation)
    pages = [json.loads(x) for x in corpus.read_text(encoding="utf-8").splitlines()]
    assert {p["url"] for p in pages} == {p.url for p in world.pages}
    assert main(["synthetic", "--world-seed", "3", "--out", str(out)]) == 1
    assert "--corpus-out" in capsys.readouterr().err
