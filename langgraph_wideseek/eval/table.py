"""Reading response and gold tables exactly as the official WideSearch scorer saw them.

The official scorer read tables with ``pandas.read_csv`` (pandas 2.3.1, C engine, default options) and then
turned every cell into a string with ``astype(str)``. The strings it compared therefore depend on pandas'
tokenizer and on its whole-column type inference: ``2022`` stays ``2022`` in an all-integer column but becomes
``2022.0`` when the column also holds a missing cell, ``N/A`` becomes ``nan``, ``true`` becomes ``True``.
This module reproduces those rules explicitly, without pandas, so the scores do not move with the installed
pandas version. ``tests/eval/test_eval_table_pandas.py`` checks it against pandas 2.3.1 itself.

The pieces, in the order the scorer uses them:

* :func:`extract_table_block` finds the table text in a reply (the first fenced ``markdown`` block, else a
  pipe run);
* :func:`normalize_block` applies the official line clean-up (header lowercased and despaced, separator
  lines dropped, cells stripped);
* :func:`read_delimited` tokenizes like pandas' C parser and builds a :class:`Frame` of rendered strings;
* :func:`read_response_table` and :func:`read_gold_csv` combine them for the two sides.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import TableParseError
from ..graph.answer import extract_markdown_fence

__all__ = [
    "NA_TOKENS",
    "Frame",
    "TableParseError",
    "extract_table_block",
    "norm_column",
    "normalize_block",
    "read_delimited",
    "read_gold_csv",
    "read_response_table",
    "render_column",
    "to_markdown",
]

# pandas 2.x default missing-value tokens (``pandas._libs.parsers.STR_NA_VALUES``). Matching is exact: no
# stripping, no case folding, and quoting does not protect a token.
NA_TOKENS: frozenset[str] = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)


@dataclass(frozen=True, slots=True)
class Frame:
    """A parsed table: column names and, per column, the cells rendered as ``astype(str)`` would render them.

    Column-major because typing and scoring both work a column at a time.
    """

    columns: tuple[str, ...]
    data: tuple[tuple[str, ...], ...]

    @property
    def num_rows(self) -> int:
        return len(self.data[0]) if self.data else 0

    def column(self, name: str) -> tuple[str, ...]:
        return self.data[self.columns.index(name)]

    def rows(self) -> list[tuple[str, ...]]:
        return list(zip(*self.data)) if self.data else []

    def select(self, names: list[str] | tuple[str, ...]) -> Frame:
        return Frame(tuple(names), tuple(self.column(n) for n in names))

    def rename(self, columns: list[str] | tuple[str, ...]) -> Frame:
        if len(columns) != len(self.columns):
            raise ValueError("rename needs one name per column")
        return Frame(tuple(columns), self.data)


# ------------------------------------------------------------------------------------------------------------
# 1. Finding the table in a reply
# ------------------------------------------------------------------------------------------------------------

# A run of lines starting with "|", beginning at the first pipe. "." stops at "\n" only, as in the original.
_PIPE_RUN = re.compile(r"(?:\|.*\n?)+")
_SEPARATOR_CHARS = frozenset("|- :")


def extract_table_block(response: str | None) -> str | None:
    """The table text of a reply, before clean-up, or ``None`` when there is none.

    The first block opened by three backticks and ``markdown`` (case-sensitive) wins. Without one, a reply
    with at least four ``|`` characters yields the first run of lines that start with ``|``, beginning at the
    first ``|`` of the reply (which may sit mid-line).
    """
    if not response:
        return None
    fenced = extract_markdown_fence(response)
    if fenced is not None:
        return fenced
    first = response.find("|")
    if first < 0 or response.count("|") < 4:
        return None
    start = response.rfind("\n", 0, first)
    start = max(start, 0)
    last = response.rfind("|")
    end = response.find("\n", last)
    end = len(response) if end < 0 else end
    run = _PIPE_RUN.search(response, start, end)
    return run.group(0) if run is not None else None


def normalize_block(block: str) -> str:
    """The official clean-up of a table block, producing the text handed to the CSV reader.

    The first line (the header, when the block starts with it) is lowercased with every space removed; lines
    made only of ``|``, ``-``, ``:`` and spaces, and lines without ``|``, are dropped; each remaining line is
    split on ``|``, each piece stripped, and the pieces rejoined.
    """
    lines = block.strip().split("\n")
    lines[0] = lines[0].replace(" ", "").lower()
    out = []
    for line in lines:
        line = line.strip()
        if "|" not in line or set(line) <= _SEPARATOR_CHARS:
            continue
        out.append("|".join(piece.strip() for piece in line.split("|")))
    return "\n".join(out)


def norm_column(name: str) -> str:
    """Header normalisation: strip, lowercase, delete every space (the official ``norm_column``)."""
    return name.strip().lower().replace(" ", "")


# ------------------------------------------------------------------------------------------------------------
# 2. Tokenizing like pandas' C parser (default dialect: quotechar '"', doublequote, no escape, no comments)
# ------------------------------------------------------------------------------------------------------------

_BLANK_LINE = re.compile(r"[ \t]*(?:\r\n|\n|\r|\Z)")


def _unquoted_pattern(sep: str) -> re.Pattern[str]:
    return re.compile(f"[^{re.escape(sep)}\r\n]*")


_UNQUOTED: dict[str, re.Pattern[str]] = {}


def tokenize(text: str, sep: str = ",") -> list[list[str]]:
    """Split text into records of raw fields, following the C tokenizer's state machine.

    ``\\n``, ``\\r`` and ``\\r\\n`` end a record outside quotes; blank lines (only spaces/tabs) are skipped; a
    field that *starts* with ``"`` is quoted (delimiters and line breaks inside are data, ``""`` is a quote)
    and any text after its closing quote is appended; a ``"`` elsewhere is an ordinary character.
    """
    if len(sep) != 1 or sep in '\r\n"':
        raise ValueError(f"unsupported separator {sep!r}")
    unquoted = _UNQUOTED.get(sep)
    if unquoted is None:
        unquoted = _UNQUOTED[sep] = _unquoted_pattern(sep)
    text = text.removeprefix("\ufeff")  # the C parser skips a UTF-8 byte-order mark at the start
    if '"' not in text and "\r" not in text:
        # fast path (most replies): no quoting and one kind of line end, so records are plain splits
        return [line.split(sep) for line in text.split("\n") if line.strip(" \t")]
    n = len(text)
    records: list[list[str]] = []
    i = 0
    while i < n:
        blank = _BLANK_LINE.match(text, i)
        if blank is not None and blank.end() > i and (blank.end() == n or text[blank.end() - 1] in "\r\n"):
            i = blank.end()
            continue
        row: list[str] = []
        while True:  # one field per iteration
            if i < n and text[i] == '"':
                parts = []
                j = i + 1
                while True:
                    k = text.find('"', j)
                    if k < 0:
                        raise TableParseError(
                            f"end of text inside a quoted field starting at record {len(records)}"
                        )
                    parts.append(text[j:k])
                    if k + 1 < n and text[k + 1] == '"':
                        parts.append('"')
                        j = k + 2
                        continue
                    i = k + 1
                    break
                m = unquoted.match(text, i)
                assert m is not None  # the pattern matches the empty string too
                parts.append(m.group(0))
                i = m.end()
                row.append("".join(parts))
            else:
                m = unquoted.match(text, i)
                assert m is not None
                row.append(m.group(0))
                i = m.end()
            if i >= n:
                break
            c = text[i]
            i += 1
            if c == sep:
                if i >= n:  # a trailing delimiter at the very end still opens an (empty) last field
                    row.append("")
                    break
                continue
            if c == "\r" and i < n and text[i] == "\n":
                i += 1
            break
        records.append(row)
    return records


# ------------------------------------------------------------------------------------------------------------
# 3. Whole-column typing and rendering
# ------------------------------------------------------------------------------------------------------------

_WS = " \t\n\v\f\r"  # C isspace in the "C" locale: what pandas' number parsers skip around a number
_INT = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+[ \t\n\v\f\r]*")
_UINT = re.compile(r"[ \t\n\v\f\r]*\+?[0-9]+[ \t\n\v\f\r]*")
_FLOAT = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]*)(\.[0-9]*)?(?:[eE]([+-]?)([0-9]{1,17}))?[ \t\n\v\f\r]*")
_INF = {
    "inf": float("inf"),
    "+inf": float("inf"),
    "-inf": float("-inf"),
    "infinity": float("inf"),
    "+infinity": float("inf"),
    "-infinity": float("-inf"),
}
_POW10 = [float(f"1e{k}") for k in range(309)]
_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
_BOOLS = {"true": "True", "false": "False"}


def _int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _inf(word: str) -> float | None:
    # the fallback compares the whole word, case-insensitively (ASCII), with no whitespace allowed
    return _INF.get(word.lower()) if len(word) <= 9 and word.isascii() else None


def parse_c_double(word: str) -> float | None:
    """pandas' default float converter (``precise_xstrtod``), step for step, or ``None`` if it rejects the
    word.

    It keeps at most 17 significant digits (leading zeros count), scales once by a power of ten and rejects
    results out of range; so a few long inputs round differently from Python's ``float``. ``inf`` and
    ``infinity`` (any case, optional sign) are accepted as the parser's fallback does.
    """
    m = _FLOAT.fullmatch(word)
    if m is None:
        return _inf(word)
    sign, int_digits, frac, esign, edigits = m.groups()
    number = 0.0
    ndig = 0
    exponent = 0
    for ch in int_digits:
        if ndig < 17:
            number = number * 10.0 + (ord(ch) - 48)
            ndig += 1
        else:
            exponent += 1
    if frac is not None:
        ndec = 0
        for ch in frac[1:]:
            if ndig >= 17:
                break
            number = number * 10.0 + (ord(ch) - 48)
            ndig += 1
            ndec += 1
        exponent -= ndec
    if ndig == 0:
        return _inf(word)
    if sign == "-":
        number = -number
    if edigits is not None:
        e = 0
        for ch in edigits:
            e = _int32(e * 10 + (ord(ch) - 48))  # a C int, wrapping as the original does on absurd exponents
        exponent = _int32(exponent - e if esign == "-" else exponent + e)
    if exponent > 308:
        return None
    if exponent > 0:
        number *= _POW10[exponent]
    elif exponent < -308:
        if exponent < -616:
            number = 0.0
        else:
            number /= _POW10[-308 - exponent]
            number /= _POW10[308]
    else:
        number /= _POW10[-exponent]
    if number in (float("inf"), float("-inf")):
        return None
    return number


def _render_float(x: float) -> str:
    return str(x)  # Python's shortest round-trip repr, which is what astype(str) produces for float64


def render_column(values: list[str]) -> list[str]:
    """Render one column's raw fields as pandas 2.3.1 would after ``read_csv`` then ``astype(str)``.

    The cast order is int64, (uint64 on overflow), float64, bool, then strings. A missing cell forces an
    integer column to float (``2022.0``) and a bool column to objects; missing cells render ``nan``.
    """
    na = [v in NA_TOKENS for v in values]
    has_na = any(na)

    # int64, stopping at the first failure as the C parser does (the kind of failure decides what follows)
    failure = None
    ints: list[int | None] = []
    for v, missing in zip(values, na):
        if missing:
            ints.append(None)
            continue
        if v.isdigit() and v.isascii():  # the common case, without the regex
            iv = int(v)
        elif _INT.fullmatch(v) is None:
            failure = "invalid"
            break
        else:
            iv = int(v.strip(_WS))
        if iv < _INT64_MIN or iv > _INT64_MAX:
            failure = "overflow"
            break
        ints.append(iv)
    if failure is None:
        if not has_na:
            return [str(iv) for iv in ints]
        return ["nan" if iv is None else _render_float(float(iv)) for iv in ints]
    if failure == "overflow":
        out = _render_uint64(values, na)
        if out is not None:
            return out

    floats: list[float | None] = []
    for v, missing in zip(values, na):
        if missing:
            floats.append(None)
            continue
        fv = parse_c_double(v)
        if fv is None:
            break
        floats.append(fv)
    else:
        return ["nan" if fv is None else _render_float(fv) for fv in floats]

    bools: list[str | None] = []
    for v, missing in zip(values, na):
        if missing:
            bools.append(None)
            continue
        b = _BOOLS.get(v.lower()) if len(v) in (4, 5) and v.isascii() else None
        if b is None:
            break
        bools.append(b)
    else:
        return ["nan" if b is None else b for b in bools]

    return ["nan" if missing else v for v, missing in zip(values, na)]


def _render_uint64(values: list[str], na: list[bool]) -> list[str] | None:
    """The uint64 retry after an int64 overflow. ``None`` means "try float next"."""
    seen_null = seen_sint = seen_uint = False
    parsed: list[int] = []
    for v, missing in zip(values, na):
        if missing:
            seen_null = True
            continue
        if v.lstrip(_WS).startswith("-"):
            seen_sint = True  # the C code flags any leading minus without looking further
            continue
        if _UINT.fullmatch(v) is None:
            return None
        uv = int(v.strip(_WS))
        if uv > _UINT64_MAX:
            return ["nan" if missing else w for w, missing in zip(values, na)]
        if uv > _INT64_MAX:
            seen_uint = True
        parsed.append(uv)
    if seen_uint and (seen_sint or seen_null):
        # pandas gives up on numbers and keeps the column *as read*, without even applying NA tokens
        return list(values)
    if seen_sint:
        return ["nan" if missing else w for w, missing in zip(values, na)]
    return [str(uv) for uv in parsed]


# ------------------------------------------------------------------------------------------------------------
# 4. Frames
# ------------------------------------------------------------------------------------------------------------


def _header_names(fields: list[str]) -> list[str]:
    """Empty names become ``Unnamed: i``; duplicates get ``.1``, ``.2``, skipping names already present.

    Named columns are de-duplicated before unnamed ones, as pandas does.
    """
    names = [f if f != "" else f"Unnamed: {i}" for i, f in enumerate(fields)]
    unnamed = [i for i, f in enumerate(fields) if f == ""]
    order = [i for i in range(len(names)) if fields[i] != ""] + unnamed
    counts: dict[str, int] = {}
    for i in order:
        col = names[i]
        old = col
        cur = counts.get(col, 0)
        while cur > 0:
            counts[old] = cur + 1
            col = f"{old}.{cur}"
            if col in names:
                cur += 1
            else:
                cur = counts.get(col, 0)
        names[i] = col
        counts[col] = cur + 1
    return names


def read_delimited(text: str, sep: str = ",") -> Frame:
    """``pandas.read_csv(text, sep=sep)`` followed by ``astype(str)`` on every column, without pandas.

    The first record is the header. If the first data record has more fields than the header, the extra
    leading fields become the row index and are dropped (pandas' implicit index); any later record with more
    fields than that raises :class:`TableParseError`; shorter records are padded with missing cells.
    """
    records = tokenize(text, sep)
    if not records:
        raise TableParseError("no columns to parse")
    header = records[0]
    body = records[1:]
    leading = 0
    if body:
        expected = max(len(header), len(body[0]))
        leading = max(0, len(body[0]) - len(header))
        for lineno, rec in enumerate(body[1:], start=3):
            if len(rec) > expected:
                raise TableParseError(f"expected {expected} fields in record {lineno}, saw {len(rec)}")
    else:
        expected = len(header)
    names = _header_names(header)
    width = len(names)
    columns: list[list[str]] = [[] for _ in range(width)]
    for rec in body:
        fields = rec[leading:]
        for c in range(width):
            columns[c].append(fields[c] if c < len(fields) else "")
    return Frame(tuple(names), tuple(tuple(render_column(col)) for col in columns))


def read_response_table(response: str | None) -> Frame | None:
    """The table of a reply as the official scorer read it, or ``None`` when the reply holds no table.

    Columns pandas named ``Unnamed: i`` (from leading/trailing pipes) are dropped; names are not yet
    normalised (the scorer does that). Raises :class:`TableParseError` when pandas would have raised.
    """
    block = extract_table_block(response)
    if block is None:
        return None
    frame = read_delimited(normalize_block(block), sep="|")
    keep = [i for i, c in enumerate(frame.columns) if not c.startswith("Unnamed")]
    if len(keep) == len(frame.columns):
        return frame
    return Frame(tuple(frame.columns[i] for i in keep), tuple(frame.data[i] for i in keep))


def read_gold_csv(source: str | Path | bytes) -> Frame:
    """A gold CSV (UTF-8, BOM and CRLF allowed, quoted multi-line cells) with normalised column names.

    ``source`` is a path, or the file's bytes. Bytes are decoded without newline translation, because the
    C parser saw the raw ``\\r\\n`` inside quoted cells too.
    """
    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TableParseError(f"gold CSV is not UTF-8: {e}") from e
    frame = read_delimited(text, sep=",")
    return frame.rename([norm_column(c.strip()) for c in frame.columns])


def _markdown_cell(value: str) -> str:
    value = value.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    if '"' in value or "|" in value:
        value = '"' + value.replace('"', '""') + '"'
    return value


def to_markdown(
    columns: list[str] | tuple[str, ...], rows: list[tuple[str, ...]] | list[list[str]], *, fence: bool = True
) -> str:
    """A markdown table that the official reader reads back cell for cell.

    Markdown has no line breaks inside cells, so they become spaces; cells holding ``|`` or ``"`` are quoted
    the way the CSV reader expects. With ``fence`` the table is wrapped in a fenced ``markdown`` block.
    """
    lines = ["| " + " | ".join(_markdown_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_markdown_cell(c) for c in row) + " |" for row in rows]
    body = "\n".join(lines)
    return f"```markdown\n{body}\n```" if fence else body


def first_occurrences(key_columns: Sequence[Sequence[str]]) -> list[int]:
    """Row indices that keep the first row of each distinct key (the official
    ``drop_duplicates(keep="first")`` on the rendered, not yet normalised, key cells)."""
    seen: set[tuple[str, ...]] = set()
    rows: list[int] = []
    for i, key in enumerate(zip(*key_columns)):
        if key not in seen:
            seen.add(key)
            rows.append(i)
    return rows
