"""The closed RL loop, one command per phase (each within 10 minutes on one H200), or all of them:

    python -m training.closed_loop prepare --work DIR        # worlds, tokenizer, random-init model
    python -m training.closed_loop sft --work DIR            # scripted rollouts -> SFT -> checkpoint choice
    python -m training.closed_loop eval --work DIR --model random_init|sft|grpo
    python -m training.closed_loop grpo --work DIR           # rollouts -> GRPO -> weight sync, K steps
    python -m training.closed_loop report --work DIR --out training/results/closed_loop-h200.json
    python -m training.closed_loop all --work DIR --out FILE.json

``--profile cpu`` is the same script at toy size (what the test suite runs); ``--set FIELD=VALUE`` overrides
any setting of :class:`training.closed_loop.config.LoopConfig`. Each phase writes ``DIR/results/PHASE.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from training.closed_loop.config import LoopConfig  # noqa: E402

log = logging.getLogger("training.closed_loop")

MODEL_DIRS = {"random_init": "init", "sft": "sft/selected", "grpo": "grpo/final"}


def _write(work: Path, name: str, data: dict[str, Any]) -> Path:
    path = work / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))
    log.info("wrote %s", path)
    return path


def _config(args: argparse.Namespace) -> LoopConfig:
    work: Path = args.work
    saved = work / "config.json"
    if args.phase != "prepare" and args.phase != "all" and saved.is_file():
        cfg = LoopConfig(**json.loads(saved.read_text()))  # later phases run with the settings prepare saved
    else:
        cfg = LoopConfig.for_profile(args.profile)
    return cfg.with_overrides(args.set or [])


def prepare(cfg: LoopConfig, work: Path) -> dict[str, Any]:
    from training.tiny_qwen3 import build_model, count_parameters

    from .sft import make_tokenizer
    from .tasks import build_splits, write_manifest

    t0 = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.json").write_text(cfg.model_dump_json(indent=2))
    splits = build_splits(cfg, work)
    write_manifest(splits, work / "worlds" / "manifest.json")
    tok_dir = make_tokenizer(cfg, work, splits)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    model = build_model(len(tok), preset=cfg.preset, max_position_embeddings=cfg.max_len, seed=cfg.seed)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(str(work / "init"))
    tok.save_pretrained(str(work / "init"))
    return {
        "config": cfg.model_dump(),
        "worlds": json.loads((work / "worlds" / "manifest.json").read_text()),
        "vocab_size": len(tok),
        "model_parameters": count_parameters(model),
        "model_config": model.config.to_dict(),
        "seconds": time.perf_counter() - t0,
    }


def evaluate_phase(cfg: LoopConfig, work: Path, which: str) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from .evaluate import evaluate_sync, load_policy
    from .tasks import build_splits

    path = work / MODEL_DIRS[which]
    if not path.is_dir():
        raise FileNotFoundError(f"no {which} model at {path}: run the phase that makes it first")
    tok = AutoTokenizer.from_pretrained(str(work / "tokenizer"))
    splits = build_splits(cfg, work)
    out = evaluate_sync(
        cfg,
        load_policy(path, cfg),
        tok,
        splits["test"],
        tasks=cfg.test_tasks,
        samples=cfg.test_samples,
        seed=cfg.seed + 1,
    )
    out["model"] = which
    return out


def report(work: Path, out: Path | None, plot_path: Path | None) -> dict[str, Any]:
    from .report import assemble, environment, plot

    data = assemble(work)
    data["environment"] = environment()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=2, default=str))
        log.info("wrote %s", out)
    if plot_path is not None:
        plot(data, plot_path)
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.closed_loop", description=__doc__.split("\n\n")[0])
    p.add_argument("phase", choices=["prepare", "sft", "eval", "grpo", "report", "all"])
    p.add_argument("--work", type=Path, required=True, help="working folder shared by the phases")
    p.add_argument("--profile", choices=["gpu", "cpu"], default="gpu")
    p.add_argument("--model", choices=sorted(MODEL_DIRS), help="which model `eval` measures")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a LoopConfig field")
    p.add_argument("--out", type=Path, help="report/all: the results JSON to write")
    p.add_argument("--plot", type=Path, help="report/all: the PNG plot to write")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    work: Path = args.work
    try:
        cfg = _config(args)
    except ValueError as e:
        p.error(str(e))
    t0 = time.perf_counter()
    if args.phase in ("prepare", "all"):
        _write(work, "prepare", prepare(cfg, work))
    if args.phase == "eval":
        if not args.model:
            p.error("eval needs --model random_init|sft|grpo")
        _write(work, f"eval_{args.model}", evaluate_phase(cfg, work, args.model))
    if args.phase == "all":
        _write(work, "eval_random_init", evaluate_phase(cfg, work, "random_init"))
    if args.phase in ("sft", "all"):
        from .sft import run as run_sft

        _write(work, "sft", run_sft(cfg, work))
    if args.phase == "all":
        _write(work, "eval_sft", evaluate_phase(cfg, work, "sft"))
    if args.phase in ("grpo", "all"):
        from .grpo import run as run_grpo

        _write(work, "grpo", run_grpo(cfg, work))
    if args.phase == "all":
        _write(work, "eval_grpo", evaluate_phase(cfg, work, "grpo"))
    if args.phase in ("report", "all"):
        report(work, args.out, args.plot)
    log.info("%s done in %.1f s", args.phase, time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
