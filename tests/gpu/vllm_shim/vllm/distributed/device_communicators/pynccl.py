"""``vllm.distributed.device_communicators.pynccl.PyNcclCommunicator`` on PyTorch's own NCCL backend.

vLLM calls libnccl through ctypes; this builds a ``torch.distributed.ProcessGroupNCCL`` directly on the
stateless group's store (no global ``torch.distributed`` state is touched, so it coexists with DeepSpeed's
group in the trainer and the engine's own default group). On a CPU device it uses gloo, which is what the CPU
tests exercise. Only ``broadcast`` (all OpenRLHF uses) and the construction-time warm-up all-reduce are
provided.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ..utils import StatelessProcessGroup


class PyNcclCommunicator:
    def __init__(self, group: StatelessProcessGroup, device: Any) -> None:
        import torch
        import torch.distributed as dist

        if not isinstance(group, StatelessProcessGroup):
            raise NotImplementedError(
                "the vLLM shim's PyNcclCommunicator works on a StatelessProcessGroup only"
            )
        if isinstance(device, int):
            device = torch.device("cuda", device)
        elif isinstance(device, str):
            device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        self.device = device
        self.rank = group.rank
        self.world_size = group.world_size
        self.group = group
        self.disabled = False
        store = dist.PrefixStore("vllm-shim-pynccl", group.store)
        if device.type == "cuda":
            torch.cuda.set_device(device)
            opts = dist.ProcessGroupNCCL.Options()
            self._pg = dist.ProcessGroupNCCL(store, self.rank, self.world_size, opts)
        else:
            self._pg = dist.ProcessGroupGloo(store, self.rank, self.world_size, timedelta(seconds=300))
        # a collective at construction, as vLLM does: a broken group fails here and not at the first weight
        probe = torch.ones(1, device=device)
        self._pg.allreduce([probe]).wait()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if int(probe.item()) != self.world_size:
            raise RuntimeError(
                f"PyNcclCommunicator warm-up all-reduce gave {probe.item()}, expected {self.world_size}"
            )

    def broadcast(self, tensor: Any, src: int, stream: Any = None) -> None:
        import torch.distributed as dist

        if self.disabled:
            return
        assert tensor.device == self.device, (
            f"this communicator works on {self.device}, but the tensor is on {tensor.device}"
        )
        opts = dist.BroadcastOptions()
        opts.rootRank = src
        opts.rootTensor = 0
        # ProcessGroupNCCL runs on its own stream; wait() makes the caller's current stream wait for it
        self._pg.broadcast([tensor], opts).wait()


__all__ = ["PyNcclCommunicator"]
