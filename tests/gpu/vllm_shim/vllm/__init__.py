"""A stand-in ``vllm`` package for ONE purpose: running OpenRLHF 0.11.2's Ray launch path on a GPU machine
that cannot install vLLM 0.29 (it pins torch 2.13; the machine has torch 2.11 and no network).

It is put first on ``PYTHONPATH`` by ``scripts/gpu/launch_smoke.sh`` only; nothing installs it and it is never
on a user's default path. It implements exactly the surface OpenRLHF 0.11.2 uses on the ``train_ppo_ray`` path
(listed in ``tests/gpu/README.md``, taken from ``openrlhf/trainer/ray/vllm_engine.py``,
``vllm_worker_wrap.py``, ``ppo_actor.py``, ``ppo_utils/samples_generator.py`` and
``utils/distributed_util.py``), backed by :class:`training.hf_engine.HFEngine`. OpenRLHF's own
``RolloutRayActor``, ``create_vllm_engines`` and ``WorkerWrap`` run unmodified on top of it; weights reach the
engine only through ``WorkerWrap.update_weight`` (NCCL broadcast) or ``update_weight_cuda_ipc`` (colocated).
Anything OpenRLHF might use that is not implemented raises instead of pretending.
"""

from __future__ import annotations

# OpenRLHF compares this with packaging: > 0.8.5, >= 0.9.0, > 0.10.0 (logprobs_mode), >= 0.16
# (NCCL_CUMEM_ENABLE
# left alone). The local label makes the stand-in obvious in every log line that prints the version.
__version__ = "0.29.0+hfshim"
__version_tuple__ = (0, 29, 0, "hfshim")
IS_SHIM = True

from .engine.arg_utils import AsyncEngineArgs  # noqa: E402
from .engine.async_llm_engine import AsyncLLMEngine  # noqa: E402
from .inputs import TokensPrompt  # noqa: E402
from .outputs import CompletionOutput, RequestOutput  # noqa: E402
from .sampling_params import SamplingParams  # noqa: E402

__all__ = [
    "AsyncEngineArgs",
    "AsyncLLMEngine",
    "CompletionOutput",
    "RequestOutput",
    "SamplingParams",
    "TokensPrompt",
    "__version__",
]
