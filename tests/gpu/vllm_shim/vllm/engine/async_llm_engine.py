"""``vllm.AsyncLLMEngine`` over :class:`training.hf_engine.HFEngine`, with a vLLM-style worker for
``WorkerWrap``.

What OpenRLHF 0.11.2's ``RolloutRayActor`` calls on ``self.llm``, and what this does:

* ``from_engine_args(AsyncEngineArgs)``: loads the HF model (``dtype`` as OpenRLHF asks: bfloat16; SDPA
  attention) and tokenizer on this actor's GPU (CPU when there is none), wraps them in an ``HFEngine``, and
  builds the worker: a class with vLLM's worker attributes (``device``, ``model_config.dtype``,
  ``model_runner.model.load_weights``) plus the ``worker_extension_cls`` OpenRLHF names
  (``openrlhf...vllm_worker_wrap.WorkerWrap``), mixed in the way vLLM mixes it in. A one-member default
  ``torch.distributed`` group is created when none exists (vLLM's worker has one; ``WorkerWrap`` asks for its
  rank).
* ``generate(prompt, sampling_params, request_id)``: an async generator yielding the final ``RequestOutput``.
* ``collective_rpc(method, timeout, args, kwargs)``: runs the worker method on one dedicated thread (vLLM runs
  it in its worker process), returns ``[result]``. ``update_weight`` / ``update_weight_cuda_ipc`` arrive here.
* ``sleep(level)`` / ``wake_up(tags)`` / ``is_sleeping()``: level-1 semantics for every level (weights moved
  to CPU, cache dropped; ``"weights"`` brings them back). Generating while asleep, or loading weights while
  the weights sleep, raises: that is an ordering bug a real engine would not survive either.
* ``reset_prefix_cache()``: the HF engine keeps no prefix cache; counted, returns True.
* ``pause_generation(mode="keep"|"wait")`` / ``resume_generation()``: no new request starts while paused;
  running ones finish first (vLLM's "keep" would freeze them mid-way).
* ``output_processor.get_num_unfinished_requests()``: requests inside ``generate``.

At the end of each weight sync (the call OpenRLHF flags with ``empty_cache=True``) the engine checks that
every parameter was updated and, when ``WIDESEEK_DEBUG_DIR`` is set, saves its logits on the probe batch and a
digest of its weights (``training.openrlhf_ext.debug``) for the launch check.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

from .arg_utils import AsyncEngineArgs

log = logging.getLogger("vllm.shim")

_DTYPES = {
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "half": "float16",
    "float32": "float32",
    "float": "float32",
}
_SYNC_METHODS = {"update_weight": 3, "update_weight_cuda_ipc": 4}  # position of ``empty_cache`` in args


def _say(msg: str) -> None:
    print(f"[vllm-shim pid {os.getpid()} {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class _OutputProcessor:
    def __init__(self, engine: AsyncLLMEngine) -> None:
        self._engine = engine

    def get_num_unfinished_requests(self) -> int:
        return self._engine._unfinished


class _ModelProxy:
    """``model_runner.model``: vLLM's ``load_weights(weights=[(name, tensor), ...])``."""

    def __init__(self, engine: AsyncLLMEngine) -> None:
        self._engine = engine

    def load_weights(self, weights: Iterable[tuple[str, Any]]) -> set[str]:
        return self._engine._load_weights(weights)


class ShimWorkerBase:
    """The attributes of vLLM's GPU worker that OpenRLHF's ``WorkerWrap`` reads."""

    def __init__(self, engine: AsyncLLMEngine) -> None:
        self.device = engine.device
        self.model_config = SimpleNamespace(
            dtype=engine.dtype, model=engine.args.model, max_model_len=engine.hf.max_model_len
        )
        self.model_runner = SimpleNamespace(model=_ModelProxy(engine))
        self.rank = 0
        self.local_rank = 0


def _import_class(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class AsyncLLMEngine:
    @classmethod
    def from_engine_args(cls, engine_args: AsyncEngineArgs, **_: Any) -> AsyncLLMEngine:
        return cls(engine_args)

    def __init__(self, args: AsyncEngineArgs) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from training.hf_engine import HFEngine

        self.args = args
        want = os.environ.get("WIDESEEK_SHIM_DEVICE")
        if want:
            self.device = torch.device(want)
        elif torch.cuda.is_available():
            self.device = torch.device("cuda", torch.cuda.current_device())
        else:
            self.device = torch.device("cpu")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        dtype = _DTYPES.get(str(args.dtype))
        t0 = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(
            args.model,
            dtype=getattr(torch, dtype) if dtype else "auto",
            attn_implementation="sdpa",
            trust_remote_code=args.trust_remote_code,
        )
        model.to(self.device)
        tokenizer = AutoTokenizer.from_pretrained(
            args.tokenizer or args.model, trust_remote_code=args.trust_remote_code
        )
        self.dtype = next(model.parameters()).dtype
        self.hf = HFEngine(
            model,
            tokenizer,
            max_model_len=args.max_model_len,
            seed=args.seed,
            max_batch_size=int(os.environ.get("WIDESEEK_SHIM_MAX_BATCH", args.max_batch_size)),
            max_prefill_tokens=args.max_prefill_tokens,
        )
        self._param_names = {n for n, _ in model.named_parameters()}
        self._init_default_group()
        ext = _import_class(args.worker_extension_cls) if args.worker_extension_cls else object
        bases = (ShimWorkerBase,) if ext is object else (ShimWorkerBase, ext)
        worker_cls = type(f"ShimWorker[{getattr(ext, '__name__', 'none')}]", bases, {})
        self.worker = worker_cls(self)
        self._rpc = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vllm-shim-worker")
        self._lock = threading.Lock()
        self._unfinished = 0
        self._weights_awake = True
        self._kv_awake = True
        self._sleep_pause: Any = None
        self._gen_pause: Any = None
        self._sync_names: set[str] = set()
        self.syncs = 0
        self.calls: Counter[str] = Counter()
        self.output_processor = _OutputProcessor(self)
        _say(
            f"HFEngine stand-in for vLLM: model={args.model} device={self.device} dtype={self.dtype} "
            f"max_model_len={self.hf.max_model_len} params={sum(p.numel() for p in model.parameters())} "
            f"worker_extension={args.worker_extension_cls or None} sleep_mode={args.enable_sleep_mode} "
            f"logprobs_mode={args.logprobs_mode} (loaded in {time.perf_counter() - t0:.1f} s)"
        )

    # --- torch.distributed: vLLM's worker always has a default group (its TP group) -------------------------
    @staticmethod
    def _init_default_group() -> None:
        import torch.distributed as dist

        if dist.is_available() and not dist.is_initialized():
            dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)

    # --- generation -----------------------------------------------------------------------------------------
    async def generate(
        self, prompt: Any, sampling_params: Any, request_id: str, **kwargs: Any
    ) -> AsyncIterator[Any]:
        unsupported = {k for k, v in kwargs.items() if v is not None and k not in ("prompt_text", "priority")}
        if unsupported:
            raise NotImplementedError(
                f"generate(): the HF-engine shim does not support {sorted(unsupported)}"
            )
        if not (self._weights_awake and self._kv_awake):
            raise RuntimeError(
                "generate() called while the engine sleeps (weights awake: "
                f"{self._weights_awake}, cache awake: {self._kv_awake}); OpenRLHF must wake_up() first"
            )
        if isinstance(prompt, dict):
            if prompt.get("multi_modal_data"):
                raise NotImplementedError("the HF-engine vLLM shim is text-only")
            ids = prompt["prompt_token_ids"]
        else:
            ids = prompt
        self.calls["generate"] += 1
        self._unfinished += 1
        try:
            out = await self.hf.generate(ids, sampling_params)
        finally:
            self._unfinished -= 1
        out.request_id = request_id
        yield out

    # --- worker RPCs (weight updates) -----------------------------------------------------------------------
    async def collective_rpc(
        self, method: Any, timeout: float | None = None, args: tuple = (), kwargs: dict | None = None
    ) -> list[Any]:
        name = method if isinstance(method, str) else getattr(method, "__name__", "callable")
        fn = (
            getattr(self.worker, method)
            if isinstance(method, str)
            else functools.partial(method, self.worker)
        )
        call = functools.partial(self._call_in_worker, name, fn, tuple(args), dict(kwargs or {}))
        fut = asyncio.get_running_loop().run_in_executor(self._rpc, call)
        result = await (asyncio.wait_for(fut, timeout) if timeout else fut)
        return [result]

    def _call_in_worker(self, name: str, fn: Any, args: tuple, kwargs: dict) -> Any:
        import torch

        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        out = fn(*args, **kwargs)
        self.calls[name] += 1
        if name in _SYNC_METHODS:
            pos = _SYNC_METHODS[name]
            last = kwargs.get("empty_cache", args[pos] if len(args) > pos else False)
            if last:
                self._end_of_sync()
        return out

    def _load_weights(self, weights: Iterable[tuple[str, Any]]) -> set[str]:
        if not self._weights_awake:
            raise RuntimeError(
                "weights sent while the engine's weights sleep; OpenRLHF must "
                "wake_up(tags=['weights']) before broadcasting"
            )
        weights = list(weights)
        self.hf.load_weights(weights, drain=True)
        names = {n for n, _ in weights}
        self._sync_names |= names
        self.calls["tensors_loaded"] += len(weights)
        return names

    def _end_of_sync(self) -> None:
        self.syncs += 1
        got, self._sync_names = self._sync_names, set()
        missing = sorted(self._param_names - got)
        _say(
            f"weight sync #{self.syncs}: {len(got)} tensors received through WorkerWrap "
            f"({self.calls['update_weight']} update_weight, {self.calls['update_weight_cuda_ipc']} "
            f"update_weight_cuda_ipc calls so far), {len(missing)} parameters not updated"
        )
        if missing:
            raise RuntimeError(
                f"weight sync #{self.syncs} left {len(missing)} parameters stale: {missing[:5]}"
            )
        if os.environ.get("WIDESEEK_DEBUG_DIR"):  # evidence for tests/gpu/check_launch.py
            from training.openrlhf_ext import debug

            debug.save_engine_probe(self, self.syncs)

    # --- sleep mode -----------------------------------------------------------------------------------------
    async def sleep(self, level: int = 1, mode: str = "abort") -> None:
        await asyncio.get_running_loop().run_in_executor(self._rpc, self._sleep_sync, level)

    def _sleep_sync(self, level: int) -> None:
        import torch

        if self._sleep_pause is None:
            self._sleep_pause = self.hf.paused()
            self._sleep_pause.__enter__()  # drains running requests; nothing starts until fully awake
        if self._weights_awake and self.device.type == "cuda":
            self.hf.model.to("cpu")
            torch.cuda.empty_cache()
        self._weights_awake = self._kv_awake = False
        self.calls[f"sleep_level{level}"] += 1

    async def wake_up(self, tags: list[str] | None = None) -> None:
        await asyncio.get_running_loop().run_in_executor(self._rpc, self._wake_sync, tags)

    def _wake_sync(self, tags: list[str] | None) -> None:
        tags = ["weights", "kv_cache"] if tags is None else list(tags)
        unknown = set(tags) - {"weights", "kv_cache"}
        if unknown:
            raise ValueError(f"wake_up: unknown tags {sorted(unknown)}")
        if "weights" in tags and not self._weights_awake:
            self.hf.model.to(self.device)
            self._weights_awake = True
        if "kv_cache" in tags:
            self._kv_awake = True
        for t in tags:
            self.calls[f"wake_up_{t}"] += 1
        if self._weights_awake and self._kv_awake and self._sleep_pause is not None:
            pause, self._sleep_pause = self._sleep_pause, None
            pause.__exit__(None, None, None)

    async def is_sleeping(self) -> bool:
        return not (self._weights_awake and self._kv_awake)

    # --- cache, pause ---------------------------------------------------------------------------------------
    async def reset_prefix_cache(
        self, reset_running_requests: bool = False, reset_connector: bool = False
    ) -> bool:
        self.calls["reset_prefix_cache"] += 1
        return True

    async def pause_generation(
        self, *, mode: str = "abort", wait_for_inflight_requests: bool | None = None, clear_cache: bool = True
    ) -> None:
        if mode not in ("keep", "wait"):
            raise NotImplementedError(
                f"pause_generation(mode={mode!r}): the HF-engine shim cannot abort requests"
            )
        if self._gen_pause is None:
            pause = self.hf.paused()
            await asyncio.get_running_loop().run_in_executor(self._rpc, pause.__enter__)
            self._gen_pause = pause
        self.calls["pause_generation"] += 1

    async def resume_generation(self) -> None:
        if self._gen_pause is not None:
            pause, self._gen_pause = self._gen_pause, None
            pause.__exit__(None, None, None)
        self.calls["resume_generation"] += 1

    async def is_paused(self) -> bool:
        return self._gen_pause is not None

    def shutdown(self) -> None:
        self.hf.close()
        self._rpc.shutdown(wait=False)


__all__ = ["AsyncLLMEngine", "ShimWorkerBase"]
