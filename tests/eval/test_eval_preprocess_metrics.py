"""Preprocessors and cell metrics: hand-checked cases and properties."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langgraph_wideseek.eval.metrics import date_near, exact_match, in_match, number_near, url_match
from langgraph_wideseek.eval.preprocess import extract_number, norm_date, norm_str

_NUMBER = re.compile(r"[-+]?\d*\.\d+%?|[-+]?\d+\.?\d*%?")


@pytest.mark.parametrize(
    ("raw", "out"),
    [
        ("  Hello World* ", "helloworld"),
        ("**Harvard University**", "harvarduniversity"),
        ("a\tb", "a\tb"),  # only the ASCII space is deleted inside
        ("\xa0New York\xa0", "newyork"),  # ...but strip() removes any surrounding whitespace
        ("HANSEN Abigale\nIRVING Svea", "hansenabigale\nirvingsvea"),
        ("nan", "nan"),
    ],
)
def test_norm_str(raw, out):
    assert norm_str(raw) == out


@pytest.mark.parametrize(
    ("raw", "out"),
    [
        ("$1,234.5 million", "1234.5"),
        ("12%", "12%"),
        ("about -3.5 points", "-3.5"),
        ("1.2.3", "1.2"),
        (".5", ".5"),
        ("5.", "5."),
        ("Q3 2024", "3"),  # the first number wins, whatever it is
        ("２０ units", "２０"),  # \d is Unicode-aware, as in the original
        ("no digits", "NULL"),
        ("nan", "NULL"),
    ],
)
def test_extract_number(raw, out):
    assert extract_number(raw) == out


@pytest.mark.parametrize(
    ("raw", "out"),
    [
        ("March 5, 2021", "2021-03-05"),
        ("2021-03", "2021-03-01"),  # day defaults to the first of the month
        ("5 March 2021", "2021-03-05"),
        ("not a date at all", "not a date at all"),
    ],
)
def test_norm_date(raw, out):
    assert norm_date(raw) == out


@pytest.mark.parametrize(
    ("r", "t", "tol", "score"),
    [
        ("105", "100", 0.05, 1.0),
        ("106", "100", 0.05, 0.0),
        ("95", "100", 0.05, 1.0),
        ("5%", "0.05", 0.0, 1.0),  # % divides by 100
        ("0", "0", 0.0, 1.0),
        ("1", "0", 0.1, 0.0),  # zero target: only exact
        ("NULL", "NULL", 0.05, 1.0),  # two non-numbers that are equal
        ("NULL", "abc", 0.05, 0.0),
        ("NULL", "100", 0.05, 0.0),
        ("-100", "100", 0.5, 0.0),
    ],
)
def test_number_near(r, t, tol, score):
    assert number_near(r, t, tol) == score


@pytest.mark.parametrize(
    ("r", "t", "score"),
    [
        ("2021-03-01", "2021-03-31", 1.0),
        ("2021-01-01", "2021-02-01", 1.0),  # 31 days: inside
        ("2021-03-01", "2021-04-02", 0.0),  # 32 days: outside
        ("garbage", "more garbage", 1.0),  # both unparsable
        ("garbage", "2021-01-01", 0.0),
    ],
)
def test_date_near(r, t, score):
    assert date_near(r, t) == score


@pytest.mark.parametrize(
    ("r", "t", "score"),
    [
        ("https://www.harvard.edu/", "https://www.harvard.edu/admissions", 1.0),
        ("https://harvard.edu/", "https://www.harvard.edu/", 0.0),
        ("see http://a.com/x and http://b.org", "http://b.org/y, http://a.com", 1.0),
        ("http://a.com", "http://a.com and http://c.com", 0.0),
        ("no url", "none here either", 1.0),  # two empty host sets are equal
        ("http://a.com:8080/x", "http://a.com/x", 0.0),  # the port is part of the netloc
    ],
)
def test_url_match(r, t, score):
    assert url_match(r, t) == score


def test_exact_and_in_match():
    assert exact_match("Harvard", "harvard") == 1.0
    assert exact_match("2022", "2022.0") == 0.0
    assert in_match("ox", "oxford") == 1.0 and in_match("oxford", "ox") == 0.0


# --- properties ---------------------------------------------------------------------------------------------

text = st.text(max_size=40)


@given(text)
def test_norm_str_output_has_no_spaces_stars_or_ascii_capitals(s):
    out = norm_str(s)
    assert " " not in out and "*" not in out
    assert not re.search(r"[A-Z]", out)
    assert norm_str(s.upper() if s.isascii() else s) == out or not s.isascii()


@given(text)
def test_extract_number_is_null_or_a_number_from_the_text_and_idempotent(s):
    out = extract_number(s)
    if out != "NULL":
        assert _NUMBER.fullmatch(out)
        assert out in s.replace(",", "")
    assert extract_number(out) == out


@given(
    st.one_of(
        st.integers(-(10**9), 10**9).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        text,
    ).map(extract_number),
    st.floats(0, 0.1),
)
def test_number_near_is_reflexive(value, tol):
    assert number_near(value, value, tol) == 1.0


@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(0, 0.05), st.floats(0, 0.05))
def test_number_near_is_monotone_in_the_tolerance(r, t, a, b):
    lo, hi = sorted((a, b))
    if number_near(repr(r), repr(t), lo) == 1.0:
        assert number_near(repr(r), repr(t), hi) == 1.0


@given(
    st.lists(st.sampled_from(["http://a.com", "https://b.org/x", "http://a.com/y", "plain"]), max_size=4),
    st.lists(st.sampled_from(["http://a.com", "https://b.org/x", "http://a.com/y", "plain"]), max_size=4),
)
def test_url_match_is_symmetric_and_reflexive(a, b):
    ra, rb = " ".join(a), " ".join(b)
    assert url_match(ra, rb) == url_match(rb, ra)
    assert url_match(ra, ra) == 1.0


@settings(max_examples=40, deadline=None)
@given(st.dates(dt.date(1990, 1, 1), dt.date(2030, 12, 31)), st.integers(-70, 70))
def test_date_near_is_31_days_either_way(d, shift):
    other = d + dt.timedelta(days=shift)
    assert date_near(d.isoformat(), other.isoformat()) == (1.0 if abs(shift) <= 31 else 0.0)
