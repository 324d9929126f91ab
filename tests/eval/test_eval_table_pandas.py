"""Differential tests: our pandas-free reader against pandas 2.3.1, the version the official numbers used.

The oracle below does what the official scorer did with pandas (find the block, clean it up, ``read_csv``
with ``sep="|"``, drop ``Unnamed`` columns, ``astype(str)``); hypothesis feeds both the same random replies
and CSV files. Skipped unless pandas 2.3.1 is installed (``pip install -e '.[dev]'`` pins it).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pd = pytest.importorskip("pandas")
if pd.__version__ != "2.3.1":
    pytest.skip(f"differential tests need pandas 2.3.1, found {pd.__version__}", allow_module_level=True)

from langgraph_wideseek.eval.table import (  # noqa: E402
    TableParseError,
    extract_table_block,
    normalize_block,
    read_delimited,
    read_gold_csv,
    read_response_table,
)

GOLD = Path(__file__).resolve().parents[1] / "data" / "widesearch" / "widesearch_gold"


def _frame_of(df) -> tuple[list[str], list[tuple[str, ...]]]:
    return [str(c) for c in df.columns], [
        tuple(df.iloc[:, i].astype(str).tolist()) for i in range(df.shape[1])
    ]


def oracle_read(text: str, sep: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _frame_of(pd.read_csv(io.StringIO(text), sep=sep))
        except (pd.errors.ParserError, pd.errors.EmptyDataError):
            return "error"


def oracle_response(response: str):
    """The official reading of a reply, written against pandas (the reference for our reader)."""
    block = extract_table_block(response)
    if block is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            df = pd.read_csv(io.StringIO(normalize_block(block)), sep="|")
        except (pd.errors.ParserError, pd.errors.EmptyDataError):
            return "error"
    df = df.loc[:, ~df.columns.str.startswith("Unnamed")]
    return _frame_of(df)


def ours_read(text: str, sep: str):
    try:
        f = read_delimited(text, sep)
    except TableParseError:
        return "error"
    return list(f.columns), list(f.data)


def ours_response(response: str):
    try:
        f = read_response_table(response)
    except TableParseError:
        return "error"
    return None if f is None else (list(f.columns), list(f.data))


# Cells chosen to hit every typing branch: ints (signs, zeros, overflow), floats (exponents, 17-digit cut,
# range), inf, NA tokens, bools, quotes, pipes inside quotes, and ordinary text.
ATOMS = [
    "1",
    "22",
    "-3",
    "+4",
    "0",
    "007",
    "2022",
    "2022.0",
    "1.5",
    ".5",
    "5.",
    "1e5",
    "1E-3",
    "-0.0",
    "1e400",
    "1e-400",
    "0.1234567890123456789",
    "12345678901234567890.5",
    "9999999999999999999",
    "-9999999999999999999",
    "99999999999999999999",
    "inf",
    "-Infinity",
    "NaN",
    "nan",
    "NA",
    "N/A",
    "n/a",
    "None",
    "null",
    "NULL",
    "#N/A",
    "-nan",
    "<NA>",
    "",
    "-",
    "true",
    "FALSE",
    "TrUe",
    "abc",
    "x y",
    " 7 ",
    '"q"',
    '"a|b"',
    '"a""b"',
    '"NA"',
    'say "hi"',
    "5%",
    "$5",
    "1,000",
    "日本",
    "‐",
    "**bold**",
]

atom = st.sampled_from(ATOMS)


@st.composite
def pipe_tables(draw):
    ncol = draw(st.integers(1, 4))
    header = draw(
        st.lists(
            st.sampled_from(["Name", "Year", "name", "", "Unnamed", "A B", "a.1"]),
            min_size=ncol,
            max_size=ncol,
        )
    )
    lead = draw(st.booleans())
    trail = draw(st.booleans())

    def line(cells):
        return ("| " if lead else "") + " | ".join(cells) + (" |" if trail else "")

    lines = [line(header)]
    if draw(st.booleans()):
        lines.append(line(["---"] * ncol))
    for _ in range(draw(st.integers(0, 5))):
        width = max(1, ncol + draw(st.sampled_from([0, 0, 0, 0, -1, 1])))
        lines.append(line(draw(st.lists(atom, min_size=width, max_size=width))))
    table = "\n".join(lines)
    wrap = draw(st.sampled_from(["fence", "fence", "bare", "prose"]))
    if wrap == "fence":
        return f"Answer:\n```markdown\n{table}\n```\nDone."
    if wrap == "prose":
        return f"Here | is the table:\n{table}\nThanks"
    return table


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipe_tables())
def test_response_reader_matches_pandas(response):
    assert ours_response(response) == oracle_response(response)


@st.composite
def csv_texts(draw):
    sep = draw(st.sampled_from([",", "|"]))
    ncol = draw(st.integers(1, 4))
    rows = [sep.join(draw(st.lists(st.sampled_from(["a", "b", "a", "", "c"]), min_size=ncol, max_size=ncol)))]
    for _ in range(draw(st.integers(0, 5))):
        width = max(1, ncol + draw(st.sampled_from([0, 0, 0, -1, 1, 2])))
        cells = draw(st.lists(atom, min_size=width, max_size=width))
        rows.append(sep.join(c if sep == "|" or "|" not in c else c.replace("|", ",") for c in cells))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    return sep, eol.join(rows) + draw(st.sampled_from(["", eol, eol + eol, eol + "  "]))


@settings(max_examples=400, deadline=None)
@given(csv_texts())
def test_csv_reader_matches_pandas(case):
    sep, text = case
    assert ours_read(text, sep) == oracle_read(text, sep)


@pytest.mark.parametrize("path", sorted(GOLD.glob("*.csv")), ids=lambda p: p.stem)
def test_gold_files_match_pandas(path):
    df = pd.read_csv(path)
    expected_cols = [c.strip().lower().replace(" ", "") for c in df.columns]
    f = read_gold_csv(path)
    assert list(f.columns) == expected_cols
    assert list(f.data) == _frame_of(df)[1]


@pytest.mark.parametrize(
    "response",
    [
        "```markdown\n|a|b|\n|1|2|3|\n|x|y|\n```",  # implicit index
        "```markdown\n|a|b|\n|1|2|\n|3|4|5|\n```",  # too many fields later on
        "```markdown\n|Year|Team|\n|2022|x|\n|N/A|y|\n```",  # 2022 -> 2022.0
        '```markdown\n|a|\n|"open|\n```',  # unterminated quote
        "```markdown\n   \n```",  # empty block
        "```markdown\n|---|---|\n```",  # separator only
        "| a | b |\n|---|---|\n| 1\r2 | 3 |",  # a bare \r inside a line
    ],
)
def test_hand_picked_responses_match_pandas(response):
    assert ours_response(response) == oracle_response(response)
