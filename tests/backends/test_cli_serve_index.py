"""``wideseek serve-index`` as a real process: it announces its URL, answers the API, and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from langgraph_wideseek.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_serve_index_process(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "\n".join(
            json.dumps(
                {"url": f"https://w.example/{i}", "title": f"P{i}", "text": f"page {i} mentions keyword{i}"}
            )
            for i in range(5)
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "langgraph_wideseek.cli",
            "serve-index",
            str(corpus),
            "--port",
            "0",
            "--index-dir",
            str(tmp_path / "idx"),
            "--topk",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        line = proc.stdout.readline()  # blocks until the server listens (or the process dies)
        assert line.startswith("serving 5 pages (5 passages) at http://127.0.0.1:"), proc.stderr.read()
        url = line.rsplit(" ", 1)[1].strip()
        with httpx.Client(timeout=10) as http:
            body = http.post(url + "/retrieve", json={"queries": ["keyword3"], "topk": None}).json()
            assert body["result"][0][0]["url"] == "https://w.example/3"
            assert (
                http.post(url + "/access", json={"urls": ["https://w.example/4"]}).json()["result"][0][
                    "title"
                ]
                == "P4"
            )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_index_reports_bad_input(tmp_path: Path, capsys) -> None:
    assert main(["serve-index", str(tmp_path / "missing.jsonl"), "--index-dir", str(tmp_path)]) == 2
    assert "corpus file not found" in capsys.readouterr().err
    (tmp_path / "c.jsonl").write_text(json.dumps({"url": "u", "text": "t"}))
    assert main(["serve-index", str(tmp_path / "c.jsonl"), "--port", "70000"]) == 2
    assert (
        main(["serve-index", str(tmp_path / "c.jsonl"), "--index-dir", str(tmp_path / "i"), "--topk", "0"])
        == 2
    )
    assert "--topk must be from 1 to 100, not 0" in capsys.readouterr().err
    # was a traceback from the thread pool (issue 13)
    assert main(["serve-index", str(tmp_path / "c.jsonl"), "--workers", "0"]) == 2
    assert capsys.readouterr().err == "wideseek: --workers must be from 1 to 256, not 0\n"


def test_serve_index_reports_a_busy_port(tmp_path: Path, capsys) -> None:
    import socket

    (tmp_path / "c.jsonl").write_text(json.dumps({"url": "u", "text": "t"}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        rc = main(
            [
                "serve-index",
                str(tmp_path / "c.jsonl"),
                "--index-dir",
                str(tmp_path / "i"),
                "--port",
                str(port),
            ]
        )
    assert rc == 1 and "cannot listen" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["serve-index", "--help"]])
def test_help(argv, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0 and "--retriever-url" in capsys.readouterr().out
