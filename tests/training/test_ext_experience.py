"""Point (c) in OpenRLHF's own RemoteExperienceMaker, and our row conversion against the stock one.

Needs the vLLM tier of scripts/install_openrlhf_cpu.sh (OpenRLHF's experience maker and samples
generator import vLLM at module level). The model forwards (Ray actor groups on GPUs) are the
edge we cannot reach: ``make_experience`` is replaced by one that fills old log-probs.
"""

from __future__ import annotations

import math
import sys
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
import torch

sys.path.append(str(Path(__file__).parent / "stubs"))
pytest.importorskip("openrlhf")
pytest.importorskip("vllm")

from ext_fixtures import make_rollout
from openrlhf.trainer.ppo_utils.experience import Experience
from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator

from training.openrlhf_ext.convert import WideSeekExperience, row_to_experience, tag
from training.openrlhf_ext.errors import ExtensionConfigError, RowContractError
from training.openrlhf_ext.experience import WideSeekExperienceMaker
from training.openrlhf_ext.rowmeta import stamp_rollout


def trainer_args(*, dynamic=True):
    return NS(
        train=NS(
            agent_func_path="agent.py",
            dynamic_batch_enable=dynamic,
            async_enable=False,
            batch_size=4,
            colocate_all=False,
            colocate_actor_ref=False,
            colocate_critic_reward=False,
        ),
        algo=NS(
            advantage=NS(estimator="group_norm", gamma=1.0),
            kl=NS(init_coef=0.001, use_loss=True, estimator="k3"),
        ),
        rollout=NS(
            n_samples_per_prompt=2,
            batch_size=2,
            vllm_generate_batch_size=None,
            micro_batch_size=2,
            max_tokens_per_gpu=64,
        ),
        actor=NS(loss_agg_mode="token-mean", policy_loss_type="ppo", num_nodes=1, num_gpus_per_node=1),
        reward=NS(overlong_buffer_len=None, stop_properly_penalty_coef=None, clip_range=(-10.0, 10.0)),
        ds=NS(ring_attn_size=1, tensor_parallel_size=1),
    )


def _maker(args) -> WideSeekExperienceMaker:
    return WideSeekExperienceMaker(None, None, None, None, NS(value=0.001), NS(args=args), NS(pad_token_id=0))


def _fake_forward(samples_list):
    # What RemoteExperienceMaker.make_experience attaches, without the remote model groups.
    for s in samples_list:
        s.action_log_probs = torch.zeros_like(s.action_mask, dtype=torch.float32)
        s.base_action_log_probs = torch.zeros_like(s.action_mask, dtype=torch.float32)
        s.kl = torch.zeros_like(s.action_mask, dtype=torch.float32)
        s.info["kl"] = torch.zeros(len(s.sequences))
    return samples_list


def _samples():
    results = [
        (
            0,
            [
                make_rollout("a", 1.0, {"lead": [(4, 3), (9, 5)], "sub": [(3, 4)]}),
                make_rollout("b", 0.0, {"lead": [(4, 6)]}),
            ],
        ),
        (
            1,
            [
                make_rollout("c", 0.5, {"lead": [(5, 2)]}),
                make_rollout("d", 0.5, {"lead": [(5, 3)], "s1": [(2, 2)], "s2": [(2, 1)]}),
            ],
        ),
    ]
    out = []
    for group, rollouts in results:
        for sample, rows in enumerate(rollouts):
            out += [
                row_to_experience(r, st, max_len=64)
                for r, st in stamp_rollout(rows, group=group, sample=sample)
            ]
    return out


@pytest.mark.parametrize("dynamic", [True, False])
def test_experience_maker_broadcasts_per_rollout_advantage_with_weights(monkeypatch, dynamic):
    args = trainer_args(dynamic=dynamic)
    if not dynamic:
        with pytest.raises(ExtensionConfigError, match="dynamic_batch_enable"):
            _maker(args)
        return
    maker = _maker(args)
    monkeypatch.setattr(maker, "make_experience", _fake_forward)
    samples = _samples()
    experiences = maker.make_experience_batch(samples)

    # task 0: rewards (1, 0): mean .5, unbiased std sqrt(.5) -> +-a; task 1: (0.5, 0.5) -> 0
    a = 0.5 / (math.sqrt(0.5) + 1e-6)
    T = 3 + 5 + 4 + 6 + 2 + 3 + 2 + 1  # 26 action tokens
    B = 4
    expected = {  # row position -> folded advantage per token
        0: a / 2 / 8 * T / B,
        1: a / 2 / 8 * T / B,
        2: a / 2 / 4 * T / B,
        3: -a / 1 / 6 * T / B,
        4: 0.0,
        5: 0.0,
        6: 0.0,
        7: 0.0,
    }
    seen = {}
    for exp in experiences:
        for j, pos in enumerate(exp.index):
            mask = exp.action_mask[j].bool()
            vals = exp.advantages[j][mask]
            assert torch.allclose(vals, torch.full_like(vals, expected[pos]), atol=1e-5), pos
            assert (exp.advantages[j][~mask] == 0).all()
            seen[pos] = exp.info["return"][j].item()
    assert sorted(seen) == list(range(8))
    assert seen[0] == pytest.approx(a, abs=1e-5) and seen[3] == pytest.approx(-a, abs=1e-5)
    assert maker._wideseek_stamps is None  # released after the batch


def test_experience_maker_refuses_unstamped_samples(monkeypatch):
    maker = _maker(trainer_args())
    monkeypatch.setattr(maker, "make_experience", _fake_forward)
    plain = [Experience(**{f.name: getattr(s, f.name) for f in fields(Experience)}) for s in _samples()]
    with pytest.raises(RowContractError, match="no WideSeek stamp"):
        maker.make_experience_batch(plain)


def test_experience_maker_refuses_a_rollout_cut_in_two(monkeypatch):
    maker = _maker(trainer_args())
    monkeypatch.setattr(maker, "make_experience", _fake_forward)
    samples = _samples()
    del samples[2]  # the subagent row of rollout "a"
    with pytest.raises(RowContractError, match="declares 2 agents"):
        maker.make_experience_batch(samples)


@pytest.mark.parametrize("max_len", [64, 9])
def test_row_conversion_matches_openrlhf_stock_conversion(max_len):
    rows = make_rollout("r", 0.25, {"lead": [(4, 3), (8, 5)], "sub": [(3, 4)]})
    for row, stamp in stamp_rollout(rows, group=0, sample=0):
        stock = SamplesGenerator._process_response_into_experience(None, row, max_len=max_len)
        ours = row_to_experience(row, stamp, max_len=max_len)
        tagged = tag(stock, stamp)
        assert isinstance(ours, WideSeekExperience) and tagged.wideseek == ours.wideseek
        for f in fields(Experience):
            a, b = getattr(stock, f.name), getattr(ours, f.name)
            if isinstance(a, torch.Tensor):
                assert torch.equal(a, b), f.name
            elif isinstance(a, dict):
                assert a.keys() == b.keys()
                assert all(torch.equal(a[k], b[k]) for k in a), f.name
            else:
                assert a == b, f.name
