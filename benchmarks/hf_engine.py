"""Generated tokens per second of ``training.hf_engine.HFEngine`` at 1 and at many concurrent requests.

    python -m benchmarks.hf_engine --device cuda --out docs/benchmarks/hf_engine-h200.json

A randomly initialised model of the closed loop's size (``training.tiny_qwen3`` preset ``small``, ~16M
parameters, bf16 on a GPU) and prompts of ``--prompt`` tokens; each request generates ``--new`` tokens
(``ignore_eos``), with log-probs, as the in-actor endpoint asks. For comparison it also times a bare decode
loop over the same model (one forward per token on a DynamicCache, no sampling or bookkeeping): the gap is
the engine's own cost per step. ``--profile`` adds torch.profiler's top operators for the largest batch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def bare_decode(model, batch: int, prompt: int, new: int, device: str) -> float:
    """Seconds per decode step of a plain cached forward loop (the floor the engine is compared with)."""
    import torch
    from transformers import DynamicCache

    ids = torch.randint(10, 1000, (batch, prompt), device=device)
    mask = torch.ones_like(ids)
    cache = DynamicCache()
    with torch.inference_mode():
        kw = {"cache" if "cache" in model.forward.__code__.co_varnames else "past_key_values": cache}
        out = model(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=1, **kw)
        tok = out.logits[:, -1].argmax(-1)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(new):
            mask = torch.cat([mask, mask.new_ones((batch, 1))], 1)
            out = model(input_ids=tok[:, None], attention_mask=mask, use_cache=True, logits_to_keep=1, **kw)
            tok = out.logits[:, -1].argmax(-1)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return (time.perf_counter() - t0) / new


async def engine_run(engine, batch: int, prompt: int, new: int) -> dict:
    from training.engine import SamplingParamsLite

    prompts = [[10 + (i * 7 + j) % 900 for j in range(prompt)] for i in range(batch)]
    engine.reset_stats()
    t0 = time.perf_counter()
    await asyncio.gather(*[engine.generate(p, SamplingParamsLite(max_tokens=new, ignore_eos=True, logprobs=1))
                           for p in prompts])
    wall = time.perf_counter() - t0
    s = engine.stats
    return {"concurrent": batch, "wall_s": wall, "generated_tokens": s.generated_tokens,
            "tokens_per_s": s.generated_tokens / wall, "decode_steps": s.decode_steps,
            "ms_per_decode_step": 1000 * wall / max(1, s.decode_steps), "max_batch": s.max_batch}


def main(argv: list[str] | None = None) -> int:
    import torch
    from transformers import AutoTokenizer

    from training.hf_engine import HFEngine
    from training.tiny_qwen3 import build_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batches", default="1,16,96")
    p.add_argument("--prompt", type=int, default=900)
    p.add_argument("--new", type=int, default=128)
    p.add_argument("--attn", default="sdpa")
    p.add_argument("--preset", default="small")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--out")
    args = p.parse_args(argv)
    tok = AutoTokenizer.from_pretrained(str(REPO / "tests" / "training" / "assets" / "tiny-qwen3"))
    gpu = args.device.startswith("cuda")
    model = build_model(8192, preset=args.preset, max_position_embeddings=4096,
                        dtype=torch.bfloat16 if gpu else torch.float32)
    model.config._attn_implementation = args.attn
    model = model.to(args.device).eval()
    engine = HFEngine(model, tok)
    rows = []
    for b in (int(x) for x in args.batches.split(",")):
        asyncio.run(engine_run(engine, b, args.prompt, 4))  # warm-up
        rec = asyncio.run(engine_run(engine, b, args.prompt, args.new))
        rec["bare_ms_per_step"] = 1000 * bare_decode(model, b, args.prompt, args.new, args.device)
        rows.append(rec)
        print(json.dumps(rec), flush=True)
    result = {"device": torch.cuda.get_device_name(0) if gpu else "cpu", "torch": torch.__version__,
              "attn": args.attn, "prompt_tokens": args.prompt, "new_tokens": args.new,
              "model_parameters": sum(p.numel() for p in model.parameters()), "runs": rows}
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
        with profile(activities=acts) as prof:
            asyncio.run(engine_run(engine, max(int(x) for x in args.batches.split(",")), args.prompt, 32))
        table = prof.key_averages().table(sort_by="cpu_time_total", row_limit=25)
        print(table)
        result["profile_top"] = table
    engine.close()
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
