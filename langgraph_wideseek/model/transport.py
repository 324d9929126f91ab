"""The one HTTP client of the package for OpenAI-compatible servers: the chat model and the judge both use it.

:class:`OpenAITransport` POSTs JSON to one server over aiohttp (the cheapest client per call we measured; see
docs/benchmarks.md): one session per event loop (:class:`~langgraph_wideseek.runtime.LoopLocal`, closed with
its loop), one slot of the endpoint's process-wide limiter per request in flight, bodies encoded with orjson,
and 429 / 408 / 5xx / timeouts / connection errors retried with backoff; :meth:`OpenAITransport.stream`
reads a server-sent-event stream the same way. What it raises is part of the error
tree: :class:`ModelRequestError` (the server rejected the request; :class:`ContextOverflowError` when it says
the prompt is too long) and :class:`ModelUnavailableError` (it kept failing). The API key travels only in the
``Authorization`` header and is redacted from every message.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
from pydantic import SecretStr

from ..config import DEFAULT_MAX_REPLY_BYTES, check_http_url
from ..errors import (
    ContextOverflowError,
    ModelRequestError,
    ModelUnavailableError,
    ReplyTooLarge,
    RequestTimedOut,
    RetryableError,
)
from ..runtime import ENDPOINT_LIMITERS, LoopLocal, RetryPolicy, parse_retry_after, read_capped, retry_async

__all__ = ["OpenAITransport", "dumps", "loads"]

log = logging.getLogger(__name__)

_CONTEXT_MARKERS = ("maximum context length", "context length", "too many tokens", "prompt is too long")


def dumps(payload: dict[str, Any]) -> bytes:
    """A request body. orjson is about four times faster than ``json`` here, on every model call."""
    try:
        return orjson.dumps(payload)
    except (
        TypeError
    ):  # an object orjson does not know (e.g. from a user's extra_body): the slow, lenient path
        return json.dumps(payload, ensure_ascii=False).encode()


def loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson is strict; Python servers may write NaN or -Infinity (a -inf logprob), which json accepts
        return json.loads(body)


class OpenAITransport:
    """POSTs JSON bodies to ``base_url`` with retries, a shared in-flight limit and key redaction.

    ``what`` names the server in messages ("model server", "judge"). ``max_inflight`` is the endpoint's limit,
    shared by every transport of the process with the same URL and limit. ``base_url`` must be an http(s) URL
    (``ValueError`` otherwise).

    A timeout is retried at most ``timeout_retries`` times (a server that let one request time out is hung or
    overloaded; waiting the whole timeout once per retry only hides it). Replies are read up to
    ``max_reply_bytes``; a longer one is cut off there and not retried (:class:`ReplyTooLarge`). A connection
    must open within ``connect_timeout``. While requests wait, a log line every ``progress_interval`` seconds
    says so ("waiting for the model server at URL: 30 s").

    ``first_response_timeout`` separates a hung server from a slow generation, which look the same from
    outside (vLLM sends a whole reply only when it is done): once a request has waited that long, the
    transport asks the server for ``/models``, a route vLLM's API process answers at once however busy its
    engine is. Any HTTP answer means alive (the request keeps waiting, up to ``timeout``, and is checked again
    after each further ``first_response_timeout``); none within ``probe_timeout`` means hung, and the request
    fails with :class:`ModelUnavailableError`, not retried. So a hung server fails a call in about
    ``first_response_timeout + probe_timeout`` (70 s with the config's defaults); a slow but healthy one has
    ``(timeout_retries + 1) * timeout``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | str | None = None,
        *,
        timeout: float = 600.0,
        retry: RetryPolicy | None = None,
        max_inflight: int = 256,
        what: str = "model server",
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        connect_timeout: float = 10.0,
        timeout_retries: int = 1,
        progress_interval: float = 15.0,
        first_response_timeout: float = 60.0,
        probe_timeout: float = 10.0,
    ) -> None:
        self.base_url = check_http_url(base_url, f"the {what}'s URL")
        self._key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else (api_key or "")
        self.timeout = timeout
        self.max_reply_bytes = max_reply_bytes
        self.connect_timeout = connect_timeout
        self.timeout_retries = timeout_retries
        self.progress_interval = progress_interval
        self.first_response_timeout = first_response_timeout  # 0: no liveness check
        self.probe_timeout = probe_timeout
        self._alive_at = -float("inf")  # loop time of the last answered probe (shared by waiting requests)
        self._probe_lock: LoopLocal[asyncio.Lock] = LoopLocal(asyncio.Lock)
        self._waiting = 0  # requests of this transport waiting for their reply
        self._last_progress = 0.0
        self.retry = retry or RetryPolicy()
        self.what = what
        self._limiter = ENDPOINT_LIMITERS.for_endpoint(self.base_url, max_inflight)
        self._sessions: LoopLocal[aiohttp.ClientSession] = LoopLocal(
            self._new_session, close=_close_session, stale=_session_closed
        )

    def __repr__(self) -> str:  # never show the key
        return f"OpenAITransport({self.base_url!r}, key={'set' if self._key else 'none'})"

    def _new_session(self) -> aiohttp.ClientSession:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(
                total=self.timeout, sock_connect=min(self.connect_timeout, self.timeout)
            ),
        )

    async def aclose(self) -> None:
        """Close this loop's session (a session of another loop closes when that loop shuts down)."""
        await self._sessions.aclose()

    def redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    # --- requests ------------------------------------------------------------------------------------------
    async def post(
        self,
        path: str,
        payload: dict[str, Any],
        *,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
    ) -> Any:
        """POST ``payload`` to ``base_url + path`` until a 200 with a JSON body; returns the decoded body."""

        def retried(n: int, err: BaseException, wait: float) -> None:
            log.warning(
                "%s request failed (%s); retry %d/%d in %.1fs", self.what, err, n, self.retry.retries, wait
            )
            if on_retry is not None:
                on_retry(n, err, wait)

        timeouts = 0

        async def attempt() -> Any:
            nonlocal timeouts
            try:
                return await self.post_once(path, payload)
            except RequestTimedOut as e:
                timeouts += 1
                if timeouts > self.timeout_retries:
                    raise ModelUnavailableError(
                        f"{self.what} at {self.base_url} failed after {timeouts} attempts: {e} "
                        "(no reply; a timeout is retried once: raise request_timeout if the server is slow)"
                    ) from e
                raise

        try:
            return await retry_async(attempt, self.retry, on_retry=retried)
        except RetryableError as e:
            raise ModelUnavailableError(
                f"{self.what} at {self.base_url} failed after {self.retry.retries + 1} attempts: {e}"
            ) from e

    async def post_once(self, path: str, payload: dict[str, Any]) -> Any:
        """One attempt: the decoded body of a 200, :class:`RetryableError`, :class:`ModelRequestError`, or
        :class:`ModelUnavailableError` when the server stops answering while the request waits (the liveness
        check of :meth:`_watch`)."""
        url = self.base_url + path
        watch = self._watch()
        try:
            async with self._limiter.slot():
                async with self._sessions.get().post(url, data=dumps(payload)) as resp:
                    capped = await read_capped(resp, self.max_reply_bytes)
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
        except aiohttp.ConnectionTimeoutError as e:
            raise RetryableError(f"no connection within {self.connect_timeout:g}s") from e
        except TimeoutError as e:
            raise RequestTimedOut(f"request timed out after {self.timeout:g}s") from e
        except aiohttp.ClientError as e:
            raise RetryableError(f"connection error: {type(e).__name__}: {self.redact(str(e))}") from e
        except asyncio.CancelledError:
            hung = watch.hung
            if hung is None:
                raise  # cancelled by its caller
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the cancel was the liveness check's, turned into this error
            raise ModelUnavailableError(
                f"the {self.what} at {self.base_url} has not answered for {hung:.0f} s and does not answer "
                f"GET /models within {self.probe_timeout:g} s: it looks hung "
                "(set first_response_timeout=0 to wait the whole request_timeout instead)"
            ) from None
        finally:
            watch()
        if capped is None:
            raise ReplyTooLarge(
                f"the {self.what}'s reply exceeded max_reply_bytes ({self.max_reply_bytes} bytes); "
                "the transfer was stopped there"
            )
        body = capped
        if status == 200:
            try:
                return loads(body)
            except json.JSONDecodeError as e:
                raise RetryableError("server returned a non-JSON body with HTTP 200") from e
        raise self._failure(status, body, retry_after)

    async def _alive(self) -> bool:
        """Whether the server answers ``GET /models`` (any HTTP status) within ``probe_timeout``; one probe at
        a time, and an answer counts for every request waiting on this transport for the next interval."""
        loop = asyncio.get_running_loop()
        async with self._probe_lock.get():
            if loop.time() - self._alive_at < self.first_response_timeout / 2:
                return True
            try:
                async with self._sessions.get().get(
                    self.base_url + "/models", timeout=aiohttp.ClientTimeout(total=self.probe_timeout)
                ):
                    pass  # any status: the server's HTTP layer is alive
            except (TimeoutError, aiohttp.ClientError) as e:
                log.warning("%s at %s: liveness probe failed: %s", self.what, self.base_url, type(e).__name__)
                return False
            self._alive_at = loop.time()
            return True

    def _failure(self, status: int, body: bytes, retry_after: str | None) -> Exception:
        """The error for a non-200 answer (shared by :meth:`post_once` and :meth:`stream`)."""
        detail = self._error_detail(body)
        if status == 429 or status >= 500 or status == 408:
            return RetryableError(f"HTTP {status}: {detail}", retry_after=parse_retry_after(retry_after))
        if status == 400 and any(k in detail.lower() for k in _CONTEXT_MARKERS):
            return ContextOverflowError(f"context overflow: {detail}", status, detail=detail)
        return ModelRequestError(f"HTTP {status} from {self.what}: {detail}", status, detail=detail)

    def _watch(self) -> _Watch:
        """Count one request as waiting, on one timer for both jobs: log, every ``progress_interval`` seconds
        while it waits, that the server has not answered yet (one line per interval for the whole transport,
        however many wait); and once it has waited ``first_response_timeout``, and after each further one,
        ask whether the server is alive: if not, the request's task is cancelled and ``hung`` set, which
        :meth:`post_once` turns into :class:`ModelUnavailableError`. Calling the result ends the watch."""
        loop = asyncio.get_running_loop()
        watch = _Watch(self, loop, asyncio.current_task())
        self._waiting += 1
        if watch.every > 0:
            watch.handle = loop.call_later(watch.every, watch.tick)
        return watch

    def _error_detail(self, body: bytes) -> str:
        text = body.decode("utf-8", "replace")
        try:
            obj = json.loads(text)
            if isinstance(obj, dict):
                err = obj.get("error", obj)
                text = err.get("message", text) if isinstance(err, dict) else str(err)
        except json.JSONDecodeError:
            pass  # a plain-text error page: its text is the detail
        return self.redact(text[:2000])

    # --- streaming -----------------------------------------------------------------------------------------
    async def stream(
        self,
        path: str,
        payload: dict[str, Any],
        *,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
    ) -> AsyncIterator[Any]:
        """POST ``payload`` and yield the decoded JSON of each server-sent event until ``data: [DONE]``.

        Opening the stream is retried as :meth:`post` retries (until the server answers 200); once events
        flow, a broken connection ends the stream with :class:`ModelUnavailableError`, since what was already
        yielded cannot be taken back. An error event in the stream (vLLM writes one when generation fails)
        raises the error its body describes. The endpoint's slot is held until the stream ends."""

        def retried(n: int, err: BaseException, wait: float) -> None:
            log.warning(
                "%s stream failed to open (%s); retry %d/%d in %.1fs",
                self.what,
                err,
                n,
                self.retry.retries,
                wait,
            )
            if on_retry is not None:
                on_retry(n, err, wait)

        url = self.base_url + path
        async with self._limiter.slot():
            try:
                resp = await retry_async(
                    lambda: self._open_stream(url, payload), self.retry, on_retry=retried
                )
            except RetryableError as e:
                raise ModelUnavailableError(
                    f"{self.what} at {self.base_url} failed after {self.retry.retries + 1} attempts: {e}"
                ) from e
            try:
                async for data in _sse_data(resp.content, self.max_reply_bytes, self.what):
                    if data == b"[DONE]":
                        return
                    event = loads(data)
                    if isinstance(event, dict) and _is_error_event(event):
                        err = event.get("error", event)
                        code = err.get("code") if isinstance(err, dict) else None
                        status = code if isinstance(code, int) and code >= 400 else 500
                        failure = self._failure(status, data, None)
                        if isinstance(failure, RetryableError):  # too late to retry: say it failed
                            raise ModelUnavailableError(f"{self.what} stream failed: {failure}") from failure
                        raise failure
                    yield event
            except ReplyTooLarge:
                resp.close()  # stop the transfer; what was already yielded stays with the caller
                raise
            except (TimeoutError, aiohttp.ClientError) as e:
                raise ModelUnavailableError(
                    f"{self.what} stream broke off: {type(e).__name__}: {self.redact(str(e))}"
                ) from e
            finally:
                resp.release()

    async def _open_stream(self, url: str, payload: dict[str, Any]) -> aiohttp.ClientResponse:
        """One attempt to open a stream: the response of a 200, :class:`RetryableError`, or
        :class:`ModelRequestError`."""
        try:
            resp = await self._sessions.get().post(url, data=dumps(payload))
        except TimeoutError as e:
            raise RetryableError(f"request timed out after {self.timeout:g}s") from e
        except aiohttp.ClientError as e:
            raise RetryableError(f"connection error: {type(e).__name__}: {self.redact(str(e))}") from e
        if resp.status == 200:
            return resp
        try:
            body = await read_capped(resp, self.max_reply_bytes) or b""
        except (TimeoutError, aiohttp.ClientError):
            body = b""
        finally:
            resp.release()
        raise self._failure(resp.status, body, resp.headers.get("Retry-After"))


class _Watch:
    """One waiting request of :meth:`OpenAITransport._watch`: a timer, not a task, so that the hot path
    (thousands of calls a second in RL rollouts) pays one ``call_later`` per request."""

    __slots__ = ("every", "handle", "hung", "loop", "next_probe", "probe", "start", "task", "transport")

    def __init__(
        self, transport: OpenAITransport, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any] | None
    ) -> None:
        self.transport = transport
        self.loop = loop
        self.task = task
        self.start = loop.time()
        frt = transport.first_response_timeout if task is not None else 0.0
        intervals = [t for t in (transport.progress_interval, frt) if t > 0]
        self.every = min(intervals) if intervals else 0.0
        self.next_probe = self.start + frt if frt > 0 else float("inf")
        self.handle: asyncio.TimerHandle | None = None
        self.hung: float | None = None  # seconds waited when the server was found hung
        self.probe: asyncio.Task[None] | None = None  # held here: the loop keeps only a weak reference

    def tick(self) -> None:
        t = self.transport
        now = self.loop.time()
        if t.progress_interval > 0 and now - t._last_progress >= t.progress_interval * 0.9:
            t._last_progress = now
            log.warning(
                "waiting for the %s at %s: %.0f s (%d request(s) waiting)",
                t.what,
                t.base_url,
                now - self.start,
                t._waiting,
            )
        if now >= self.next_probe and (self.probe is None or self.probe.done()):
            self.probe = self.loop.create_task(self._probe())
        self.handle = self.loop.call_later(self.every, self.tick)

    async def _probe(self) -> None:
        try:
            alive = await self.transport._alive()
        except Exception:  # a probe that cannot run says nothing about the server: keep waiting
            log.warning("liveness probe of %s could not run", self.transport.base_url, exc_info=True)
            alive = True
        self.next_probe = self.loop.time() + self.transport.first_response_timeout
        if not alive and self.handle is not None and self.task is not None and not self.task.done():
            self.hung = self.loop.time() - self.start
            self.task.cancel()

    def __call__(self) -> None:
        self.transport._waiting -= 1
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None  # ended: a probe still running must not cancel the task any more


def _is_error_event(event: dict[str, Any]) -> bool:
    return event.get("object") == "error" or ("error" in event and not event.get("choices"))


async def _sse_data(content: aiohttp.StreamReader, limit: int, what: str) -> AsyncIterator[bytes]:
    """The ``data`` of each server-sent event (multi-line data joined with newlines; other fields ignored),
    at most ``limit`` bytes of stream in all: an endless stream is as unbounded as an endless body."""
    lines: list[bytes] = []
    seen = 0
    async for raw in content:
        seen += len(raw)
        if seen > limit:
            raise ReplyTooLarge(
                f"the {what}'s streamed reply exceeded max_reply_bytes ({limit} bytes); "
                "the transfer was stopped there"
            )
        line = raw.rstrip(b"\r\n")
        if not line:
            if lines:
                yield b"\n".join(lines)
                lines = []
        elif line.startswith(b"data:"):
            lines.append(line[6:] if line[5:6] == b" " else line[5:])
    if lines:
        yield b"\n".join(lines)


def _session_closed(session: aiohttp.ClientSession) -> bool:
    return session.closed


async def _close_session(session: aiohttp.ClientSession) -> None:
    if not session.closed:
        await session.close()
