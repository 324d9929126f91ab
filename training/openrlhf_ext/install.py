"""Making OpenRLHF use the subclasses, in every process that needs them.

OpenRLHF builds the objects we extend by looking a name up in the module that uses it:
``openrlhf.trainer.ppo_trainer`` instantiates ``SamplesGenerator`` and
``RemoteExperienceMaker`` (inside the ``PPOTrainer`` Ray actor), and
``openrlhf.trainer.ray.ppo_actor`` instantiates ``NaiveReplayBuffer`` and ``ActorPPOTrainer``
(inside every ``PolicyModelActor``). :func:`apply` rebinds exactly those four names to our
subclasses, in whatever process it runs; nothing else of OpenRLHF is touched.

Those modules are imported by Ray workers long after they start, and importing them eagerly
would drag DeepSpeed and vLLM into every worker, so :func:`apply` installs a small import hook
that rebinds the names right after each module executes (or at once, if it is already
imported). :func:`ray_worker_setup` is what Ray runs in each worker through the
``runtime_env`` key ``worker_process_setup_hook`` (set by ``python -m
training.openrlhf_ext.train``). Applying twice is a no-op.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .errors import WideSeekExtensionError
from .version import check_openrlhf_version, require_signature

logger = logging.getLogger(__name__)

PPO_TRAINER = "openrlhf.trainer.ppo_trainer"
PPO_ACTOR = "openrlhf.trainer.ray.ppo_actor"

# Process-wide install state: which modules are patched, and the hook object. Guarded by a
# lock because Ray actors may import from several threads.
_lock = threading.RLock()
_patched: set[str] = set()
_deferred: dict[str, tuple[ModuleType, Callable[[ModuleType], None]]] = {}
_finder: _PatchOnImport | None = None


def _patch_ppo_trainer(module: ModuleType) -> None:
    from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker
    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator

    from .experience import WideSeekExperienceMaker
    from .samples import WideSeekSamplesGenerator

    require_signature(
        SamplesGenerator, "_generate_vllm", ["dataloader_iter", "num_prompts", "dynamic_filtering"]
    )
    require_signature(SamplesGenerator, "generate_samples", [])
    require_signature(SamplesGenerator, "_process_response_into_experience", ["response"])
    require_signature(RemoteExperienceMaker, "make_experience_batch", ["rollout_samples"])
    require_signature(RemoteExperienceMaker, "compute_advantages_and_returns", ["experiences"])
    _rebind(module, "SamplesGenerator", SamplesGenerator, WideSeekSamplesGenerator)
    _rebind(module, "RemoteExperienceMaker", RemoteExperienceMaker, WideSeekExperienceMaker)


class _Deferred(Exception):
    """A patch that must wait until the module defining our subclass has finished executing."""


def _patch_ppo_actor(module: ModuleType) -> None:
    from openrlhf.trainer.ppo_utils.replay_buffer import NaiveReplayBuffer

    ours = sys.modules.get(f"{__package__}.actor")
    if ours is not None and not hasattr(ours, "WideSeekActorPPOTrainer"):
        # ``training.openrlhf_ext.actor`` is importing ppo_actor to subclass it (a fresh Ray worker unpickling
        # a
        # reference to our class does exactly this): patching now would import the half-executed module. The
        # patch runs at the end of actor.py instead (:func:`run_deferred`).
        raise _Deferred
    from .actor import WideSeekActorPPOTrainer
    from .replay import WideSeekReplayBuffer

    require_signature(NaiveReplayBuffer, "setup_dynamic_batch", ["strategy"])
    require_signature(
        module.ActorPPOTrainer, "training_step", ["experience", "kl_ctl", "step", "loss_batch_info"]
    )
    require_signature(module.ActorPPOTrainer, "broadcast_to_vllm", [])
    _rebind(module, "NaiveReplayBuffer", NaiveReplayBuffer, WideSeekReplayBuffer)
    stock_trainer = WideSeekActorPPOTrainer.__mro__[1]
    _rebind(module, "ActorPPOTrainer", stock_trainer, WideSeekActorPPOTrainer)


def _rebind(module: ModuleType, name: str, stock: type, ours: type) -> None:
    current = getattr(module, name, None)
    if current is ours:
        return
    if current is not stock:
        raise WideSeekExtensionError(
            f"{module.__name__}.{name} is {current!r}, not OpenRLHF's own class: another patch is active, "
            "and the WideSeek extension will not silently replace it"
        )
    setattr(module, name, ours)


TARGETS: dict[str, Callable[[ModuleType], None]] = {
    PPO_TRAINER: _patch_ppo_trainer,
    PPO_ACTOR: _patch_ppo_actor,
}


class _PatchingLoader(importlib.abc.Loader):
    """Delegates to the real loader, then runs the patch on the freshly executed module."""

    def __init__(self, inner: Any, fullname: str, patch: Callable[[ModuleType], None]) -> None:
        self._inner = inner
        self._fullname = fullname
        self._patch = patch

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        _run_patch(self._fullname, module, self._patch)

    def __getattr__(self, item: str) -> Any:  # get_code, get_source, is_package, ...
        return getattr(self._inner, item)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def __init__(self, targets: dict[str, Callable[[ModuleType], None]]) -> None:
        self.targets = targets

    def find_spec(self, fullname, path, target=None):
        patch = self.targets.get(fullname)
        if patch is None or fullname in _patched:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is None:
                    return None
                spec.loader = _PatchingLoader(spec.loader, fullname, patch)
                return spec
        return None


def _run_patch(fullname: str, module: ModuleType, patch: Callable[[ModuleType], None]) -> None:
    with _lock:
        if fullname in _patched:
            return
        try:
            patch(module)
        except _Deferred:
            _deferred[fullname] = (module, patch)
            return
        _deferred.pop(fullname, None)
        _patched.add(fullname)
        logger.info("WideSeek OpenRLHF extension active in %s", fullname)


def run_deferred() -> None:
    """Run the patches that waited for one of our modules to finish executing (called at their end)."""
    with _lock:
        for fullname, (module, patch) in list(_deferred.items()):
            _run_patch(fullname, module, patch)


def install_import_patches(targets: dict[str, Callable[[ModuleType], None]]) -> None:
    """Patch each target module now if imported, else right after its first import."""
    global _finder
    with _lock:
        if _finder is None:
            _finder = _PatchOnImport({})
            sys.meta_path.insert(0, _finder)
        _finder.targets.update(targets)
        for name, patch in targets.items():
            module = sys.modules.get(name)
            if module is not None:
                _run_patch(name, module, patch)


def apply() -> None:
    """Activate the extension in this process (idempotent). Raises on an unsupported OpenRLHF."""
    check_openrlhf_version()
    install_import_patches(TARGETS)


def is_applied(module_name: str | None = None) -> bool:
    """Whether the hook is installed (or, given a target module name, whether it is patched)."""
    with _lock:
        if module_name is not None:
            return module_name in _patched
        return _finder is not None and all(t in _finder.targets for t in TARGETS)


def _log_to_stdout() -> None:
    """Make the extension's INFO lines visible in Ray workers, as OpenRLHF does for its own logger.

    A Ray worker has no handler on the root logger, so INFO records (``WideSeek OpenRLHF extension active in
    ...``, the per-step ``WideSeek advantages: ...`` summary) were dropped; Ray forwards a worker's stdout to
    the
    driver's log."""
    ours = logging.getLogger(__package__)
    if not ours.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(levelname)s %(asctime)s %(name)s] %(message)s", "%H:%M:%S"))
        ours.addHandler(handler)
        ours.setLevel(logging.INFO)
        ours.propagate = False


def ray_worker_setup() -> None:
    """Ray ``worker_process_setup_hook``: runs once in every worker process of the job."""
    _log_to_stdout()
    apply()
