"""apply(): version guard, the import hook, idempotence, and the rebinding in OpenRLHF's modules."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parent / "stubs"))

from training.openrlhf_ext import install, version
from training.openrlhf_ext.errors import UnsupportedOpenRLHFVersion, WideSeekExtensionError


def test_version_guard_refuses_other_versions(monkeypatch):
    monkeypatch.setattr(version, "installed_openrlhf_version", lambda: "0.11.1")
    with pytest.raises(UnsupportedOpenRLHFVersion, match="supports openrlhf==0.11.2 only, found 0.11.1"):
        version.check_openrlhf_version()
    with pytest.raises(UnsupportedOpenRLHFVersion):
        install.apply()  # apply() checks before touching anything


def test_version_guard_explains_missing_openrlhf(monkeypatch):
    monkeypatch.setattr(version, "installed_openrlhf_version", lambda: None)
    with pytest.raises(UnsupportedOpenRLHFVersion, match="not installed"):
        version.check_openrlhf_version()


def test_structural_guard_names_the_missing_parameter():
    class Thing:
        def run(self, a):
            return a

    version.require_signature(Thing, "run", ["a"])
    with pytest.raises(UnsupportedOpenRLHFVersion, match=r"lacks parameters \['b'\]"):
        version.require_signature(Thing, "run", ["a", "b"])
    with pytest.raises(UnsupportedOpenRLHFVersion, match="no method"):
        version.require_signature(Thing, "walk", [])


def _write_pkg(root: Path, name: str) -> None:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    (root / name / "user.py").write_text(
        textwrap.dedent(
            """
            class Stock:
                pass

            def build():
                return Stock()  # looked up in this module at call time, like OpenRLHF does
            """
        )
    )


def test_import_hook_patches_after_first_import_once(tmp_path, monkeypatch):
    name = "wideseek_hooktest_a"
    _write_pkg(tmp_path, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    calls = []

    def patch(module):
        calls.append(module.__name__)

        class Ours(module.Stock):
            pass

        module.Stock = Ours

    install.install_import_patches({f"{name}.user": patch})
    assert f"{name}.user" not in sys.modules
    mod = importlib.import_module(f"{name}.user")
    assert type(mod.build()).__name__ == "Ours"
    install.install_import_patches({f"{name}.user": patch})  # again: no second patch
    importlib.import_module(f"{name}.user")
    assert calls == [f"{name}.user"]
    assert mod.__spec__.loader.get_source(f"{name}.user").count("class Stock") == 1  # delegation


def test_import_hook_patches_already_imported_module(tmp_path, monkeypatch):
    name = "wideseek_hooktest_b"
    _write_pkg(tmp_path, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module(f"{name}.user")
    install.install_import_patches({f"{name}.user": lambda m: setattr(m, "patched", True)})
    assert mod.patched is True
    assert install.is_applied(f"{name}.user")


def test_rebind_refuses_to_replace_a_foreign_patch():
    import types

    class Stock: ...

    class Ours(Stock): ...

    class Foreign(Stock): ...

    mod = types.ModuleType("m")
    mod.Name = Foreign
    with pytest.raises(WideSeekExtensionError, match="another patch is active"):
        install._rebind(mod, "Name", Stock, Ours)
    mod.Name = Stock
    install._rebind(mod, "Name", Stock, Ours)
    install._rebind(mod, "Name", Stock, Ours)  # idempotent
    assert mod.Name is Ours


def test_apply_rebinds_the_three_openrlhf_names():
    pytest.importorskip("openrlhf")
    pytest.importorskip("vllm")  # openrlhf.trainer.ray / ppo_trainer import vLLM at module level
    install.apply()
    install.apply()
    assert install.is_applied()
    from openrlhf.trainer import ppo_trainer
    from openrlhf.trainer.ppo_utils import experience_maker, replay_buffer, samples_generator
    from openrlhf.trainer.ray import ppo_actor

    from training.openrlhf_ext.experience import WideSeekExperienceMaker
    from training.openrlhf_ext.replay import WideSeekReplayBuffer
    from training.openrlhf_ext.samples import WideSeekSamplesGenerator

    assert ppo_trainer.SamplesGenerator is WideSeekSamplesGenerator
    assert ppo_trainer.RemoteExperienceMaker is WideSeekExperienceMaker
    assert ppo_actor.NaiveReplayBuffer is WideSeekReplayBuffer
    from training.openrlhf_ext.actor import WideSeekActorPPOTrainer

    assert ppo_actor.ActorPPOTrainer is WideSeekActorPPOTrainer
    # Only the users' names change; OpenRLHF's own classes stay as they are.
    assert samples_generator.SamplesGenerator is not WideSeekSamplesGenerator
    assert experience_maker.RemoteExperienceMaker is not WideSeekExperienceMaker
    assert replay_buffer.NaiveReplayBuffer is not WideSeekReplayBuffer
    assert install.is_applied(install.PPO_TRAINER) and install.is_applied(install.PPO_ACTOR)


class _FakeEngine:
    def __init__(self, log):
        self.log = log

    def set_gradient_accumulation_boundary(self, is_boundary):
        self.log.append(("boundary", is_boundary))


def test_mark_accumulation_boundary_reaches_the_deepspeed_engine():
    pytest.importorskip("openrlhf")
    from types import SimpleNamespace as NS

    from training.openrlhf_ext.replay import mark_accumulation_boundary

    log = []
    mark_accumulation_boundary(NS(model=_FakeEngine(log)), 0)
    mark_accumulation_boundary(NS(model=_FakeEngine(log)), 1)
    mark_accumulation_boundary(NS(model=object()), True)  # no DeepSpeed engine: nothing to do
    assert log == [("boundary", False), ("boundary", True)]


def test_policy_trainer_marks_the_boundary_before_each_micro_batch(monkeypatch):
    pytest.importorskip("openrlhf")
    pytest.importorskip("vllm")
    from types import SimpleNamespace as NS

    from openrlhf.trainer.ray import ppo_actor

    from training.openrlhf_ext.actor import WideSeekActorPPOTrainer

    log = []
    stock = WideSeekActorPPOTrainer.__mro__[1]
    monkeypatch.setattr(
        stock, "training_step", lambda self, exp, kl, step, info=None: log.append(("step", step)) or {}
    )
    trainer = object.__new__(WideSeekActorPPOTrainer)  # the real __init__ needs CUDA and torch.distributed
    trainer.args = NS(train=NS(dynamic_batch_enable=True))
    trainer.actor = NS(model=_FakeEngine(log))
    trainer.replay_buffer = NS(dynamic_optimizer_step=[0, 0, 1])
    for step in range(3):
        trainer.training_step(None, 0.001, step)
    assert log == [
        ("boundary", False),
        ("step", 0),
        ("boundary", False),
        ("step", 1),
        ("boundary", True),
        ("step", 2),
    ]
    assert issubclass(WideSeekActorPPOTrainer, stock) and stock.__module__ == ppo_actor.__name__
