"""Points (a) and (b): many rows per execute, batches cut only at task-group boundaries.

(a) Stock ``_generate_vllm`` turns every ``execute`` result into exactly one Experience. Here a
    result may be a list of rows; each becomes an Experience stamped with its task group (one
    per prompt, i.e. per ``generate_responses`` call) and rollout (which of the
    ``n_samples_per_prompt`` executes). Dynamic filtering averages per rollout, not per row.
    Evaluation keeps one row per rollout (the lead's last turn), so OpenRLHF's pass@k
    bookkeeping, which assumes n rows per prompt, stays right.
(b) Stock ``generate_samples`` hands out ``rollout.batch_size * n_samples_per_prompt`` rows per
    step; here a step gets ``rollout.batch_size`` whole task groups, however many rows they hold.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import ray
from openrlhf.trainer.ppo_utils.experience import Experience
from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator, _collect_prompt_batch
from openrlhf.trainer.ray.vllm_engine import batch_vllm_engine_call
from tqdm import tqdm

from . import debug
from .convert import WideSeekExperience, tag
from .errors import RowContractError
from .rowmeta import representative_row, stamp_rollout

logger = logging.getLogger(__name__)


class WideSeekSamplesGenerator(SamplesGenerator):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wideseek_group_ids = itertools.count()
        self._wideseek_eval = False
        self._wideseek_log_keys: set[str] | None = None

    # -- evaluation: one row per rollout ------------------------------------------------
    def generate_eval_samples(self, **generate_kwargs: Any) -> list[Experience]:
        self._wideseek_eval = True
        try:
            return super().generate_eval_samples(**generate_kwargs)
        finally:
            self._wideseek_eval = False

    # -- (b) whole task groups per training step ----------------------------------------
    def generate_samples(self, **generate_kwargs: Any):
        if getattr(self, "_dataloader_iter", None) is None and not getattr(self, "_sample_buffer", None):
            self._dataloader_iter = iter(self.prompts_dataloader)
            self._sample_buffer: list[WideSeekExperience] = []

        groups_per_step = self.args.rollout.batch_size
        prompts_consumed = 0
        filter_pass_rate = None

        if _count_groups(self._sample_buffer) < groups_per_step and self._dataloader_iter is not None:
            if self.args.vllm.enable_sleep:
                batch_vllm_engine_call(self.vllm_engines, "wake_up")
            gen_batch_size = getattr(self.args.rollout, "vllm_generate_batch_size", None) or groups_per_step
            experiences, prompts_consumed, dl_exhausted = self._generate_vllm(
                dataloader_iter=self._dataloader_iter,
                num_prompts=gen_batch_size,
                dynamic_filtering=self.args.algo.dynamic_filtering_enable,
                **generate_kwargs,
            )
            if self.args.vllm.enable_sleep:
                batch_vllm_engine_call(self.vllm_engines, "sleep")
            if self.args.algo.dynamic_filtering_enable and prompts_consumed:
                filter_pass_rate = _count_groups(experiences) / prompts_consumed * 100
            self._sample_buffer.extend(experiences)
            if dl_exhausted:
                self._dataloader_iter = None
                logger.info("Prompt dataloader is exhausted.")

        cut = _group_boundary(self._sample_buffer, groups_per_step)
        rollout_samples = self._sample_buffer[:cut]
        self._sample_buffer = self._sample_buffer[cut:]
        exhausted = self._dataloader_iter is None and len(self._sample_buffer) == 0
        return rollout_samples, filter_pass_rate, prompts_consumed, exhausted

    # -- (a) many rows per execute --------------------------------------------------------
    def _generate_vllm(self, dataloader_iter, num_prompts: int, dynamic_filtering, **generate_kwargs):
        prompts_consumed = 0
        accepted: list[WideSeekExperience] = []

        prompts, labels, images, exhausted = _collect_prompt_batch(dataloader_iter, num_prompts)
        if not prompts:
            return [], prompts_consumed, True

        pending_refs = self._dispatch_prompts_to_vllm(prompts, labels, images=images, **generate_kwargs)
        prompts_consumed += len(prompts)
        pbar = tqdm(range(len(prompts)), desc="Generate samples")

        while pending_refs:
            ready_refs, pending_refs = ray.wait(pending_refs, num_returns=1, timeout=10.0)
            for ref in ready_refs:
                group = next(self._wideseek_group_ids)
                results = ray.get(ref)
                if debug.enabled():
                    debug.dump_rollout_group(group, results, evaluation=self._wideseek_eval)
                experiences, rollout_scores = self._group_experiences(group, results, **generate_kwargs)

                if dynamic_filtering and rollout_scores and all(s is not None for s in rollout_scores):
                    avg = sum(rollout_scores) / len(rollout_scores)
                    lo, hi = self.args.algo.dynamic_filtering_range
                    if not (lo < avg < hi):
                        logger.info(
                            "Filtered out task group %d: avg_reward=%.2f outside (%.2f, %.2f)",
                            group,
                            avg,
                            lo,
                            hi,
                        )
                        experiences = []

                if experiences:
                    accepted.extend(experiences)
                    pbar.set_postfix({"prompts_consumed": prompts_consumed})
                    pbar.update()
                elif dynamic_filtering:
                    new_prompts, new_labels, new_images, exhausted = _collect_prompt_batch(dataloader_iter, 1)
                    prompts_consumed += len(new_prompts)
                    if new_prompts:
                        pending_refs.extend(
                            self._dispatch_prompts_to_vllm(
                                new_prompts, new_labels, images=new_images, **generate_kwargs
                            )
                        )
        return accepted, prompts_consumed, exhausted

    def _group_experiences(self, group: int, results: list[Any], **generate_kwargs: Any):
        """All rows of one task group as stamped Experiences, plus one score per rollout."""
        out: list[WideSeekExperience] = []
        scores: list[float | None] = []
        empty = 0
        for sample, result in enumerate(results):
            rows = stamp_rollout(result, group=group, sample=sample)
            if not rows:
                empty += 1
                if self._wideseek_eval:
                    raise RowContractError(f"task group {group}, sample {sample}: execute returned no rows")
                continue
            first = rows[0][0]
            score = first.get("scores")
            scores.append(float(score) if score is not None else None)
            if self._wideseek_eval:
                rows = [rows[representative_row(rows)]]
            for row, stamp in rows:
                self._check_log_keys(row)
                exp = self._process_response_into_experience(row, **generate_kwargs)
                out.append(tag(exp, stamp))
        if empty:
            logger.warning(
                "task group %d: %d of %d executes returned no rows; they are left out of the group's "
                "reward statistics",
                group,
                empty,
                len(results),
            )
        return out, scores

    def _check_log_keys(self, row: Any) -> None:
        keys = set((row.get("extra_logs") or {}).keys())
        if self._wideseek_log_keys is None:
            self._wideseek_log_keys = keys
        elif keys != self._wideseek_log_keys:
            raise RowContractError(
                f"rows carry different extra_logs keys ({sorted(keys)} vs "
                f"{sorted(self._wideseek_log_keys)}); "
                "OpenRLHF merges per-row info and needs the same keys on every row"
            )


def _count_groups(samples: list[Any]) -> int:
    return len({s.wideseek.group for s in samples})


def _group_boundary(samples: list[Any], groups: int) -> int:
    """Index just past the first ``groups`` task groups (rows of a group are contiguous)."""
    seen: list[int] = []
    for i, s in enumerate(samples):
        g = s.wideseek.group
        if not seen or seen[-1] != g:
            if g in seen:
                raise RowContractError(f"rows of task group {g} are not contiguous in the sample buffer")
            if len(seen) == groups:
                return i
            seen.append(g)
    return len(samples)
