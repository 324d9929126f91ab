"""Point (c) wired into OpenRLHF: ``RemoteExperienceMaker`` with per-rollout GRPO and dual-level weights.

Stock ``compute_advantages_and_returns`` reshapes rewards into rows of ``n_samples_per_prompt``;
with many rows per rollout that mixes rollouts of different tasks. This subclass remembers each
row's stamp (task group, rollout, agent) while OpenRLHF runs the model forwards, then replaces
the advantage step with :func:`training.openrlhf_ext.assign.assign_advantages`.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker

from . import debug
from .assign import assign_advantages
from .config import validate_args
from .convert import stamps_of
from .errors import WideSeekExtensionError
from .rowmeta import RowStamp

logger = logging.getLogger(__name__)


class WideSeekExperienceMaker(RemoteExperienceMaker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Also checked by the driver; repeated here for jobs started without it.
        validate_args(self.args)
        self._wideseek_stamps: list[RowStamp] | None = None

    @torch.no_grad()
    def make_experience_batch(self, rollout_samples):
        # split_rollout_samples numbers the samples 0..n-1 in this order (Experience.index),
        # which is how the stamps find their rows again after batching.
        self._wideseek_stamps = stamps_of(rollout_samples)
        try:
            return super().make_experience_batch(rollout_samples)
        finally:
            self._wideseek_stamps = None

    @torch.no_grad()
    def compute_advantages_and_returns(self, experiences):
        if self._wideseek_stamps is None:
            raise WideSeekExtensionError(
                "compute_advantages_and_returns called outside make_experience_batch"
            )
        for exp in experiences:
            exp.rewards = exp.rewards.to(torch.promote_types(exp.rewards.dtype, torch.float32))
        _, summary = assign_advantages(
            experiences, self._wideseek_stamps, advantage_clip=tuple(self.args.reward.clip_range)
        )
        if debug.enabled():
            debug.dump_experience_batch(experiences, self._wideseek_stamps)
        logger.info(
            "WideSeek advantages: %d rows from %d rollouts of %d tasks, %d action tokens, "
            "reward mean per rollout %.4f, agents per rollout %.2f",
            summary.rows,
            summary.rollouts,
            summary.groups,
            summary.action_tokens,
            summary.reward_mean_per_rollout,
            summary.agents_mean_per_rollout,
        )
        return experiences
