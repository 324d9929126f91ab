"""The GPU smoke script itself, on CPU with the torch engine and tiny inputs (it must not rot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parent / "stubs"))
pytest.importorskip("openrlhf")
pytest.importorskip("deepspeed")
torch = pytest.importorskip("torch")

from ext_fixtures import make_rollout  # noqa: E402

pytestmark = pytest.mark.slow


REPO = Path(__file__).resolve().parents[2]
SMOKE_ARGS = [
    "--engine",
    "torch",
    "--device",
    "cpu",
    "--grpo-steps",
    "2",
    "--tasks-per-step",
    "2",
    "--group",
    "4",
    "--max-tokens-per-gpu",
    "80",
]


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory):
    """The smoke script in this process (one rank), with its part A state dumped for comparison."""
    from training.gpu_smoke import smoke

    tmp = tmp_path_factory.mktemp("smoke")
    rows = []
    shapes = [
        {"lead": [(20, 9), (35, 6)], "sub-1": [(15, 12)]},
        {"lead": [(20, 14)]},
        {"lead": [(20, 7)], "s1": [(14, 6)], "s2": [(10, 8)]},
        {"lead": [(20, 10)], "s1": [(12, 9)]},
    ]
    for i, shape in enumerate(shapes):
        rows += make_rollout(f"r{i}", 1.0, shape, vocab=300)
    path = tmp / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert (
        smoke.main(["--rows", str(path), "--out", str(tmp), *SMOKE_ARGS, "--dump", str(tmp / "w1.pt")]) == 0
    )
    return tmp, rows, json.loads((tmp / "smoke-torch.json").read_text())


def test_smoke_runs_on_cpu_and_its_gradient_matches_the_fp32_reference(one_rank):
    _, rows, result = one_rank
    a = result["part_a"]
    assert a["finite"] and a["optimizer_steps"] == 1 and a["micro_batches"] > 1
    assert a["rows"] == len(rows) and a["rollouts"] == 4
    assert a["grad_norm_rel_diff"] < 1e-2
    assert len(result["part_b"]["curve"]) == 2


def test_two_gloo_ranks_split_the_rows_and_match_one_rank(one_rank):
    """torchrun, 2 CPU processes over gloo: OpenRLHF's row split, our all-reduced step normaliser, averaged
    grads."""
    from training.gpu_smoke.compare import compare

    tmp, rows, single = one_rank
    out = tmp / "w2"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "training.gpu_smoke.smoke",
        "--rows",
        str(tmp / "rows.jsonl"),
        "--out",
        str(out),
        *SMOKE_ARGS,
        "--tag=-w2",
        "--dump",
        str(tmp / "w2.pt"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "smoke-torch-w2.json").read_text())
    a = result["part_a"]
    assert result["world_size"] == 2 and a["world_size"] == 2
    # every row trained exactly once, both ranks busy, the same number of micro-batches on each (ZeRO needs
    # that)
    assert sum(r["rows"] for r in a["per_rank"]) == len(rows) and min(r["rows"] for r in a["per_rank"]) > 0
    assert (
        sum(r["action_tokens"] for r in a["per_rank"])
        == a["action_tokens"]
        == single["part_a"]["action_tokens"]
    )
    assert len({r["micro_batches"] for r in a["per_rank"]}) == 1
    assert len({r["grad_norm"] for r in a["per_rank"]}) == 1 and a["ranks_weights_identical"]
    # the same objective: the step's loss and gradient agree with one rank and with the fp32 reference
    assert a["loss_abs_diff"] < 1e-3 and a["grad_norm_rel_diff"] < 1e-2
    cmp = compare(
        torch.load(tmp / "w1.pt", weights_only=False), torch.load(tmp / "w2.pt", weights_only=False)
    )
    assert cmp["grad_norm_rel_diff"] < 1e-3
    assert (
        cmp["grad_rel_diff_between_runs"] < cmp["grad_rel_diff_to_ref"][0]
    )  # closer to each other than to fp32
    assert cmp["update_sign_agreement"] > 0.99
    assert [c["rows_per_rank"] for c in result["part_b"]["curve"]] == [[12, 12], [12, 12]]
