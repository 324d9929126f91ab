"""On a real local Ray cluster (CPU): the setup hook applies the extension in every worker, and
the samples generator turns multi-row execute results into whole task-group batches.

The vLLM rollout actor is the edge we cannot reach here; ``ScriptedEngine`` stands in for
``RolloutRayActor.generate_responses`` (same method, same arguments) and returns rows in the
executor's contract. Everything else is OpenRLHF's and Ray's real code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

STUBS = Path(__file__).parent / "stubs"
sys.path.append(str(STUBS))
pytest.importorskip("openrlhf")
pytest.importorskip("vllm")
ray = pytest.importorskip("ray")

from ext_ray_actors import REWARDS, Probe, ScriptedEngine  # noqa: E402

from training.openrlhf_ext.train import extension_runtime_env  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster():
    if ray.is_initialized():
        pytest.skip("a Ray session is already running in this process")
    saved = os.environ.get("PYTHONPATH")
    # Workers need the flash_attn stand-in and the row builders, as the driver does.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(STUBS), saved) if p)
    try:
        env = extension_runtime_env({"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=env)
        yield env
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


@pytest.fixture(scope="module")
def engine(ray_cluster):
    return ScriptedEngine.remote()


def test_setup_hook_applies_extension_in_fresh_workers(ray_cluster):
    assert ray_cluster["worker_process_setup_hook"] == "training.openrlhf_ext.install.ray_worker_setup"
    probe = Probe.remote()
    assert ray.get(probe.names.remote(), timeout=120) == (
        "WideSeekSamplesGenerator",
        "WideSeekExperienceMaker",
        "WideSeekReplayBuffer",
        "WideSeekActorPPOTrainer",
    )


def _generator(engine, prompts, *, batch_size=2, dynamic_filtering=False):
    from training.openrlhf_ext.samples import WideSeekSamplesGenerator

    args = NS(
        rollout=NS(batch_size=batch_size, n_samples_per_prompt=2, vllm_generate_batch_size=None),
        vllm=NS(enable_sleep=False),
        algo=NS(
            dynamic_filtering_enable=dynamic_filtering,
            dynamic_filtering_range=(0.0, 1.0),
            advantage=NS(is_correction_level="off"),
        ),
    )
    loader = [("ds", [p], ["gold"], [None]) for p in prompts]
    return WideSeekSamplesGenerator(NS(args=args), loader, loader, None, [engine])


KW = {"max_len": 64, "max_new_tokens": None, "temperature": 1.0, "top_p": 1.0, "n_samples_per_prompt": 2}


def test_generate_samples_yields_whole_task_groups(engine):
    gen = _generator(engine, list(REWARDS))
    batches = []
    while True:
        rows, pass_rate, consumed, exhausted = gen.generate_samples(**KW)
        batches.append((rows, consumed))
        if exhausted:
            break
    assert [len({r.wideseek.group for r in rows}) for rows, _ in batches] == [2, 2, 1]
    assert [c for _, c in batches] == [2, 2, 1]
    per_group = 4 + 2  # rows: sample 0 = lead x2, sub-1, sub-2; sample 1 = lead, sub-1
    assert [len(rows) for rows, _ in batches] == [2 * per_group, 2 * per_group, per_group]
    all_rows = [r for rows, _ in batches for r in rows]
    # Every row knows its task, its rollout and its agent; rewards are per rollout.
    prompts_by_group = {}
    for r in all_rows:
        prompts_by_group.setdefault(r.wideseek.group, set()).add(r.prompts[0])
        assert r.rewards.item() == REWARDS[r.prompts[0]][r.wideseek.sample]
    assert all(len(p) == 1 for p in prompts_by_group.values())
    assert sorted(p for ps in prompts_by_group.values() for p in ps) == sorted(REWARDS)
    assert {r.wideseek.meta.num_agents for r in all_rows} == {2, 3}


def test_dynamic_filtering_counts_rollouts_not_rows(engine):
    # Range (0, 1): task-1 (mean .5 over rollouts) passes although its rows' mean would too;
    # task-4 (1, 1) is filtered and replaced by the next prompt.
    gen = _generator(engine, ["task-4", "task-1", "task-3"], batch_size=2, dynamic_filtering=True)
    rows, pass_rate, consumed, _ = gen.generate_samples(**KW)
    assert {r.prompts[0] for r in rows} == {"task-1", "task-3"}
    assert consumed == 3
    assert pass_rate == pytest.approx(2 / 3 * 100)


def test_eval_keeps_one_row_per_rollout(engine):
    gen = _generator(engine, ["task-0", "task-2"])
    samples = gen.generate_eval_samples(**KW)
    assert len(samples) == 4  # 2 prompts x 2 rollouts, as OpenRLHF's pass@k bookkeeping expects
    assert all(s.wideseek.meta.role == "lead" for s in samples)
    # sample 0's lead has two turns: the representative is the last one
    firsts = [s for s in samples if s.wideseek.sample == 0]
    assert {s.wideseek.meta.turn for s in firsts} == {1}
