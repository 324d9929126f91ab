"""``vllm.SamplingParams`` with vLLM 0.29's field names and defaults, as a plain (picklable) dataclass.

OpenRLHF's ``SamplesGenerator`` builds one in the trainer actor and sends it through Ray to the rollout
actors; the agent executor's endpoint copies it with per-request overrides
(``training.engine.make_sampling_params``). Only fields :class:`training.hf_engine.HFEngine` honours are
accepted with non-default values: a field it would silently ignore is an error here, so a run never differs
from vLLM without saying so.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

# vLLM 0.29 fields that the HF engine does not implement: accepted only at their default value.
_UNSUPPORTED_DEFAULTS: dict[str, Any] = {
    "prompt_logprobs": None,
    "logprob_token_ids": None,
    "logit_bias": None,
    "allowed_token_ids": None,
    "bad_words": None,
    "structured_outputs": None,
    "thinking_token_budget": None,
}


@dataclass
class SamplingParams:
    n: int = 1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    max_tokens: int | None = 16
    min_tokens: int = 0
    logprobs: int | None = None
    detokenize: bool = True
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    include_stop_str_in_output: bool = False
    flat_logprobs: bool = False
    extra_args: dict[str, Any] | None = None
    prompt_logprobs: int | None = None
    logprob_token_ids: list[int] | None = None
    logit_bias: dict[int, float] | None = None
    allowed_token_ids: list[int] | None = None
    bad_words: list[str] | None = None
    structured_outputs: Any = None
    thinking_token_budget: int | None = None

    def __post_init__(self) -> None:
        for name, default in _UNSUPPORTED_DEFAULTS.items():
            if getattr(self, name) != default:
                raise NotImplementedError(
                    f"SamplingParams.{name} is not supported by the HF-engine vLLM shim"
                )
        if self.n != 1:
            raise NotImplementedError(f"the HF-engine vLLM shim serves n=1 per request, got n={self.n}")
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

    def clone(self) -> SamplingParams:
        return SamplingParams(**{f.name: getattr(self, f.name) for f in fields(self)})


__all__ = ["SamplingParams"]
