"""Inputs for the launch smoke run: the policy model, the prompt dataset and the rollout settings.

    python3 tests/gpu/launch_prep.py --work /tmp/launch [--model .device/launch/model] [--tasks 6]

Writes ``WORK/train.jsonl`` (OpenRLHF prompt records, ``training.data``'s conversion), ``WORK/rollout.json``
(for ``WIDESEEK_TRAIN_CONFIG``: the synthetic world's corpus through the local search backend, the WideSeek-R1
reward with exact matching) and ``WORK/prep.json`` (what was used). The tasks come from the closed loop's
training world (``training.closed_loop.tasks``), so a model fine-tuned by ``python -m training.closed_loop
sft`` on that world plays them the way it learned: a lead that plans and spawns subagents, several rows per
rollout. The reward is ``tests/gpu/smoke_reward.py`` (official + a shaped term, so that one task's rollouts
get different rewards) unless ``--reward official``.

``--model`` is such a model folder (``sft/selected`` of a closed-loop work folder, with the loop's
``config.json`` copied next to it as ``loop_config.json``). Without one, the closed loop's ``prepare`` runs
here and the random-init model is used (fast, but a random policy ends every rollout after the lead's first
call, so the run then shows one row per rollout and all-equal rewards).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--model", type=Path, help="a closed-loop SFT model folder with loop_config.json")
    p.add_argument(
        "--tasks", type=int, default=6, help="tasks in the prompt dataset (tasks per step x steps)"
    )
    p.add_argument("--rollout-timeout", type=float, default=300.0)
    p.add_argument("--on-rollout-error", choices=["raise", "drop"], default="drop")
    p.add_argument(
        "--reward",
        choices=["smoke", "official"],
        default="smoke",
        help="smoke: tests/gpu/smoke_reward.py (official + shaped, so rewards vary); official: exact",
    )
    args = p.parse_args(argv)

    from training.closed_loop.config import LoopConfig
    from training.closed_loop.tasks import build_splits, executor_graph_settings

    t0 = time.perf_counter()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    if args.model is not None:
        cfg_file = args.model / "loop_config.json"
        if not cfg_file.is_file():
            p.error(f"{cfg_file} is missing: copy the closed loop's config.json next to the model")
        saved = json.loads(cfg_file.read_text())
        # fields LoopConfig no longer has are dropped (the world is fixed by seeds and sizes, which it keeps);
        # a model trained before the loop had short prompts was trained on the graph's own prompts
        if "short_prompts" in LoopConfig.model_fields:
            saved.setdefault("short_prompts", False)
        cfg = LoopConfig(**{k: v for k, v in saved.items() if k in LoopConfig.model_fields})
        model = work / "model"
        if model.exists():
            shutil.rmtree(model)
        shutil.copytree(args.model, model)
        origin = f"carried: {args.model}"
    else:
        from training.closed_loop.__main__ import prepare

        cfg = LoopConfig.for_profile("cpu", device="cpu")
        prepare(cfg, work / "loop")
        model = work / "loop" / "init"
        origin = "random init (closed loop prepare, cpu profile)"
    cfg = cfg.model_copy(update={"device": "cpu"})
    splits = build_splits(cfg, work / "loop")
    train = splits["train"]
    if args.tasks > len(train.tasks):
        p.error(f"--tasks {args.tasks}: the training world has {len(train.tasks)} tasks")
    records = train.rows(train.tasks[: args.tasks])
    with (work / "train.jsonl").open("w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    settings = {
        "graph": executor_graph_settings(cfg, train),
        "reward": (
            {"function": f"{REPO / 'tests' / 'gpu' / 'smoke_reward.py'}:reward"}
            if args.reward == "smoke"
            else {"mode": "benchmark", "judge": "exact"}
        ),
        "rollout_timeout": args.rollout_timeout,
        "on_rollout_error": args.on_rollout_error,
    }
    (work / "rollout.json").write_text(json.dumps(settings, indent=2))
    info = {
        "model": str(model),
        "model_origin": origin,
        "reward": settings["reward"],
        "tasks": len(records),
        "max_len": cfg.max_len,
        "max_new_tokens": cfg.max_new_tokens,
        "train_data": str(work / "train.jsonl"),
        "rollout_config": str(work / "rollout.json"),
        "world_seed": cfg.train_world_seed,
        "instance_ids": [r["instance_id"] for r in records],
        "seconds": round(time.perf_counter() - t0, 2),
    }
    (work / "prep.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
