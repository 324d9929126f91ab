from __future__ import annotations

from training.engine import Logprob

__all__ = ["Logprob"]
