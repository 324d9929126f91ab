"""Every command against a table of bad inputs (issue 13): missing, empty, binary, truncated, wrong-shape,
huge, unwritable and out-of-range. Each must exit 2 with one line on stderr naming the input, no traceback,
nothing on stdout, no model call, and must leave what an earlier run wrote as it was."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from langgraph_wideseek.cli import main as cli_main

DATA = Path(__file__).resolve().parents[1] / "data" / "widesearch"
TASKS = str(DATA / "widesearch_sample.jsonl")
GOLD = str(DATA / "widesearch_gold")
DEAD = "http://127.0.0.1:9/v1"  # nothing listens: a model call would fail with a connection error, not exit 2
BINARY = bytes(range(256)) * 8
EARLIER = "an earlier run's line\n"


def files(tmp: Path) -> dict[str, Path]:
    """Bad input files, and an output folder and trajectory file holding an earlier run's results."""
    out = {
        "missing": tmp / "missing.jsonl",
        "empty": tmp / "empty.jsonl",
        "binary": tmp / "binary.jsonl",
        "truncated": tmp / "truncated.jsonl",
        "shape": tmp / "shape.jsonl",
        "negative": tmp / "negative.jsonl",
        "huge": tmp / "huge.jsonl",
        "good_responses": tmp / "good.jsonl",
        "corpus": tmp / "corpus.jsonl",
        "out": tmp / "out",
        "a_file": tmp / "a_file",
        "trajectory": tmp / "t.jsonl",
    }
    out["empty"].write_text("")
    out["binary"].write_bytes(BINARY)
    out["truncated"].write_text('{"instance_id": "ws_en_001", "sample": 0, "respo')
    out["shape"].write_text(json.dumps([1, 2, 3]) + "\n")
    out["negative"].write_text(json.dumps({"instance_id": "ws_en_001", "sample": -2, "response": "x"}) + "\n")
    out["huge"].write_text(
        json.dumps({"instance_id": "ws_en_001", "sample": 1_000_000, "response": "x"}) + "\n"
    )
    out["good_responses"].write_text(
        json.dumps({"instance_id": "ws_en_001", "sample": 0, "response": ""}) + "\n"
    )
    out["corpus"].write_text(json.dumps({"url": "https://a", "title": "A", "text": "alpha"}) + "\n")
    out["out"].mkdir()
    (out["out"] / "scores.jsonl").write_text(EARLIER)
    out["a_file"].write_text(EARLIER)
    out["trajectory"].write_text(EARLIER)
    return out


def score(f: dict[str, Path], **over: str) -> list[str]:
    args = {"--tasks": TASKS, "--gold": GOLD, "--responses": str(f["good_responses"]), "--out": str(f["out"])}
    args.update(over)
    return ["score", *[x for kv in args.items() for x in kv], "--exact-judge"]


def evaluate(f: dict[str, Path], *extra: str, **over: str) -> list[str]:
    args = {"--tasks": TASKS, "--gold": GOLD, "--out": str(f["out"]), "--base-url": DEAD}
    args["--corpus"] = str(f["corpus"])
    args.update(over)
    return ["eval", *[x for kv in args.items() for x in kv], "--exact-judge", "--no-progress", *extra]


def run(f: dict[str, Path], *extra: str) -> list[str]:
    return [
        "run",
        "Q",
        "--base-url",
        DEAD,
        "--corpus",
        str(f["corpus"]),
        "--index-dir",
        str(f["out"]),
        *extra,
    ]


Case = tuple[str, Callable[[dict[str, Path]], list[str]], Callable[[dict[str, Path]], str]]

CASES: list[Case] = [
    # wideseek score
    (
        "score: missing tasks",
        lambda f: score(f, **{"--tasks": str(f["missing"])}),
        lambda f: str(f["missing"]),
    ),
    ("score: binary tasks", lambda f: score(f, **{"--tasks": str(f["binary"])}), lambda f: str(f["binary"])),
    ("score: truncated tasks", lambda f: score(f, **{"--tasks": str(f["truncated"])}), lambda f: "truncated"),
    ("score: wrong-shape tasks", lambda f: score(f, **{"--tasks": str(f["shape"])}), lambda f: "shape.jsonl"),
    (
        "score: missing responses",
        lambda f: score(f, **{"--responses": str(f["missing"])}),
        lambda f: "missing",
    ),
    ("score: binary responses", lambda f: score(f, **{"--responses": str(f["binary"])}), lambda f: "binary"),
    (
        "score: truncated responses",
        lambda f: score(f, **{"--responses": str(f["truncated"])}),
        lambda f: "trunc",
    ),
    (
        "score: wrong-shape responses",
        lambda f: score(f, **{"--responses": str(f["shape"])}),
        lambda f: "shape",
    ),
    ("score: negative sample", lambda f: score(f, **{"--responses": str(f["negative"])}), lambda f: "-2"),
    ("score: huge sample", lambda f: score(f, **{"--responses": str(f["huge"])}), lambda f: "1000000"),
    ("score: --samples -1", lambda f: score(f, **{"--samples": "-1"}), lambda f: "--samples"),
    ("score: --samples 0", lambda f: score(f, **{"--samples": "0"}), lambda f: "--samples"),
    ("score: --samples huge", lambda f: score(f, **{"--samples": "100000"}), lambda f: "--samples"),
    (
        "score: sample beyond --samples",
        lambda f: score(f, **{"--samples": "1", "--responses": str(f["huge"])}),
        lambda f: "1000000",
    ),
    ("score: --out is a file", lambda f: score(f, **{"--out": str(f["a_file"])}), lambda f: str(f["a_file"])),
    (
        "score: --out unwritable",
        lambda f: score(f, **{"--out": "/proc/wideseek-out"}),
        lambda f: "/proc/wideseek",
    ),
    ("score: --limit 0", lambda f: score(f, **{"--limit": "0"}), lambda f: "--limit"),
    # wideseek eval
    (
        "eval: binary tasks",
        lambda f: evaluate(f, **{"--tasks": str(f["binary"])}),
        lambda f: str(f["binary"]),
    ),
    ("eval: empty tasks", lambda f: evaluate(f, **{"--tasks": str(f["empty"])}), lambda f: "holds no tasks"),
    ("eval: --samples -1", lambda f: evaluate(f, **{"--samples": "-1"}), lambda f: "--samples"),
    ("eval: --concurrency 0", lambda f: evaluate(f, **{"--concurrency": "0"}), lambda f: "--concurrency"),
    ("eval: --out is a file", lambda f: evaluate(f, **{"--out": str(f["a_file"])}), lambda f: "a_file"),
    ("eval: bad --base-url", lambda f: evaluate(f, **{"--base-url": "localhost:8000"}), lambda f: "base_url"),
    (
        "eval: --max-subagents huge",
        lambda f: evaluate(f, "--max-subagents", "100000"),
        lambda f: "max_subagents",
    ),
    # wideseek run
    ("run: binary corpus", lambda f: run(f, "--corpus", str(f["binary"])), lambda f: str(f["binary"])),
    ("run: empty corpus", lambda f: run(f, "--corpus", str(f["empty"])), lambda f: str(f["empty"])),
    ("run: trajectory is a folder", lambda f: run(f, "--trajectory", str(f["out"])), lambda f: str(f["out"])),
    (
        "run: trajectory unwritable",
        lambda f: run(f, "--trajectory", "/proc/x.jsonl"),
        lambda f: "/proc/x.jsonl",
    ),
    ("run: --max-subagents 100000", lambda f: run(f, "--max-subagents", "100000"), lambda f: "max_subagents"),
    ("run: bad --base-url", lambda f: run(f, "--base-url", "http//x"), lambda f: "base_url"),
    (
        "run: bad --summary-base-url",
        lambda f: run(f, "--summary-base-url", "x"),
        lambda f: "summary_base_url",
    ),
    (
        "run: tavily without a key",
        lambda f: ["run", "Q", "--base-url", DEAD, "--search", "tavily"],
        lambda f: "TAVILY_API_KEY",
    ),
    (
        "run: unwritable --index-dir",
        lambda f: run(f, "--index-dir", str(f["a_file"] / "x")),
        lambda f: "a_file",
    ),
    # wideseek index / serve-index
    ("index: missing corpus", lambda f: ["index", str(f["missing"])], lambda f: str(f["missing"])),
    (
        "index: binary corpus",
        lambda f: ["index", str(f["binary"]), "--index-dir", str(f["out"])],
        lambda f: str(f["binary"]),
    ),
    (
        "index: truncated corpus",
        lambda f: ["index", str(f["truncated"]), "--index-dir", str(f["out"])],
        lambda f: str(f["truncated"]),
    ),
    (
        "index: unwritable --index-dir",
        lambda f: ["index", str(f["corpus"]), "--index-dir", "/proc/wideseek-idx"],
        lambda f: "/proc/wideseek-idx",
    ),
    (
        "index: --index-dir is a file",
        lambda f: ["index", str(f["corpus"]), "--index-dir", str(f["a_file"])],
        lambda f: str(f["a_file"]),
    ),
    (
        "serve-index: --workers 0",
        lambda f: ["serve-index", str(f["corpus"]), "--workers", "0"],
        lambda f: "--workers",
    ),
    (
        "serve-index: binary corpus",
        lambda f: ["serve-index", str(f["binary"]), "--index-dir", str(f["out"])],
        lambda f: str(f["binary"]),
    ),
]


@pytest.mark.parametrize("name, argv, names", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, argv, names, tmp_path, capsys):
    f = files(tmp_path)
    try:
        code = cli_main(argv(f))
    except SystemExit as e:  # configuration errors exit from argument parsing
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    lines = [ln for ln in err.splitlines() if not ln.startswith("warning: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("wideseek: ")
    assert names(f) in lines[0]
    # what an earlier run wrote is untouched
    assert (f["out"] / "scores.jsonl").read_text() == EARLIER
    assert f["a_file"].read_text() == EARLIER and f["trajectory"].read_text() == EARLIER
