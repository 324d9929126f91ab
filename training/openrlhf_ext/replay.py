"""Point (d): one optimizer step consumes every row of the rollout batch.

Stock 0.11.2 cuts the replay buffer into ``rollout.batch_size * n_samples_per_prompt /
train.batch_size`` optimizer steps of ``train.batch_size`` rows each, assuming one row per
execute; with many rows per rollout that would split rollouts over steps (and drop the rows
beyond the expected count). This subclass keeps OpenRLHF's dynamic-batch machinery (token-
balanced micro-batches, a loss normaliser shared by the whole step, ``dynamic_optimizer_step``
flags) but makes the whole local buffer one step. The folded advantages of point (c) assume
exactly this: the normaliser ``batch_num_tokens`` is then the batch's total action tokens.
"""

from __future__ import annotations

import logging

import torch
import torch.distributed as dist
from openrlhf.trainer.ppo_utils.replay_buffer import NaiveReplayBuffer
from openrlhf.utils.seqlen_balancing import get_minimum_num_micro_batch_size, get_seqlen_balanced_partitions

from .errors import WideSeekExtensionError

logger = logging.getLogger(__name__)


def _device() -> torch.device:
    return (
        torch.device("cuda", torch.cuda.current_device())
        if torch.cuda.is_available()
        else torch.device("cpu")
    )


def _dp_group(strategy):
    if not (dist.is_available() and dist.is_initialized()):
        return None
    mesh = getattr(strategy, "ds_device_mesh", None)
    return mesh["dp"].get_group() if mesh is not None else None


def _all_reduce(value: float, op: str, group) -> float:
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor(value, dtype=torch.float64, device=_device())
    dist.all_reduce(
        t, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op], group=group
    )
    return t.item()


class WideSeekReplayBuffer(NaiveReplayBuffer):
    """``NaiveReplayBuffer`` whose dynamic batching yields one optimizer step per rollout batch."""

    def setup_dynamic_batch(self, strategy) -> None:
        args = strategy.args
        group = _dp_group(strategy)
        lengths = [int(item.total_length.item()) for item in self.items]
        local_rows = len(lengths)

        min_rows = int(_all_reduce(float(local_rows), "min", group))
        if min_rows == 0:
            raise WideSeekExtensionError(
                "a data-parallel rank received no rows for this step; the rollout batch is smaller than the "
                "number of actor ranks"
            )
        ring = getattr(args.ds, "ring_attn_size", 1)
        tp = getattr(args.ds, "tensor_parallel_size", 1)
        needed = get_minimum_num_micro_batch_size(lengths, args.train.max_tokens_per_gpu, ring, tp)
        # Under ZeRO every backward is a collective, so all ranks must run the same number of
        # micro-batches; the rank that needs most decides, capped by the rank with fewest rows.
        num_mbs = int(_all_reduce(float(needed), "max", group))
        if num_mbs > min_rows:
            logger.warning(
                "micro-batches limited to %d (fewest rows on a rank) although %d are needed to stay under "
                "--train.max_tokens_per_gpu=%d; expect higher memory use",
                min_rows,
                num_mbs,
                args.train.max_tokens_per_gpu,
            )
            num_mbs = min_rows
        partitions = get_seqlen_balanced_partitions(lengths, num_mbs, equal_size=False)

        local_tokens = sum(int(item.action_mask.sum().item()) for item in self.items)
        local_valid = sum(int(item.action_mask.sum().item() > 0) for item in self.items)
        global_tokens = _all_reduce(float(local_tokens), "sum", group)
        global_valid = _all_reduce(float(local_valid), "sum", group)

        self.dynamic_indices = partitions
        self.sample_batch_size = 1
        self.dynamic_sample_loss_scale = [len(p) / local_rows for p in partitions]
        self.dynamic_batch_num_tokens = [global_tokens] * num_mbs
        self.dynamic_global_batch_size = [global_valid] * num_mbs
        self.dynamic_optimizer_step = [0] * (num_mbs - 1) + [1]


def mark_accumulation_boundary(actor, is_last: bool) -> None:
    """Tell DeepSpeed whether the coming backward ends the optimizer step.

    OpenRLHF's dynamic-batch path configures DeepSpeed with gradient_accumulation_steps=1 and
    then runs several backwards before one ``step()``. Measured on an H200 with ZeRO-2 bf16
    (docs/training-internals.md): DeepSpeed then treats every backward as a boundary and the
    step's gradient norm was 0.138 instead of 0.529 (fp32 reference) over 15 micro-batches;
    with the boundary set per micro-batch it was 0.5284 (0.04% off), the same as one big
    micro-batch. ``actor`` is OpenRLHF's Actor (its ``.model`` is the DeepSpeed engine); a
    model without the DeepSpeed API is left alone.
    """
    engine = getattr(actor, "model", actor)
    setter = getattr(engine, "set_gradient_accumulation_boundary", None)
    if setter is not None:
        setter(bool(is_last))
