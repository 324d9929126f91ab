"""README's "Try it offline", run as a user runs it: every command of the section, in a fresh folder that
looks like a clone after `make demo`'s setup, with its output checked.

The only changes to the commands: the test's own venv stands in for .venv (its setup stamps are taken as done,
so make installs nothing), the simulated server and Studio listen on free ports (a developer's port 8000 or
2024 may be taken) and Studio opens no browser. Terminal 1's Ctrl-C is a SIGINT to its process group, as a
terminal sends it.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from langgraph_wideseek.eval import ExactJudge, load_tasks, score_response

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Try it offline"
START_TIMEOUT = 90.0
# Entries of the checkout a fresh clone does not have (or that the test provides itself).
NOT_CLONED = {
    ".git",
    ".venv",
    ".venv-vllm",
    "wideseek-sim",
    ".langgraph_api",
    ".wideseek-demo",
    ".pytest_cache",
}


def readme_blocks() -> list[list[str]]:
    """The command lines of each ```bash block in the section (blank lines dropped)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(SECTION + "\n", 1)[1].split("\n## ", 1)[0]
    blocks = []
    for chunk in section.split("```bash\n")[1:]:
        body = chunk.split("```", 1)[0]
        blocks.append([line for line in body.splitlines() if line.strip()])
    return blocks


def words(line: str) -> list[str]:
    return shlex.split(line, comments=True)


def command(line: str) -> str:
    """The line without its trailing comment (the README's lines never quote a #)."""
    return line.split("#", 1)[0].strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(5)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    if sys.prefix == sys.base_prefix:
        pytest.skip("needs the suite to run from a venv (it stands in for the clone's .venv)")
    folder = tmp_path / "clone"
    folder.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in NOT_CLONED and not entry.name.endswith(".egg-info"):
            (folder / entry.name).symlink_to(entry)
    (folder / ".venv").symlink_to(sys.prefix)
    return folder


@pytest.fixture
def terminal_1(clone: Path) -> Iterator[subprocess.Popen]:
    """The section's first block, `make simulate`, running until the test ends it."""
    (line,) = readme_blocks()[0]
    assert words(line) == ["make", "simulate"]
    # The setup stamps as make names them, taken as done: make must not reinstall into the test's venv.
    # --no-print-directory: under `make test` (CI) this make is nested and would print its directory
    command = [
        "make",
        "--no-print-directory",
        "-o",
        ".venv/.core",
        "-o",
        ".venv/.extras",
        "simulate",
        "SIMULATE_ARGS=--port 0",
    ]
    dry = subprocess.run([*command[:1], "-n", *command[1:]], cwd=clone, capture_output=True, text=True)
    assert dry.stdout == ".venv/bin/python -m langgraph_wideseek simulate --port 0\n", dry.stdout + dry.stderr
    log = (clone / "terminal-1.log").open("w")
    proc = subprocess.Popen(
        command, cwd=clone, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, text=True
    )
    env_sh = clone / "wideseek-sim" / "env.sh"
    deadline = time.monotonic() + START_TIMEOUT
    while not env_sh.is_file():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"make simulate did not start:\n{(clone / 'terminal-1.log').read_text()}")
        time.sleep(0.1)
    try:
        yield proc
    finally:
        stop(proc)
        log.close()


def in_terminal_2(clone: Path, source: str, line: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", f"{source} && {line}"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=300,
    )


async def _studio_run(port: int, question: str) -> dict:
    from langgraph_sdk import get_client

    client = get_client(url=f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                assistants = await client.assistants.search(graph_id="wideseek")
                break
            except Exception:  # not listening yet
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        assert assistants and assistants[0]["graph_id"] == "wideseek"
        thread = await client.threads.create()
        final: dict = {}
        async for part in client.runs.stream(
            thread["thread_id"], "wideseek", input={"question": question}, stream_mode="values"
        ):
            assert part.event != "error", part.data
            if part.event == "values":
                final = part.data
        return final
    finally:
        await client.aclose()


def check_studio(clone: Path, source: str, line: str) -> None:
    pytest.importorskip("langgraph_sdk", reason="langgraph_sdk is not installed")
    assert words(line) == ["langgraph", "dev"]
    port = free_port()
    studio_flags = f"--no-browser --no-reload --host 127.0.0.1 --port {port}"
    log_path = clone / "studio.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            ["bash", "-c", f"{source} && exec {line} {studio_flags}"],
            cwd=clone,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        task = load_tasks(clone / "wideseek-sim" / "tasks.jsonl")[0]
        question = (clone / "wideseek-sim" / "questions" / f"{task.instance_id}.txt").read_text()
        try:
            final = asyncio.run(_studio_run(port, question))
        except Exception as e:
            pytest.fail(f"Studio run failed: {e!r}\n{log_path.read_text()[-4000:]}")
        assert final["status"] == "ok"  # the graph's output: answer, table, status (errors stay in its state)
        scored = asyncio.run(score_response(task, final["answer"], judge=ExactJudge()))
        assert scored.success
    finally:
        stop(proc, signal.SIGTERM)


@pytest.mark.slow
def test_every_command_of_try_it_offline(clone: Path, terminal_1: subprocess.Popen) -> None:
    source, *lines = readme_blocks()[1]
    source = command(source)
    assert words(source) == [".", "wideseek-sim/env.sh"]
    sim = clone / "wideseek-sim"
    tasks = {t.instance_id: t for t in load_tasks(sim / "tasks.jsonl")}
    checked = []
    for line in lines:
        argv = words(line)
        if argv[:2] == ["langgraph", "dev"]:
            check_studio(clone, source, command(line))
            checked.append(line)
            continue
        proc = in_terminal_2(clone, source, command(line))
        assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
        if argv[:2] == ["wideseek", "run"]:
            instance_id = Path(argv[-1]).stem
            scored = asyncio.run(score_response(tasks[instance_id], proc.stdout, judge=ExactJudge()))
            assert scored.success, f"{proc.stdout}\n{proc.stderr}"
        elif argv[:2] == ["wideseek", "eval"]:
            out = clone / argv[argv.index("--out") + 1]
            assert {"report.md", "summary.json", "scores.png"} <= {p.name for p in out.iterdir()}
            assert "success  Avg@2 100.0" in proc.stdout, proc.stdout
        elif argv == ["python", "examples/langgraph_app.py"]:
            csv_part = proc.stdout.split("CSV from the parent graph:\n", 1)[1].split("\n\n", 1)[0]
            assert len(csv_part.strip().splitlines()) == 4  # header + the 3 named rivers
            assert "SIMULATED" not in proc.stderr  # it used the server simulate started, not its own
        else:
            pytest.fail(f"no check for the README command {line!r}: add one")
        checked.append(line)
    assert checked == lines

    # The examples, as simulate printed them (the one the README runs aside)
    printed = [ln for ln in (clone / "terminal-1.log").read_text().splitlines() if ln.startswith("python ")]
    assert [Path(words(ln)[1]).name for ln in printed] == [
        "quickstart.py",
        "langgraph_app.py",
        "eval_widesearch.py",
    ]
    for line in (printed[0], printed[2]):
        proc = in_terminal_2(clone, source, line)
        assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
        if "quickstart" in line:
            assert "item F1 1.000, row F1 1.000, success True" in proc.stderr
        else:
            assert "all: item F1 Avg@2 100.0" in proc.stdout and "success Avg@2 100.0" in proc.stdout

    # Ctrl-C in terminal 1
    stop(terminal_1)
    log = (clone / "terminal-1.log").read_text()
    assert log.startswith(".venv/bin/python -m langgraph_wideseek simulate --port 0\nSIMULATED model server")
    assert "stopped by SIGINT" in log
    assert not (sim / "env.sh").exists()
