"""The rollout half of the launch on a local Ray, exactly as ``train_ppo_ray`` wires it, for a CPU check.

    PYTHONPATH=tests/gpu/vllm_shim:tests/gpu/flash_attn_shim:. \\
        python3 tests/gpu/rollout_half.py --prep /tmp/prep [--groups 2 --group-size 4 --max-new-tokens 64]

``--prep`` is a folder written by ``tests/gpu/launch_prep.py`` (model, ``train.jsonl``, ``rollout.json``). A
local Ray with one (fake, on a CPU) GPU; the extension's runtime env (setup hook, PYTHONPATH); OpenRLHF's own
``create_vllm_engines`` (colocated placement group, sleep mode) building ``RolloutRayActor``s over the vLLM
shim; the extension's samples generator pulling ``--groups`` tasks and calling ``generate_responses`` through
Ray, so the agent executor runs the WideSeek graph against the shim engine inside the actor. What the
DeepSpeed side would do next needs CUDA; the GPU run does it. Prints a JSON summary (rows, rollouts, rewards
per group) and leaves the debug dumps under ``--prep``/debug.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace as NS

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prep", type=Path, required=True)
    p.add_argument("--groups", type=int, default=2)
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--max-len", type=int, default=8192)
    p.add_argument("--num-cpus", type=int, default=4)
    args = p.parse_args(argv)

    os.environ["WIDESEEK_TRAIN_CONFIG"] = str(args.prep / "rollout.json")
    os.environ["WIDESEEK_DEBUG_DIR"] = str(args.prep / "debug")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    import vllm
    from ray.util.placement_group import placement_group
    from transformers import AutoTokenizer

    from training.openrlhf_ext import apply
    from training.openrlhf_ext.train import extension_runtime_env

    if not getattr(vllm, "IS_SHIM", False):
        p.error(f"put tests/gpu/vllm_shim first on PYTHONPATH (vllm is {vllm.__file__})")
    apply()
    from openrlhf.trainer.ray.vllm_engine import create_vllm_engines

    from training.openrlhf_ext.samples import WideSeekSamplesGenerator

    t0 = time.perf_counter()
    ray.init(
        num_cpus=args.num_cpus,
        num_gpus=1,
        include_dashboard=False,
        runtime_env=extension_runtime_env({"env_vars": {"TOKENIZERS_PARALLELISM": "false"}}),
    )
    try:
        pg = placement_group([{"GPU": 1, "CPU": 1}], strategy="PACK")
        ray.get(pg.ready())
        model = (
            str(args.prep / "model")
            if (args.prep / "model").is_dir()
            else json.loads((args.prep / "prep.json").read_text())["model"]
        )
        # the positional arguments train_ppo_ray passes (colocate_all, sleep mode, no IS correction)
        engines = create_vllm_engines(
            1,
            1,
            model,
            42,
            False,
            True,
            False,
            args.max_len,
            pg,
            0.6,
            True,
            None,
            agent_func_path=str(REPO / "training" / "agent_executor.py"),
            remote_rm_url=["agent"],
        )
        records = [json.loads(line) for line in (args.prep / "train.jsonl").read_text().splitlines()]
        loader = [(r["datasource"], [r["prompt"]], [r["label"]], [None]) for r in records[: args.groups]]
        strategy = NS(
            args=NS(
                rollout=NS(
                    batch_size=args.groups,
                    n_samples_per_prompt=args.group_size,
                    vllm_generate_batch_size=None,
                ),
                vllm=NS(enable_sleep=True),
                algo=NS(
                    dynamic_filtering_enable=False,
                    dynamic_filtering_range=(0.0, 1.0),
                    advantage=NS(is_correction_level="off"),
                ),
            )
        )
        gen = WideSeekSamplesGenerator(
            strategy, loader, loader, AutoTokenizer.from_pretrained(model), engines
        )
        t1 = time.perf_counter()
        samples, _, consumed, exhausted = gen.generate_samples(
            max_len=args.max_len,
            max_new_tokens=args.max_new_tokens,
            temperature=1.0,
            top_p=1.0,
            n_samples_per_prompt=args.group_size,
        )
        seconds = time.perf_counter() - t1
    finally:
        ray.shutdown()
    rows_per = defaultdict(int)
    rewards: dict[int, dict[int, float]] = defaultdict(dict)
    for s in samples:
        rows_per[(s.wideseek.group, s.wideseek.sample)] += 1
        rewards[s.wideseek.group][s.wideseek.sample] = float(s.rewards.item())
    out = {
        "rows": len(samples),
        "rollouts": len(rows_per),
        "groups": len(rewards),
        "prompts_consumed": consumed,
        "rows_per_rollout_max": max(rows_per.values(), default=0),
        "rows_per_rollout_mean": len(samples) / max(1, len(rows_per)),
        "rewards": {g: [v[k] for k in sorted(v)] for g, v in rewards.items()},
        "generate_seconds": round(seconds, 1),
        "total_seconds": round(time.perf_counter() - t0, 1),
        "debug_files": sorted(f.name for f in (args.prep / "debug").glob("*")),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
