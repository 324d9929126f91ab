"""``vllm.distributed.utils.StatelessProcessGroup``: a TCP store shared by the trainer's rank 0 and the
engines, outside ``torch.distributed``'s global state (OpenRLHF's ``stateless_init_process_group`` builds one
on each side
and puts the NCCL communicator on it)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any


@dataclasses.dataclass
class StatelessProcessGroup:
    rank: int
    world_size: int
    store: Any
    data_expiration_seconds: int = 3600

    def __post_init__(self) -> None:
        assert 0 <= self.rank < self.world_size

    @staticmethod
    def create(
        host: str,
        port: int,
        rank: int,
        world_size: int,
        data_expiration_seconds: int = 3600,
        store_timeout: int = 300,
        listen_socket: Any = None,
    ) -> StatelessProcessGroup:
        from torch.distributed import TCPStore

        if listen_socket is not None:
            raise NotImplementedError("listen_socket is not supported by the vLLM shim")
        # rank 0 hosts the store and waits for the others to connect (as vLLM's does)
        store = TCPStore(
            host_name=host,
            port=port,
            world_size=world_size,
            is_master=(rank == 0),
            timeout=timedelta(seconds=store_timeout),
        )
        return StatelessProcessGroup(
            rank=rank, world_size=world_size, store=store, data_expiration_seconds=data_expiration_seconds
        )


__all__ = ["StatelessProcessGroup"]
