"""Checks a launch-smoke run from its outputs and writes the results JSON.

    python3 tests/gpu/check_launch.py --run OUT_DIR --debug DEBUG_DIR --log LOG --out results.json \\
        [--prep prep.json] [--exit-code RC] [--wall SECONDS] [--trimmed-log FILE]

Reads only what the run left behind: the launch log (OpenRLHF's ``Global step`` lines), the checkpoint
folders, and the evidence ``WIDESEEK_DEBUG_DIR`` made the extension and the vLLM shim write
(``training/openrlhf_ext/debug.py``). It recomputes the dual-level advantages from the rollout rewards with
its own code (NumPy-free Python, not ``training/advantages.py``) and compares them with what each policy rank
trained on, and compares the engines' probe logits and weight digests with the trainer's after every
broadcast. Exit code 0 when every check passes, 1 otherwise; the JSON says which failed and why.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

GRPO_EPS = 1e-6
CLIP = (-10.0, 10.0)  # OpenRLHF's --reward.clip_range default, applied to the per-rollout advantage
ADV_TOL = 1e-4  # relative (float32 arithmetic on both sides, different order)
SAME_ATTN_TOL = 1e-2  # engine forward with the trainer's attention implementation vs the trainer's forward
SERVING_MAX_TOL = 0.5  # the engine's own (SDPA) forward vs the trainer's flash-attention forward, both bf16:
SERVING_MEAN_TOL = 0.02  # logits near 10 have a bf16 step of 0.06, so the max over a vocabulary is loose

STEP_RE = re.compile(r"Global step (\d+):")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": sys.version.split()[0]}
    from importlib.metadata import PackageNotFoundError, version

    for name in ("ray", "openrlhf", "deepspeed", "torch", "transformers", "vllm", "flash_attn", "datasets"):
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", None)
            if out[name] is None:
                try:
                    out[name] = version(name)
                except PackageNotFoundError:
                    out[name] = "?"
            if getattr(mod, "IS_SHIM", False):
                out[name] += f" (shim: {Path(mod.__file__).parent})"
        except Exception as e:
            out[name] = f"not importable: {type(e).__name__}"
    try:
        import torch

        if torch.cuda.is_available():
            out["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            out["cuda"] = torch.version.cuda
    except Exception:
        pass
    return out


# --- training progress --------------------------------------------------------------------------------------
ACTIVE_RE = re.compile(r"\((?:(\w+) )?pid=(\d+)\).*WideSeek OpenRLHF extension active in ([\w.]+)")
ADV_RE = re.compile(r"WideSeek advantages: (.*)")


def extension_lines(log: str) -> dict[str, Any]:
    """The extension's own log lines, forwarded by Ray from the workers (its setup hook gives them a
    handler)."""
    active = sorted(
        {f"{m.group(1) or 'worker'} pid {m.group(2)}: {m.group(3)}" for m in ACTIVE_RE.finditer(log)}
    )
    return {"active_in": active, "advantage_summaries": [m.group(1).strip() for m in ADV_RE.finditer(log)]}


def steps_from_log(log: str) -> list[int]:
    return sorted({int(m.group(1)) for m in STEP_RE.finditer(log)})


def checkpoints(run: Path) -> dict[str, Any]:
    ckpt = run / "ckpt"
    ds = sorted(p.name for p in (ckpt / "_actor").glob("global_step*") if p.is_dir()) if ckpt.is_dir() else []
    hf = sorted(p.name for p in ckpt.glob("global_step*_hf") if p.is_dir()) if ckpt.is_dir() else []
    hf_ok = [h for h in hf if (ckpt / h / "config.json").is_file() and any((ckpt / h).glob("*.safetensors"))]
    final = run / "final"
    return {
        "deepspeed": ds,
        "hf": hf,
        "hf_complete": hf_ok,
        "final_model": final.is_dir()
        and (final / "config.json").is_file()
        and any(final.glob("*.safetensors")),
    }


# --- advantages ---------------------------------------------------------------------------------------------
def recompute(rollout_rows: list[dict], exp_rows: list[dict]) -> dict[str, float]:
    """Folded advantage per row key of one training step, from the rollout rewards (executor side) and the
    trained action-token counts (experience side): A_i * (1/N_i) * (1/T_a) * T / B."""
    by_rollout: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for r in rollout_rows:
        by_rollout[(r["group"], r["sample"])].append(r)
    step_keys = {(e["group"], e["sample"]) for e in exp_rows}
    reward: dict[tuple[int, int], float] = {}
    for key in step_keys:
        rs = {float(r["reward"]) for r in by_rollout[key]}
        if len(rs) != 1:
            raise ValueError(f"rollout {key} has rows with different rewards: {sorted(rs)}")
        reward[key] = rs.pop()
    groups: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for key in step_keys:
        groups[key[0]].append(key)
    adv: dict[tuple[int, int], float] = {}
    for members in groups.values():
        vals = [reward[k] for k in members]
        n = len(vals)
        mean = sum(vals) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
        for k in members:
            a = (reward[k] - mean) / (std + GRPO_EPS) if n > 1 else 0.0
            adv[k] = min(max(a, CLIP[0]), CLIP[1])
    agents: dict[tuple[int, int], set[str]] = defaultdict(set)
    tokens: dict[tuple[int, int, str], int] = Counter()
    for e in exp_rows:
        agents[(e["group"], e["sample"])].add(e["agent_id"])
        tokens[(e["group"], e["sample"], e["agent_id"])] += int(e["action_tokens"])
    total = sum(int(e["action_tokens"]) for e in exp_rows)
    rollouts = len(step_keys)
    out: dict[str, list[float]] = defaultdict(list)
    for e in exp_rows:
        k = (e["group"], e["sample"])
        t_a = tokens[(*k, e["agent_id"])]
        w = (1.0 / len(agents[k])) * (1.0 / t_a) if t_a else 0.0
        out[e["key"]].append(adv[k] * w * total / rollouts)
    return {key: sorted(v) for key, v in out.items()}


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= ADV_TOL * max(1.0, abs(a), abs(b)) or abs(a - b) <= 1e-7


def check_advantages(debug: Path) -> dict[str, Any]:
    rollouts = [r for r in read_jsonl(debug / "rollouts.jsonl") if not r.get("eval")]
    exp = read_jsonl(debug / "experience.jsonl")
    actor = [r for f in sorted(debug.glob("actor_rank*.jsonl")) for r in read_jsonl(f)]
    steps = sorted({e["step"] for e in exp})
    out: dict[str, Any] = {"steps": []}
    worst = 0.0
    all_ok = bool(steps)
    for step in steps:
        rows = [e for e in exp if e["step"] == step]
        per_rollout = Counter((e["group"], e["sample"]) for e in rows)
        want = recompute(rollouts, rows)
        trained = [a for a in actor if a["call"] == step]
        got: dict[str, list[float]] = defaultdict(list)
        uniform = True
        for a in trained:
            if a["advantage_min"] is not None:
                uniform &= _close(a["advantage_min"], a["advantage_max"])
                got[a["key"]].append(a["advantage_min"])
        got = {k: sorted(v) for k, v in got.items()}
        exp_side = defaultdict(list)
        for e in rows:
            if e["advantage_min"] is not None:
                exp_side[e["key"]].append(e["advantage_min"])
        mismatches, diff = 0, 0.0
        for key, values in want.items():
            mine = got.get(key, [])
            if len(mine) != len(values):
                mismatches += 1
                continue
            for x, y in zip(values, mine):
                diff = max(diff, abs(x - y))
                if not _close(x, y):
                    mismatches += 1
        exp_diff = max(
            (abs(x - y) for k, v in want.items() for x, y in zip(v, sorted(exp_side.get(k, [])))), default=0.0
        )
        rewards_by_group = defaultdict(dict)
        for e in rows:
            rewards_by_group[e["group"]][e["sample"]] = e["reward"]
        nonzero = sum(1 for v in want.values() for x in v if abs(x) > 1e-9)
        info = {
            "step": step,
            "rows": len(rows),
            "rollouts": len(per_rollout),
            "groups": len({e["group"] for e in rows}),
            "rows_per_rollout_max": max(per_rollout.values()),
            "rows_per_rollout_mean": len(rows) / len(per_rollout),
            "rows_trained_by_actor_ranks": len(trained),
            "ranks": sorted({a["rank"] for a in trained}),
            "micro_batches_per_rank": {
                r: len({a["micro_batch"] for a in trained if a["rank"] == r})
                for r in sorted({a["rank"] for a in trained})
            },
            "action_tokens": sum(e["action_tokens"] for e in rows),
            "rewards_by_group": {g: [v[s] for s in sorted(v)] for g, v in sorted(rewards_by_group.items())},
            "rows_with_nonzero_advantage": nonzero,
            "advantage_max_abs_diff_actor_vs_recomputed": diff,
            "advantage_max_abs_diff_experience_vs_recomputed": exp_diff,
            "advantage_rows_mismatched": mismatches,
            "advantage_constant_within_each_row": uniform,
        }
        ok = mismatches == 0 and uniform and len(trained) == len(rows) and info["rows_per_rollout_max"] > 1
        info["ok"] = ok
        all_ok &= ok
        worst = max(worst, diff)
        out["steps"].append(info)
    out["ok"] = all_ok
    out["max_abs_diff"] = worst
    out["rollouts_dumped"] = len({(r["group"], r["sample"]) for r in rollouts})
    out["rows_per_rollout_max"] = max((s["rows_per_rollout_max"] for s in out["steps"]), default=0)
    out["rows_per_rollout_mean"] = sum(s["rows"] for s in out["steps"]) / max(
        1, sum(s["rollouts"] for s in out["steps"])
    )
    return out


# --- weight-sync probes -------------------------------------------------------------------------------------
def check_probes(debug: Path) -> dict[str, Any]:
    import torch

    trainer = {int(re.search(r"sync(\d+)", p.name).group(1)): p for p in debug.glob("probe_trainer_sync*.pt")}
    engines: dict[int, list[Path]] = defaultdict(list)
    for p in debug.glob("probe_engine-*_sync*.pt"):
        engines[int(re.search(r"_sync(\d+)", p.name).group(1))].append(p)
    out: dict[str, Any] = {"syncs": [], "trainer_probe_errors": sorted(p.name for p in debug.glob("*.error"))}
    ok = bool(trainer)
    prev_digest = None
    for sync in sorted(set(trainer) | set(engines)):
        t = torch.load(trainer[sync], weights_only=False) if sync in trainer else None
        entry: dict[str, Any] = {
            "sync": sync,
            "trainer": t is not None,
            "engines": len(engines.get(sync, [])),
        }
        if t is None or not engines.get(sync):
            entry["ok"] = False
            ok = False
            out["syncs"].append(entry)
            continue
        per_engine = []
        if t.get("logprobs") is None:  # the trainer's forward failed: the weight digests still compare
            for p in sorted(engines[sync]):
                e = torch.load(p, weights_only=False)
                per_engine.append(
                    {
                        "file": p.name,
                        "digest_equal": e["digest"] == t["digest"],
                        "ok": False,
                        "trainer_forward_error": (t.get("forward_error") or "")[-2000:],
                    }
                )
            entry["per_engine"] = per_engine
            entry["ok"] = False
            ok = False
            out["syncs"].append(entry)
            continue
        for p in sorted(engines[sync]):
            e = torch.load(p, weights_only=False)
            d = (e["logprobs"] - t["logprobs"]).abs()
            same_ids = torch.equal(e["input_ids"], t["input_ids"])
            argmax = (e["logprobs"].argmax(-1) == t["logprobs"].argmax(-1)).float().mean().item()
            same = e.get("logprobs_trainer_attention")
            same_d = (same - t["logprobs"]).abs().max().item() if same is not None else None
            fp32 = e.get("logprobs_fp32")
            floor = (e["logprobs"] - fp32).abs() if fp32 is not None else None
            info = {
                "file": p.name,
                "digest_equal": e["digest"] == t["digest"],
                "same_probe": same_ids,
                "logprob_max_abs_diff": d.max().item(),
                "logprob_mean_abs_diff": d.mean().item(),
                "argmax_agreement": argmax,
                "engine_attn": e.get("attn_implementation"),
                "trainer_attn": t.get("attn_implementation"),
                "logprob_max_abs_diff_same_attention": same_d,
                "same_attention_error": e.get("trainer_attention_error"),
                "bf16_floor_max": floor.max().item() if floor is not None else None,
                "bf16_floor_mean": floor.mean().item() if floor is not None else None,
                "engine_calls": e.get("calls"),
            }
            serving_ok = (
                info["logprob_max_abs_diff"] <= SERVING_MAX_TOL
                and info["logprob_mean_abs_diff"] <= SERVING_MEAN_TOL
            )
            if floor is not None:
                # equal weights (the digest), so the gap may be rounding only: at most two bf16 errors of the
                # engine's own size against fp32 (a fixed 1e-2 was below bf16's floor, about 0.2, for every
                # forward of the first H200 launch's model, the trainer's included); an fp32 engine has
                # floor 0 and keeps the fixed tolerance
                close = d.max().item() <= max(
                    2 * info["bf16_floor_max"], SAME_ATTN_TOL
                ) and d.mean().item() <= max(2 * info["bf16_floor_mean"], SAME_ATTN_TOL)
            else:
                close = same_d is None or same_d <= SAME_ATTN_TOL
            info["ok"] = bool(info["digest_equal"] and same_ids and serving_ok and close)
            per_engine.append(info)
        entry["per_engine"] = per_engine
        entry["weights_changed_since_previous_sync"] = (
            None if prev_digest is None else prev_digest != t["digest"]
        )
        prev_digest = t["digest"]
        entry["ok"] = all(x["ok"] for x in per_engine)
        ok &= entry["ok"]
        out["syncs"].append(entry)
    out["ok"] = ok
    return out


# --- log trimming -------------------------------------------------------------------------------------------
KEEP = re.compile(
    r"=== |Global step|vllm-shim|WideSeek|wideseek|Traceback|Error|error:|FAILED|Exception|"
    r"checkpoint|Saving|saved|ray_version|ZeRO|zero_stage|stage 3|FusedAdam|rc=|CHECK|WARNING: ",
    re.IGNORECASE,
)


def trim_log(text: str, limit: int = 600) -> str:
    lines = [ln[:2000] for ln in text.splitlines()]
    keep: list[str] = []
    for i, ln in enumerate(lines):
        if i < 40 or i >= len(lines) - 80 or KEEP.search(ln):
            keep.append(f"{i + 1:6d}: {ln}")
    tracebacks = [i for i, ln in enumerate(lines) if "Traceback" in ln]
    for i in tracebacks[:3]:  # the first tracebacks in full (the rest are usually their echoes)
        keep.extend(f"{j + 1:6d}: {lines[j]}" for j in range(i, min(len(lines), i + 40)))
    keep = sorted(set(keep), key=lambda s: int(s.split(":", 1)[0]))
    if len(keep) > limit:
        keep = keep[: limit // 2] + [f"... {len(keep) - limit} kept lines cut ..."] + keep[-limit // 2 :]
    return "\n".join(keep) + "\n"


REAL_VS_SHIMMED = [
    {
        "part": "driver",
        "real": "python -m training.openrlhf_ext.train -> openrlhf.cli.train_ppo_ray, started by "
        "training/launch/train_single_node.sh (unmodified)",
        "shimmed": "",
    },
    {
        "part": "Ray",
        "real": "local cluster started by OpenRLHF's ray.init; placement groups; actors",
        "shimmed": "",
    },
    {
        "part": "extension in Ray workers",
        "real": "worker_process_setup_hook -> import hook rebinding OpenRLHF's four classes",
        "shimmed": "",
    },
    {
        "part": "policy and reference models",
        "real": "DeepSpeed ZeRO-3, bf16, FusedAdam, gradient checkpointing, sleep mode (offload/reload)",
        "shimmed": "",
    },
    {
        "part": "attention kernels in training",
        "real": "transformers' flash_attention_2 path with packed rows",
        "shimmed": "flash_attn functions: per-sequence torch SDPA (tests/gpu/flash_attn_shim)",
    },
    {
        "part": "rollout engines",
        "real": "OpenRLHF RolloutRayActor, create_vllm_engines, WorkerWrap; the agent "
        "executor, endpoint and WideSeek graph inside the actor",
        "shimmed": "vLLM's AsyncLLMEngine/worker: training.hf_engine.HFEngine behind tests/gpu/vllm_shim",
    },
    {
        "part": "weight sync",
        "real": "OpenRLHF broadcast_to_vllm: ZeRO-3 gather, CUDA IPC handles, "
        "WorkerWrap.update_weight_cuda_ipc -> load_weights",
        "shimmed": "load_weights lands in HFEngine.load_weights instead of vLLM's model loader",
    },
    {
        "part": "reward",
        "real": "official WideSeek-R1 reward (exact matching) on the synthetic world",
        "shimmed": "plus a shaped term (tests/gpu/smoke_reward.py) so one task's rollouts differ",
    },
    {
        "part": "policy model",
        "real": "tiny Qwen3 (closed-loop tokenizer, SFT on scripted rollouts)",
        "shimmed": "",
    },
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="the launch's OUT_DIR")
    p.add_argument("--debug", type=Path, required=True, help="WIDESEEK_DEBUG_DIR of the run")
    p.add_argument("--log", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--prep", type=Path)
    p.add_argument("--exit-code", type=int)
    p.add_argument("--wall", type=float)
    p.add_argument("--min-steps", type=int, default=2)
    p.add_argument("--trimmed-log", type=Path)
    p.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE of the launch's knobs, for the record"
    )
    args = p.parse_args(argv)

    log = args.log.read_text(errors="replace") if args.log.is_file() else ""
    steps = steps_from_log(log)
    ck = checkpoints(args.run)
    saved_steps = sorted(int(m.group(1)) for d in ck["deepspeed"] if (m := re.match(r"global_step(\d+)$", d)))
    command_log = args.run / "command.log"
    command = (
        [ln for ln in command_log.read_text().splitlines() if ln and not ln.startswith("#")][-1:]
        if command_log.is_file()
        else []
    )
    results: dict[str, Any] = {
        "issue": 10,
        "what": "training/launch/train_single_node.sh, unmodified, with scaled-down documented variables",
        "ray_version": versions().get("ray"),
        "versions": versions(),
        "command": command[0] if command else None,
        "knobs": dict(kv.split("=", 1) for kv in args.env if "=" in kv),
        "launch_exit_code": args.exit_code,
        "launch_wall_seconds": args.wall,
        "steps_completed": max(steps + saved_steps, default=0),
        "steps_logged": steps,
        "steps_checkpointed": saved_steps,
        "checkpoints": ck,
        "extension_log": extension_lines(log),
        "real_vs_shimmed": REAL_VS_SHIMMED,
        "packing": "on: OpenRLHF forces --ds.packing_samples with --train.dynamic_batch_enable "
        "(required by the "
        "extension) and then flash_attention_2; flash-attn itself cannot be installed on this machine, "
        "so its kernels are the tests/gpu/flash_attn_shim stand-in",
    }
    if args.prep is not None and args.prep.is_file():
        results["prep"] = json.loads(args.prep.read_text())
    try:
        results["extension"] = check_advantages(args.debug)
    except Exception as e:
        results["extension"] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    try:
        results["weight_sync"] = check_probes(args.debug)
    except Exception as e:
        results["weight_sync"] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    checks = {
        f"at least {args.min_steps} training steps completed": results["steps_completed"] >= args.min_steps,
        "a checkpoint was saved (DeepSpeed and HF)": bool(ck["deepspeed"]) and bool(ck["hf_complete"]),
        "rows per rollout > 1 reached the trainer, every row trained once, advantages = recomputation": bool(
            results["extension"].get("ok")
        ),
        "after each broadcast the engines' weights equal the trainer's and their logits agree": bool(
            results["weight_sync"].get("ok")
        ),
    }
    results["checks"] = checks
    results["pass"] = all(checks.values())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    if args.trimmed_log is not None:
        args.trimmed_log.write_text(trim_log(log))
    for name, ok in checks.items():
        print(f"CHECK {'PASS' if ok else 'FAIL'}: {name}")
    print(
        f"CHECK steps_completed={results['steps_completed']} ray={results['ray_version']} results={args.out}"
    )
    return 0 if results["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
