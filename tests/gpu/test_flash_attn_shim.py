"""The run-only flash-attn stand-in (tests/gpu/flash_attn_shim): its kernels against direct attention, and
transformers' own flash-attention-2 path through it against SDPA on a tiny Qwen3, packed the way OpenRLHF
packs
rows (one row of concatenated sequences, position ids restarting at 0, no attention mask)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

SHIM = Path(__file__).resolve().parent / "flash_attn_shim"


def load_shim():
    """The stand-in under a private name (the CPU suite imports another flash_attn stub as ``flash_attn``)."""
    mods = {}
    for name, rel in (("flash_attn", "__init__.py"), ("flash_attn.bert_padding", "bert_padding.py")):
        spec = importlib.util.spec_from_file_location(f"_wideseek_shim_{name}", SHIM / "flash_attn" / rel)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mods[name] = mod
    return mods


def reference(q, k, v, causal, scale):
    """Plain softmax attention, one head at a time; q (Lq, H, D), k/v (Lk, Hk, D)."""
    heads, kv_heads = q.shape[1], k.shape[1]
    out = torch.empty_like(q)
    lq, lk = q.shape[0], k.shape[0]
    for h in range(heads):
        kh = k[:, h // (heads // kv_heads)]
        vh = v[:, h // (heads // kv_heads)]
        s = (q[:, h] @ kh.T) * scale
        if causal:
            allowed = torch.arange(lk)[None, :] <= torch.arange(lq)[:, None] + (lk - lq)
            s = s.masked_fill(~allowed, -math.inf)
        out[:, h] = torch.softmax(s, -1) @ vh
    return out


def test_varlen_attends_within_each_sequence_with_gqa_and_causal_alignment():
    fa = load_shim()["flash_attn"]
    g = torch.Generator().manual_seed(0)
    lens_q, lens_k = [5, 1, 7], [5, 3, 9]  # the second and third sequences have a longer key side
    q = torch.randn(sum(lens_q), 4, 8, generator=g)
    k = torch.randn(sum(lens_k), 2, 8, generator=g)
    v = torch.randn(sum(lens_k), 2, 8, generator=g)
    cq = torch.tensor([0, *torch.tensor(lens_q).cumsum(0).tolist()], dtype=torch.int32)
    ck = torch.tensor([0, *torch.tensor(lens_k).cumsum(0).tolist()], dtype=torch.int32)
    for causal in (True, False):
        out = fa.flash_attn_varlen_func(
            q, k, v, cq, ck, max(lens_q), max(lens_k), softmax_scale=0.3, causal=causal
        )
        for i in range(3):
            want = reference(q[cq[i] : cq[i + 1]], k[ck[i] : ck[i + 1]], v[ck[i] : ck[i + 1]], causal, 0.3)
            torch.testing.assert_close(out[cq[i] : cq[i + 1]], want, rtol=1e-5, atol=1e-5)
    dense = fa.flash_attn_func(q[None, :5], k[None, :5], v[None, :5], causal=True)
    torch.testing.assert_close(
        dense[0], reference(q[:5], k[:5], v[:5], True, 1 / math.sqrt(8)), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(NotImplementedError):
        fa.flash_attn_varlen_func(q, k, v, cq, ck, 7, 9, window_size=(3, 0))


def test_gradients_flow_through_the_varlen_kernel():
    fa = load_shim()["flash_attn"]
    q = torch.randn(6, 2, 4, requires_grad=True)
    k = torch.randn(6, 1, 4, requires_grad=True)
    v = torch.randn(6, 1, 4, requires_grad=True)
    cu = torch.tensor([0, 2, 6], dtype=torch.int32)
    fa.flash_attn_varlen_func(q, k, v, cu, cu, 4, 4, causal=True).sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all() and k.grad.abs().sum() > 0


def test_transformers_flash_attention_2_path_through_the_shim_equals_sdpa(monkeypatch):
    """transformers' real FA2 code (packed-sequence detection, cu_seqlens, unpad/pad) with the stand-in
    kernels."""
    mfau = pytest.importorskip("transformers.modeling_flash_attention_utils")
    from training.tiny_qwen3 import build_model

    mods = load_shim()
    monkeypatch.setitem(sys.modules, "flash_attn", mods["flash_attn"])
    monkeypatch.setitem(sys.modules, "flash_attn.bert_padding", mods["flash_attn.bert_padding"])
    monkeypatch.setattr(mfau, "is_flash_attn_2_available", lambda *a, **k: True)  # it asks for CUDA
    clear = getattr(mfau._lazy_imports, "cache_clear", lambda: None)  # lru_cache in transformers 5.17
    clear()
    monkeypatch.setattr(mfau, "_loaded_implementation", None)
    try:
        model = build_model(128, preset="test", max_position_embeddings=256, seed=0).eval()
        g = torch.Generator().manual_seed(1)
        seqs = [torch.randint(0, 128, (n,), generator=g) for n in (9, 4, 13)]
        with torch.no_grad():
            want = [model(input_ids=s[None]).logits[0] for s in seqs]  # SDPA, one sequence at a time
            model.config._attn_implementation = "flash_attention_2"
            packed = torch.cat(seqs)[None]
            pos = torch.cat([torch.arange(len(s)) for s in seqs])[None]
            got = model(input_ids=packed, position_ids=pos).logits[0]  # OpenRLHF's packed layout
            torch.testing.assert_close(got, torch.cat(want), rtol=1e-4, atol=1e-4)
            # left-padded batch with a mask: transformers unpads and calls the varlen kernel
            width = max(len(s) for s in seqs)
            ids = torch.zeros(3, width, dtype=torch.long)
            mask = torch.zeros(3, width, dtype=torch.long)
            for i, s in enumerate(seqs):
                ids[i, width - len(s) :], mask[i, width - len(s) :] = s, 1
            padded = model(
                input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)
            ).logits
            for i, s in enumerate(seqs):
                torch.testing.assert_close(padded[i, width - len(s) :], want[i], rtol=1e-4, atol=1e-4)
    finally:
        clear()
