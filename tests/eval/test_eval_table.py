"""The response/gold table reader: block extraction, clean-up, tokenizing and whole-column typing.

Expected values are what pandas 2.3.1 + the official clean-up produce (test_eval_table_pandas.py checks the
same functions against pandas itself when it is installed).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langgraph_wideseek.eval.table import (
    NA_TOKENS,
    TableParseError,
    extract_table_block,
    normalize_block,
    parse_c_double,
    read_delimited,
    read_gold_csv,
    read_response_table,
    render_column,
    to_markdown,
    tokenize,
)

# --- finding the table --------------------------------------------------------------------------------------


def test_first_markdown_fence_wins():
    text = "intro\n```markdown\n|a|b|\n|1|2|\n```\nmore\n```markdown\n|c|\n|3|\n```"
    assert extract_table_block(text) == "\n|a|b|\n|1|2|\n"


def test_fence_language_is_case_sensitive_and_falls_back_to_pipes():
    text = "```Markdown\n| a | b |\n|---|---|\n| 1 | 2 |\n```"
    assert (
        extract_table_block(text) == "| a | b |\n|---|---|\n| 1 | 2 |"
    )  # the slice ends before the last newline


def test_pipe_fallback_starts_at_first_pipe_mid_line_and_stops_at_first_non_pipe_line():
    text = "Result: | a | b |\n|---|---|\n| 1 | 2 |\nthat's all | really |"
    assert extract_table_block(text) == "| a | b |\n|---|---|\n| 1 | 2 |\n"


def test_pipe_fallback_needs_four_pipes():
    assert extract_table_block("a | b | c") is None
    assert extract_table_block("| a | b | c") is None  # three pipes
    assert extract_table_block("| a | b | c |") == "| a | b | c |"


def test_indented_continuation_line_ends_the_pipe_run():
    text = "| a | b |\n  | 1 | 2 |\n| 3 | 4 |"
    assert extract_table_block(text) == "| a | b |\n"


def test_no_table_at_all():
    assert extract_table_block("") is None
    assert extract_table_block(None) is None
    assert read_response_table("just prose, no table") is None


def test_normalize_block_lowercases_and_despaces_only_the_first_line():
    block = "\n| Release Date | Model Name |\n|:---|---:|\n| 2015 April | Galaxy S6 |\n\nno pipe here\n"
    assert normalize_block(block) == "|releasedate|modelname|\n|2015 April|Galaxy S6|"


def test_a_data_row_of_dashes_and_colons_is_dropped_like_a_separator():
    assert normalize_block("|a|b|\n|---|---|\n| : | - |\n| 1 | 2 |") == "|a|b|\n|1|2|"


def test_normalize_block_when_first_line_is_not_the_header():
    # the line that gets lowercased is dropped (no pipe), so the real header keeps its case and spaces
    block = "Table 1\n| Model Name | Year |\n|---|---|\n| S6 | 2015 |"
    assert normalize_block(block) == "|Model Name|Year|\n|S6|2015|"


# --- tokenizer ----------------------------------------------------------------------------------------------


def test_tokenizer_quotes_doubling_and_text_after_a_closing_quote():
    assert tokenize('a|b\n"x|y"|"say ""hi"""\n"q"tail|z"w', "|") == [
        ["a", "b"],
        ["x|y", 'say "hi"'],
        ["qtail", 'z"w'],
    ]


def test_tokenizer_line_ends_blank_lines_and_trailing_delimiter():
    assert tokenize("a,b\r\n\r\n  \n1,2\r\n3,\n", ",") == [["a", "b"], ["1", "2"], ["3", ""]]
    assert tokenize("a|b\n1\r2|3", "|") == [["a", "b"], ["1"], ["2", "3"]]  # a bare \r ends a record


def test_tokenizer_keeps_line_breaks_inside_quotes_and_skips_a_bom():
    assert tokenize('\ufeffa,b\n"l1\r\nl2",x\n', ",") == [["a", "b"], ["l1\r\nl2", "x"]]


def test_unterminated_quote_is_an_error():
    with pytest.raises(TableParseError):
        read_delimited('a|b\n"open|1\n2|3', "|")


# --- frames: header names, field counts ---------------------------------------------------------------------


def test_empty_header_fields_become_unnamed_and_duplicates_are_mangled():
    f = read_delimited("|a|a|a.1|\n|1|2|3|", "|")
    assert f.columns == ("Unnamed: 0", "a", "a.2", "a.1", "Unnamed: 4")
    assert f.data == (("nan",), ("1",), ("2",), ("3",), ("nan",))


def test_a_later_row_with_too_many_fields_is_an_error():
    with pytest.raises(TableParseError, match="expected 4 fields"):
        read_delimited("|a|b|\n|1|2|\n|3|4|5|", "|")


def test_a_long_first_row_becomes_an_implicit_index_and_shifts_the_cells():
    # pandas uses the extra leading field(s) of the first data row as the index: cells move one column left
    f = read_delimited("|a|b|\n|1|2|3|\n|x|y|", "|")
    assert f.columns == ("Unnamed: 0", "a", "b", "Unnamed: 3")
    assert f.data == (("1", "x"), ("2", "y"), ("3.0", "nan"), ("nan", "nan"))


def test_short_rows_are_padded_with_missing_cells():
    f = read_delimited("a|b|c\n1|2\n3|4|5", "|")
    assert f.data == (("1", "3"), ("2", "4"), ("nan", "5.0"))


def test_no_columns_is_an_error():
    with pytest.raises(TableParseError):
        read_delimited("", "|")


# --- whole-column typing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cells", "rendered"),
    [
        (["2022", "2023"], ["2022", "2023"]),  # int64
        (["2022", "N/A"], ["2022.0", "nan"]),  # int + missing -> float64
        (["2022", "abc"], ["2022", "abc"]),  # mixed -> strings as written
        (["007", "+5", "-0", " 9 "], ["7", "5", "0", "9"]),  # int parsing normalises
        (["1.50", ".5", "5.", "1e5"], ["1.5", "0.5", "5.0", "100000.0"]),
        (["1e400", "2"], ["1e400", "2"]),  # out-of-range float: strings
        (["inf", "-Infinity"], ["inf", "-inf"]),
        (["true", "FALSE"], ["True", "False"]),  # bool
        (["tRuE", ""], ["True", "nan"]),  # bool + missing -> objects
        (["True", "1"], ["True", "1"]),  # not all bool: strings
        (["N/A", "-"], ["nan", "-"]),  # "-" is not a missing token
        (["", "NULL", "None", "#N/A"], ["nan", "nan", "nan", "nan"]),  # all missing -> float64 nan
        (["9999999999999999999", "1"], ["9999999999999999999", "1"]),  # uint64
        (["9999999999999999999", "NA"], ["9999999999999999999", "NA"]),  # uint64 conflict: raw strings
        (["-9999999999999999999", "NA"], ["-9999999999999999999", "nan"]),
        (["0.1234567890123456789"], ["0.1234567890123456"]),  # 17-digit parser, not Python's float
    ],
)
def test_whole_column_typing(cells, rendered):
    assert render_column(cells) == rendered


def test_parse_c_double_edges():
    assert parse_c_double("12345678901234567890.5") == 1.2345678901234568e19
    assert parse_c_double("1e-400") == 0.0
    assert parse_c_double("-1e-700") == 0.0
    assert parse_c_double("9e308") is None
    assert parse_c_double("1e") is None and parse_c_double(".") is None and parse_c_double(" inf") is None
    assert parse_c_double("+InFiNiTy") == float("inf")


def test_gold_csv_with_bom_crlf_and_quoted_multiline_cells(tmp_path):
    p = tmp_path / "g.csv"
    p.write_bytes('\ufeffYear, Name ,Notes\r\n2020,"A, B","x\ny"\r\n2021,C,\r\n'.encode())
    f = read_gold_csv(p)
    assert f.columns == ("year", "name", "notes")
    assert f.data == (("2020", "2021"), ("A, B", "C"), ("x\ny", "nan"))


def test_gold_csv_must_be_utf8(tmp_path):
    p = tmp_path / "g.csv"
    p.write_bytes("a\n\xe9\n".encode("latin-1"))
    with pytest.raises(TableParseError, match="UTF-8"):
        read_gold_csv(p)


def test_response_reader_drops_unnamed_columns():
    f = read_response_table("```markdown\n| Name | Year |\n|---|---|\n| S6 | 2015 |\n```")
    assert f.columns == ("name", "year") and f.data == (("S6",), ("2015",))


# --- properties ---------------------------------------------------------------------------------------------

# No U+FEFF: the reader drops a byte-order mark at the start of the text, as pandas' C parser does, so a first
# cell starting with one does not round-trip, by design (hypothesis found it).
_plain = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='|"\ufeff'), max_size=12
).filter(lambda s: s == s.strip() and s not in NA_TOKENS)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_plain, min_size=3, max_size=3), min_size=1, max_size=6))
def test_tokenizer_round_trips_pipe_rows(rows):
    text = "\n".join("|".join(r) for r in rows)
    records = tokenize(text, "|")
    expected = [r for r in rows if any(c.strip(" \t") for c in r) or len(r) > 1]
    assert records == expected


_cell = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=10
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_cell, min_size=1, max_size=8))
def test_render_column_is_total_and_keeps_length(cells):
    out = render_column(cells)
    assert len(out) == len(cells)
    assert all(isinstance(c, str) for c in out)
    # a missing cell always renders "nan", except in pandas' uint64-conflict case that keeps raw text
    if not any(c.strip(" \t\n\v\f\r").isdigit() and int(c) > 2**63 - 1 for c in cells if c.strip().isascii()):
        assert all(o == "nan" for c, o in zip(cells, out) if c in NA_TOKENS)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.lists(
            st.text(
                alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=8
            ).filter(lambda s: s.strip() == s and s.strip()),
            min_size=2,
            max_size=2,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_to_markdown_is_read_back_as_written(rows):
    # cells that typing would change (numbers, bools, NA tokens) are excluded: this checks the text path
    rows = [r for r in rows if all((render_column([c]) == [c] and c.isascii()) or not c.isascii() for c in r)]
    # a row whose cells are all "-", ":" or spaces looks like a separator line: the official clean-up drops it
    rows = [r for r in rows if not all(set(c) <= set("-: ") for c in r)]
    # the official clean-up removes white space around every "|" of a line, quoted cells included
    rows = [r for r in rows if not any(re.search(r"\s\||\|\s", c) for c in r)]
    if not rows:
        return
    cols = ["c1", "c2"]
    frame = read_response_table(to_markdown(cols, rows))
    got = list(zip(*frame.data))
    assert frame.columns == ("c1", "c2")
    assert [tuple(render_column(list(col))) for col in zip(*rows)] == list(frame.data)
    assert len(got) == len(rows)
