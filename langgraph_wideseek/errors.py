"""Every exception the project raises, in one tree with one root.

``except WideSeekError`` catches anything this package (or ``training/``) raises on purpose; anything else
that escapes is a bug. Classes that used to derive from a builtin still do (``ValueError``, ``RuntimeError``),
so existing ``except ValueError`` code keeps working::

    WideSeekError
    ├── ConfigError (ValueError)           the configuration cannot build what it names
    │   ├── BackendConfigError               search backend chosen without what it needs (tools.factory)
    │   ├── CorpusError                      corpus file missing or malformed (tools.local)
    │   └── OutputPathError                  an output file or folder cannot be written (checked up front)
    ├── RetryableError                     one attempt failed in a way a retry may fix (runtime.retry);
    │   │                                    converted by its caller once the retries run out
    │   └── RequestTimedOut                  the attempt ran out of time (model transport: retried once)
    ├── ModelError                         the model server gave no completion (model.transport, model.chat)
    │   ├── ModelRequestError                the server rejected the request (4xx); ``status``
    │   │   └── ContextOverflowError           the agent's context no longer fits   [the model's own doing]
    │   ├── ModelUnavailableError            429 / 5xx / timeouts / connection errors after every retry
    │   └── ReplyTooLarge                    a reply exceeded ``max_reply_bytes``; cut off, never retried
    ├── ToolError                          a tool call could not be served
    │   ├── ToolArgumentError (ValueError)   the arguments do not fit the schema   [the model's own doing]
    │   ├── BackendError                     a search backend or page reader failed; ``retryable``
    │   │   ├── PageNotFound                   the URL is unknown to the backend   [the model's own doing]
    │   │   └── URLRefused                     the SSRF guard refused the URL      [the model's own doing]
    │   └── SummaryError                     the page summariser gave no summary
    ├── EvalError                          evaluation inputs or the judge failed
    │   ├── TaskLoadError (ValueError)       tasks or gold tables cannot be loaded (eval.tasks)
    │   ├── TableParseError (ValueError)     a table cannot be read the way the official scorer reads it
    │   ├── UnsupportedTaskError (ValueError) a task the runner cannot score (QA tasks in ``wideseek eval``)
    │   └── JudgeError (RuntimeError)        a judge call failed (transport, status, unreadable reply)
    │       └── IncompleteGrade                a grading reply lacked rows; ``scores``, ``missing``
    └── TrainingError                      raised by ``training/``
        ├── RecordError (ValueError)         a dataset record cannot be converted (training.data)
        ├── MissingTokenIds (ValueError)     a trajectory lacks the ids a training row needs (training.rows)
        ├── EndpointError                    the in-actor endpoint's HTTP error answers (training.endpoint)
        ├── RequestError (ValueError)        a request the HF engine cannot serve (training.hf_engine)
        ├── RefreshError (RuntimeError)      weight refresh of an external server failed (training.refresh)
        │   └── DevModeRequired                the server lacks vLLM's dev-mode endpoints
        └── WideSeekExtensionError (RuntimeError)   the OpenRLHF extension (training.openrlhf_ext.errors)
            ├── UnsupportedOpenRLHFVersion
            ├── ExtensionConfigError (ValueError)
            └── RowContractError (ValueError)

Failures inside a run are carried as data, not raised: a failed tool call becomes a tool message the model
reads, a failed subagent a failure report, a failed lead ``WideSeekResult(status="failed", errors=[...])``.
Every place that turns an exception into data calls :func:`raise_if_strict` first and logs what it swallowed.
With ``WideSeekConfig(strict=True)`` (or ``WIDESEEK_STRICT=1``) those failures propagate out of the graph
instead, so a debugger stops where they happen; the model's own mistakes (:data:`MODEL_MISTAKES`) are always
answered to the model, since they are what the agent loop exists to handle.

Errors that do leave the graph in the default mode: ``ValueError`` from :meth:`WideSeekGraph.arun` for an
empty question, :class:`ConfigError` (and ``FileNotFoundError`` for a missing ``prompt_dir``) while building a
graph, and ``asyncio.CancelledError`` when the caller cancels.
"""

from __future__ import annotations

__all__ = [
    "MODEL_MISTAKES",
    "BackendConfigError",
    "BackendError",
    "ConfigError",
    "ContextOverflowError",
    "CorpusError",
    "EvalError",
    "IncompleteGrade",
    "JudgeError",
    "ModelError",
    "ModelRequestError",
    "ModelUnavailableError",
    "OutputPathError",
    "PageNotFound",
    "ReplyTooLarge",
    "RequestTimedOut",
    "RetryableError",
    "SummaryError",
    "TableParseError",
    "TaskLoadError",
    "ToolArgumentError",
    "ToolError",
    "TrainingError",
    "URLRefused",
    "UnsupportedTaskError",
    "WideSeekError",
    "raise_if_strict",
]


class WideSeekError(Exception):
    """The root of every exception this project raises on purpose."""


# --- configuration ------------------------------------------------------------------------------------------
class ConfigError(WideSeekError, ValueError):
    """The configuration cannot build what it names; the message says which setting to change."""


class BackendConfigError(ConfigError):
    """The configuration does not say enough to build the chosen search backend."""


class CorpusError(ConfigError):
    """The corpus file is missing or has malformed lines."""


class OutputPathError(ConfigError):
    """An output path (trajectory file, eval or index folder) cannot be written; names it and says why."""


# --- retries ------------------------------------------------------------------------------------------------
class RetryableError(WideSeekError):
    """Raised by an attempt that may succeed if repeated; ``retry_after`` is the server's hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestTimedOut(RetryableError):
    """An attempt that ran out of time. The model transport retries it at most once: a hung server would
    otherwise cost the whole timeout once per retry."""


# --- the model server ---------------------------------------------------------------------------------------
class ModelError(WideSeekError):
    """The model server did not produce a completion. Messages never contain API keys."""


class ModelRequestError(ModelError):
    """The server rejected the request (4xx other than rate limits); retrying will not help."""

    def __init__(self, message: str, status: int | None = None, *, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class ContextOverflowError(ModelRequestError):
    """The agent's context no longer fits the model's window."""


class ModelUnavailableError(ModelError):
    """The server kept failing (429/5xx/timeouts/connection errors) after every retry."""


class ReplyTooLarge(ModelError):
    """A reply (model server or judge) passed the byte limit; the transfer was stopped there, not retried."""


# --- tools --------------------------------------------------------------------------------------------------
class ToolError(WideSeekError):
    """A tool call could not be served. ``str(err)`` may be shown to the model, so it never holds secrets."""


class ToolArgumentError(ToolError, ValueError):
    """A tool call's arguments do not match the tool's schema. The message is shown to the model."""


class BackendError(ToolError):
    """A backend could not answer. ``str(err)`` is shown to the model, so it must hold no secrets.

    ``retryable`` tells the caller whether the same request may succeed later (rate limits, 5xx, timeouts).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class PageNotFound(BackendError):
    """The URL is not known to the backend (not in the corpus, 404, ...)."""


class URLRefused(BackendError):
    """The SSRF guard refused a URL; the message says why and is safe to show the model."""


class SummaryError(ToolError):
    """The summariser model did not answer."""


# --- evaluation ---------------------------------------------------------------------------------------------
class EvalError(WideSeekError):
    """Evaluation inputs cannot be used, or the judge failed."""


class TaskLoadError(EvalError, ValueError):
    """Tasks or gold tables cannot be loaded; the message says which file/line/task and why."""


class TableParseError(EvalError, ValueError):
    """The text cannot be read as a table (pandas would have raised); the trial scores 0 with this reason."""


class UnsupportedTaskError(EvalError, ValueError):
    """A task of a kind the caller cannot score (the runner scores table tasks only)."""


class JudgeError(EvalError, RuntimeError):
    """A judge call failed: transport error after retries, an error status, or a reply we cannot read."""


class IncompleteGrade(JudgeError):
    """A grading reply lacked some rows (or gave them values other than 0/1); ``scores`` has 0 there."""

    def __init__(self, message: str, scores: list[int], missing: list[int]) -> None:
        super().__init__(message)
        self.scores = scores
        self.missing = missing


# --- training -----------------------------------------------------------------------------------------------
class TrainingError(WideSeekError):
    """The branch root of the errors ``training/`` raises (listed in the tree above)."""


# --- strict mode --------------------------------------------------------------------------------------------
#: Failures that are the model's own doing. They are always answered to the model as tool messages or agent
#: failures, even in strict mode: handling them is the agent loop's job, not a bug to stop at.
MODEL_MISTAKES: tuple[type[BaseException], ...] = (
    ToolArgumentError,
    PageNotFound,
    URLRefused,
    ContextOverflowError,
)


def raise_if_strict(error: BaseException, strict: bool) -> None:
    """Re-raise ``error`` when ``strict`` is on and the model did not cause it.

    Call it first in every handler that turns a failure into data (a tool message, a failure report); the
    handler then logs what it keeps going past. Defined once so that the rule cannot drift between layers.
    """
    if strict and not isinstance(error, MODEL_MISTAKES):
        raise error
