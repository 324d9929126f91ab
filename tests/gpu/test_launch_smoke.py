"""The launch smoke run's pieces that hold on a CPU: the scaled-down command train_single_node.sh builds from
scripts/gpu/launch_smoke.env parses with OpenRLHF 0.11.2's own parser and passes the extension's checks (1 and
2 GPUs); launch_prep writes the inputs; and (slow) the rollout half of the launch runs on a local Ray with a
fake GPU: OpenRLHF's create_vllm_engines and RolloutRayActor over the vLLM shim, the agent executor inside the
actor,
the extension's samples generator driving it with sleep mode on, and the rollout dump."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV_FILE = REPO / "scripts" / "gpu" / "launch_smoke.env"
SINGLE = REPO / "training" / "launch" / "train_single_node.sh"


def launch_helpers():
    spec = importlib.util.spec_from_file_location(
        "_launch_tests", REPO / "tests" / "training" / "test_launch.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def smoke_command(work: Path, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WIDESEEK_", "WANDB"))}
    base.update(env, WORK=str(work), DRY_RUN="1")
    out = subprocess.run(
        ["bash", "-c", f"source {ENV_FILE} && bash {SINGLE}"],
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("gpus", ["1", "2"])
def test_the_scaled_down_command_parses_and_passes_the_extension(tmp_path, gpus):
    t = launch_helpers()
    t.openrlhf_source()  # skips without OpenRLHF
    config = pytest.importorskip("training.openrlhf_ext.config")
    a = t.parse(t.trainer_flags(smoke_command(tmp_path, GPUS=gpus)))
    assert config.config_problems(a) == []
    assert a.actor.model_name_or_path == str(tmp_path / "model")
    assert a.data.prompt_dataset == str(tmp_path / "train.jsonl") and a.data.max_len == 8192
    assert a.rollout.n_samples_per_prompt == 8 and a.rollout.batch_size == 2 and a.train.batch_size == 16
    assert a.rollout.max_new_tokens == 256 and a.actor.adam.lr == 1e-5
    assert a.ds.zero_stage == 3 and a.ds.packing_samples and a.train.dynamic_batch_enable
    assert a.train.colocate_all and a.vllm.enable_sleep and a.ds.enable_sleep
    assert a.actor.num_gpus_per_node == a.ref.num_gpus_per_node == a.vllm.num_engines == int(gpus)
    assert a.ckpt.save_steps == 1 and a.ckpt.save_hf and a.ckpt.path == str(tmp_path / "run" / "ckpt")
    assert a.train.max_tokens_per_gpu == 16384 and a.algo.kl.init_coef == 0.001  # the reference model runs


def test_openrlhf_forces_flash_attention_2_whenever_the_extension_runs():
    """Why the flash-attn stand-in exists: dynamic batching (required by the extension) turns packing on, and
    packing overrides any attention implementation without 'flash_attention' in its name."""
    t = launch_helpers()
    src = (t.openrlhf_source() / "cli" / "train_ppo_ray.py").read_text()
    assert "if args.train.dynamic_batch_enable:" in src and "args.ds.packing_samples = True" in src
    assert 'if "flash_attention" not in args.ds.attn_implementation:' in src
    assert 'args.ds.attn_implementation = "flash_attention_2"' in src


def test_launch_prep_writes_the_dataset_and_rollout_settings(tmp_path):
    pytest.importorskip("datasets")
    from training.closed_loop.config import LoopConfig

    model = tmp_path / "model-src"
    model.mkdir()
    (model / "loop_config.json").write_text(LoopConfig.for_profile("cpu").model_dump_json())
    work = tmp_path / "work"
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "gpu" / "launch_prep.py"),
            "--work",
            str(work),
            "--model",
            str(model),
            "--tasks",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in (work / "train.jsonl").read_text().splitlines()]
    assert len(records) == 4 and {"prompt", "label", "datasource"} <= set(records[0])
    settings = json.loads((work / "rollout.json").read_text())
    assert settings["graph"]["search"] == "local" and Path(settings["graph"]["corpus"]).is_file()
    assert settings["reward"]["function"].endswith("tests/gpu/smoke_reward.py:reward")
    assert (work / "model" / "loop_config.json").is_file()


@pytest.mark.slow
def test_rollout_half_of_the_launch_on_a_local_ray(tmp_path):
    pytest.importorskip("ray")
    pytest.importorskip("openrlhf")
    transformers = pytest.importorskip("transformers")
    from training.closed_loop.config import LoopConfig
    from training.tiny_qwen3 import build_model

    src = tmp_path / "model-src"
    tok = transformers.AutoTokenizer.from_pretrained(
        str(REPO / "tests" / "training" / "assets" / "tiny-qwen3")
    )
    build_model(len(tok), preset="test", max_position_embeddings=4096, seed=0).save_pretrained(str(src))
    tok.save_pretrained(str(src))
    (src / "loop_config.json").write_text(LoopConfig.for_profile("cpu").model_dump_json())
    prep = tmp_path / "prep"
    py = sys.executable
    out = subprocess.run(
        [
            py,
            str(REPO / "tests" / "gpu" / "launch_prep.py"),
            "--work",
            str(prep),
            "--model",
            str(src),
            "--tasks",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            str(REPO / p) for p in ("tests/gpu/vllm_shim", "tests/gpu/flash_attn_shim", ".")
        ),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    out = subprocess.run(
        [
            py,
            str(REPO / "tests" / "gpu" / "rollout_half.py"),
            "--prep",
            str(prep),
            "--groups",
            "2",
            "--group-size",
            "3",
            "--max-new-tokens",
            "24",
            "--max-len",
            "4096",
            "--num-cpus",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["groups"] == 2 and res["rollouts"] == 6 and res["rows"] >= 6 and res["prompts_consumed"] == 2
    assert res["debug_files"] == ["rollouts.jsonl"]
    dumped = [json.loads(line) for line in (prep / "debug" / "rollouts.jsonl").read_text().splitlines()]
    assert len(dumped) == res["rows"] and {d["group"] for d in dumped} == {0, 1}
