"""``vllm.utils.random_uuid`` (OpenRLHF names every request with it)."""

from __future__ import annotations

import uuid


def random_uuid() -> str:
    return uuid.uuid4().hex


__all__ = ["random_uuid"]
