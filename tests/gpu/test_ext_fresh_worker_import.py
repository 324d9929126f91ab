"""A fresh Ray worker can meet the extension's trainer class before OpenRLHF's module that it patches.

Ray pickles the original class of a ``@ray.remote`` actor by value, so ``PolicyModelActor``'s methods travel
with their globals, and ``ActorPPOTrainer`` there is the extension's subclass: a new worker unpickling them
imports ``training.openrlhf_ext.actor`` first, which imports ``openrlhf.trainer.ray.ppo_actor``, whose import
hook wants the half-executed subclass. Found by the CPU run of the launch (PolicyModelActor and PPOTrainer
died with a circular ImportError); the hook now defers that patch to the end of actor.py. vLLM is the run-only
shim here (``openrlhf.trainer.ray`` imports it at module level).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("openrlhf")
pytest.importorskip("ray")
REPO = Path(__file__).resolve().parents[2]
SHIM = Path(__file__).resolve().parent / "vllm_shim"
FLASH = Path(__file__).resolve().parent / "flash_attn_shim"  # openrlhf.models imports flash_attn helpers


def run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SHIM), str(FLASH), str(REPO)])}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_worker_that_unpickles_the_subclass_first_gets_a_patched_ppo_actor():
    # what Ray ships: a by-reference pickle of the subclass (protocol 0 spelled out: import module, take name)
    blob = b"ctraining.openrlhf_ext.actor\nWideSeekActorPPOTrainer\n."
    assert (
        run(
            "import pickle, sys; from training.openrlhf_ext import apply, install; apply()\n"
            f"cls = pickle.loads({blob!r})   # imports training.openrlhf_ext.actor first\n"
            "from openrlhf.trainer.ray import ppo_actor\n"
            "from training.openrlhf_ext.replay import WideSeekReplayBuffer\n"
            "assert ppo_actor.ActorPPOTrainer is cls and cls.__name__ == 'WideSeekActorPPOTrainer'\n"
            "assert ppo_actor.NaiveReplayBuffer is WideSeekReplayBuffer\n"
            "assert install.is_applied(install.PPO_ACTOR)\n"
            "print('ok')"
        )
        == "ok"
    )


def test_the_setup_hook_makes_the_extensions_info_lines_reach_the_worker_log():
    """A Ray worker's root logger has no handler: the extension's INFO summaries ("WideSeek advantages: ...")
    were silently dropped. The setup hook now sends them to stdout, which Ray forwards to the driver's log."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import logging; from training.openrlhf_ext.install import "
            "ray_worker_setup; ray_worker_setup(); logging.getLogger("
            "'training.openrlhf_ext.experience').info('WideSeek advantages: 3 rows')",
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "WideSeek advantages: 3 rows" in out.stdout
