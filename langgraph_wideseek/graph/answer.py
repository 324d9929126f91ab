"""Final-answer extraction: the fenced markdown table and ``\\boxed{...}`` of the lead's final reply.

These are the user-facing readers of the lead's final reply (reasoning is removed first with
:func:`~langgraph_wideseek.model.hermes.strip_thinking`). The WideSearch scorer has its own, stricter table
reader that reproduces the official quirks (``eval/table.py``); both find the table with
:func:`extract_markdown_fence`, the first-fence rule of the benchmark.
"""

from __future__ import annotations

import re

from ..model.hermes import strip_thinking

__all__ = [
    "extract_boxed",
    "extract_markdown_fence",
    "extract_table",
    "parse_markdown_table",
    "strip_thinking",
]

_FENCE = re.compile(r"```markdown(.*?)```", re.DOTALL)


def extract_markdown_fence(text: str | None) -> str | None:
    """The body of the first block that opens with three backticks and ``markdown`` (case-sensitive)."""
    if not text:
        return None
    m = _FENCE.search(text)
    return m.group(1) if m else None


def extract_boxed(text: str | None) -> str | None:
    """The content of the last ``\\boxed{...}``, with nested braces balanced; ``None`` if absent."""
    if not text:
        return None
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    for j in range(i, len(text)):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i:j].strip()
    return None


def _split_row(line: str) -> list[str]:
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|") and not s.endswith("\\|"):
        s = s[:-1]
    cells = re.split(r"(?<!\\)\|", s)
    return [c.strip().replace("\\|", "|") for c in cells]


_SEPARATOR = re.compile(r"^[\s|:\-]+$")


def parse_markdown_table(block: str) -> list[dict[str, str]]:
    """Rows of a markdown table as dicts keyed by the header cells (as written).

    Lenient by design (this is for users, not the benchmark): separator lines are skipped, short rows are
    padded with empty strings, and cells beyond the header are kept under ``column_N`` keys.
    Raises ``ValueError`` when the block holds no table.
    """
    lines = [ln for ln in block.strip().splitlines() if "|" in ln and not _SEPARATOR.match(ln)]
    if not lines:
        raise ValueError("no markdown table found")
    header = _split_row(lines[0])
    seen: dict[str, int] = {}
    keys = []
    for h in header:
        n = seen.get(h, 0)
        keys.append(h if n == 0 else f"{h}.{n}")
        seen[h] = n + 1
    rows = []
    for ln in lines[1:]:
        cells = _split_row(ln)
        row = {k: (cells[i] if i < len(cells) else "") for i, k in enumerate(keys)}
        for extra in range(len(keys), len(cells)):
            row[f"column_{extra + 1}"] = cells[extra]
        rows.append(row)
    return rows


def extract_table(text: str | None) -> list[dict[str, str]] | None:
    """Rows of the first fenced markdown table in a reply, or ``None`` when there is none."""
    block = extract_markdown_fence(strip_thinking(text))
    if block is None:
        return None
    try:
        return parse_markdown_table(block)
    except ValueError:
        return None
