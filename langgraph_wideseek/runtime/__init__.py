"""The async helpers every floor above uses, and process settings for rollout processes.

- :mod:`.loops`: :class:`LoopLocal` (one object per event loop, closed with it), per-loop semaphores, rate
  limits and the process-wide per-endpoint limiter registry;
- :mod:`.retry`: exponential backoff with jitter for attempts that raise :class:`RetryableError`;
- :mod:`.files`: atomic file replacement and durable line appends off the event loop;
- :mod:`.http`: :func:`read_capped`, reading an HTTP reply with a byte limit;
- :mod:`.batcher`: coalescing of concurrent single-item requests into batches;
- :mod:`.gc`: :func:`tune_gc` for processes that run many rollouts at once.

Nothing here knows about models, tools or graphs.
"""

from .batcher import MicroBatcher
from .files import (
    DurableAppender,
    OutputPathError,
    atomic_write_text,
    check_writable_dir,
    check_writable_file,
)
from .gc import tune_gc
from .http import read_capped
from .loops import ENDPOINT_LIMITERS, EndpointLimiters, LoopLocal, LoopLocalSemaphore, RateLimiter
from .retry import RetryableError, RetryPolicy, parse_retry_after, retry_async

__all__ = [
    "ENDPOINT_LIMITERS",
    "DurableAppender",
    "EndpointLimiters",
    "LoopLocal",
    "LoopLocalSemaphore",
    "MicroBatcher",
    "OutputPathError",
    "RateLimiter",
    "RetryPolicy",
    "RetryableError",
    "atomic_write_text",
    "check_writable_dir",
    "check_writable_file",
    "parse_retry_after",
    "read_capped",
    "retry_async",
    "tune_gc",
]
