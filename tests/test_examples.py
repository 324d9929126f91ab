"""The examples run as a user runs them (offline: the simulated server), so the README's demo stays true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    env.update(
        WIDESEEK_DEMO_DIR=str(tmp_path / "demo"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_quickstart_scores_a_perfect_table_offline(tmp_path: Path) -> None:
    proc = _run("quickstart.py", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "SIMULATED" in proc.stderr  # it says it is not a real model
    assert "```markdown" in proc.stdout
    assert "item F1 1.000, row F1 1.000, success True" in proc.stderr


@pytest.mark.slow
def test_langgraph_app_example_embeds_the_graph(tmp_path: Path) -> None:
    proc = _run("langgraph_app.py", tmp_path)
    assert proc.returncode == 0, proc.stderr
    csv_part = proc.stdout.split("CSV from the parent graph:\n", 1)[1].split("\n\n", 1)[0]
    lines = csv_part.strip().splitlines()
    assert lines[0].startswith("River,") and len(lines) == 4  # header + the 3 named rivers
    # a MessagesState parent: the question in, exactly one AI message out, no lead or subagent messages
    assert "Chat app: 2 messages, the last from the ai" in proc.stdout
    # a LangChain agent (create_agent) called the graph as its one tool and got the table back
    assert "Agent called ['wide_search']; the tool answered:" in proc.stdout
    tool_part = proc.stdout.split("the tool answered:\n", 1)[1]
    assert "| River |" in tool_part and tool_part.count("River |") >= 3
    assert "Deprecat" not in proc.stderr
