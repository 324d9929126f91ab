"""Driver: ``python -m training.openrlhf_ext.train <OpenRLHF train_ppo_ray flags>``.

Runs OpenRLHF 0.11.2's own ``openrlhf.cli.train_ppo_ray`` entry point, unchanged and with the
same flags, after three things:

1. :func:`training.openrlhf_ext.apply` in this process (version guard + subclass hooks);
2. a check of the parsed flags against what multi-agent rows need
   (:func:`training.openrlhf_ext.config.validate_args`), done on OpenRLHF's own parse result
   before any Ray resource is created, so a bad flag fails in seconds, not after the engines
   have loaded;
3. the Ray job's ``runtime_env`` gains ``worker_process_setup_hook =
   training.openrlhf_ext.install.ray_worker_setup`` (every worker applies the extension before
   it runs anything) and a ``PYTHONPATH`` entry for this repository, merged into the
   environment variables OpenRLHF itself sets.

Under ``ray job submit`` the job's runtime_env wins for keys it already sets; a different setup
hook there is an error, since Ray runs only one.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .config import validate_args
from .errors import ExtensionConfigError, WideSeekExtensionError
from .install import apply

SETUP_HOOK = "training.openrlhf_ext.install.ray_worker_setup"
OPENRLHF_ENTRY = "openrlhf.cli.train_ppo_ray"
REPO_ROOT = Path(__file__).resolve().parents[2]
_JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def _job_runtime_env(environ: Mapping[str, str]) -> dict[str, Any]:
    raw = environ.get(_JOB_CONFIG_ENV)
    if not raw:
        return {}
    try:
        return dict(json.loads(raw).get("runtime_env") or {})
    except (ValueError, AttributeError) as exc:
        raise WideSeekExtensionError(
            f"cannot read the Ray job's runtime_env from {_JOB_CONFIG_ENV}: {exc}"
        ) from None


def extension_runtime_env(
    base: Mapping[str, Any] | None,
    *,
    environ: Mapping[str, str] | None = None,
    repo_root: Path = REPO_ROOT,
) -> dict[str, Any]:
    """``base`` (what OpenRLHF passes to ``ray.init``) plus the setup hook and PYTHONPATH.

    Keys that a submitted job's runtime_env already sets are left to the job (Ray refuses to
    merge conflicting keys).
    """
    environ = os.environ if environ is None else environ
    job = _job_runtime_env(environ)
    job_env_vars = job.get("env_vars") or {}
    env = dict(base or {})
    env_vars = dict(env.get("env_vars") or {})

    job_hook = job.get("worker_process_setup_hook")
    if job_hook is None:
        env["worker_process_setup_hook"] = SETUP_HOOK
    elif job_hook != SETUP_HOOK:
        raise WideSeekExtensionError(
            f"the Ray job already sets worker_process_setup_hook={job_hook!r}; Ray runs one hook per job. "
            f"Call {SETUP_HOOK}() from your hook, or drop yours."
        )
    if "PYTHONPATH" not in job_env_vars:
        parts = [str(repo_root)] + [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        env_vars["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    if env_vars:
        env["env_vars"] = env_vars
    return env


def _run_openrlhf(argv: Sequence[str]) -> None:
    import openrlhf.utils.config as openrlhf_config
    import ray

    stock_hierarchize = openrlhf_config.hierarchize
    stock_ray_init = ray.init

    def hierarchize_and_validate(args):
        hargs = stock_hierarchize(args)
        validate_args(hargs)
        return hargs

    def ray_init_with_extension(*args, runtime_env=None, **kwargs):
        return stock_ray_init(*args, runtime_env=extension_runtime_env(runtime_env), **kwargs)

    saved_argv = sys.argv
    openrlhf_config.hierarchize = hierarchize_and_validate
    ray.init = ray_init_with_extension
    try:
        sys.argv = [OPENRLHF_ENTRY, *argv]
        runpy.run_module(OPENRLHF_ENTRY, run_name="__main__", alter_sys=True)
    finally:
        sys.argv = saved_argv
        openrlhf_config.hierarchize = stock_hierarchize
        ray.init = stock_ray_init


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        apply()
        _run_openrlhf(argv)
    except ExtensionConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except WideSeekExtensionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
