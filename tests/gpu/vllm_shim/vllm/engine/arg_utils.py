"""``vllm.AsyncEngineArgs``: the keyword arguments ``openrlhf.trainer.ray.vllm_engine.create_vllm_engines``
passes.

Unknown keywords raise ``TypeError`` (as vLLM's dataclass does), so a new OpenRLHF argument is noticed rather
than dropped. Arguments that only matter to vLLM's own memory manager or compiler are accepted and recorded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class AsyncEngineArgs:
    model: str = ""
    tokenizer: str | None = None
    dtype: str = "auto"
    seed: int = 0
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    distributed_executor_backend: str | None = None
    worker_extension_cls: str = ""
    enforce_eager: bool = False
    enable_prefix_caching: bool | None = None
    trust_remote_code: bool = False
    gpu_memory_utilization: float | None = 0.9
    enable_sleep_mode: bool = False
    logprobs_mode: str = "raw_logprobs"
    max_logprobs: int = 20
    limit_mm_per_prompt: dict[str, int] = field(default_factory=dict)
    # HF-engine knobs (not vLLM's); settable through WIDESEEK_SHIM_* variables by the rollout actor's env
    max_batch_size: int = 256
    max_prefill_tokens: int = 65_536

    def __post_init__(self) -> None:
        if self.tensor_parallel_size != 1:
            raise NotImplementedError(
                f"the HF-engine vLLM shim runs one engine per GPU: tensor_parallel_size must be 1, "
                f"got {self.tensor_parallel_size} (set VLLM_TP=1)"
            )
        if self.logprobs_mode not in ("raw_logprobs", "processed_logprobs"):
            raise NotImplementedError(f"logprobs_mode {self.logprobs_mode!r} is not supported by the shim")
        if self.limit_mm_per_prompt:
            raise NotImplementedError("the HF-engine vLLM shim is text-only (limit_mm_per_prompt given)")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["AsyncEngineArgs"]
