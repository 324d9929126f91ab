"""The launch check's evidence chain on the CPU: the extension's debug dumps (rollouts as executed, advantages
as assigned, rows as a policy rank trains them) and ``check_launch.py``'s independent recomputation, which
must
agree on correct advantages and catch a wrong one; plus the results file and the trimmed log."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("openrlhf")
sys.path.append(str(Path(__file__).resolve().parents[1] / "training" / "stubs"))
sys.path.append(str(Path(__file__).resolve().parent))

import check_launch  # noqa: E402
from ext_fixtures import make_rollout  # noqa: E402

GROUPS = {  # task group -> rollouts: (reward, {agent: [(prompt_len, completion_len) per turn]})
    0: [
        (1.0, {"lead": [(9, 4), (15, 3)], "sub-1": [(6, 5)]}),
        (0.25, {"lead": [(9, 2)]}),
        (0.5, {"lead": [(9, 3), (14, 2)], "sub-1": [(6, 2), (10, 2)], "sub-2": [(7, 6)]}),
    ],
    1: [
        (0.0, {"lead": [(11, 3)], "sub-1": [(5, 4)]}),
        (0.75, {"lead": [(11, 5), (18, 2)]}),
        (0.75, {"lead": [(11, 2)], "sub-1": [(5, 3)]}),
    ],
}


def simulate_step(debug_dir: Path, monkeypatch, *, corrupt: bool = False) -> int:
    """One training step through the real row -> Experience conversion, the extension's advantage assignment,
    OpenRLHF's balance_experiences over two ranks, and the dumps each side writes."""
    from openrlhf.trainer.ppo_utils.experience import balance_experiences

    from training.openrlhf_ext import debug
    from training.openrlhf_ext.assign import assign_advantages
    from training.openrlhf_ext.convert import row_to_experience
    from training.openrlhf_ext.rowmeta import stamp_rollout

    monkeypatch.setenv(debug.ENV, str(debug_dir))
    monkeypatch.setattr(debug, "_experience_steps", 0)
    stamped = []
    for group, rollouts in GROUPS.items():
        results = [
            make_rollout(f"g{group}-r{i}", reward, agents, seed=group)
            for i, (reward, agents) in enumerate(rollouts)
        ]
        debug.dump_rollout_group(group, results)
        for sample, rows in enumerate(results):
            stamped.extend(stamp_rollout(rows, group=group, sample=sample))
    experiences = []
    for pos, (row, stamp) in enumerate(stamped):
        exp = row_to_experience(row, stamp, max_len=4096)
        exp.index = [pos]
        experiences.append(exp)
    stamps = [st for _, st in stamped]
    assign_advantages(experiences, stamps, advantage_clip=(-10.0, 10.0))
    debug.dump_experience_batch(experiences, stamps)
    if corrupt:  # a bug between the experience maker and the actor: one row's advantage is off by 1%
        experiences[3].advantages = experiences[3].advantages * 1.01
    args = NS(actor=NS(num_nodes=1, num_gpus_per_node=2), ds=NS(ring_attn_size=1, tensor_parallel_size=1))
    ranks = balance_experiences(experiences, args)
    for rank, batch in enumerate(ranks):
        trainer = NS(replay_buffer=NS(dynamic_optimizer_step=[1]))
        debug.dump_actor_micro_batch(trainer, 0, batch, rank=rank)
    return len(stamped)


def test_checker_recomputes_the_advantages_each_rank_trained_on(tmp_path, monkeypatch):
    rows = simulate_step(tmp_path / "debug", monkeypatch)
    out = check_launch.check_advantages(tmp_path / "debug")
    assert out["ok"], out
    (step,) = out["steps"]
    assert step["rows"] == step["rows_trained_by_actor_ranks"] == rows and step["rollouts"] == 6
    assert step["rows_per_rollout_max"] == 5 and step["ranks"] == [0, 1]
    assert (
        step["advantage_max_abs_diff_actor_vs_recomputed"] < 1e-5 and step["rows_with_nonzero_advantage"] > 0
    )
    assert step["rewards_by_group"] == {0: [1.0, 0.25, 0.5], 1: [0.0, 0.75, 0.75]}


def test_checker_catches_a_wrong_advantage(tmp_path, monkeypatch):
    simulate_step(tmp_path / "debug", monkeypatch, corrupt=True)
    out = check_launch.check_advantages(tmp_path / "debug")
    assert not out["ok"] and out["steps"][0]["advantage_rows_mismatched"] == 1


def test_results_file_and_trimmed_log(tmp_path, monkeypatch):
    simulate_step(tmp_path / "debug", monkeypatch)
    run = tmp_path / "run"
    (run / "ckpt" / "_actor" / "global_step2").mkdir(parents=True)
    hf = run / "ckpt" / "global_step2_hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    (hf / "model.safetensors").write_bytes(b"x")
    (run / "command.log").write_text("# 2026-11-28T00:00:00Z\npython3 -m training.openrlhf_ext.train --x 1\n")
    log = tmp_path / "log"
    log.write_text(
        "=== [0 s] install\n" + "noise\n" * 600 + "INFO ✨ Global step 1: {}\nINFO ✨ Global step 2: {}\n"
        "Traceback (most recent call last):\n  File x\nValueError: boom\n"
        "(PolicyModelActor pid=12) INFO 10:00:00 training.openrlhf_ext.install] WideSeek OpenRLHF extension "
        "active in openrlhf.trainer.ray.ppo_actor\n"
        "(PPOTrainer pid=13) INFO 10:00:09 training.openrlhf_ext.experience] "
        "WideSeek advantages: 49 rows from "
        "16 rollouts\n"
    )
    out = tmp_path / "results.json"
    rc = check_launch.main(
        [
            "--run",
            str(run),
            "--debug",
            str(tmp_path / "debug"),
            "--log",
            str(log),
            "--out",
            str(out),
            "--exit-code",
            "0",
            "--trimmed-log",
            str(tmp_path / "trim"),
            "--env",
            "GROUP=3",
        ]
    )
    res = json.loads(out.read_text())
    assert rc == 1 and res["pass"] is False  # no probe files: the weight-sync check fails, and says so
    assert res["steps_completed"] == 2 and res["command"].endswith("--x 1") and res["knobs"] == {"GROUP": "3"}
    assert res["ray_version"] and res["checkpoints"]["hf_complete"] == ["global_step2_hf"]
    assert {"part", "real", "shimmed"} <= set(res["real_vs_shimmed"][0])
    checks = res["checks"]
    assert [v for k, v in checks.items() if "training steps" in k] == [True]
    assert [v for k, v in checks.items() if "rows per rollout" in k] == [True]
    assert res["extension_log"] == {
        "active_in": ["PolicyModelActor pid 12: openrlhf.trainer.ray.ppo_actor"],
        "advantage_summaries": ["49 rows from 16 rollouts"],
    }
    trimmed = (tmp_path / "trim").read_text()
    assert "Global step 2" in trimmed and "ValueError: boom" in trimmed and len(trimmed.splitlines()) < 200


def _probe_files(debug: Path, *, gap: float, floor: float, engine_digest: str = "d1") -> None:
    """One sync's trainer and engine probes: the engine's logprobs ``gap`` from the trainer's on one
    vocabulary entry in ten, its fp32 forward ``floor`` from its own bf16 one on those entries (what bf16
    rounding costs on this probe)."""
    debug.mkdir(parents=True, exist_ok=True)
    ids = torch.arange(12).reshape(2, 6)
    base = torch.log_softmax(torch.linspace(-3, 3, 2 * 6 * 10).reshape(2, 6, 10), -1)
    torch.save(
        {"sync": 1, "digest": "d1", "logprobs": base, "input_ids": ids}, debug / "probe_trainer_sync1.pt"
    )
    some = torch.zeros_like(base)
    some[..., ::10] = 1.0
    engine = base + gap * some
    torch.save(
        {
            "sync": 1,
            "digest": engine_digest,
            "logprobs": engine,
            "input_ids": ids,
            "logprobs_trainer_attention": engine,
            "logprobs_fp32": engine + floor,
        },
        debug / "probe_engine-7_sync1.pt",
    )


@pytest.mark.parametrize(
    ("gap", "floor", "digest", "ok"),
    [
        (0.1, 0.2, "d1", True),  # bf16 rounding on both sides (the H200 launch: gap 0.11, floor 0.17)
        (0.5, 0.2, "d1", False),  # more than two bf16 errors apart: not the same function
        (0.1, 0.2, "d2", False),  # logits close but the weights differ: the update did not arrive
        (0.05, 0.0, "d1", False),  # an fp32 engine (floor 0) keeps the fixed tolerance
        (0.001, 0.0, "d1", True),
    ],
)
def test_weight_sync_check_measures_the_gap_against_bf16s_floor(tmp_path, gap, floor, digest, ok):
    _probe_files(tmp_path, gap=gap, floor=floor, engine_digest=digest)
    out = check_launch.check_probes(tmp_path)
    (eng,) = out["syncs"][0]["per_engine"]
    assert eng["bf16_floor_max"] == pytest.approx(floor, abs=1e-6)
    assert eng["logprob_max_abs_diff"] == pytest.approx(gap, abs=1e-6)
    assert eng["ok"] is ok and out["ok"] is ok
