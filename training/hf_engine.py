"""A rollout engine over a plain Hugging Face causal LM: vLLM's ``generate`` contract without vLLM.

OpenRLHF hands the agent executor an engine with one method, ``await engine.generate(prompt_token_ids,
sampling_params)``, answering with a vLLM ``RequestOutput`` (see :mod:`training.engine`). :class:`HFEngine`
implements that contract on any ``transformers`` causal LM, on any device, so that

* the closed RL loop (``training.closed_loop``) runs on a GPU machine that has no vLLM, and
* a user without vLLM can debug a whole training setup (executor, endpoint, graph, rows, trainer) on one GPU,
  or on a CPU with a tiny model.

How it works. Requests are queued from any event loop and served by one worker thread that runs a continuous
batch: newly arrived prompts are prefilled together (left-padded, explicit position ids) and their KV cache is
merged into the running batch, every running request advances one token per shared decode step, and a request
leaves the batch (its future resolved at once) as soon as it finishes. The subagents of a wave, which arrive
together, therefore share every forward pass. Each request keeps its own sampling settings.

Sampling follows vLLM 0.29 field for field: ``temperature`` (0 is greedy), ``top_p``, ``top_k`` (-1 or 0
disables), ``min_p``, ``seed`` (a private generator per request), ``max_tokens`` (``None``: up to the
context), ``min_tokens``, ``stop`` strings (the text is cut before them unless ``include_stop_str_in_output``;
the token that completed one is kept in ``token_ids``), ``stop_token_ids``, the tokenizer's and the generation
config's EOS ids unless ``ignore_eos`` (the EOS token is kept in ``token_ids``, as vLLM does, and left out of
``text``), ``repetition_penalty``, ``presence_penalty`` and ``frequency_penalty``. Tokens are drawn the way
vLLM's sampler draws them: ``argmax(probs / q)`` with ``q ~ Exp(1)``.

Log-probs are vLLM 0.29's default ``logprobs_mode="raw_logprobs"``: the log-softmax of the model's raw logits
(in fp32), before penalties, temperature and top-k/top-p, at the sampled token. With temperature 1 and no
truncation that is exactly the sampling distribution, and it is what a trainer recomputes with a
teacher-forced forward. ``logprobs=N`` also returns the N most likely tokens, with vLLM's 1-based ranks.

Bad input fails the one request, never the batch: an empty prompt, ids outside the vocabulary, a prompt or
``prompt + max_tokens`` longer than the context (``max_model_len``), ``n != 1``, or non-finite logits raise
for that request alone; an exception in a shared forward fails the requests of that forward and the engine
goes on serving.

New weights go in place with :meth:`HFEngine.load_weights` (what OpenRLHF's broadcast does to vLLM): by
default it stops admitting requests, lets the running ones finish on the old weights, copies, and resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from langgraph_wideseek.errors import TrainingError

from .engine import CompletionOutput, Logprob, RequestOutput, sampling_fields

log = logging.getLogger("training.hf_engine")

__all__ = ["EngineStats", "HFEngine", "RequestError"]


class RequestError(TrainingError, ValueError):
    """A request the engine cannot serve (raised for that request only)."""


@dataclass
class EngineStats:
    """Counters since construction (or :meth:`HFEngine.reset_stats`)."""

    requests: int = 0
    finished: int = 0
    failed: int = 0
    aborted: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    prefill_batches: int = 0
    decode_steps: int = 0
    max_batch: int = 0
    busy_seconds: float = 0.0  # wall time with at least one request in the batch
    weight_loads: int = 0

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.busy_seconds if self.busy_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        out = {k: float(v) for k, v in self.__dict__.items()}
        out["tokens_per_second"] = self.tokens_per_second
        return out


@dataclass
class _Params:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: frozenset[int] = frozenset()
    max_tokens: int | None = 16
    min_tokens: int = 0
    logprobs: int | None = None
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    ignore_eos: bool = False
    skip_special_tokens: bool = True
    include_stop_str_in_output: bool = False

    @classmethod
    def of(cls, sampling_params: Any) -> _Params:
        f = sampling_fields(sampling_params)
        n = f.get("n", 1)
        if n not in (None, 1):
            raise RequestError(f"HFEngine serves n=1 per request, got n={n}")
        stop = f.get("stop") or ()
        if isinstance(stop, str):
            stop = (stop,)
        top_k, temperature, top_p = f.get("top_k"), f.get("temperature"), f.get("top_p")
        p = cls(
            temperature=float(temperature) if temperature is not None else 1.0,
            top_p=float(top_p) if top_p is not None else 1.0,
            top_k=int(top_k) if top_k not in (None, -1) else 0,
            min_p=float(f.get("min_p") or 0.0),
            seed=f.get("seed"),
            stop=tuple(s for s in stop if s),
            stop_token_ids=frozenset(int(t) for t in (f.get("stop_token_ids") or ())),
            max_tokens=f.get("max_tokens", 16),
            min_tokens=int(f.get("min_tokens") or 0),
            logprobs=f.get("logprobs"),
            repetition_penalty=float(f.get("repetition_penalty") or 1.0),
            presence_penalty=float(f.get("presence_penalty") or 0.0),
            frequency_penalty=float(f.get("frequency_penalty") or 0.0),
            ignore_eos=bool(f.get("ignore_eos", False)),
            skip_special_tokens=bool(f.get("skip_special_tokens", True)),
            include_stop_str_in_output=bool(f.get("include_stop_str_in_output", False)),
        )
        if p.temperature < 0 or not math.isfinite(p.temperature):
            raise RequestError(f"temperature must be a non-negative number, got {p.temperature}")
        if not 0 < p.top_p <= 1:
            raise RequestError(f"top_p must be in (0, 1], got {p.top_p}")
        if p.top_k < 0:
            raise RequestError(f"top_k must be -1, 0 or positive, got {p.top_k}")
        if p.max_tokens is not None and p.max_tokens < 1:
            raise RequestError(f"max_tokens must be at least 1, got {p.max_tokens}")
        if p.logprobs is not None and p.logprobs < 0:
            raise RequestError(f"logprobs must be non-negative, got {p.logprobs}")
        if p.repetition_penalty <= 0:
            raise RequestError(f"repetition_penalty must be positive, got {p.repetition_penalty}")
        return p

    @property
    def greedy(self) -> bool:
        return self.temperature < 1e-5

    @property
    def penalized(self) -> bool:
        return self.repetition_penalty != 1.0 or self.presence_penalty != 0.0 or self.frequency_penalty != 0.0


@dataclass(eq=False)
class _Request:
    rid: str
    prompt: list[int]
    params: _Params
    max_new: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    generator: torch.Generator | None = None
    tokens: list[int] = field(default_factory=list)
    logprobs: list[dict[int, Logprob]] | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    text_cut: int | None = None  # where a stop string starts in the decoded text

    def resolve(self, value: Any = None, error: BaseException | None = None) -> None:
        def _set() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(value)

        with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody is waiting any more
            self.loop.call_soon_threadsafe(_set)


class _Batch:
    """The running requests and their shared KV cache; every tensor row ``i`` belongs to ``reqs[i]``."""

    def __init__(self) -> None:
        self.reqs: list[_Request] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None  # [B, T] 1 for real tokens; T == the cache length
        self.last: torch.Tensor | None = None  # [B] token to feed next
        self.pos: torch.Tensor | None = None  # [B] its position id

    def __len__(self) -> int:
        return len(self.reqs)


def _left_pad(t: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    extra = length - t.shape[dim]
    if extra <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = extra
    return torch.cat([t.new_zeros(shape), t], dim=dim)


class HFEngine:
    """``await HFEngine(model, tokenizer).generate(prompt_token_ids, sampling_params)`` -> ``RequestOutput``.

    ``model`` is a loaded ``transformers`` causal LM on any device (its dtype and device are used as they
    are); ``tokenizer`` its HF tokenizer (EOS ids and detokenization). ``max_model_len`` defaults to the
    model's ``max_position_embeddings``; ``max_batch_size`` bounds the running batch and
    ``max_prefill_tokens`` one prefill forward (padded tokens), so memory stays bounded however many requests
    arrive; the rest wait. ``seed`` seeds the shared generator used by requests without their own seed.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_model_len: int | None = None,
        max_batch_size: int = 256,
        max_prefill_tokens: int = 65_536,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        cfg = getattr(model, "config", None)
        self.vocab_size = int(getattr(cfg, "vocab_size", 0) or len(tokenizer))
        self.max_model_len = int(max_model_len or getattr(cfg, "max_position_embeddings", 0) or 32_768)
        if max_batch_size < 1 or max_prefill_tokens < 1:
            raise ValueError("max_batch_size and max_prefill_tokens must be positive")
        self.max_batch_size = max_batch_size
        self.max_prefill_tokens = max_prefill_tokens
        self.device = next(model.parameters()).device
        self.eos_ids = self._eos_ids(model, tokenizer)
        self.stats = EngineStats()
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(seed)
        self._pending: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._step_lock = threading.Lock()
        self._batch = _Batch()
        self._paused = 0  # nesting count of pauses (paused() around load_weights(drain=True) is fine)
        self._closed = False
        self._thread: threading.Thread | None = None
        self._ids = itertools.count()
        self._piece_cache: dict[int, str] = {}
        accepted = inspect.signature(model.forward).parameters
        self._accepts_logits_to_keep = "logits_to_keep" in accepted
        # transformers renamed ``past_key_values`` to ``cache`` (5.2x); the GPU machines run 5.17
        self._cache_arg = "cache" if "cache" in accepted else "past_key_values"
        model.eval()

    # --- the contract -------------------------------------------------------------------------------------
    async def generate(
        self, prompt_token_ids: list[int], sampling_params: Any = None, multi_modal_data: Any = None
    ) -> RequestOutput:
        if multi_modal_data:
            raise RequestError("HFEngine is text-only: multi_modal_data is not supported")
        prompt = [int(t) for t in prompt_token_ids]
        params = _Params.of(sampling_params)
        max_new = self._check(prompt, params)
        loop = asyncio.get_running_loop()
        req = _Request(
            rid=f"hf-{next(self._ids)}",
            prompt=prompt,
            params=params,
            max_new=max_new,
            loop=loop,
            future=loop.create_future(),
            logprobs=[] if params.logprobs is not None else None,
        )
        if params.seed is not None:
            req.generator = torch.Generator(device=self.device)
            req.generator.manual_seed(int(params.seed))
        with self._cond:
            if self._closed:
                raise RuntimeError("HFEngine is closed")
            self.stats.requests += 1
            self.stats.prompt_tokens += len(prompt)
            self._pending.append(req)
            self._ensure_worker()
            self._cond.notify_all()
        return await req.future

    def _check(self, prompt: list[int], p: _Params) -> int:
        if not prompt:
            raise RequestError("the prompt is empty: at least one token id is needed")
        bad = [t for t in prompt if not 0 <= t < self.vocab_size]
        if bad:
            raise RequestError(f"prompt token ids outside the vocabulary (size {self.vocab_size}): {bad[:5]}")
        room = self.max_model_len - len(prompt)
        if room < 1:
            raise RequestError(
                f"the prompt has {len(prompt)} tokens; the engine's context (max_model_len) is "
                f"{self.max_model_len}, which leaves no room to generate"
            )
        if p.max_tokens is not None and p.max_tokens > room:
            raise RequestError(
                f"prompt ({len(prompt)} tokens) + max_tokens ({p.max_tokens}) exceeds the engine's "
                f"context (max_model_len {self.max_model_len}); at most {room} new tokens fit"
            )
        return p.max_tokens if p.max_tokens is not None else room

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]], *, drain: bool = True) -> int:
        """Copy ``(name, tensor)`` pairs into the model's parameters (and buffers) of the same names.

        With ``drain`` (the default) the engine first stops admitting requests and lets the running ones
        finish on the old weights; queued requests then run on the new ones. Names are the model's own
        (``model.named_parameters()``, as OpenRLHF's broadcast sends them); an unknown name or a shape
        mismatch raises before anything is copied. Returns the number of tensors copied.
        """
        weights = list(weights)
        params = dict(self.model.named_parameters())
        params.update(dict(self.model.named_buffers()))
        problems = []
        for name, tensor in weights:
            target = params.get(name)
            if target is None:
                problems.append(f"unknown parameter {name!r}")
            elif tuple(target.shape) != tuple(tensor.shape):
                problems.append(f"{name}: shape {tuple(tensor.shape)} != the model's {tuple(target.shape)}")
        if problems:
            raise ValueError("load_weights: " + "; ".join(problems[:10]))
        if drain:
            self._pause_and_drain()
        try:
            with self._step_lock, torch.no_grad():
                for name, tensor in weights:
                    params[name].copy_(tensor.to(device=params[name].device, dtype=params[name].dtype))
                self.stats.weight_loads += 1
        finally:
            if drain:
                self._resume()
        return len(weights)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Within the block no request runs: running ones finished first, new ones wait. For streaming a
        weight update one tensor at a time with ``load_weights(..., drain=False)``."""
        self._pause_and_drain()
        try:
            yield
        finally:
            self._resume()

    def reset_stats(self) -> EngineStats:
        with self._cond:
            old, self.stats = self.stats, EngineStats()
        return old

    def close(self) -> None:
        """Stop the worker; requests still queued or running fail with an error."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=60)

    # --- worker -------------------------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="hf-engine", daemon=True)
            self._thread.start()

    def _pause_and_drain(self) -> None:
        with self._cond:
            self._paused += 1
            self._cond.notify_all()
            while (
                len(self._batch) and not self._closed and self._thread is not None and self._thread.is_alive()
            ):
                self._cond.wait(timeout=0.5)

    def _resume(self) -> None:
        with self._cond:
            self._paused -= 1
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not len(self._batch) and (self._paused or not self._pending):
                    self._cond.wait()
                if self._closed:
                    self._fail_all(RuntimeError("HFEngine was closed"))
                    return
                new = self._admit()
            t0 = time.perf_counter()
            try:
                with self._step_lock, torch.inference_mode():
                    if new:
                        self._prefill(new)
                    if len(self._batch):
                        self._decode()
            except Exception as e:  # a failed forward fails its requests, not the engine
                log.exception(
                    "HFEngine forward failed; failing the %d running requests", len(self._batch) + len(new)
                )
                for r in list(self._batch.reqs) + [r for r in new if r.finish_reason is None]:
                    self._fail(r, RuntimeError(f"generation failed: {type(e).__name__}: {e}"))
                self._batch = _Batch()
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
            self.stats.busy_seconds += time.perf_counter() - t0
            with self._cond:
                self._cond.notify_all()  # a drain may be waiting for the batch to empty

    def _admit(self) -> list[_Request]:
        if self._paused:
            return []
        new: list[_Request] = []
        longest = 0
        room = self.max_batch_size - len(self._batch)
        while self._pending and len(new) < room:
            r = self._pending[0]
            if r.future.done():  # cancelled while queued
                self._pending.popleft()
                self.stats.aborted += 1
                continue
            longest2 = max(longest, len(r.prompt))
            if new and longest2 * (len(new) + 1) > self.max_prefill_tokens:
                break
            new.append(self._pending.popleft())
            longest = longest2
        return new

    def _fail_all(self, error: BaseException) -> None:
        for r in list(self._batch.reqs) + list(self._pending):
            self._fail(r, error)
        self._batch = _Batch()
        self._pending.clear()

    def _fail(self, r: _Request, error: BaseException) -> None:
        r.finish_reason = r.finish_reason or "error"
        self.stats.failed += 1
        r.resolve(error=error)

    # --- forwards -----------------------------------------------------------------------------------------
    def _forward(self, cache: Any, **kw: Any) -> torch.Tensor:
        kw[self._cache_arg] = cache
        if self._accepts_logits_to_keep:
            kw["logits_to_keep"] = 1
        out = self.model(use_cache=True, **kw)
        return out.logits[:, -1, :].float()

    def _prefill(self, new: list[_Request]) -> None:
        from transformers import DynamicCache

        dev = self.device
        length = max(len(r.prompt) for r in new)
        ids = torch.zeros((len(new), length), dtype=torch.long)
        mask = torch.zeros((len(new), length), dtype=torch.long)
        for i, r in enumerate(new):
            ids[i, length - len(r.prompt) :] = torch.tensor(r.prompt)
            mask[i, length - len(r.prompt) :] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        logits = self._forward(cache, input_ids=ids, attention_mask=mask, position_ids=pos)
        self.stats.prefill_batches += 1
        tokens = self._sample(new, logits)
        keep = [i for i, r in enumerate(new) if self._advance(r, tokens[i])]
        if not keep:
            return
        idx = torch.tensor(keep, device=dev)
        if len(keep) < len(new):
            cache.batch_select_indices(idx)
            mask = mask[idx]
        reqs = [new[i] for i in keep]
        last = torch.tensor([r.tokens[-1] for r in reqs], device=dev)
        nxt = torch.tensor([len(r.prompt) for r in reqs], device=dev)
        self._merge(reqs, cache, mask, last, nxt)

    def _merge(
        self, reqs: list[_Request], cache: Any, mask: torch.Tensor, last: torch.Tensor, pos: torch.Tensor
    ) -> None:
        b = self._batch
        if not len(b):
            b.reqs, b.cache, b.mask, b.last, b.pos = reqs, cache, mask, last, pos
        else:
            assert b.mask is not None and b.last is not None and b.pos is not None
            length = max(b.mask.shape[1], mask.shape[1])
            for la, lb in zip(b.cache.layers, cache.layers):
                la.keys = torch.cat([_left_pad(la.keys, length, 2), _left_pad(lb.keys, length, 2)], 0)
                la.values = torch.cat([_left_pad(la.values, length, 2), _left_pad(lb.values, length, 2)], 0)
            b.mask = torch.cat([_left_pad(b.mask, length, 1), _left_pad(mask, length, 1)], 0)
            b.reqs = b.reqs + reqs
            b.last = torch.cat([b.last, last])
            b.pos = torch.cat([b.pos, pos])
        self.stats.max_batch = max(self.stats.max_batch, len(b))

    def _decode(self) -> None:
        b = self._batch
        assert b.mask is not None and b.last is not None and b.pos is not None
        mask = torch.cat([b.mask, b.mask.new_ones((len(b), 1))], 1)
        logits = self._forward(
            b.cache, input_ids=b.last[:, None], attention_mask=mask, position_ids=b.pos[:, None]
        )
        self.stats.decode_steps += 1
        b.mask = mask
        tokens = self._sample(b.reqs, logits)
        keep = [i for i, r in enumerate(b.reqs) if self._advance(r, tokens[i])]
        b.pos = b.pos + 1
        if len(keep) == len(b):
            b.last = torch.tensor([r.tokens[-1] for r in b.reqs], device=self.device)
            return
        if not keep:
            self._batch = _Batch()
            return
        idx = torch.tensor(keep, device=self.device)
        b.cache.batch_select_indices(idx)
        b.mask, b.pos = b.mask[idx], b.pos[idx]
        b.reqs = [b.reqs[i] for i in keep]
        b.last = torch.tensor([r.tokens[-1] for r in b.reqs], device=self.device)
        # drop the left columns no remaining row uses, so the cache shrinks with the batch
        first = int(b.mask.any(0).nonzero()[0])
        if first:
            b.mask = b.mask[:, first:]
            for layer in b.cache.layers:
                layer.keys = layer.keys[:, :, first:]
                layer.values = layer.values[:, :, first:]

    # --- sampling -----------------------------------------------------------------------------------------
    def _sample(self, reqs: list[_Request], logits: torch.Tensor) -> list[int | None]:
        """One token per row (``None`` where the row failed); appends the rows' log-probs."""
        dev = logits.device
        finite = torch.isfinite(logits).all(-1).tolist()
        raw = torch.log_softmax(logits, -1)  # vLLM's raw_logprobs: before penalties, temperature, top-k/p
        work = logits.clone()
        params = [r.params for r in reqs]
        for i, (r, p) in enumerate(zip(reqs, params)):
            if p.penalized and r.tokens:
                self._penalize(work[i], r)
            if len(r.tokens) < p.min_tokens:
                blocked = set(p.stop_token_ids) | (set() if p.ignore_eos else set(self.eos_ids))
                if blocked:
                    work[i, list(blocked)] = -math.inf
        greedy = torch.tensor([p.greedy for p in params], device=dev)
        temp = torch.tensor([1.0 if p.greedy else p.temperature for p in params], device=dev)
        work = work / temp[:, None]
        if any(p.top_k for p in params) or any(p.top_p < 1.0 for p in params):
            work = self._top_k_top_p(work, params)
        probs = torch.softmax(work, -1)
        if any(p.min_p > 0 for p in params):
            min_p = torch.tensor([p.min_p for p in params], device=dev)
            probs = probs.masked_fill(probs < probs.max(-1, keepdim=True).values * min_p[:, None], 0.0)
        q = torch.empty_like(probs)
        shared = [i for i, r in enumerate(reqs) if r.generator is None]
        if shared:
            q[shared] = torch.empty((len(shared), probs.shape[1]), device=dev).exponential_(
                generator=self._generator
            )
        for i, r in enumerate(reqs):
            if r.generator is not None:
                q[i] = torch.empty(probs.shape[1], device=dev).exponential_(generator=r.generator)
        sampled = torch.where(greedy, work.argmax(-1), (probs / q).argmax(-1))
        chosen = raw.gather(-1, sampled[:, None]).squeeze(-1)
        ranks = (raw > chosen[:, None]).sum(-1) + 1
        want_top = max((p.logprobs or 0) for p in params)
        top = raw.topk(want_top, -1) if want_top else None
        out_tokens = sampled.tolist()
        out_lp = chosen.tolist()
        out_rank = ranks.tolist()
        top_ids = top.indices.tolist() if top is not None else None
        top_lp = top.values.tolist() if top is not None else None
        result: list[int | None] = []
        for i, r in enumerate(reqs):
            if not finite[i]:
                result.append(None)
                continue
            tok = int(out_tokens[i])
            result.append(tok)
            if r.logprobs is not None:
                entry = {
                    tok: Logprob(float(out_lp[i]), rank=int(out_rank[i]), decoded_token=self._piece(tok))
                }
                if top_ids is not None and top_lp is not None and r.params.logprobs:
                    for k in range(r.params.logprobs):
                        t = int(top_ids[i][k])
                        if t not in entry:
                            entry[t] = Logprob(float(top_lp[i][k]), rank=k + 1, decoded_token=self._piece(t))
                r.logprobs.append(entry)
        return result

    @staticmethod
    def _top_k_top_p(work: torch.Tensor, params: list[_Params]) -> torch.Tensor:
        dev = work.device
        vocab = work.shape[1]
        k = torch.tensor([p.top_k if p.top_k else vocab for p in params], device=dev).clamp(max=vocab)
        top_p = torch.tensor([p.top_p for p in params], device=dev, dtype=work.dtype)
        sorted_logits, order = work.sort(-1, descending=True)
        rank = torch.arange(vocab, device=dev)[None, :]
        drop = rank >= k[:, None]
        probs = torch.softmax(sorted_logits.masked_fill(drop, -math.inf), -1)
        before = probs.cumsum(-1) - probs  # mass of the tokens ranked above this one
        drop |= (before >= top_p[:, None]) & (rank > 0)
        sorted_logits = sorted_logits.masked_fill(drop, -math.inf)
        return torch.empty_like(work).scatter_(-1, order, sorted_logits)

    @staticmethod
    def _penalize(row: torch.Tensor, r: _Request) -> None:
        p = r.params
        counts = torch.bincount(torch.tensor(r.tokens, device=row.device), minlength=row.shape[0]).to(
            row.dtype
        )
        if p.repetition_penalty != 1.0:
            seen = counts > 0
            seen[torch.tensor(r.prompt, device=row.device)] = True
            row[seen] = torch.where(
                row[seen] > 0, row[seen] / p.repetition_penalty, row[seen] * p.repetition_penalty
            )
        if p.frequency_penalty:
            row -= p.frequency_penalty * counts
        if p.presence_penalty:
            row -= p.presence_penalty * (counts > 0).to(row.dtype)

    def _piece(self, token: int) -> str:
        piece = self._piece_cache.get(token)
        if piece is None:
            piece = self.tokenizer.decode([token], skip_special_tokens=False)
            if len(self._piece_cache) < 500_000:
                self._piece_cache[token] = piece
        return piece

    # --- finishing ------------------------------------------------------------------------------------------
    def _advance(self, r: _Request, token: int | None) -> bool:
        """Append ``token``; resolve the request if it is done. Returns whether it stays in the batch."""
        if r.future.done():  # the caller gave up (cancelled)
            r.finish_reason = "abort"
            self.stats.aborted += 1
            return False
        if token is None:
            self._fail(
                r,
                RuntimeError(
                    f"the model produced non-finite logits at generated token {len(r.tokens)} "
                    f"(prompt of {len(r.prompt)} tokens)"
                ),
            )
            return False
        r.tokens.append(token)
        self.stats.generated_tokens += 1
        p = r.params
        enough = len(r.tokens) >= p.min_tokens
        if enough and not p.ignore_eos and token in self.eos_ids:
            r.finish_reason = "stop"
        elif enough and token in p.stop_token_ids:
            r.finish_reason, r.stop_reason = "stop", token
        elif enough and p.stop and self._hit_stop_string(r):
            r.finish_reason = "stop"
        elif len(r.tokens) >= r.max_new:
            r.finish_reason = "length"
        if r.finish_reason is None:
            return True
        self._finish(r)
        return False

    def _hit_stop_string(self, r: _Request) -> bool:
        text = self.tokenizer.decode(r.tokens, skip_special_tokens=r.params.skip_special_tokens)
        # only a stop string that ends inside the newest token's text can be new
        newest = len(self.tokenizer.decode(r.tokens[:-1], skip_special_tokens=r.params.skip_special_tokens))
        longest = max(len(s) for s in r.params.stop)
        window_start = max(0, newest - longest + 1)
        best: tuple[int, str] | None = None
        for s in r.params.stop:
            at = text.find(s, window_start)
            if at >= 0 and (best is None or at < best[0]):
                best = (at, s)
        if best is None:
            return False
        at, s = best
        r.stop_reason = s
        r.text_cut = at + len(s) if r.params.include_stop_str_in_output else at
        return True

    def _finish(self, r: _Request) -> None:
        p = r.params
        visible = r.tokens
        if r.finish_reason == "stop" and r.stop_reason is None and visible and visible[-1] in self.eos_ids:
            visible = visible[:-1]
        text = self.tokenizer.decode(visible, skip_special_tokens=p.skip_special_tokens)
        if r.text_cut is not None:
            text = text[: r.text_cut]
        cumulative = None
        if r.logprobs is not None:
            cumulative = float(sum(step[t].logprob for t, step in zip(r.tokens, r.logprobs)))
        out = CompletionOutput(
            index=0,
            text=text,
            token_ids=list(r.tokens),
            cumulative_logprob=cumulative,
            logprobs=r.logprobs,
            finish_reason=r.finish_reason,
            stop_reason=r.stop_reason,
        )
        self.stats.finished += 1
        r.resolve(
            RequestOutput(
                request_id=r.rid or uuid.uuid4().hex, prompt=None, prompt_token_ids=r.prompt, outputs=[out]
            )
        )

    @staticmethod
    def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
        ids: set[int] = set()
        if getattr(tokenizer, "eos_token_id", None) is not None:
            ids.add(int(tokenizer.eos_token_id))
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        if isinstance(gen_eos, int):
            ids.add(gen_eos)
        elif isinstance(gen_eos, (list, tuple)):
            ids.update(int(t) for t in gen_eos)
        return frozenset(ids)
