"""A stand-in ``flash_attn`` (2.8.3 API) in plain PyTorch, for ONE purpose: the GPU launch smoke run.

Why it exists: OpenRLHF 0.11.2 turns ``--ds.packing_samples`` on whenever ``--train.dynamic_batch_enable`` is
set (the WideSeek extension requires dynamic batching), and with packing it forces
``attn_implementation="flash_attention_2"``. flash-attn cannot be built on the GPU machines this project gets
(no network, no wheel for torch 2.11/CUDA 13), so without a stand-in the launch stops at model loading.

With this folder first on ``PYTHONPATH`` (it holds a ``flash_attn-2.8.3.dist-info`` so that transformers'
``is_flash_attn_2_available()`` accepts it), transformers' own flash-attention-2 path runs unchanged: it finds
the packed sequences from the position ids, builds ``cu_seqlens`` and calls :func:`flash_attn_varlen_func`
here, which attends within each sequence with ``torch.nn.functional.scaled_dot_product_attention`` (causal,
GQA, softmax scale). Slower than flash-attn, numerically the same attention. Not supported (raise): dropout
other than 0 at inference, sliding windows, softcap, ALiBi, paged KV caches. There is deliberately no
``flash_attn.ops``, so OpenRLHF uses its pure-torch log-prob code.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

__version__ = "2.8.3"
IS_SHIM = True

__all__ = ["flash_attn_func", "flash_attn_varlen_func", "flash_attn_with_kvcache"]


def _check(window_size: Any, softcap: float, alibi_slopes: Any, return_attn_probs: bool) -> None:
    if window_size not in (None, (-1, -1), [-1, -1]):
        raise NotImplementedError(f"flash_attn shim: sliding window {window_size} is not supported")
    if softcap:
        raise NotImplementedError("flash_attn shim: softcap is not supported")
    if alibi_slopes is not None:
        raise NotImplementedError("flash_attn shim: ALiBi is not supported")
    if return_attn_probs:
        raise NotImplementedError("flash_attn shim: return_attn_probs is not supported")


def _attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool, scale: float | None, dropout_p: float
) -> torch.Tensor:
    """q (H, Lq, D), k/v (Hk, Lk, D) -> (H, Lq, D); causal aligned bottom-right as flash-attn does."""
    heads, kv_heads = q.shape[0], k.shape[0]
    if heads != kv_heads:
        if heads % kv_heads:
            raise ValueError(
                f"flash_attn shim: {heads} query heads are not a multiple of {kv_heads} kv heads"
            )
        k = k.repeat_interleave(heads // kv_heads, dim=0)
        v = v.repeat_interleave(heads // kv_heads, dim=0)
    lq, lk = q.shape[1], k.shape[1]
    mask = None
    is_causal = False
    if causal and lq == lk:
        is_causal = True
    elif causal:
        # query i sits at key position i + (lk - lq): it sees keys 0 .. i + lk - lq
        qi = torch.arange(lq, device=q.device)[:, None]
        kj = torch.arange(lk, device=q.device)[None, :]
        mask = kj <= qi + (lk - lq)
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale
    )


def flash_attn_func(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: Any = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Any = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
) -> torch.Tensor:
    """q (B, Lq, H, D), k/v (B, Lk, Hk, D) -> (B, Lq, H, D)."""
    _check(window_size, softcap, alibi_slopes, return_attn_probs)
    out = [
        _attend(
            q[b].transpose(0, 1),
            k[b].transpose(0, 1),
            v[b].transpose(0, 1),
            causal=causal,
            scale=softmax_scale,
            dropout_p=dropout_p,
        ).transpose(0, 1)
        for b in range(q.shape[0])
    ]
    return torch.stack(out, 0)


def flash_attn_varlen_func(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int | None = None,
    max_seqlen_k: int | None = None,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: Any = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Any = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
    block_table: Any = None,
) -> torch.Tensor:
    """q (total_q, H, D), k/v (total_k, Hk, D), sequences delimited by ``cu_seqlens`` -> (total_q, H, D).

    Each sequence attends only to itself (that is what makes packed training rows independent)."""
    _check(window_size, softcap, alibi_slopes, return_attn_probs)
    if block_table is not None:
        raise NotImplementedError("flash_attn shim: paged KV caches (block_table) are not supported")
    cq = [int(x) for x in cu_seqlens_q.tolist()]
    ck = [int(x) for x in cu_seqlens_k.tolist()]
    if len(cq) != len(ck):
        raise ValueError("flash_attn shim: cu_seqlens_q and cu_seqlens_k describe different batch sizes")
    pieces = []
    for i in range(len(cq) - 1):
        if cq[i + 1] == cq[i]:
            continue
        o = _attend(
            q[cq[i] : cq[i + 1]].transpose(0, 1),
            k[ck[i] : ck[i + 1]].transpose(0, 1),
            v[ck[i] : ck[i + 1]].transpose(0, 1),
            causal=causal,
            scale=softmax_scale,
            dropout_p=dropout_p,
        )
        pieces.append(o.transpose(0, 1))
    out = torch.cat(pieces, 0) if pieces else q.new_zeros(q.shape)
    if out.shape[0] != q.shape[0]:
        raise ValueError(f"flash_attn shim: cu_seqlens_q covers {out.shape[0]} of {q.shape[0]} query rows")
    return out


def flash_attn_with_kvcache(*args: Any, **kwargs: Any) -> torch.Tensor:
    raise NotImplementedError(
        "flash_attn shim: flash_attn_with_kvcache (paged/continuous batching) is not supported"
    )
