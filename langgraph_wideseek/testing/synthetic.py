"""A generated, seeded world of fictional entities: corpus pages plus WideSearch-format tasks with gold
tables.

The real benchmark needs live web search and an LLM judge; neither is reachable offline. This world is the
stand-in for tests, demos and benchmarks: every fact lives on exactly one encyclopedia-style page, so a policy
that searches, reads and reports correctly must score item F1 = 1.0 with the real scorer, and any loss of
correctness (a dropped subagent, a mangled tool message, a wrong URL) shows up as a lower score.

Shape of the world
    * categories: one *kind* of entity (rivers, companies, ...) in one fictional region ("rivers of Aldoria");
    * one page per entity: a prose introduction, a ``Facts`` block of ``Label: value`` lines, and filler
      history that mentions other members (so a search for one name also finds other pages);
    * one list page per category (``List of rivers of Aldoria``) naming the members as ``- name`` lines;
    * distractors: a "proposed" list page per category whose names have no pages, and, per entity with some
      probability, a related page (``Velmora River Bridge``) whose Facts block uses the same labels with
      different values, so picking the wrong search hit costs points.

Tasks follow the WideSearch record layout (``instance_id``, ``query``, ``evaluation`` as a JSON string,
``language``) with gold tables as CSV text written the way the benchmark ships them (UTF-8 BOM, CRLF).
Columns use the metrics the exact scorer evaluates without a judge: ``exact_match``, ``number_near``,
``date_near`` and ``url_match``.

Everything derives from ``random.Random(seed)``: the same arguments give byte-identical pages and tasks.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict
from urllib.parse import urlsplit

from pydantic import BaseModel

from ..eval.table import norm_column
from ..graph.answer import extract_table

BASE_URL = "https://synthpedia.example/wiki/"  # RFC 2606 reserved name: never a real site
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]

Metric = Literal["exact_match", "number_near", "date_near", "url_match"]
Value = int | float | str | dt.date


def slug(title: str) -> str:
    """The page-name part of a synthpedia URL (Wikipedia's convention: spaces become underscores)."""
    return title.replace(" ", "_")


def page_url(title: str) -> str:
    return BASE_URL + slug(title)


def format_date(d: dt.date) -> str:
    """Prose form on pages (``14 March 1887``): day-first with the month spelled out, so it never reads
    ambiguously."""
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}"


# --- the vocabulary ---------------------------------------------------------------------------------------
_ONSETS = [
    "b",
    "br",
    "c",
    "d",
    "dr",
    "f",
    "g",
    "gr",
    "h",
    "k",
    "kr",
    "l",
    "m",
    "n",
    "p",
    "qu",
    "r",
    "s",
    "st",
    "t",
    "th",
    "tr",
    "v",
    "w",
    "z",
]
_VOWELS = ["a", "e", "i", "o", "u", "ae", "ei", "ou"]
_CODAS = ["", "", "", "l", "n", "r", "s", "th", "nd", "rm"]
_FILLER = (
    "archive survey record season council road village harbour bridge market festival winter summer "
    "report traveller expedition committee chronicle museum railway district mill quarry census ferry "
    "school charter treaty garden library coast valley plain ridge"
).split()


class _Words:
    """Invented proper names, unique across one world so every name is a distinctive search term."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def word(self, syllables: tuple[int, int] = (2, 2)) -> str:
        for _ in range(10_000):
            n = self.rng.randint(*syllables)
            w = "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) for _ in range(n))
            w = (w + self.rng.choice(_CODAS)).capitalize()
            if w not in self.used and len(w) >= 5:
                self.used.add(w)
                return w
        raise RuntimeError("ran out of invented words")  # pragma: no cover - 25*8 syllables give millions


# --- kinds of entity --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attribute:
    """One column of a kind: how a value is drawn, shown on the page, and written into the gold table."""

    column: str  # table header, as the query names it
    label: str  # label of the Facts line on the page
    metric: Metric
    draw: Callable[[random.Random, _Words, str], Value]
    fact: Callable[[Value], str]  # the value as the page's Facts line shows it
    gold: Callable[[Value], str]  # the value as the gold CSV holds it
    sentence: str  # prose restating the fact; ``{name}`` and ``{fact}`` are filled in
    tolerance: float | None = None  # number_near relative tolerance

    @property
    def preprocess(self) -> str:
        return {
            "exact_match": "norm_str",
            "number_near": "extract_number",
            "date_near": "norm_date",
            "url_match": "norm_str",
        }[self.metric]


@dataclass(frozen=True)
class Kind:
    key: str  # key column header ("River")
    singular: str
    plural: str
    name: Callable[[_Words], str]
    attributes: tuple[Attribute, ...]
    related: tuple[str, ...]  # suffixes of distractor pages ("Bridge" -> "Velmora River Bridge")


def _date(lo: int, hi: int) -> Callable[[random.Random, _Words, str], Value]:
    def draw(rng: random.Random, words: _Words, name: str) -> Value:
        start = dt.date(lo, 1, 1).toordinal()
        return dt.date.fromordinal(rng.randint(start, dt.date(hi, 12, 31).toordinal()))

    return draw


def _int(lo: int, hi: int) -> Callable[[random.Random, _Words, str], Value]:
    return lambda rng, words, name: rng.randint(lo, hi)


def _float(lo: float, hi: float) -> Callable[[random.Random, _Words, str], Value]:
    return lambda rng, words, name: round(rng.uniform(lo, hi), 1)


def _named(template: str) -> Callable[[random.Random, _Words, str], Value]:
    return lambda rng, words, name: template.format(w=words.word())


def _website(rng: random.Random, words: _Words, name: str) -> Value:
    return "https://www." + "".join(c for c in name.lower() if c.isalnum()) + ".example/"


class _Shown(TypedDict):
    fact: Callable[[Value], str]
    gold: Callable[[Value], str]


def _iso(v: Value) -> str:
    assert isinstance(v, dt.date)
    return v.isoformat()


def _long_date(v: Value) -> str:
    assert isinstance(v, dt.date)
    return format_date(v)


_DATE: _Shown = {"fact": _long_date, "gold": _iso}
_TEXT: _Shown = {"fact": str, "gold": str}


def _unit(unit: str, thousands: bool = False) -> dict[str, Callable[[Value], str]]:
    if thousands:
        return dict(fact=lambda v: f"{v:,} {unit}".strip(), gold=lambda v: str(v))
    return dict(fact=lambda v: f"{v} {unit}".strip(), gold=lambda v: str(v))


KINDS: tuple[Kind, ...] = (
    Kind(
        "River",
        "river",
        "rivers",
        lambda w: f"{w.word()} River",
        (
            Attribute(
                "Length (km)",
                "Length",
                "number_near",
                _float(20, 3000),
                sentence="{name} is {fact} long.",
                tolerance=0.01,
                **_unit("km"),
            ),
            Attribute(
                "Drainage basin (km2)",
                "Drainage basin",
                "number_near",
                _int(500, 900_000),
                sentence="Its drainage basin covers {fact}.",
                tolerance=0.05,
                **_unit("km2", thousands=True),
            ),
            Attribute(
                "Mouth",
                "Mouth",
                "exact_match",
                _named("Lake {w}"),
                sentence="The river empties into {fact}.",
                **_TEXT,
            ),
            Attribute(
                "First surveyed",
                "First surveyed",
                "date_near",
                _date(1700, 1950),
                sentence="It was first surveyed on {fact}.",
                **_DATE,
            ),
        ),
        ("Bridge", "Dam", "Valley"),
    ),
    Kind(
        "Company",
        "company",
        "companies",
        lambda w: f"{w.word()} {w.rng.choice(['Industries', 'Systems', 'Holdings', 'Works'])}",
        (
            Attribute(
                "Founded",
                "Founded",
                "date_near",
                _date(1850, 2015),
                sentence="{name} was founded on {fact}.",
                **_DATE,
            ),
            Attribute(
                "Headquarters",
                "Headquarters",
                "exact_match",
                _named("{w}"),
                sentence="The company is headquartered in {fact}.",
                **_TEXT,
            ),
            Attribute(
                "Employees",
                "Employees",
                "number_near",
                _int(50, 250_000),
                sentence="It employs {fact} people.",
                tolerance=0.05,
                **_unit("", thousands=True),
            ),
            Attribute(
                "Website",
                "Website",
                "url_match",
                _website,
                sentence="Its official website is {fact}.",
                **_TEXT,
            ),
        ),
        ("Foundation", "Tower", "Cup"),
    ),
    Kind(
        "Athlete",
        "athlete",
        "athletes",
        lambda w: f"{w.word((1, 2))} {w.word()}",
        (
            Attribute(
                "Date of birth",
                "Birth date",
                "date_near",
                _date(1975, 2004),
                sentence="{name} was born on {fact}.",
                **_DATE,
            ),
            Attribute(
                "Club",
                "Club",
                "exact_match",
                _named("{w} Athletic"),
                sentence="{name} plays for {fact}.",
                **_TEXT,
            ),
            Attribute(
                "Height (cm)",
                "Height",
                "number_near",
                _int(160, 205),
                sentence="{name} is {fact} tall.",
                tolerance=0.0,
                **_unit("cm"),
            ),
            Attribute(
                "Career goals",
                "Career goals",
                "exact_match",
                _int(0, 400),
                sentence="Over the career so far {name} has scored {fact} goals.",
                **_TEXT,
            ),
        ),
        ("Trophy", "Stadium", "Academy"),
    ),
    Kind(
        "Lighthouse",
        "lighthouse",
        "lighthouses",
        lambda w: f"{w.word()} Point Lighthouse",
        (
            Attribute(
                "Year built",
                "Built",
                "exact_match",
                _int(1780, 1990),
                sentence="{name} was built in {fact}.",
                **_TEXT,
            ),
            Attribute(
                "Height (m)",
                "Tower height",
                "number_near",
                _float(8, 80),
                sentence="The tower stands {fact} high.",
                tolerance=0.05,
                **_unit("m"),
            ),
            Attribute(
                "Range (nmi)",
                "Range",
                "number_near",
                _int(5, 30),
                sentence="Its light is visible for {fact}.",
                tolerance=0.0,
                **_unit("nmi"),
            ),
            Attribute(
                "Operator",
                "Operator",
                "exact_match",
                _named("{w} Maritime Authority"),
                sentence="It is operated by the {fact}.",
                **_TEXT,
            ),
        ),
        ("Museum", "Keepers Cottage", "Reef"),
    ),
    Kind(
        "Mountain",
        "mountain",
        "mountains",
        lambda w: f"Mount {w.word()}",
        (
            Attribute(
                "Elevation (m)",
                "Elevation",
                "number_near",
                _int(900, 8800),
                sentence="{name} rises to {fact}.",
                tolerance=0.01,
                **_unit("m", thousands=True),
            ),
            Attribute(
                "Prominence (m)",
                "Prominence",
                "number_near",
                _int(100, 4000),
                sentence="Its topographic prominence is {fact}.",
                tolerance=0.05,
                **_unit("m", thousands=True),
            ),
            Attribute(
                "First ascent",
                "First ascent",
                "date_near",
                _date(1780, 1990),
                sentence="The first recorded ascent was on {fact}.",
                **_DATE,
            ),
            Attribute(
                "Mountain range",
                "Range",
                "exact_match",
                _named("{w} Range"),
                sentence="It belongs to the {fact}.",
                **_TEXT,
            ),
        ),
        ("Tunnel", "Observatory", "Pass"),
    ),
)


# --- world records ----------------------------------------------------------------------------------------
@dataclass
class Entity:
    name: str
    kind: Kind
    region: str
    values: dict[str, Value]  # column -> value

    @property
    def url(self) -> str:
        return page_url(self.name)

    def gold_row(self, columns: list[str]) -> list[str]:
        by_col = {a.column: a for a in self.kind.attributes}
        return [self.name if c == self.kind.key else by_col[c].gold(self.values[c]) for c in columns]


@dataclass
class Category:
    kind: Kind
    region: str
    entities: list[Entity] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.kind.plural} of {self.region}"

    @property
    def list_title(self) -> str:
        return f"List of {self.label}"

    @property
    def columns(self) -> list[str]:
        return [self.kind.key] + [a.column for a in self.kind.attributes]


class CorpusPage(BaseModel):
    """One corpus record, the local backend's JSONL format."""

    url: str
    title: str
    text: str


class SyntheticTask(BaseModel):
    """A WideSearch-format task with its gold table."""

    instance_id: str
    query: str
    evaluation: str  # JSON string, as in the benchmark
    language: str = "en"
    columns: list[str]  # human-readable headers, gold CSV order
    gold_rows: list[list[str]]

    def record(self) -> dict[str, Any]:
        """The task line as the benchmark's JSONL holds it."""
        return {
            "instance_id": self.instance_id,
            "query": self.query,
            "evaluation": self.evaluation,
            "language": self.language,
        }

    def gold_csv(self) -> str:
        """The gold table as the benchmark ships it: UTF-8 BOM (added when written), CRLF, minimal quoting."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(self.columns)
        w.writerows(self.gold_rows)
        return buf.getvalue()

    def mismatches(self, answer: str | None) -> list[str]:
        """Differences between an answer's table and the gold table, cell by cell, under each column's metric
        (a quick, judge-free check for tests and benchmarks; the WideSearch scorer is the reference). An empty
        list means every gold row is present with every cell right and there is no extra row."""
        rows = extract_table(answer)
        if rows is None:
            return ["the answer holds no fenced markdown table"]
        if rows and list(rows[0])[: len(self.columns)] != self.columns:
            return [f"columns {list(rows[0])} != {self.columns}"]
        pipeline = json.loads(self.evaluation)["eval_pipeline"]
        metrics = [pipeline[norm_column(c)] for c in self.columns]
        got = {r[self.columns[0]].strip().lower(): r for r in rows}
        out = []
        for gold in self.gold_rows:
            row = got.pop(gold[0].strip().lower(), None)
            if row is None:
                out.append(f"missing row {gold[0]!r}")
                continue
            for col, want, spec in zip(self.columns[1:], gold[1:], metrics[1:]):
                have = row.get(col, "")
                if not _cell_ok(have, want, spec["metric"][0], spec.get("criterion")):
                    out.append(f"{gold[0]!r} {col}: {have!r} != {want!r}")
        out += [f"extra row {k!r}" for k in got]
        return out

    def gold_markdown(self) -> str:
        """The gold table as a fenced markdown answer (what a perfect run replies)."""
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(r) + " |" for r in self.gold_rows]
        return "```markdown\n" + "\n".join(lines) + "\n```"


_QUERY_TAIL = (
    "\n\nPlease organize the results in one Markdown table with the following columns:\n{columns}\n"
    "Don't ask me any questions, just output the results according to the columns without omitting cells "
    "arbitrarily. The output format is \n```markdown\n{{data_content}}\n```."
)


def write_tasks(
    tasks: list[SyntheticTask], directory: str | Path, *, gold_dir: str = "gold"
) -> tuple[Path, Path]:
    """Write tasks as the benchmark ships them: ``tasks.jsonl`` and ``<gold_dir>/<instance_id>.csv`` (UTF-8
    with BOM, CRLF) under ``directory``; returns both paths. ``gold_dir="widesearch_gold"`` is the folder
    ``load_tasks`` (and ``wideseek eval``) finds beside the tasks file without being told."""
    directory = Path(directory)
    gold = directory / gold_dir
    gold.mkdir(parents=True, exist_ok=True)
    jsonl = directory / "tasks.jsonl"
    with jsonl.open("w", encoding="utf-8") as f:
        for t in tasks:
            f.write(json.dumps(t.record(), ensure_ascii=False) + "\n")
            # newline="" keeps the CRLF written by the csv module, as in the benchmark's files
            with (gold / f"{t.instance_id}.csv").open("w", encoding="utf-8-sig", newline="") as g:
                g.write(t.gold_csv())
    return jsonl, gold


def _number(s: str) -> float | None:
    m = re.search(r"[-+]?\d*\.\d+|[-+]?\d+", s.replace(",", ""))
    return float(m.group()) if m else None


def _date_of(s: str) -> dt.date | None:
    s = s.strip()
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        pass
    m = re.fullmatch(r"(\d{1,2}) ([A-Z][a-z]+) (\d{4})", s)
    if m and m.group(2) in MONTHS:
        return dt.date(int(m.group(3)), MONTHS.index(m.group(2)) + 1, int(m.group(1)))
    return None


def _cell_ok(have: str, want: str, metric: str, tol: float | None) -> bool:
    if metric == "number_near":
        h, w = _number(have), _number(want)
        return h is not None and w is not None and abs(h - w) <= abs(w) * (tol or 0.0)
    if metric == "date_near":
        dh, dw = _date_of(have), _date_of(want)
        return dh is not None and dw is not None and abs((dh - dw).days) <= 31
    if metric == "url_match":
        return urlsplit(have.strip()).netloc.lower() == urlsplit(want.strip()).netloc.lower() != ""
    return have.replace(" ", "").lower() == want.replace(" ", "").lower()


def _details(cat: Category) -> str:
    return ", ".join(a.column.split(" (")[0].lower() for a in cat.kind.attributes)


class World:
    """A seeded synthetic world. Build with :meth:`generate`; all else is derived from it."""

    def __init__(self, seed: int, categories: list[Category], pages: list[CorpusPage]) -> None:
        self.seed = seed
        self.categories = categories
        self.pages = pages

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def generate(
        cls,
        seed: int = 0,
        n_categories: int = 3,
        entities_per_category: int = 8,
        *,
        distractor_rate: float = 0.5,
        filler_sentences: tuple[int, int] = (2, 6),
    ) -> World:
        """Draw a world. ``n_categories`` cycles through the kinds (river, company, athlete, lighthouse,
        mountain) and opens a new region every five; ``distractor_rate`` is the chance that an entity gets a
        related page with conflicting facts."""
        if n_categories < 1 or entities_per_category < 1:
            raise ValueError("n_categories and entities_per_category must be >= 1")
        if not 0.0 <= distractor_rate <= 1.0:
            raise ValueError("distractor_rate must be within [0, 1]")
        rng = random.Random(seed)
        words = _Words(rng)
        regions = [
            words.word() + rng.choice(["ia", "land", "mark", "esh"])
            for _ in range((n_categories + len(KINDS) - 1) // len(KINDS))
        ]
        categories = []
        for i in range(n_categories):
            kind = KINDS[i % len(KINDS)]
            cat = Category(kind, regions[i // len(KINDS)])
            for _ in range(entities_per_category):
                name = kind.name(words)
                values = {a.column: a.draw(rng, words, name) for a in kind.attributes}
                cat.entities.append(Entity(name, kind, cat.region, values))
            categories.append(cat)

        pages: list[CorpusPage] = []
        for cat in categories:
            pages.append(_list_page(cat, rng))
            pages.append(_proposed_page(cat, rng, words))
            for ent in cat.entities:
                pages.append(_entity_page(ent, cat, rng, filler_sentences))
                if rng.random() < distractor_rate:
                    pages.append(_related_page(ent, rng, filler_sentences))
        for region in regions:
            pages.append(_region_page(region, [c for c in categories if c.region == region], rng))
        rng.shuffle(pages)  # no corpus order a search backend could lean on
        return cls(seed, categories, pages)

    # --- corpus -------------------------------------------------------------------------------------------
    def corpus_records(self) -> list[dict[str, str]]:
        return [p.model_dump() for p in self.pages]

    def write_corpus(self, path: str | Path) -> Path:
        """Write the corpus as JSONL (``{url, title, text}`` per line)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            for p in self.pages:
                f.write(json.dumps(p.model_dump(), ensure_ascii=False) + "\n")
        return path

    def entity(self, name: str) -> Entity:
        for cat in self.categories:
            for e in cat.entities:
                if e.name == name:
                    return e
        raise KeyError(name)

    # --- tasks --------------------------------------------------------------------------------------------
    def list_task(self, category: int) -> SyntheticTask:
        """Find every member of a category: the agent must discover the members first (two waves)."""
        cat = self.categories[category]
        query = (
            f"I need a table of all {cat.label}. For each one, I need these details: {_details(cat)}."
            + _QUERY_TAIL.format(columns=", ".join(cat.columns))
        )
        return self._task(f"syn{self.seed}_c{category:02d}_all", query, cat, cat.entities)

    def named_task(self, category: int, count: int | None = None, *, start: int = 0) -> SyntheticTask:
        """Facts about members named in the query: one wave of one subagent per entity suffices."""
        cat = self.categories[category]
        chosen = cat.entities[start : start + count if count is not None else None]
        if not chosen:
            raise ValueError(f"category {category} has no entities in [{start}, {start}+{count})")
        names = "; ".join(e.name for e in chosen)
        query = (
            f"I need a table about these {cat.label}: {names}. For each one, I need these details: "
            f"{_details(cat)}." + _QUERY_TAIL.format(columns=", ".join(cat.columns))
        )
        suffix = f"named{len(chosen)}" if start == 0 else f"named{start}_{len(chosen)}"
        return self._task(f"syn{self.seed}_c{category:02d}_{suffix}", query, cat, chosen)

    def tasks(self, named_count: int = 4) -> list[SyntheticTask]:
        """Per category: the list task and a named task over its first ``named_count`` members."""
        out = []
        for i in range(len(self.categories)):
            out.append(self.list_task(i))
            out.append(self.named_task(i, named_count))
        return out

    def write_tasks(
        self, directory: str | Path, tasks: list[SyntheticTask] | None = None, *, gold_dir: str = "gold"
    ) -> tuple[Path, Path]:
        """Write ``tasks.jsonl`` and ``<gold_dir>/<instance_id>.csv`` under ``directory``; returns both
        paths."""
        return write_tasks(self.tasks() if tasks is None else tasks, directory, gold_dir=gold_dir)

    def _task(self, instance_id: str, query: str, cat: Category, entities: list[Entity]) -> SyntheticTask:
        pipeline: dict[str, Any] = {
            norm_column(cat.kind.key): {"preprocess": ["norm_str"], "metric": ["exact_match"]}
        }
        for a in cat.kind.attributes:
            step: dict[str, Any] = {"preprocess": [a.preprocess], "metric": [a.metric]}
            if a.tolerance is not None:
                step["criterion"] = a.tolerance
            pipeline[norm_column(a.column)] = step
        evaluation = {
            "unique_columns": [norm_column(cat.kind.key)],
            "required": [norm_column(c) for c in cat.columns],
            "eval_pipeline": pipeline,
        }
        return SyntheticTask(
            instance_id=instance_id,
            query=query,
            evaluation=json.dumps(evaluation),
            columns=cat.columns,
            gold_rows=[e.gold_row(cat.columns) for e in entities],
        )


# --- page rendering ---------------------------------------------------------------------------------------
def _filler(rng: random.Random, n: int, mentions: list[str]) -> str:
    out = []
    for _ in range(n):
        a, b, c = rng.sample(_FILLER, 3)
        year = rng.randint(1800, 2020)
        article = "An" if a[0] in "aeiou" else "A"
        s = f"{article} {a} from {year} describes the {b} and the nearby {c}"
        if mentions and rng.random() < 0.4:
            s += f", and compares it with {rng.choice(mentions)}"
        out.append(s + ".")
    return " ".join(out)


def _facts(kind: Kind, values: dict[str, Value]) -> list[str]:
    return [f"{a.label}: {a.fact(values[a.column])}" for a in kind.attributes]


def _entity_page(ent: Entity, cat: Category, rng: random.Random, filler: tuple[int, int]) -> CorpusPage:
    others = [e.name for e in cat.entities if e is not ent]
    sentences = [
        a.sentence.format(name=ent.name, fact=a.fact(ent.values[a.column])) for a in ent.kind.attributes
    ]
    rng.shuffle(sentences)
    intro = f"{ent.name} is a {ent.kind.singular} in {ent.region}. " + " ".join(sentences)
    body = [
        intro,
        "Facts",
        *_facts(ent.kind, ent.values),
        "History",
        _filler(rng, rng.randint(*filler), others),
    ]
    return CorpusPage(url=ent.url, title=ent.name, text="\n".join(body))


def _related_page(ent: Entity, rng: random.Random, filler: tuple[int, int]) -> CorpusPage:
    """A page named after the entity whose Facts use the same labels with other values (a trap for a policy
    that takes the first search hit instead of the entity's own page)."""
    title = f"{ent.name} {rng.choice(ent.kind.related)}"
    scratch = _Words(random.Random(rng.getrandbits(32)))
    fake = {a.column: a.draw(rng, scratch, title) for a in ent.kind.attributes}
    intro = (
        f"{title} is named after {ent.name} in {ent.region}. It is not to be confused with {ent.name} "
        f"itself, whose facts are on its own page."
    )
    body = [
        intro,
        "Facts",
        *_facts(ent.kind, fake),
        "History",
        _filler(rng, rng.randint(*filler), [ent.name]),
    ]
    return CorpusPage(url=page_url(title), title=title, text="\n".join(body))


def _list_page(cat: Category, rng: random.Random) -> CorpusPage:
    lines = [
        f"This is a list of the {len(cat.entities)} {cat.label} recorded in this encyclopedia.",
        "Members",
    ]
    for e in cat.entities:
        first = e.kind.attributes[0]
        lines.append(f"- {e.name} — {first.label.lower()} {first.fact(e.values[first.column])}")
    lines.append(f"See also: List of proposed {cat.label}.")
    return CorpusPage(url=page_url(cat.list_title), title=cat.list_title, text="\n".join(lines))


def _proposed_page(cat: Category, rng: random.Random, words: _Words) -> CorpusPage:
    """Names that look like members but have no pages: a policy reading the wrong list loses rows."""
    title = f"List of proposed {cat.label}"
    fake = [cat.kind.name(words) for _ in range(max(2, len(cat.entities) // 3))]
    lines = [f"This is a list of proposed {cat.label} that were never recognised.", "Members"]
    lines += [f"- {n} — proposed in {rng.randint(1900, 2020)}" for n in fake]
    return CorpusPage(url=page_url(title), title=title, text="\n".join(lines))


def _region_page(region: str, cats: list[Category], rng: random.Random) -> CorpusPage:
    title = f"Geography of {region}"
    parts = [f"{region} is a fictional country of this encyclopedia."]
    for c in cats:
        sample = rng.sample(c.entities, min(3, len(c.entities)))
        parts.append(f"Among its {c.kind.plural} are " + ", ".join(e.name for e in sample) + ".")
    return CorpusPage(url=page_url(title), title=title, text=" ".join(parts))
