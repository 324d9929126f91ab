"""First-run papercuts of issue 13: a quiet install, git-ignored local state, documented analytics."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_building_the_package_metadata_prints_no_setuptools_warnings(tmp_path):
    """`make demo` printed about 248 lines of setuptools deprecation warnings (license table, classifiers)."""
    code = (
        "from setuptools import build_meta; "
        f"build_meta.prepare_metadata_for_build_editable({str(tmp_path)!r})"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stdout + proc.stderr


def test_no_deps_installs_come_last_so_pip_prints_no_resolver_errors():
    """Every pip run after a --no-deps install printed "ERROR: pip's dependency resolver ..." blocks."""
    for script in ("install_openrlhf_cpu.sh", "install_vllm_conformance.sh"):
        lines = [
            ln
            for ln in (REPO / "scripts" / script).read_text().splitlines()
            if re.match(r"\s*pip_install\b", ln)
        ]
        no_deps = [i for i, ln in enumerate(lines) if "--no-deps" in ln]
        assert no_deps, script
        assert all(i >= len(lines) - len(no_deps) for i in no_deps), (script, lines)


def test_local_state_is_ignored_by_git():
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert ".wideseek-demo/" in ignored and ".langgraph_api/" in ignored


def test_the_readme_says_how_to_turn_off_langgraph_analytics():
    readme = (REPO / "README.md").read_text()
    assert "analytics" in readme and "LANGGRAPH_CLI_NO_ANALYTICS=1" in readme
