"""Flag checks: the settings multi-agent rows need, each refusal with an actionable message."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from training.openrlhf_ext.config import config_problems, validate_args
from training.openrlhf_ext.errors import ExtensionConfigError


def paper_args(**over):
    """The paper's setting as OpenRLHF's hierarchised namespace (only the keys we read)."""
    args = NS(
        train=NS(
            agent_func_path="training/agent_executor.py",
            dynamic_batch_enable=True,
            async_enable=False,
            batch_size=1024,
        ),
        algo=NS(advantage=NS(estimator="group_norm"), kl=NS(init_coef=0.001, use_loss=True)),
        rollout=NS(n_samples_per_prompt=8, batch_size=128, vllm_generate_batch_size=None),
        actor=NS(loss_agg_mode="token-mean", policy_loss_type="ppo"),
        reward=NS(overlong_buffer_len=None, stop_properly_penalty_coef=None),
        ds=NS(ring_attn_size=1, tensor_parallel_size=1),
    )
    for dotted, value in over.items():
        node = args
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = getattr(node, p)
        setattr(node, leaf, value)
    return args


def test_paper_settings_pass():
    assert config_problems(paper_args()) == []
    validate_args(paper_args())


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"train__agent_func_path": None}, "--train.agent_func_path"),
        ({"algo__advantage__estimator": "rloo"}, "group_norm"),
        ({"rollout__n_samples_per_prompt": 1, "train__batch_size": 128}, "n_samples_per_prompt must be > 1"),
        ({"train__dynamic_batch_enable": False}, "--train.dynamic_batch_enable"),
        ({"algo__kl__use_loss": False}, "--algo.kl.use_loss"),
        ({"actor__loss_agg_mode": "seq-mean-token-mean"}, "token-mean"),
        ({"actor__policy_loss_type": "gspo"}, "ppo"),
        ({"reward__overlong_buffer_len": 512.0}, "overlong"),
        ({"reward__stop_properly_penalty_coef": 0.5}, "stop_properly"),
        ({"train__async_enable": True}, "async"),
        ({"rollout__vllm_generate_batch_size": 256}, "vllm_generate_batch_size"),
        ({"train__batch_size": 128}, "= 1024"),
        ({"ds__ring_attn_size": 2}, "ring attention"),
    ],
)
def test_each_incompatibility_is_reported(override, fragment):
    problems = config_problems(paper_args(**override))
    assert len(problems) == 1 and fragment in problems[0]
    with pytest.raises(ExtensionConfigError, match="incompatible"):
        validate_args(paper_args(**override))


def test_kl_as_reward_is_fine_when_kl_is_off():
    assert config_problems(paper_args(algo__kl__init_coef=0.0, algo__kl__use_loss=False)) == []


def test_all_problems_are_listed_at_once():
    args = paper_args(train__dynamic_batch_enable=False, algo__advantage__estimator="gae")
    with pytest.raises(ExtensionConfigError) as info:
        validate_args(args)
    assert str(info.value).count("\n  - ") == 2
