"""Assemble the phases' JSON files into the results file, and draw its plot.

The results file (``training/results/closed_loop*.json``) keeps these keys for readers without this code:
``heldout -> random_init | sft | grpo -> item_f1, item_f1_ci95, row_f1, success`` (plus reward and its
standard error), ``steps`` (one object per GRPO step), ``logprob_agreement_step0 -> mean_abs, max_abs``,
``sync_logit_max_abs`` (one per weight sync), and the run's seeds, model size, tokens, device and versions.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

PHASES = ("random_init", "sft", "grpo")


def environment() -> dict[str, Any]:
    import importlib.metadata as md

    env: dict[str, Any] = {"python": platform.python_version()}
    for pkg in (
        "torch",
        "transformers",
        "deepspeed",
        "openrlhf",
        "langgraph",
        "langchain-core",
        "tokenizers",
    ):
        try:
            env[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            env[pkg] = None
    try:
        import torch

        env["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        env["cuda"] = torch.version.cuda
    except Exception:  # noqa: BLE001 - informational only
        env["device"] = "unknown"
    return env


def assemble(work: Path) -> dict[str, Any]:
    """Everything the phases wrote under ``work/results`` as one document."""
    res = work / "results"

    def load(name: str) -> dict[str, Any] | None:
        p = res / f"{name}.json"
        return json.loads(p.read_text()) if p.is_file() else None

    prep, sft, grpo = load("prepare"), load("sft"), load("grpo")
    out: dict[str, Any] = {"heldout": {}, "phases_present": []}
    for phase in PHASES:
        ev = load(f"eval_{phase}")
        if ev is not None:
            out["heldout"][phase] = ev
            out["phases_present"].append(f"eval_{phase}")
    if prep:
        out["setup"] = prep
        out["phases_present"].append("prepare")
    if sft:
        out["sft"] = sft
        out["phases_present"].append("sft")
    if grpo:
        out["phases_present"].append("grpo")
        out["steps"] = grpo.pop("steps")
        out["sync_logit_max_abs"] = grpo.pop("sync_logit_max_abs")
        out["logprob_agreement_step0"] = grpo.pop("logprob_agreement_step0")
        out["grpo"] = grpo
    h = out["heldout"]
    if "sft" in h and "grpo" in h:
        diff = h["grpo"]["reward"] - h["sft"]["reward"]
        se = (h["grpo"]["reward_se"] ** 2 + h["sft"]["reward_se"] ** 2) ** 0.5
        out["grpo_vs_sft"] = {
            "reward_diff": diff,
            "reward_diff_se": se,
            "more_than_2se": diff > 2 * se,
            "sft_reward_se": h["sft"]["reward_se"],
            "above_sft_by_2x_sft_se": diff > 2 * h["sft"]["reward_se"],
            "item_f1_diff": h["grpo"]["item_f1"] - h["sft"]["item_f1"],
        }
    return out


def plot(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    steps = results.get("steps", [])
    if steps:
        xs = [s["step"] for s in steps]
        ax1.plot(
            xs, [s["reward_mean"] for s in steps], marker="o", label="reward (mean of the step's rollouts)"
        )
        ax1.plot(xs, [s["reward_item_f1"] for s in steps], marker=".", label="item F1 part")
        ax1.set_xlabel("GRPO step")
        ax1.set_ylabel("training reward")
        ax1.set_title("Closed loop: reward per step (training tasks)")
        ax1.legend(fontsize=8)
        ax1.grid(alpha=0.3)
    held = results.get("heldout", {})
    names = [p for p in PHASES if p in held]
    metrics = [("item_f1", "item F1"), ("row_f1", "row F1"), ("success", "success")]
    width = 0.8 / max(1, len(names))
    for j, phase in enumerate(names):
        ev = held[phase]
        vals = [ev[m] for m, _ in metrics]
        lo = [ev[m] - ev[f"{m}_ci95"][0] for m, _ in metrics]
        hi = [ev[f"{m}_ci95"][1] - ev[m] for m, _ in metrics]
        xs = [i + j * width for i in range(len(metrics))]
        ax2.bar(xs, vals, width, yerr=[lo, hi], capsize=3, label=phase)
    ax2.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(metrics))], [m[1] for m in metrics])
    ax2.set_ylim(0, 1)
    ax2.set_title("Held-out tasks (mean over tasks, 95% bootstrap CI)")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
