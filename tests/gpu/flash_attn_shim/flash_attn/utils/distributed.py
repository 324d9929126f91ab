"""``flash_attn.utils.distributed.all_gather`` (imported by OpenRLHF's ring attention helpers)."""

from __future__ import annotations

import torch
import torch.distributed as dist


def all_gather(input_: torch.Tensor, process_group) -> torch.Tensor:
    world = dist.get_world_size(process_group)
    out = torch.empty((world * input_.shape[0], *input_.shape[1:]), dtype=input_.dtype, device=input_.device)
    dist.all_gather_into_tensor(out, input_.contiguous(), group=process_group)
    return out
