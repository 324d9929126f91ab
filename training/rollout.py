"""One graph rollout inside a vLLM Ray actor -> training rows: the logic behind
``training/agent_executor.py``.

:class:`RolloutRunner` owns what lives once per actor (the in-actor endpoint, the search backends, the
settings) and runs one rollout per :meth:`RolloutRunner.execute`:

1. register the rollout with the endpoint (OpenRLHF's engine, sampling params and ``max_length``);
2. run an unmodified :class:`~langgraph_wideseek.WideSeekGraph` whose chat model talks to the endpoint, so its
   trajectory records the exact prompt ids, completion ids and logprobs of every call;
3. compute the rollout's reward (0 when the lead failed; else the WideSeek-R1 reward, or a custom function);
4. turn the trajectory into rows with :func:`training.rows.trajectory_to_rows`.

Settings come from ``WIDESEEK_TRAIN_CONFIG`` (a JSON file of :class:`ExecutorSettings`) and the graph config's
own ``WIDESEEK_<FIELD>`` variables. The graph's endpoint, model name and API key are always the in-actor
endpoint's; sampling follows OpenRLHF's sampling params (``--rollout.temperature``, ``--eval.temperature``,
``--rollout.top_p``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from langgraph_wideseek.config import WideSeekConfig
from langgraph_wideseek.graph.result import WideSeekResult
from langgraph_wideseek.graph.trajectory import Status

from .data import TaskLabel, parse_label
from .endpoint import ROLLOUT_FIELD, ChatEndpoint, RolloutStats
from .reward import RewardOut, RewardSettings, RolloutReward
from .rows import RowStats, trajectory_to_rows

log = logging.getLogger("training.rollout")

CONFIG_ENV = "WIDESEEK_TRAIN_CONFIG"


class ExecutorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    graph: dict[str, Any] = Field(
        default_factory=dict, description="WideSeekConfig fields for every rollout."
    )
    reward: RewardSettings = Field(default_factory=RewardSettings)
    merge_prefix: bool = Field(False, description="Merge consecutive calls of an agent when the ids extend.")
    strict_max_tokens: bool = Field(
        False, description="400 on prompt + max_tokens > context (vLLM) instead of clamping max_tokens."
    )
    rollout_timeout: float | None = Field(None, gt=0, description="Seconds one rollout may take.")
    on_rollout_error: Literal["raise", "drop"] = Field(
        "raise",
        description="A rollout that raises (a bug, a timeout): fail the step, or log it and return no rows.",
    )
    max_inflight_requests: int = Field(
        4096,
        ge=1,
        description="Client-side cap of requests in flight to the engine per actor (vLLM queues the rest).",
    )
    model_name: str = "wideseek-policy"

    @classmethod
    def from_env(cls) -> ExecutorSettings:
        path = os.environ.get(CONFIG_ENV)
        if not path:
            return cls()
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{CONFIG_ENV}={path}: no such file") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{CONFIG_ENV}={path}: not valid JSON: {e}") from None
        return cls.model_validate(data)


# --- the executor -------------------------------------------------------------------------------------------


class RolloutRunner:
    """One WideSeek graph rollout per :meth:`execute`; returns its training rows (module docstring)."""

    def __init__(self, settings: ExecutorSettings | None = None, *, reward_fn: Any = None) -> None:
        self.settings = settings or ExecutorSettings.from_env()
        self.reward = RolloutReward(self.settings.reward, function=reward_fn)
        self.endpoint: ChatEndpoint | None = None
        self._backends: tuple[Any, Any] | None = None
        self._lock = asyncio.Lock()
        self.row_stats = RowStats()

    # --- per-actor setup (once, on the actor's loop) -----------------------------------------------------
    async def _ensure_ready(self, hf_tokenizer: Any) -> ChatEndpoint:
        async with self._lock:
            if self.endpoint is None:
                ep = ChatEndpoint(
                    hf_tokenizer,
                    model_name=self.settings.model_name,
                    strict_max_tokens=self.settings.strict_max_tokens,
                )
                await ep.start()
                self.endpoint = ep
            if self._backends is None:
                from langgraph_wideseek.tools.factory import build_backends

                # Built once per actor and shared by every rollout (opening an index per rollout would be
                # waste).
                cfg = self.graph_config(
                    base_url=self.endpoint.base_url, temperature=1.0, top_p=1.0, max_length=1 << 20
                )
                self._backends = await asyncio.to_thread(build_backends, cfg)
            return self.endpoint

    def graph_config(
        self, *, base_url: str, temperature: float, top_p: float, max_length: int, top_k: int | None = None
    ) -> WideSeekConfig:
        fields = dict(self.settings.graph)
        context = min(int(fields.get("context_tokens", 32_000)), max_length)
        fields.update(
            base_url=base_url,
            model=self.settings.model_name,
            api_key=None,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            return_token_ids=True,
            logprobs=True,
            keep_reasoning=True,
            context_tokens=context,
            max_prompt_tokens=min(int(fields.get("max_prompt_tokens", 4096)), context - 1),
            max_inflight_requests=self.settings.max_inflight_requests,
        )
        return WideSeekConfig(**fields)

    async def aclose(self) -> None:
        await self.reward.aclose()
        if self.endpoint is not None:
            await self.endpoint.aclose()
            self.endpoint = None
        if self._backends is not None:
            for b in {id(x): x for x in self._backends}.values():
                close = getattr(b, "aclose", None)
                if close is not None:
                    await close()
            self._backends = None

    # --- one rollout -------------------------------------------------------------------------------------
    async def execute(
        self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None
    ):
        if images:
            raise ValueError("WideSeek rollouts are text-only; the dataset carries images")
        task = parse_label(label)
        if "<|im_start|>" in prompt:
            raise ValueError(
                "the prompt is already chat-templated: run OpenRLHF without --data.apply_chat_template "
                "(the graph renders each agent's own chat)"
            )
        endpoint = await self._ensure_ready(hf_tokenizer)
        rid = uuid.uuid4().hex
        endpoint.open_rollout(rid, engine=llm_engine, sampling_params=sampling_params, max_length=max_length)
        t0 = time.perf_counter()
        try:
            result = await self._run_graph(prompt, rid, endpoint, sampling_params, max_length)
            reward, parts = await self._reward(result, task)
        except Exception as e:
            if self.settings.on_rollout_error == "drop":
                log.error("rollout %s (task %s) dropped: %s: %s", rid, task.instance_id, type(e).__name__, e)
                return []
            raise
        finally:
            served = endpoint.close_rollout(rid)
        seconds = time.perf_counter() - t0
        extra = self._extra_logs(result, reward, parts, served, seconds)
        stats = RowStats()
        rows = trajectory_to_rows(
            result.trajectory,
            reward,
            prompt=prompt,
            label=label,
            extra_logs=extra,
            merge_prefix=self.settings.merge_prefix,
            stats=stats,
        )
        for row in rows:
            row["extra_logs"]["rows"] = float(len(rows))
        self._merge_stats(stats)
        if not rows:
            log.warning(
                "rollout %s (task %s) produced no training rows: %s",
                rid,
                task.instance_id,
                "; ".join(result.errors) or "no model call returned",
            )
        return rows

    async def _run_graph(
        self, question: str, rid: str, endpoint: ChatEndpoint, sampling_params: Any, max_length: int
    ) -> WideSeekResult:
        from langgraph_wideseek.graph import WideSeekGraph
        from langgraph_wideseek.model import ChatVLLM

        top_k = getattr(sampling_params, "top_k", None)
        cfg = self.graph_config(
            base_url=endpoint.base_url,
            temperature=float(getattr(sampling_params, "temperature", 1.0)),
            top_p=float(getattr(sampling_params, "top_p", 1.0)),
            top_k=top_k if isinstance(top_k, int) and top_k > 0 else None,
            max_length=max_length,
        )
        # One base URL for every rollout of the actor; the rollout is named in the body (see
        # training.endpoint).
        llm = ChatVLLM.from_config(cfg, extra_body={ROLLOUT_FIELD: rid})
        assert self._backends is not None
        search, reader = self._backends
        # One node per subagent: the same protocol and trajectories, less CPU per call across many rollouts.
        graph = WideSeekGraph(cfg, llm=llm, search=search, reader=reader, subagent_subgraph=False)
        try:
            run = graph.arun(question, rollout_id=rid)
            if self.settings.rollout_timeout:
                return await asyncio.wait_for(run, self.settings.rollout_timeout)
            return await run
        finally:
            # the rollout's own HTTP sessions only: the backends are shared by the actor's rollouts
            await llm.aclose()
            summarizer = getattr(graph.access_tool.summarizer, "llm", None)
            if summarizer is not None and summarizer is not llm and hasattr(summarizer, "aclose"):
                await summarizer.aclose()

    async def _reward(self, result: WideSeekResult, task: TaskLabel) -> RewardOut:
        # Asked even when the lead failed (the reward module answers 0 without a judge call), so every row of
        # every rollout logs the same parts; training.rows forces the reward to 0 in that case anyway.
        total, parts = await self.reward(result, task)
        return (total if result.status == Status.OK else 0.0), parts

    @staticmethod
    def _extra_logs(
        result: WideSeekResult, reward: float, parts: dict[str, float], served: RolloutStats, seconds: float
    ) -> dict[str, float]:
        traj = result.trajectory
        subs = traj.subagents
        lead = traj.lead
        logs = {
            "wideseek_reward": float(reward),
            "lead_failed": float(result.status != Status.OK),
            "lead_turns": float(len(lead.turns)),
            "subagents": float(len(subs)),
            "failed_subagents": float(sum(a.status == Status.FAILED for a in subs)),
            "model_calls": float(traj.num_calls()),
            "endpoint_calls": float(served.calls),
            "context_rejections": float(served.context_rejections),
            "truncated_calls": float(served.truncated),
            "engine_seconds": float(served.generate_seconds),
            "longest_generation": float(traj.longest_generation()),
            "used_access": float(traj.used_access()),
            "rollout_seconds": float(seconds),
        }
        logs.update({f"reward_{k}": v for k, v in parts.items()})
        return logs

    def _merge_stats(self, s: RowStats) -> None:
        t = self.row_stats
        for name in (
            "rows",
            "calls",
            "agents",
            "dropped_failed_subagents",
            "dropped_calls_failed_subagents",
            "skipped_missing_ids",
            "merged_calls",
            "missing_logprobs",
        ):
            setattr(t, name, getattr(t, name) + getattr(s, name))
