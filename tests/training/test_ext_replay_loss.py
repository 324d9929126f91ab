"""Points (c)+(d) through OpenRLHF's real classes on CPU: the step's loss is the spec's loss.

Rows of several multi-agent rollouts go through OpenRLHF's Experience batching, our advantage
assignment, our replay buffer's dynamic batching, OpenRLHF's ``Actor`` (a tiny Qwen3 loaded by
OpenRLHF's own loading code), ``get_loss_batch_info`` and ``PolicyLoss``, micro-batch by
micro-batch like ``ActorPPOTrainer.training_step``. The accumulated gradient must equal the
gradient of spec section 6's objective computed directly from the same log-probs.

Needs openrlhf + deepspeed + peft (scripts/install_openrlhf_cpu.sh, core tier); no vLLM, no Ray.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
import torch

sys.path.append(str(Path(__file__).parent / "stubs"))  # flash_attn stand-in + row builders
pytest.importorskip("openrlhf")
pytest.importorskip("deepspeed")
pytest.importorskip("peft")

from ext_fixtures import make_rollout
from openrlhf.models import Actor, PolicyLoss
from openrlhf.trainer.ppo_utils.experience import Experience
from openrlhf.utils.loss_utils import get_loss_batch_info

from training.advantages import dual_level_objective
from training.openrlhf_ext.assign import assign_advantages
from training.openrlhf_ext.convert import row_to_experience
from training.openrlhf_ext.replay import WideSeekReplayBuffer
from training.openrlhf_ext.rowmeta import stamp_rollout

VOCAB = 128
MAX_LEN = 64


@pytest.fixture(scope="module")
def tiny_qwen3(tmp_path_factory) -> str:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen3Config(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=256,
        tie_word_embeddings=False,
    )
    path = tmp_path_factory.mktemp("tiny-qwen3")
    Qwen3ForCausalLM(cfg).save_pretrained(path)
    return str(path)


def _rollout_batch():
    """Two tasks x two rollouts; rollouts have 1-3 agents and 1-3 turns per agent."""
    results = {
        0: [
            make_rollout(
                "a",
                1.0,
                {"lead": [(6, 5), (14, 3)], "sub-1": [(5, 7)], "sub-2": [(4, 2), (9, 4)]},
                vocab=VOCAB,
            ),
            make_rollout("b", 0.2, {"lead": [(6, 9)]}, vocab=VOCAB),
        ],
        1: [
            make_rollout("c", 0.0, {"lead": [(7, 4), (12, 6)], "sub-1": [(5, 3)]}, vocab=VOCAB),
            make_rollout("d", 0.6, {"lead": [(7, 2)], "sub-1": [(6, 8), (16, 2)]}, vocab=VOCAB),
        ],
    }
    stamped = [
        item
        for g, rs in results.items()
        for s, r in enumerate(rs)
        for item in stamp_rollout(r, group=g, sample=s)
    ]
    samples = [row_to_experience(row, st, max_len=MAX_LEN) for row, st in stamped]
    return samples, [st for _, st in stamped]


def _make_buffer(monkeypatch) -> WideSeekReplayBuffer:
    # NaiveReplayBuffer.__init__ records torch.cuda.current_device() for sample(); unused here.
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    return WideSeekReplayBuffer(1, 0, cpu_offload=False, packing_samples=False, dynamic_batch=True)


def test_step_loss_and_gradient_equal_spec_objective(tiny_qwen3, monkeypatch):
    actor = Actor(tiny_qwen3, attn_implementation="eager", param_dtype="bf16")
    actor.model.float()  # bf16 is the training dtype; fp32 here so the comparison is exact
    loss_fn = PolicyLoss(clip_eps_low=0.2, clip_eps_high=0.28, dual_clip=10.0, token_level_loss=True)

    samples, stamps = _rollout_batch()
    for i, s in enumerate(samples):  # what RemoteExperienceMaker.split_rollout_samples does
        s.index = [i]
    experiences = [Experience.concat_experiences(samples[i : i + 3], 0) for i in range(0, len(samples), 3)]
    torch.manual_seed(1)
    with torch.no_grad():  # "old" policy = the rollout policy, slightly perturbed so ratios clip
        for exp in experiences:
            lp = actor(exp.sequences, exp.action_mask, exp.attention_mask)
            exp.action_log_probs = lp + 0.25 * torch.randn_like(lp) * exp.action_mask
    folded, _ = assign_advantages(experiences, stamps, advantage_clip=(-10.0, 10.0))
    full = Experience.concat_experiences(experiences, 0)  # before append(), which consumes .index
    order = [i for exp in experiences for i in exp.index]

    buffer = _make_buffer(monkeypatch)
    for exp in experiences:
        buffer.append(exp)
    strategy = NS(
        args=NS(train=NS(max_tokens_per_gpu=40), ds=NS(ring_attn_size=1, tensor_parallel_size=1)),
        ds_device_mesh=None,
    )
    buffer.setup_dynamic_batch(strategy)

    n_rows = len(samples)
    assert sorted(i for mb in buffer.dynamic_indices for i in mb) == list(range(n_rows))
    assert len(buffer.dynamic_indices) >= 3, "152 tokens at 40 per GPU need several micro-batches"
    assert buffer.dynamic_optimizer_step == [0] * (len(buffer.dynamic_indices) - 1) + [1]
    total_tokens = sum(int(s.action_mask.sum()) for s in samples)
    assert set(buffer.dynamic_batch_num_tokens) == {float(total_tokens)}

    # The optimizer step, as ActorPPOTrainer.training_step runs it on the dynamic path.
    actor.zero_grad()
    step_loss = 0.0
    for step in range(len(buffer)):
        mb = buffer.collate_fn([buffer[step]])
        logp = actor(mb.sequences, mb.action_mask, mb.attention_mask)
        info = get_loss_batch_info(
            strategy, mb.action_mask, replay_buffer=buffer, step=step, dynamic_batch=True
        )
        loss, *_ = loss_fn(logp, mb.action_log_probs, mb.advantages, action_mask=mb.action_mask, **info)
        loss.backward()
        step_loss += loss.item()
    grads = [p.grad.detach().clone() for p in actor.parameters()]

    # The reference: spec section 6 over all rows at once, unweighted advantages A_i.
    actor.zero_grad()
    logp = actor(full.sequences, full.action_mask, full.attention_mask)
    ratio = (logp - full.action_log_probs).clamp(-20, 20).exp()
    adv = folded.row_advantage[:, None].expand_as(ratio)
    surr1, surr2 = ratio * adv, ratio.clamp(0.8, 1.28) * adv
    clip1 = torch.min(surr1, surr2)
    per_token = -torch.where(adv < 0, torch.max(clip1, 10.0 * adv), clip1)
    rollout_ix = [stamps[i].rollout_key for i in order]
    agent_ix = [stamps[i].agent_key for i in order]
    rk = {k: n for n, k in enumerate(dict.fromkeys(rollout_ix))}
    ak = {k: n for n, k in enumerate(dict.fromkeys(agent_ix))}
    spec = dual_level_objective(
        per_token, full.action_mask, [rk[k] for k in rollout_ix], [ak[k] for k in agent_ix]
    )
    spec.backward()

    assert step_loss == pytest.approx(spec.item(), rel=1e-5, abs=1e-7)
    assert any(g.abs().sum() > 0 for g in grads)
    for g, p in zip(grads, actor.parameters()):
        assert torch.allclose(g, p.grad, rtol=1e-4, atol=1e-7)


def test_replay_buffer_balances_micro_batches_without_dist(monkeypatch):
    samples, stamps = _rollout_batch()
    buffer = _make_buffer(monkeypatch)
    for i, s in enumerate(samples):
        s.index = [i]
    buffer.append(Experience.concat_experiences(samples, 0))
    strategy = NS(
        args=NS(train=NS(max_tokens_per_gpu=10_000), ds=NS(ring_attn_size=1, tensor_parallel_size=1)),
        ds_device_mesh=None,
    )
    buffer.setup_dynamic_batch(strategy)
    # Everything fits: one micro-batch, one optimizer step over all rows (stock would cut by
    # train.batch_size).
    assert buffer.dynamic_indices == [list(range(len(samples)))]
    assert buffer.dynamic_optimizer_step == [1]
    assert buffer.dynamic_global_batch_size == [float(len(samples))]
    assert len(buffer) == 1
