"""The engine interface an OpenRLHF agent executor receives, and vLLM-free stand-ins for it.

In OpenRLHF 0.11.2 the ``llm_engine`` passed to ``AgentExecutor.execute`` is the ``RolloutRayActor`` itself;
its one generation method is::

    request_output = await llm_engine.generate(prompt_token_ids, sampling_params, multi_modal_data=None)

returning vLLM's ``RequestOutput``: ``.prompt_token_ids`` and ``.outputs[0]`` (a ``CompletionOutput``) with
``.token_ids``, ``.text``, ``.finish_reason`` (``"stop"``, ``"length"`` or ``"abort"``) and ``.logprobs``, a list
(one per generated token) of ``{token_id: Logprob}`` dicts whose values carry ``.logprob``, or ``None`` when
logprobs were not requested.

``sampling_params`` is a ``vllm.SamplingParams``. :func:`make_sampling_params` builds one from a base object
plus per-request overrides, using vLLM's class when vLLM imports and :class:`SamplingParamsLite` (same field
names) when it does not, so everything here runs on a CPU machine without vLLM.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

# The SamplingParams fields this project sets; the other fields of a vLLM object are carried over as they are.
_SAMPLING_FIELDS = (
    "n", "temperature", "top_p", "top_k", "min_p", "seed", "stop", "stop_token_ids", "max_tokens", "min_tokens",
    "logprobs", "repetition_penalty", "presence_penalty", "frequency_penalty", "skip_special_tokens",
    "include_stop_str_in_output", "ignore_eos",
)


@dataclass
class SamplingParamsLite:
    """Stand-in for ``vllm.SamplingParams`` with the same field names and the defaults OpenRLHF uses."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0
    seed: int | None = None
    stop: list[str] | None = None
    stop_token_ids: list[int] | None = None
    max_tokens: int | None = 16
    min_tokens: int = 0
    logprobs: int | None = None
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    skip_special_tokens: bool = True
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        # The checks vLLM makes at construction, so a stand-in run rejects what a real engine would.
        if self.temperature < 0:
            raise ValueError(f"temperature must be non-negative, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and self.top_k < -1:
            raise ValueError(f"top_k must be -1 (disable), 0 (disable) or at least 1, got {self.top_k}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if self.logprobs is not None and self.logprobs < 0:
            raise ValueError(f"logprobs must be non-negative, got {self.logprobs}")


def _vllm_sampling_params_cls() -> type | None:
    try:
        from vllm import SamplingParams  # type: ignore[import-not-found]
    except Exception:  # vLLM absent, or present but unusable on this machine (no CUDA build)
        return None
    return SamplingParams


# Fields vLLM derives in __post_init__ from others: never copied, so the new object derives them again.
_DERIVED = {"output_text_buffer_length"}


def sampling_fields(params: Any) -> dict[str, Any]:
    """The constructor fields of a vLLM ``SamplingParams`` (all public ones), a :class:`SamplingParamsLite`,
    or a dict (the known sampling fields only)."""
    if params is None:
        return {}
    if isinstance(params, dict):
        return {k: v for k, v in params.items() if k in _SAMPLING_FIELDS}
    names = getattr(type(params), "__struct_fields__", None)  # vLLM's msgspec struct
    if names is None:
        names = _SAMPLING_FIELDS
    return {k: copy.deepcopy(getattr(params, k)) for k in names
            if not k.startswith("_") and k not in _DERIVED and hasattr(params, k)}


def make_sampling_params(base: Any = None, *, factory: type | None = None, **overrides: Any) -> Any:
    """A new sampling-params object: ``base``'s fields, then ``overrides`` (``None`` overrides are ignored).

    The result has ``base``'s class when it is a vLLM or lite object; otherwise ``factory``, else vLLM's class
    when importable, else :class:`SamplingParamsLite`. A new object is built (not mutated) so vLLM re-runs its
    validation.
    """
    unknown = set(overrides) - set(_SAMPLING_FIELDS)
    if unknown:
        raise TypeError(f"unknown sampling fields: {sorted(unknown)}")
    values = sampling_fields(base)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if base is not None and not isinstance(base, dict):
        cls: type = type(base)
    else:
        cls = factory or _vllm_sampling_params_cls() or SamplingParamsLite
    if cls is SamplingParamsLite:
        allowed = {f.name for f in fields(SamplingParamsLite)}
        values = {k: v for k, v in values.items() if k in allowed}
    return cls(**values)


# --- vLLM-shaped outputs, for engine stand-ins -----------------------------------------------------------------


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput] = field(default_factory=list)
    finished: bool = True


@runtime_checkable
class LLMEngine(Protocol):
    """What ``execute`` receives as ``llm_engine`` (OpenRLHF's ``RolloutRayActor``)."""

    async def generate(self, prompt_token_ids: list[int], sampling_params: Any,
                       multi_modal_data: Any = None) -> Any: ...


@dataclass
class Generation:
    """One engine call's result, in the plain form the endpoint needs."""

    token_ids: list[int]
    logprobs: list[float] | None
    finish_reason: str
    text: str | None = None
    stop_reason: int | str | None = None  # the stop string or stop token id that ended it (vLLM's field)


def read_generation(request_output: Any) -> Generation:
    """Take the first completion of a vLLM ``RequestOutput`` (or a stand-in of the same shape) apart.

    Each generated token's logprob is the entry for that token id in its step's dict; a step whose dict lacks
    the sampled id (it should not happen with ``logprobs >= 0``) makes the whole list ``None`` rather than
    silently inventing a value.
    """
    outputs = getattr(request_output, "outputs", None)
    if not outputs:
        raise ValueError("engine returned no completion outputs")
    out = outputs[0]
    token_ids = [int(t) for t in out.token_ids]
    logprobs: list[float] | None = None
    steps: Sequence[Any] | None = getattr(out, "logprobs", None)
    if steps is not None:
        logprobs = []
        for tok, step in zip(token_ids, steps):
            entry = step.get(tok) if isinstance(step, dict) else None
            if entry is None:
                logprobs = None
                break
            logprobs.append(float(entry.logprob if hasattr(entry, "logprob") else entry))
        if logprobs is not None and len(logprobs) != len(token_ids):
            logprobs = None
    finish = getattr(out, "finish_reason", None) or "stop"
    return Generation(token_ids=token_ids, logprobs=logprobs, finish_reason=str(finish),
                      text=getattr(out, "text", None), stop_reason=getattr(out, "stop_reason", None))
