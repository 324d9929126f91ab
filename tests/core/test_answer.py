"""Final-answer extraction from the lead's reply: reasoning removal, the fenced table, \\boxed{}."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from langgraph_wideseek.graph.answer import (
    extract_boxed,
    extract_markdown_fence,
    extract_table,
    parse_markdown_table,
    strip_thinking,
)

TABLE = "```markdown\n| River | Length |\n|:---|---:|\n| Amsel | 412 km |\n| Brenna | 287 km |\n```"


@pytest.mark.parametrize(
    "text, want",
    [
        ("<think>a</think>answer", "answer"),
        ("<think>a</think> x <think>b</think> y", "x  y"),
        ("hidden\n</think>\nshown", "shown"),
        ("shown <think>cut off mid-thought", "shown"),
        ("", ""),
        (None, ""),
    ],
)
def test_strip_thinking(text, want):
    assert strip_thinking(text) == want


def test_first_fence_wins_and_other_fences_are_ignored():
    text = "```python\nx = 1\n```\n" + TABLE + "\n```markdown\n| A |\n|---|\n| z |\n```"
    assert extract_markdown_fence(text).strip().startswith("| River | Length |")
    assert extract_markdown_fence("```Markdown\n| a |\n```") is None  # case-sensitive, like the benchmark


def test_extract_table_rows():
    rows = extract_table("<think>draft | x |</think>Here it is:\n" + TABLE)
    assert rows == [{"River": "Amsel", "Length": "412 km"}, {"River": "Brenna", "Length": "287 km"}]


def test_table_inside_thinking_does_not_count():
    assert extract_table("<think>" + TABLE + "</think>no table after all") is None


def test_table_quirks_escaped_pipes_short_rows_extra_cells_duplicate_headers():
    block = "| Name | Name | Note |\n|---|---|---|\n| a \\| b | c |\n| d | e | f | g |"
    rows = parse_markdown_table(block)
    assert rows[0] == {"Name": "a | b", "Name.1": "c", "Note": ""}
    assert rows[1] == {"Name": "d", "Name.1": "e", "Note": "f", "column_4": "g"}


def test_no_table_in_block():
    with pytest.raises(ValueError, match="no markdown table"):
        parse_markdown_table("just words")
    assert extract_table("```markdown\nno pipes here\n```") is None
    assert extract_table("no fence at all") is None


@pytest.mark.parametrize(
    "text, want",
    [
        (r"The answer is \boxed{42}.", "42"),
        (r"\boxed{a} then \boxed{b}", "b"),
        (r"\boxed{\frac{1}{2} + {x}}", r"\frac{1}{2} + {x}"),
        (r"\boxed{unclosed", None),
        ("no box", None),
    ],
)
def test_extract_boxed(text, want):
    assert extract_boxed(text) == want


@given(st.text(alphabet=st.characters(blacklist_characters="{}\\"), max_size=30), st.integers(0, 3))
def test_boxed_balances_nested_braces(inner, depth):
    body = "{" * depth + inner + "}" * depth
    assert extract_boxed("x \\boxed{" + body + "} y") == body.strip()
