"""Cell preprocessors of the WideSearch pipeline (spec section 4.3).

Every function takes and returns a string, is applied to both the response and the gold column, and is pure,
so results can be memoised. Date parsing goes through ``dateparser`` (slow: about a millisecond per call), so
its results are cached in an explicit bounded cache.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import lru_cache

__all__ = ["PREPROCESSORS", "extract_number", "norm_date", "norm_str", "parse_date", "preprocess_column"]

_NUMBER = re.compile(r"[-+]?\d*\.\d+%?|[-+]?\d+\.?\d*%?")
_DATE_SETTINGS = {"PREFER_DAY_OF_MONTH": "first"}


def norm_str(value: str) -> str:
    """Lowercase, strip surrounding whitespace, delete every ASCII space and every ``*``."""
    return value.lower().strip().replace(" ", "").replace("*", "")


def extract_number(value: str) -> str:
    """The first number in the text after deleting commas (sign and ``%`` kept), else the string ``NULL``.

    ``\\d`` is Unicode-aware here as in the original, so full-width and other script digits count.
    """
    m = _NUMBER.search(value.replace(",", ""))
    return m.group(0) if m is not None else "NULL"


@lru_cache(maxsize=65_536)
def _dateparse(value: str) -> datetime | None:
    import dateparser  # imported lazily: it loads language data on first use (about a second)

    return dateparser.parse(value, settings=_DATE_SETTINGS)


def parse_date(value: str) -> datetime | None:
    """``dateparser.parse`` with day-of-month defaulting to the 1st; ``None`` when unparsable.

    Exceptions from dateparser propagate: the official ``norm_date`` let them abort the trial, while
    ``date_near`` treats them as unparsable (see :mod:`.metrics`).

    Like the original, relative or year-less dates ("March 5", "yesterday") resolve against today's date.
    """
    return _dateparse(value)


def norm_date(value: str) -> str:
    """The date as ``YYYY-MM-DD``, or the input unchanged when it does not parse as a date."""
    d = parse_date(value)
    return value if d is None else d.strftime("%Y-%m-%d")


PREPROCESSORS: dict[str, Callable[[str], str]] = {
    "norm_str": norm_str,
    "extract_number": extract_number,
    "norm_date": norm_date,
}


def preprocess_column(values: list[str], names: Iterable[str]) -> list[str]:
    """``values`` through the named preprocessors in order (the same steps for response and gold columns)."""
    for name in names:
        fn = PREPROCESSORS[name]
        values = [fn(v) for v in values]
    return values
