"""The closed RL loop script at CPU size: every phase, on the same code path as the GPU run (torch trainer in
place of DeepSpeed, a 0.3M-parameter model), and the pieces its numbers rest on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parent / "stubs"))
pytest.importorskip("openrlhf")
torch = pytest.importorskip("torch")

from training.closed_loop.config import LoopConfig  # noqa: E402
from training.closed_loop.evaluate import bootstrap_ci, summarize  # noqa: E402
from training.closed_loop.rollouts import Rollout  # noqa: E402
from training.closed_loop.sft import _batches, select  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from training.closed_loop.__main__ import main

    work = tmp_path_factory.mktemp("loop")
    out, png = work / "closed_loop-cpu.json", work / "plot.png"
    assert main(["all", "--work", str(work), "--profile", "cpu", "--out", str(out), "--plot", str(png)]) == 0
    return work, json.loads(out.read_text()), png


@pytest.mark.slow
def test_every_phase_runs_and_the_results_file_has_the_documented_keys(run):
    work, res, png = run
    cfg = LoopConfig(**json.loads((work / "config.json").read_text()))
    for phase in ("random_init", "sft", "grpo"):
        ev = res["heldout"][phase]
        for key in ("item_f1", "item_f1_ci95", "row_f1", "success", "reward", "reward_se"):
            assert key in ev, (phase, key)
        assert ev["rollouts"] == cfg.test_tasks * cfg.test_samples
        assert ev["item_f1_ci95"][0] <= ev["item_f1"] <= ev["item_f1_ci95"][1]
    assert len(res["steps"]) == cfg.grpo_steps == len(res["sync_logit_max_abs"])
    for step in res["steps"]:
        assert step["rows"] >= step["rollouts"] - step["failed_rollouts"] > 0
        for key in ("reward_mean", "kl", "clip_fraction", "response_length", "engine_tokens_per_s",
                    "trainer_tokens_per_s", "seconds_rollout", "seconds_train", "seconds_sync"):
            assert key in step
        assert step["sync_tensors"] == len(list(_model_params(work)))
    assert png.stat().st_size > 10_000
    assert "grpo_vs_sft" in res and "environment" in res


@pytest.mark.slow
def test_the_sft_data_comes_from_perfect_scripted_rollouts_through_the_executor(run):
    _, res, _ = run
    data = res["sft"]["data"]
    assert data["scripted_mean_item_f1"] == 1.0 and data["scripted_mean_reward"] == pytest.approx(1.15)
    assert data["rows"] > data["tasks"]          # several agents and turns per rollout: many rows
    assert 0 < data["action_tokens"] < data["tokens"]
    assert res["sft"]["selected"]["step"] in [c["step"] for c in res["sft"]["checkpoints"]]


@pytest.mark.slow
def test_engine_and_trainer_agree_and_a_saved_checkpoint_reloads_to_the_synced_weights(run):
    _, res, _ = run
    agree = res["logprob_agreement_step0"]
    assert agree["tokens"] > 0 and agree["rows"] == res["steps"][0]["rows"]
    # on the CPU the engine runs fp32 and the trainer bf16: their gap is exactly the trainer's bf16 rounding
    assert agree["engine_vs_fp32_max_abs"] < 1e-4
    assert agree["mean_abs"] == pytest.approx(agree["trainer_bf16_vs_fp32_mean_abs"], rel=1e-3, abs=1e-6)
    assert max(res["sync_logit_max_abs"]) < 0.05   # bf16 trainer vs fp32 engine holding the same bf16 values
    reload = res["grpo"]["checkpoint_reload"]
    assert reload["found_by_refresh"] and reload["logit_max_abs_vs_synced_engine"] == 0.0


def _model_params(work: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(work / "grpo" / "final")).named_parameters()


def test_summary_counts_a_failed_rollout_as_zero_and_reports_it():
    ok = Rollout(0, 0, scores={"item_f1": 1.0, "row_f1": 1.0, "success": 1.0, "reward": 1.15})
    failed = Rollout(0, 1, error="TimeoutError: rollout took too long")
    other = Rollout(1, 0, scores={"item_f1": 0.5, "row_f1": 0.0, "success": 0.0, "reward": 0.65})
    out = summarize([ok, failed, other], 2, draws=200, seed=0)
    assert out["failed_rollouts"] == 1 and out["failure_reasons"] == ["TimeoutError: rollout took too long"]
    assert out["item_f1"] == pytest.approx((0.5 + 0.5) / 2)
    assert out["reward"] == pytest.approx((0.575 + 0.65) / 2)


def test_bootstrap_interval_brackets_the_mean_and_is_deterministic():
    values = [0.1, 0.9, 0.5, 0.4, 0.7, 0.2]
    lo, hi = bootstrap_ci(values, draws=1000, seed=3)
    assert lo < sum(values) / len(values) < hi
    assert (lo, hi) == bootstrap_ci(values, draws=1000, seed=3)
    assert bootstrap_ci([0.5] * 4, draws=100, seed=0) == (0.5, 0.5)


def test_checkpoint_choice_keeps_the_latest_clearly_imperfect_one():
    cks = [{"step": s, "val_item_f1": f} for s, f in [(1, 0.05), (2, 0.3), (3, 0.6), (4, 0.9)]]
    assert select(cks, (0.2, 0.75))["step"] == 3
    assert select(cks[:1], (0.2, 0.75))["step"] == 1                      # nothing in range: best below the top
    assert select([{"step": 1, "val_item_f1": 0.0}, {"step": 2, "val_item_f1": 0.0}], (0.2, 0.75))["step"] == 2
    assert select([{"step": 9, "val_item_f1": 0.95}], (0.2, 0.75))["step"] == 9


def test_sft_batches_respect_the_token_budget_and_cover_every_row():
    rows = [([1] * n, n - 1) for n in (5, 50, 7, 30, 30, 200)]
    batches = _batches(rows, 64)
    assert sorted(i for b in batches for i in b) == list(range(len(rows)))
    for b in batches:
        assert len(b) == 1 or len(b) * max(len(rows[i][0]) for i in b) <= 64


def test_overrides_parse_json_and_reject_unknown_fields():
    cfg = LoopConfig.for_profile("cpu").with_overrides(["grpo_steps=5", "device=cuda", "task_entities=[1, 1]"])
    assert cfg.grpo_steps == 5 and cfg.device == "cuda" and cfg.task_entities == (1, 1)
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        cfg.with_overrides(["nope=1"])
    with pytest.raises(ValueError):
        cfg.with_overrides(["max_new_tokens=99999"])
