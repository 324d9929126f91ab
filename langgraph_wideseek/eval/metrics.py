"""Per-cell metrics of the WideSearch pipeline (spec section 5), each returning 0.0 or 1.0.

``llm_judge`` is not here: it grades a whole column in one judge call (see :mod:`.scorer`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlparse

from .preprocess import parse_date

log = logging.getLogger(__name__)

__all__ = ["CELL_METRICS", "date_near", "exact_match", "in_match", "number_near", "url_match"]

# ``[$-_@.&+]`` is a character *range* from "$" to "_" (it covers digits, upper-case letters, most punctuation
# and the backslash); kept as written because it decides where a URL ends.
_URL = re.compile(r"http[s]?://(?:[a-zA-Z]|[0-9]|[$-_@.&+]|[!*\\(\\),]|(?:%[0-9a-fA-F][0-9a-fA-F]))+")


def exact_match(response: str, target: str, criterion: object = None) -> float:
    return 1.0 if response.lower() == target.lower() else 0.0


def in_match(response: str, target: str, criterion: object = None) -> float:
    """The response is a substring of the target (registered by the original scorer, unused by the data)."""
    return 1.0 if response in target else 0.0


def _as_number(text: str) -> float | None:
    try:
        if "%" in text:
            return float(text.replace("%", "")) / 100.0
        return float(text)
    except ValueError:
        return None


def number_near(response: str, target: str, criterion: object = 0.0) -> float:
    """``|r - t| <= |t| * tol``; ``%`` values are divided by 100; two non-numbers match only if equal."""
    tol = float(criterion)  # type: ignore[arg-type]
    r = _as_number(response)
    t = _as_number(target)
    if r is None or t is None:
        return 1.0 if r is None and t is None and response == target else 0.0
    return 1.0 if abs(r - t) <= abs(t) * tol else 0.0


def _date_or_none(text: str) -> datetime | None:
    try:
        return parse_date(text)
    except Exception as e:  # noqa: BLE001 - the original swallowed any dateparser failure here
        log.debug("date_near: dateparser failed on %r: %s: %s", text, type(e).__name__, e)
        return None


def date_near(response: str, target: str, criterion: object = None) -> float:
    """Both dates within 31 days; both unparsable counts as a match, one unparsable as a miss."""
    r = _date_or_none(response)
    t = _date_or_none(target)
    if r is None or t is None:
        return 1.0 if r is None and t is None else 0.0
    return 1.0 if abs((r - t).days) <= 31 else 0.0


def url_match(response: str, target: str, criterion: object = None) -> float:
    """The sets of hosts (``netloc``) of every URL in each cell are equal (two cells without URLs match).

    ``urlparse`` raises ``ValueError`` on malformed IPv6 hosts; that aborts the trial, as it did originally.
    """
    r = {urlparse(u).netloc for u in _URL.findall(response)}
    t = {urlparse(u).netloc for u in _URL.findall(target)}
    return 1.0 if r == t else 0.0


CELL_METRICS: dict[str, Callable[[str, str, object], float]] = {
    "exact_match": exact_match,
    "number_near": number_near,
    "date_near": date_near,
    "url_match": url_match,
    "in_match": in_match,
}
