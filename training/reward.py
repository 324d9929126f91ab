"""The reward of one training rollout: the WideSeek-R1 reward of ``langgraph_wideseek.eval.reward``, or a
custom one.

The default builds the scorer's :class:`~langgraph_wideseek.eval.tasks.Task` from the dataset label
(:mod:`training.data`) with :func:`~langgraph_wideseek.eval.reward.task_from_label` and calls
``compute_reward(result, task, judge=..., mode=...)``:

- ``mode="generic"`` is the paper's training recipe (keys matched after alignment, every other cell judged by
  an
  LLM with one generic criterion): it needs an OpenAI-compatible judge (``judge_base_url``, ``judge_model``,
  the key in the environment variable ``judge_api_key_env``);
- ``mode="benchmark"`` scores each column with its own WideSearch metric; tasks whose columns use only exact,
  numeric, date and URL metrics (the synthetic world's) need no model, so ``judge="exact"`` serves them.

A custom reward is ``function: "package.module:name"`` or ``"/path/file.py:name"``, called as
``f(result, label) -> float | (float, {part: float})`` (sync or async) with the run's
:class:`~langgraph_wideseek.WideSeekResult` and the :class:`~training.data.TaskLabel`. It must return the same
part names every time: OpenRLHF merges the logged parts of all rows key by key.

Either way, the rollout's reward is forced to 0 when the lead failed (spec section 5; ``training.rows``).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from langgraph_wideseek.graph.result import WideSeekResult

from .data import TaskLabel

RewardOut = tuple[float, dict[str, float]]
# The parts of langgraph_wideseek.eval.reward.RewardBreakdown that are logged (a fixed set: see the
# docstring).
BREAKDOWN_PARTS = ("item_f1", "format_bonus", "access_bonus", "length_penalty", "judge_failures")


class RewardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    function: str | None = Field(
        None,
        description="A custom reward, 'package.module:function' or '/path/file.py:function'. Default: "
        "the WideSeek-R1 reward of langgraph_wideseek.eval.reward.",
    )
    mode: Literal["generic", "benchmark"] = Field(
        "generic",
        description="generic: the paper's training scoring (LLM judge on non-key cells); benchmark: "
        "each column's WideSearch metric.",
    )
    judge: Literal["openai", "exact"] = Field(
        "openai",
        description="openai: an OpenAI-compatible judge model; exact: string equality, no model "
        "(only sound for tasks without llm_judge columns).",
    )
    judge_base_url: str | None = None
    judge_model: str | None = None
    judge_api_key_env: str = Field(
        "WIDESEEK_JUDGE_API_KEY", description="Environment variable holding the judge's API key."
    )
    judge_concurrency: int = Field(16, ge=1, description="Judge requests in flight per rollout actor.")
    judge_cache_dir: str | None = Field(None, description="Cache judge replies on disk here.")

    def problem(self) -> str | None:
        """Why the default reward cannot run with these settings (``None``: it can)."""
        if (
            self.function is None
            and self.judge == "openai"
            and not (self.judge_base_url and self.judge_model)
        ):
            return (
                "reward.judge 'openai' needs reward.judge_base_url and reward.judge_model (or set "
                "reward.judge to 'exact', or reward.function to a custom reward)"
            )
        return None


def load_function(spec: str) -> Any:
    """``package.module:function`` or ``/path/to/file.py:function``."""
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise ValueError(f"reward function {spec!r} must look like 'module:function' or 'file.py:function'")
    if target.endswith(".py"):
        mod_spec = importlib.util.spec_from_file_location(f"wideseek_reward_{abs(hash(target))}", target)
        if mod_spec is None or mod_spec.loader is None:
            raise ImportError(f"cannot load {target}")
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise AttributeError(f"{target} has no callable {name!r}")
    return fn


def as_reward(value: Any) -> RewardOut:
    """(total, parts) from a number, a ``(number, parts)`` pair, or a ``RewardBreakdown``."""
    if isinstance(value, tuple) and len(value) == 2:
        total, parts = value
        return float(total), {str(k): float(v) for k, v in dict(parts).items()}
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if hasattr(value, "total"):
            return float(value.total), {p: float(getattr(value, p)) for p in BREAKDOWN_PARTS}
        raise TypeError(
            f"a reward must be a number, (number, parts) or a RewardBreakdown; got {type(value)!r}"
        )
    return float(value), {}


def build_judge(settings: RewardSettings) -> Any:
    if settings.judge == "exact":
        from langgraph_wideseek.eval.judge import ExactJudge

        return ExactJudge()
    from langgraph_wideseek.eval.judge import OpenAIJudge

    key = os.environ.get(settings.judge_api_key_env) or None
    return OpenAIJudge(
        settings.judge_base_url or "",
        settings.judge_model or "",
        key,
        concurrency=settings.judge_concurrency,
        cache_dir=settings.judge_cache_dir,
    )


class RolloutReward:
    """The reward of rollouts on one actor: one judge, and the scorer task of each label (built once per label
    and cached by ``task_from_label``, so a task's gold table is read once for its whole group of rollouts).
    """

    def __init__(self, settings: RewardSettings, *, function: Any = None) -> None:
        self.settings = settings
        self.function = function
        if self.function is None and settings.function:
            self.function = load_function(settings.function)
        if self.function is None and settings.problem():
            raise ValueError(settings.problem())  # at actor start, not after the first rollout
        self._judge: Any = None

    async def __call__(self, result: WideSeekResult, label: TaskLabel) -> RewardOut:
        if self.function is not None:
            out = self.function(result, label)
            if inspect.isawaitable(out):
                out = await out
            return as_reward(out)
        from langgraph_wideseek.eval.reward import compute_reward, task_from_label

        if self._judge is None:
            self._judge = build_judge(self.settings)
        task = task_from_label(label)
        return as_reward(await compute_reward(result, task, judge=self._judge, mode=self.settings.mode))

    async def aclose(self) -> None:
        close = getattr(self._judge, "aclose", None)
        if close is not None:
            await close()
        self._judge = None
