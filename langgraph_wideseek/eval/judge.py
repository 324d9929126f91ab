"""Judges: the semantic steps of WideSearch scoring (column mapping, key alignment, ``llm_judge`` grading).

A judge is any object with two coroutines (the scoring API contract):

* ``align(values, reference) -> dict[str, str]`` maps response values onto reference values of the same
  entity (identical strings map to each other; values without a counterpart may be left out);
* ``grade(criterion, pairs) -> list[int]`` gives 0/1 per ``(response, target)`` pair, one call per column.

Optionally ``map_columns(columns, required)`` maps table headers onto the required column names; without it
the scorer uses ``align``. A judge signals a failed call by raising (any exception); :class:`IncompleteGrade`
carries the scores it could read when a reply covered only some rows. The scorer counts every failure.

:class:`ExactJudge` is deterministic and offline. :class:`OpenAIJudge` calls any OpenAI-compatible chat
endpoint through the package's one HTTP client (:class:`~langgraph_wideseek.model.OpenAITransport`, shared
with the chat model), with bounded concurrency, retries and an on-disk cache keyed by the full request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import SecretStr

from ..config import DEFAULT_MAX_REPLY_BYTES
from ..errors import IncompleteGrade, JudgeError, ModelError, ModelUnavailableError
from ..model.transport import OpenAITransport
from ..runtime import RetryPolicy, atomic_write_text

__all__ = [
    "GENERIC_CRITERION",
    "QA_CRITERION",
    "ExactJudge",
    "IncompleteGrade",
    "Judge",
    "JudgeCache",
    "JudgeError",
    "JudgeStats",
    "OpenAIJudge",
    "map_columns",
    "parse_alignment",
    "parse_grades",
]

# Criterion of the training reward: every non-key cell is judged with this one text (spec section 5).
GENERIC_CRITERION = (
    "Count the answer as correct when it means approximately the same as the reference answer or refers to "
    "the same entity. Exact wording is not required."
)
# Criterion for single-answer (QA) tasks: the boxed answer against the label.
QA_CRITERION = (
    "Count the answer as correct when it is equivalent to the reference answer: it gives the same entity, "
    "value or fact, whatever the wording, format or level of detail. An answer that hedges between several "
    "candidates, or adds a conflicting claim, is not correct."
)


@runtime_checkable
class Judge(Protocol):
    async def align(self, values: list[str], reference: list[str]) -> dict[str, str]: ...

    async def grade(self, criterion: str, pairs: list[tuple[str, str]]) -> list[int]: ...


async def map_columns(judge: Any, columns: list[str], required: list[str]) -> dict[str, str]:
    """Map response headers onto required names with the judge's ``map_columns``, else its ``align``."""
    fn = getattr(judge, "map_columns", None)
    if fn is not None:
        return await fn(columns, required)
    return await judge.align(columns, required)


class ExactJudge:
    """Deterministic judge: identity alignment and string-equality grading (after preprocessing).

    It never calls a model, so scores are reproducible offline. ``llm_judge`` columns become exact matches of
    the preprocessed strings, which is stricter than the model judge the published numbers used.
    """

    name = "exact"

    async def align(self, values: list[str], reference: list[str]) -> dict[str, str]:
        ref = set(reference)
        return {v: v for v in values if v in ref}

    async def map_columns(self, columns: list[str], required: list[str]) -> dict[str, str]:
        return await self.align(columns, required)

    async def grade(self, criterion: str, pairs: list[tuple[str, str]]) -> list[int]:
        return [1 if r == t else 0 for r, t in pairs]

    def __repr__(self) -> str:
        return "ExactJudge()"


# ------------------------------------------------------------------------------------------------------------
# Prompts (the project's own wording) and reply parsing (the official reply formats)
# ------------------------------------------------------------------------------------------------------------

_ALIGN_PROMPT = """You match entries of two lists that refer to the same things in different ways.

List A, the entries to align:
{values}

List B, the reference entries:
{reference}

For every entry of list A, look for the entry of list B that denotes the same entity or value. Differences \
in spelling, letter case, formatting, markup, abbreviation, language or word order do not matter; identical \
strings always correspond. Match by meaning, never by position in the lists. Leave out entries of list A \
that have no counterpart in list B.

Reply with one JSON object in a ```json fenced block. Each key is a list A entry copied exactly as written; \
its value is the corresponding list B entry copied exactly as written. Example:
```json
{{"entry as written in list A": "entry as written in list B"}}
```"""

_COLUMNS_PROMPT = """A table was produced with the column headers of list A; the task asked for the columns \
of list B.

List A, the headers of the table:
{values}

List B, the column names that were asked for:
{reference}

For every header of list A, decide which name of list B it stands for, if any: the same quantity or \
attribute, possibly worded, abbreviated, translated or formatted differently. Identical strings always \
correspond. Use each name of list B at most once, and leave out headers of list A that match nothing in list \
B.

Reply with one JSON object in a ```json fenced block, mapping each list A header (copied exactly as written) \
to its list B name (copied exactly as written). Example:
```json
{{"header as written in list A": "name as written in list B"}}
```"""

_GRADE_PROMPT = """You check answers in a table against reference answers, one row at a time.

Grading criterion:
<<<
{criterion}
>>>

Rows to check. Each has the answer that was given ("response") and the reference answer ("target"):
{rows}

Score each row 1 if its response is correct under the criterion and 0 otherwise; no other values. You may \
reason about the rows first. End your reply with one JSON object in a ```json fenced block that has every \
row id as a key, for example:
```json
{{"idx_0": 1, "idx_1": 0}}
```"""

_JSON_BLOCK = re.compile(r"```json\s*(\{.*?\})\s*```", re.DOTALL)


def _last_json_object(content: str | None) -> dict[str, Any] | None:
    if not content:
        return None
    blocks = _JSON_BLOCK.findall(content)
    if not blocks:
        return None
    try:
        obj = json.loads(blocks[-1])
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def parse_alignment(content: str | None) -> dict[str, str]:
    """The mapping of an alignment reply (last fenced ``json`` object). Raises :class:`JudgeError`.

    Scalar values are kept as the strings the original scorer ended up comparing (``str(value)``); nested
    values cannot name a cell and are dropped.
    """
    obj = _last_json_object(content)
    if obj is None:
        raise JudgeError("alignment reply has no fenced JSON object")
    out: dict[str, str] = {}
    for k, v in obj.items():
        if isinstance(v, str):
            out[k] = v
        elif v is None or isinstance(v, (bool, int, float)):
            out[k] = str(v)
    return out


def parse_grades(content: str | None, n: int) -> list[int]:
    """Per-row 0/1 scores of a grading reply (keys ``idx_0`` .. ``idx_{n-1}``).

    Raises :class:`JudgeError` when there is no readable JSON object, and :class:`IncompleteGrade` (with the
    scores read so far, 0 elsewhere) when rows are missing or hold something other than 0/1.
    """
    obj = _last_json_object(content)
    if obj is None:
        raise JudgeError("grading reply has no fenced JSON object")
    scores: list[int] = []
    bad: list[int] = []
    for i in range(n):
        v = obj.get(f"idx_{i}")
        if isinstance(v, bool) or (isinstance(v, (int, float)) and v in (0, 1)):
            scores.append(int(v))
        else:
            scores.append(0)
            bad.append(i)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        raise IncompleteGrade(
            f"grading reply lacks a 0/1 score for {len(bad)} of {n} rows ({shown})", scores, bad
        )
    return scores


# ------------------------------------------------------------------------------------------------------------
# On-disk cache
# ------------------------------------------------------------------------------------------------------------


class JudgeCache:
    """Replies keyed by a SHA-256 of the request body (model, messages, sampling); one small file per entry.

    Writes are atomic (temp file + rename), so concurrent scorers and killed runs never leave half entries.
    Only readable replies are stored: a failed call is retried on the next scoring run. A bounded in-memory
    layer makes repeated lookups within one process cheap; :meth:`aget` and :meth:`aput` keep the file I/O off
    the event loop.
    """

    def __init__(self, directory: str | Path, *, memory_entries: int = 4096) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._memory: OrderedDict[str, str] = OrderedDict()
        self._memory_entries = memory_entries

    @staticmethod
    def key(body: dict[str, Any]) -> str:
        canon = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canon.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        hit = self._memory.get(key)
        if hit is not None:
            self._memory.move_to_end(key)
            return hit
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        content = data.get("content") if isinstance(data, dict) else None
        if isinstance(content, str):
            self._remember(key, content)
            return content
        return None

    def put(self, key: str, content: str, *, model: str) -> None:
        atomic_write_text(
            self._path(key), json.dumps({"model": model, "content": content}, ensure_ascii=False)
        )
        self._remember(key, content)

    async def aget(self, key: str) -> str | None:
        """:meth:`get`, reading the file (on a memory miss) in a worker thread."""
        hit = self._memory.get(key)
        if hit is not None:
            self._memory.move_to_end(key)
            return hit
        return await asyncio.to_thread(self.get, key)

    async def aput(self, key: str, content: str, *, model: str) -> None:
        """:meth:`put`, writing the file in a worker thread."""
        await asyncio.to_thread(self.put, key, content, model=model)

    def _remember(self, key: str, content: str) -> None:
        self._memory[key] = content
        self._memory.move_to_end(key)
        while len(self._memory) > self._memory_entries:
            self._memory.popitem(last=False)


# ------------------------------------------------------------------------------------------------------------
# OpenAI-compatible judge
# ------------------------------------------------------------------------------------------------------------


@dataclass
class JudgeStats:
    """Counters over the judge's lifetime (the scorer keeps per-trial counts itself)."""

    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class OpenAIJudge:
    """A judge backed by any OpenAI-compatible ``/chat/completions`` endpoint.

    ``temperature=None`` (the default) sends no temperature, as the official scorer effectively did.
    ``concurrency`` bounds requests in flight (per event loop); 429, 5xx, timeouts and connection errors are
    retried with exponential backoff. With ``cache_dir`` every readable reply is stored on disk under a hash
    of the request, so re-scoring the same responses costs no calls. The API key never appears in reprs,
    cache entries, or error messages.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: SecretStr | str | None = None,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        concurrency: int = 16,
        timeout: float = 300.0,
        retry: RetryPolicy | None = None,
        cache_dir: str | Path | None = None,
        extra_body: dict[str, Any] | None = None,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.cache = JudgeCache(cache_dir) if cache_dir is not None else None
        self.extra_body = dict(extra_body or {})
        self.stats = JudgeStats()
        self._transport = OpenAITransport(
            self.base_url,
            api_key,
            timeout=timeout,
            retry=self.retry,
            max_inflight=concurrency,
            what="judge",
            max_reply_bytes=max_reply_bytes,
        )

    def __repr__(self) -> str:
        return (
            f"OpenAIJudge(base_url={self.base_url!r}, model={self.model!r}, cache={self.cache is not None})"
        )

    # -- lifecycle -------------------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close the HTTP session of the running loop (sessions of finished loops closed with their loop)."""
        await self._transport.aclose()

    async def __aenter__(self) -> OpenAIJudge:  # no typing_extensions dependency for Self
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- requests --------------------------------------------------------------------------------------------
    def _body(self, prompt: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": prompt}]}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        body.update(self.extra_body)
        return body

    async def complete(self, prompt: str, *, parse: Callable[[str], object] | None = None) -> str:
        """The reply text for one prompt, from the cache or the endpoint.

        ``parse(content)`` (optional) validates the reply; only replies it accepts are cached, so a reply we
        cannot read is asked for again on the next run rather than frozen in the cache.
        """
        body = self._body(prompt)
        key = JudgeCache.key(body) if self.cache is not None else ""
        if self.cache is not None:
            hit = await self.cache.aget(key)
            if hit is not None:
                self.stats.cache_hits += 1
                return hit
        try:
            content = self._content(await self._post(body))
            if parse is not None:
                parse(content)
        except JudgeError:
            self.stats.failures += 1
            raise
        if self.cache is not None:
            await self.cache.aput(key, content, model=self.model)
        return content

    def _count_retry(self, attempt: int, error: BaseException, wait: float) -> None:
        self.stats.retries += 1
        self.stats.requests += 1

    async def _post(self, body: dict[str, Any]) -> Any:
        self.stats.requests += 1
        try:
            return await self._transport.post("/chat/completions", body, on_retry=self._count_retry)
        except ModelUnavailableError as e:
            raise JudgeError(
                f"judge request failed after {self.retry.retries} retries: {e.__cause__ or e}"
            ) from None
        except ModelError as e:
            raise JudgeError(str(e)) from None

    def _content(self, data: Any) -> str:
        try:
            message = data["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise JudgeError(
                f"unexpected response body from the judge: {self._transport.redact(str(data)[:300])}"
            ) from None
        usage = data.get("usage") or {}
        self.stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.stats.completion_tokens += int(usage.get("completion_tokens") or 0)
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str) or not content.strip():
            raise JudgeError("judge reply has no content")
        return content

    # -- the judge protocol ----------------------------------------------------------------------------------
    async def align(self, values: list[str], reference: list[str]) -> dict[str, str]:
        prompt = _ALIGN_PROMPT.format(
            values=json.dumps(values, ensure_ascii=False), reference=json.dumps(reference, ensure_ascii=False)
        )
        return parse_alignment(await self.complete(prompt, parse=parse_alignment))

    async def map_columns(self, columns: list[str], required: list[str]) -> dict[str, str]:
        prompt = _COLUMNS_PROMPT.format(
            values=json.dumps(columns, ensure_ascii=False), reference=json.dumps(required, ensure_ascii=False)
        )
        return parse_alignment(await self.complete(prompt, parse=parse_alignment))

    async def grade(self, criterion: str, pairs: list[tuple[str, str]]) -> list[int]:
        rows = {f"idx_{i}": {"response": r, "target": t} for i, (r, t) in enumerate(pairs)}
        prompt = _GRADE_PROMPT.format(
            criterion=criterion, rows=json.dumps(rows, ensure_ascii=False, indent=1)
        )
        n = len(pairs)
        return parse_grades(await self.complete(prompt, parse=lambda c: parse_grades(c, n)), n)
