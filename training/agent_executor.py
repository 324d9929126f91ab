"""The OpenRLHF agent file: ``--train.agent_func_path training/agent_executor.py``.

OpenRLHF 0.11.2 imports this file by path (as a bare module) inside every vLLM Ray actor, builds
``AgentExecutor()`` once per actor, and calls ``await executor.execute(prompt, label, sampling_params,
max_length, hf_tokenizer, llm_engine)`` ``n_samples_per_prompt`` times per task, concurrently, on the actor's
event loop.

Each call runs one WideSeek graph rollout against the in-actor endpoint and returns the rollout's training
rows: a **list** of dicts, one per generation call kept for training (see ``training.rollout`` and
``training.rows``). Stock OpenRLHF expects one dict; the multi-row extension (``training.openrlhf_ext``,
applied by ``python -m training.openrlhf_ext.train``) consumes the lists.

Settings: ``WIDESEEK_TRAIN_CONFIG`` names a JSON file of ``training.rollout.ExecutorSettings``
(docs/training.md).
"""

import sys
from abc import ABC, abstractmethod
from pathlib import Path

# Loaded from its path in a Ray worker whose working directory and sys.path we do not control: make the
# repository importable from the file's own location.
_REPO_ROOT = Path(__file__).resolve().parents[1]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from training.rollout import ExecutorSettings, RolloutRunner  # noqa: E402

try:  # OpenRLHF checks issubclass against its own base class
    from openrlhf.utils.agent import AgentExecutorBase
except Exception:  # noqa: BLE001 - no OpenRLHF here (CPU tests, offline use): the same interface, defined locally

    class AgentExecutorBase(ABC):  # type: ignore[no-redef]
        """Stand-in with OpenRLHF 0.11.2's interface (``openrlhf.utils.agent.AgentExecutorBase``)."""

        @abstractmethod
        async def execute(
            self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None
        ):
            raise NotImplementedError


class AgentExecutor(AgentExecutorBase):
    """WideSeek multi-agent rollouts for OpenRLHF. The constructor is synchronous and needs no arguments (as
    OpenRLHF requires); ``settings`` and ``reward_fn`` are for tests and embedding."""

    def __init__(self, settings=None, *, reward_fn=None):
        self.runner = RolloutRunner(settings or ExecutorSettings.from_env(), reward_fn=reward_fn)

    async def execute(
        self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None
    ):
        return await self.runner.execute(
            prompt, label, sampling_params, max_length, hf_tokenizer, llm_engine, images=images
        )

    async def aclose(self):
        await self.runner.aclose()

    @property
    def settings(self):
        return self.runner.settings

    @property
    def endpoint(self):
        return self.runner.endpoint

    @property
    def row_stats(self):
        return self.runner.row_stats
