"""The launch scripts' flags, parsed by OpenRLHF 0.11.2's own argument parser.

``openrlhf.cli.train_ppo_ray`` builds its parser inside ``if __name__ == "__main__":`` and imports Ray at
module level, so the test takes the parser-building statements from the installed source with ``ast`` and runs
them: the result is OpenRLHF's real parser (types, choices, nargs), with no GPU stack needed.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import importlib.util
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SINGLE = REPO / "training" / "launch" / "train_single_node.sh"
MULTI = REPO / "training" / "launch" / "train_multi_node.sh"


def openrlhf_source() -> Path:
    spec = importlib.util.find_spec("openrlhf")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(
            "openrlhf is not installed (scripts/install_openrlhf_cpu.sh installs it without GPU deps)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def openrlhf_parser() -> argparse.ArgumentParser:
    src_path = openrlhf_source() / "cli" / "train_ppo_ray.py"
    tree = ast.parse(src_path.read_text())
    main = next(n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test))
    body = []
    for stmt in main.body:
        if isinstance(stmt, ast.Assign) and "parse_args" in ast.unparse(stmt.value):
            break
        body.append(stmt)
    ns: dict = {"argparse": argparse, "datetime": datetime.datetime}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(src_path), "exec"), ns)
    return ns["parser"]


def run_script(script: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WIDESEEK_", "WANDB"))}
    base.update(env)
    return subprocess.run(["bash", str(script)], env=base, capture_output=True, text=True, timeout=60)


def trainer_flags(stdout: str) -> list[str]:
    argv = shlex.split(stdout.strip())
    i = argv.index("training.openrlhf_ext.train")
    return argv[i + 1 :]


def parse(flags: list[str]):
    # openrlhf/utils/config.py by path: the package's __init__ would pull in DeepSpeed for one pure function
    spec = importlib.util.spec_from_file_location(
        "openrlhf_config", openrlhf_source() / "utils" / "config.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.hierarchize(openrlhf_parser().parse_args(flags))


COMMON = {"MODEL": "Qwen/Qwen3-4B", "TRAIN_DATA": "/data/hybrid.jsonl", "DRY_RUN": "1"}


def test_single_node_defaults_are_the_papers_hyper_parameters():
    out = run_script(SINGLE, **COMMON)
    assert out.returncode == 0, out.stderr
    a = parse(trainer_flags(out.stdout))
    assert a.rollout.n_samples_per_prompt == 8 and a.rollout.batch_size == 128
    assert a.train.batch_size == 1024
    assert a.actor.adam.lr == 1e-6 and a.actor.lr_scheduler == "constant" and a.actor.lr_warmup_ratio == 0
    assert a.algo.kl.use_loss and a.algo.kl.estimator == "k3" and a.algo.kl.init_coef == 0.001
    assert a.actor.eps_clip_low_high == [0.2, 0.28] and a.actor.dual_clip == 10
    assert a.algo.advantage.estimator == "group_norm"
    assert a.ds.param_dtype == "bf16"
    assert a.rollout.temperature == 1.0 and a.rollout.top_p == 1.0
    assert a.train.agent_func_path == str(REPO / "training" / "agent_executor.py")
    assert Path(a.train.agent_func_path).is_file()
    assert (a.data.input_key, a.data.label_key) == ("prompt", "label")
    assert a.ckpt.save_hf and a.ckpt.load_enable and a.ckpt.save_steps == 10
    assert a.logger.tensorboard_dir.endswith("tensorboard")
    assert a.train.colocate_all and a.vllm.num_engines == 8 and a.actor.num_gpus_per_node == 8


def test_multi_node_submits_to_the_cluster_with_consistent_sizes(tmp_path):
    out = run_script(
        MULTI,
        **COMMON,
        RAY_ADDRESS="http://10.0.0.1:8265",
        OUT_DIR=str(tmp_path / "run"),
        NODES="4",
        GPUS_PER_NODE="8",
        VLLM_TP="2",
    )
    assert out.returncode == 0, out.stderr
    argv = shlex.split(out.stdout.strip())
    assert argv[:4] == ["ray", "job", "submit", "--address"] and "--working-dir" in argv
    a = parse(trainer_flags(out.stdout))
    assert a.actor.num_nodes == 4 and a.ref.num_nodes == 4
    assert (
        a.vllm.num_engines * a.vllm.tensor_parallel_size == 32
    )  # colocate_all needs every actor GPU covered
    assert a.train.agent_func_path == "training/agent_executor.py"  # relative to the shipped working dir
    assert a.ckpt.path == str(tmp_path / "run" / "ckpt")


def test_overrides_and_secrets():
    out = run_script(
        SINGLE,
        **COMMON,
        GROUP="4",
        TASKS_PER_STEP="16",
        GPUS="2",
        WANDB="1",
        WANDB_API_KEY="wandb-secret-789",
        EXTRA_ARGS="--ckpt.save_steps 5 --vllm.enforce_eager",
    )
    assert out.returncode == 0, out.stderr
    assert "wandb-secret-789" not in out.stdout + out.stderr
    flags = trainer_flags(out.stdout)
    # the key travels in the environment only; the flag just turns W&B on (OpenRLHF prints its arguments)
    assert flags[flags.index("--logger.wandb.key") + 1] == "env:WANDB_API_KEY"
    a = parse(flags)
    assert a.train.batch_size == 64 and a.rollout.n_samples_per_prompt == 4
    assert a.ckpt.save_steps == 5 and a.vllm.enforce_eager  # EXTRA_ARGS comes last and wins
    assert a.vllm.num_engines == 2


def test_extra_args_win_over_the_scripts_own_layout_flags(tmp_path):
    """EXTRA_ARGS is documented to come last and win; it used to be appended before each script's GPU-layout
    flags, so e.g. a smaller engine count given there was silently overridden."""
    extra = "--vllm.num_engines 1 --ref.num_gpus_per_node 1"
    out = run_script(SINGLE, **COMMON, GPUS="2", EXTRA_ARGS=extra)
    assert out.returncode == 0, out.stderr
    flags = trainer_flags(out.stdout)
    assert flags[-4:] == extra.split()
    a = parse(flags)
    assert a.vllm.num_engines == 1 and a.ref.num_gpus_per_node == 1 and a.actor.num_gpus_per_node == 2
    out = run_script(
        MULTI,
        **COMMON,
        RAY_ADDRESS="http://h:8265",
        OUT_DIR=str(tmp_path / "run"),
        NODES="2",
        EXTRA_ARGS=extra,
    )
    assert out.returncode == 0, out.stderr
    a = parse(trainer_flags(out.stdout))
    assert a.vllm.num_engines == 1 and a.ref.num_gpus_per_node == 1 and a.actor.num_nodes == 2


def test_flags_satisfy_the_multi_row_extension():
    """The extension (train-ext) refuses settings it cannot train correctly; the defaults must pass it."""
    config = pytest.importorskip("training.openrlhf_ext.config")
    for script, extra in ((SINGLE, {}), (MULTI, {"RAY_ADDRESS": "http://h:8265", "OUT_DIR": "/shared/run"})):
        out = run_script(script, **COMMON, **extra)
        assert out.returncode == 0, out.stderr
        assert config.config_problems(parse(trainer_flags(out.stdout))) == []


def test_runtime_env_file_carries_env_not_the_command_line(tmp_path):
    # a fake `ray` on PATH records the runtime-env file it is given
    bindir = tmp_path / "bin"
    bindir.mkdir()
    record = tmp_path / "seen.json"
    (bindir / "ray").write_text(
        "#!/usr/bin/env bash\n"
        'for ((i=1; i<=$#; i++)); do if [[ "${!i}" == --runtime-env ]]; then j=$((i+1)); '
        f'cp "${{!j}}" {record}; stat -c %a "${{!j}}" > {record}.mode; echo "${{!j}}" > {record}.path; fi; '
        f"done\n"
        'echo "$@" > ' + str(tmp_path / "argv.txt") + "\n"
    )
    (bindir / "ray").chmod(0o755)
    env = {
        **COMMON,
        "DRY_RUN": "0",
        "RAY_ADDRESS": "http://h:8265",
        "OUT_DIR": str(tmp_path / "run"),
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "WIDESEEK_TRAIN_CONFIG": "/shared/train.json",
        "WIDESEEK_JUDGE_API_KEY": "judge-secret-1",
        "HF_TOKEN": "hf-secret-2",
        "UNRELATED": "x",
    }
    out = run_script(MULTI, **env)
    assert out.returncode == 0, out.stderr
    spec = json.loads(record.read_text())
    assert spec["env_vars"]["WIDESEEK_TRAIN_CONFIG"] == "/shared/train.json"
    assert spec["env_vars"]["WIDESEEK_JUDGE_API_KEY"] == "judge-secret-1"
    assert spec["env_vars"]["HF_TOKEN"] == "hf-secret-2" and "UNRELATED" not in spec["env_vars"]
    assert (tmp_path / "seen.json.mode").read_text().strip() == "600"
    argv = (tmp_path / "argv.txt").read_text()
    assert "secret" not in argv and "secret" not in (tmp_path / "run" / "command.log").read_text()
    assert not Path((tmp_path / "seen.json.path").read_text().strip()).exists()  # removed on exit


@pytest.mark.parametrize(
    ("script", "env", "message"),
    [
        (SINGLE, {"TRAIN_DATA": "x", "DRY_RUN": "1"}, "set MODEL"),
        (SINGLE, {"MODEL": "m", "DRY_RUN": "1"}, "set TRAIN_DATA"),
        (SINGLE, {**COMMON, "GPUS": "3", "VLLM_TP": "2"}, "multiple of VLLM_TP"),
        (MULTI, {**COMMON, "OUT_DIR": "/x"}, "set RAY_ADDRESS"),
        (MULTI, {**COMMON, "RAY_ADDRESS": "http://h:8265"}, "set OUT_DIR"),
    ],
)
def test_missing_settings_fail_with_a_message(script, env, message):
    out = run_script(script, **env)
    assert out.returncode != 0 and message in out.stderr


@pytest.mark.slow  # two Python processes importing datasets and the synthetic world: about 5 s
def test_example_train_sh_prepares_data_settings_and_the_command(tmp_path):
    """examples/train.sh end to end up to the launch (DRY_RUN): data built, settings valid, flags parse."""
    import sys

    env = {
        "MODEL": "Qwen/Qwen3-4B",
        "DRY_RUN": "1",
        "CATEGORIES": "3",
        "EVAL_SIZE": "2",
        "WORK": str(tmp_path / "work"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    out = run_script(REPO / "examples" / "train.sh", **env)
    assert out.returncode == 0, out.stderr
    settings = json.loads((tmp_path / "work" / "rollout.json").read_text())
    assert settings["graph"]["search"] == "local" and settings["reward"] == {
        "mode": "benchmark",
        "judge": "exact",
    }
    assert len((tmp_path / "work" / "train.jsonl").read_text().splitlines()) == 3 * 2 - 2
    a = parse(trainer_flags(out.stdout.strip().splitlines()[-1]))
    assert a.data.prompt_dataset == str(tmp_path / "work" / "train.jsonl")
    assert a.eval.dataset == str(tmp_path / "work" / "eval.jsonl")
    bad = run_script(REPO / "examples" / "train.sh", **env, SOURCE="wideseek-r1")
    assert bad.returncode != 0 and "set TASKS" in bad.stderr
