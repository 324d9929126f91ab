"""The run-only vLLM shim (tests/gpu/vllm_shim) under OpenRLHF 0.11.2's own classes, on the CPU.

OpenRLHF's ``RolloutRayActor`` (the class itself, driven in-process without Ray), its ``WorkerWrap`` and its
``stateless_init_process_group`` run unmodified on top of the shim, backed by ``HFEngine`` with a tiny random
Qwen3: generation equals a plain ``HFEngine`` on the same model, weights broadcast by a "trainer" thread
arrive through ``WorkerWrap.update_weight`` (gloo instead of NCCL on the CPU), sleep/wake ordering mistakes
raise, and every vLLM name OpenRLHF's Ray path uses exists in the shim. The CUDA-only bits of ``WorkerWrap``
(``torch.empty`` on "cuda", CUDA streams, IPC handles) are redirected to the CPU here; the GPU run exercises
them for real.
"""

from __future__ import annotations

import ast
import copy
import importlib
import pickle
import socket
import sys
import threading
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("openrlhf")
pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[2]
SHIM = Path(__file__).resolve().parent / "vllm_shim"
ASSETS = REPO / "tests" / "training" / "assets"
WRAP = "openrlhf.trainer.ray.vllm_worker_wrap.WorkerWrap"


@pytest.fixture(scope="module")
def shim():
    """``import vllm`` resolves to the shim inside this module only; everything imported meanwhile is
    forgotten
    afterwards (so other tests still see whatever vLLM the environment really has, usually none)."""

    def bound_to_vllm(name: str) -> bool:
        return name.split(".")[0] == "vllm" or name.startswith(
            ("openrlhf.trainer", "openrlhf.utils.distributed")
        )

    # a real vLLM imported earlier in this process (and OpenRLHF modules bound to it) step aside meanwhile
    saved = {n: m for n, m in sys.modules.items() if bound_to_vllm(n)}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(SHIM))
    try:
        import vllm

        assert getattr(vllm, "IS_SHIM", False), f"a real vllm shadows the shim: {vllm.__file__}"
        yield vllm
    finally:
        sys.path.remove(str(SHIM))
        for name in [n for n in sys.modules if bound_to_vllm(n)]:
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.fixture(autouse=True)
def outside_ray(monkeypatch):
    # RolloutRayActor records the Ray address for vLLM's own Ray use; driven in-process there is none (and the
    # shim never connects to it)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from training.tiny_qwen3 import build_model

    tok = transformers.AutoTokenizer.from_pretrained(str(ASSETS / "tiny-qwen3"))
    path = tmp_path_factory.mktemp("tiny-qwen3")
    build_model(len(tok), preset="test", max_position_embeddings=512, seed=0).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def rollout_actor_class():
    """OpenRLHF's RolloutRayActor as written (Ray's wrapper subclasses it)."""
    from openrlhf.trainer.ray.vllm_engine import RolloutRayActor

    return RolloutRayActor.__ray_metadata__.modified_class.__mro__[1]


def engine_kwargs(model_dir, **over):
    """What ``create_vllm_engines`` passes to ``RolloutRayActor`` (colocated, sleep mode on)."""
    kw = dict(
        model=str(model_dir),
        enforce_eager=False,
        worker_extension_cls=WRAP,
        tensor_parallel_size=1,
        seed=0,
        distributed_executor_backend="uni",
        max_model_len=512,
        enable_prefix_caching=True,
        dtype="float32",
        trust_remote_code=True,
        full_determinism=False,
        gpu_memory_utilization=0.6,
        bundle_indices=None,
        num_gpus=0.2,
        enable_sleep_mode=True,
        agent_func_path=None,
        remote_rm_url=None,
        mm_pad_token_ids=set(),
    )
    kw.update(over)
    return kw


async def make_actor(model_dir, **over):
    actor = object.__new__(rollout_actor_class())
    await actor.__init__(**engine_kwargs(model_dir, **over))
    return actor


def sampling(shim, **kw):
    # what OpenRLHF's SamplesGenerator builds (samples_generator.py), plus per-test overrides
    base = dict(
        temperature=1.0,
        top_p=1.0,
        top_k=-1,
        max_tokens=10,
        min_tokens=1,
        skip_special_tokens=False,
        logprobs=None,
    )
    base.update(kw)
    return shim.SamplingParams(**base)


async def test_generation_through_openrlhfs_actor_equals_a_plain_hf_engine(shim, model_dir):
    from training.engine import read_generation
    from training.hf_engine import HFEngine

    actor = await make_actor(model_dir)
    try:
        assert actor.llm.dtype == torch.float32 and actor.llm.device.type == "cpu"
        await actor.wake_up()  # engines start asleep in sleep mode; generation wakes them
        prompt = [5, 17, 42, 9, 33]
        out = await actor.generate(prompt, sampling(shim, temperature=0.0, logprobs=1))
        assert out.prompt_token_ids == prompt and actor.get_num_unfinished_requests() == 0
        plain_model = transformers.AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        plain = HFEngine(plain_model, transformers.AutoTokenizer.from_pretrained(str(model_dir)), seed=0)
        try:
            want = await plain.generate(prompt, sampling(shim, temperature=0.0, logprobs=1))
        finally:
            plain.close()
        got_gen, want_gen = read_generation(out), read_generation(want)
        assert got_gen.token_ids == want_gen.token_ids and len(got_gen.token_ids) == 10
        assert got_gen.logprobs == pytest.approx(want_gen.logprobs, abs=1e-5)
        # the sampling params travel through Ray by pickle, and the endpoint copies them with overrides
        from training.engine import make_sampling_params

        sp = pickle.loads(pickle.dumps(sampling(shim, max_tokens=None)))
        copy_ = make_sampling_params(sp, max_tokens=7, stop=["\n"])
        assert type(copy_) is shim.SamplingParams and copy_.max_tokens == 7 and copy_.stop == ["\n"]
        assert sp.max_tokens is None
    finally:
        actor.llm.shutdown()


async def test_sleep_and_wake_follow_vllm_and_refuse_out_of_order_use(shim, model_dir):
    actor = await make_actor(model_dir)
    try:
        await actor.sleep()
        assert await actor.llm.is_sleeping()
        with pytest.raises(RuntimeError, match="sleeps"):
            await actor.generate([1, 2, 3], sampling(shim))
        name, p = next(iter(actor.llm.hf.model.named_parameters()))
        with pytest.raises(RuntimeError, match="wake_up"):
            actor.llm._load_weights([(name, p.detach().clone())])
        await actor.wake_up(tags=["weights"])  # what PPOTrainer.broadcast_to_vllm does first
        actor.llm._load_weights([(name, p.detach().clone())])
        with pytest.raises(RuntimeError, match="sleeps"):
            await actor.generate([1, 2, 3], sampling(shim))
        await actor.wake_up()  # what the samples generator does before generating
        await actor.wake_up()  # waking an awake engine is harmless, as in vLLM
        out = await actor.generate([1, 2, 3], sampling(shim, max_tokens=3))
        assert len(out.outputs[0].token_ids) == 3
        await actor.reset_prefix_cache()
        await actor.pause_generation()
        await actor.resume_generation()
        assert actor.llm.calls["reset_prefix_cache"] == 1 and actor.llm.calls["pause_generation"] == 1
    finally:
        actor.llm.shutdown()


@pytest.fixture
def cuda_on_cpu(monkeypatch):
    """WorkerWrap allocates receive buffers with device="cuda" and passes CUDA streams: redirect to the
    CPU."""
    real_empty = torch.empty

    def empty(*args, **kw):
        if str(kw.get("device", "")).startswith("cuda"):
            kw["device"] = "cpu"
        return real_empty(*args, **kw)

    monkeypatch.setattr(torch, "empty", empty)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_weights_arrive_through_workerwrap_broadcast_and_generation_follows(
    shim, model_dir, cuda_on_cpu, tmp_path, monkeypatch
):
    """OpenRLHF's trainer side (stateless_init_process_group + broadcast, as ActorPPOTrainer does for
    non-colocated engines) against the engine's WorkerWrap.init_process_group / update_weight, over the shim's
    communicator; the
    probes both sides save after the sync pass the launch check."""
    from openrlhf.utils.distributed_util import stateless_init_process_group

    monkeypatch.setenv("WIDESEEK_DEBUG_DIR", str(tmp_path / "debug"))
    monkeypatch.setenv(
        "WIDESEEK_PROBE_TRAINER_ATTN", "eager"
    )  # on the GPU: flash_attention_2 (the trainer's)

    from training.engine import read_generation
    from training.hf_engine import HFEngine

    actor = await make_actor(model_dir)
    try:
        await actor.wake_up()
        new = transformers.AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        torch.manual_seed(7)
        with torch.no_grad():
            for p in new.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        params = list(new.named_parameters())
        port = free_port()
        group: dict = {}
        trainer = threading.Thread(
            target=lambda: group.update(
                pg=stateless_init_process_group("127.0.0.1", port, 0, 2, torch.device("cpu"))
            )
        )
        trainer.start()
        await actor.init_process_group("127.0.0.1", port, 1, 2, "openrlhf", backend="nccl", use_ray=False)
        trainer.join(60)
        assert "pg" in group
        for i, (name, p) in enumerate(params):
            sender = threading.Thread(target=group["pg"].broadcast, args=(p.data, 0), kwargs={"stream": None})
            sender.start()
            await actor.update_weight(name, dtype=p.dtype, shape=p.shape, empty_cache=i == len(params) - 1)
            sender.join(60)
        eng = dict(actor.llm.hf.model.named_parameters())
        for name, p in params:
            assert torch.equal(eng[name], p.data), name
        assert actor.llm.syncs == 1 and actor.llm.calls["update_weight"] == len(params)
        prompt = [3, 1, 4, 1, 5, 9, 2, 6]
        got = read_generation(await actor.generate(prompt, sampling(shim, temperature=0.0)))
        plain = HFEngine(new.eval(), transformers.AutoTokenizer.from_pretrained(str(model_dir)), seed=0)
        try:
            want = read_generation(await plain.generate(prompt, sampling(shim, temperature=0.0)))
        finally:
            plain.close()
        assert got.token_ids == want.token_ids
        # the trainer's probe (what ActorPPOTrainer.broadcast_to_vllm adds under WIDESEEK_DEBUG_DIR) vs the
        # engine's
        from types import SimpleNamespace as NS

        from training.openrlhf_ext import debug

        sys.path.append(str(Path(__file__).resolve().parent))
        import check_launch

        class DSEngine:  # what trainer.actor.model is: a DeepSpeed engine around the HF model
            module = new

            def __call__(self, **kw):
                return new(**kw)

        debug.save_trainer_probe(NS(actor=NS(model=DSEngine()), strategy=NS(args=NS(ds=NS(zero_stage=0)))))
        probes = check_launch.check_probes(tmp_path / "debug")
        assert probes["ok"], probes
        (sync,) = probes["syncs"]
        (eng,) = sync["per_engine"]
        assert eng["digest_equal"] and eng["logprob_max_abs_diff"] < 1e-5 and eng["argmax_agreement"] == 1.0
        assert eng["same_attention_error"] is None and eng["logprob_max_abs_diff_same_attention"] < 1e-4
    finally:
        actor.llm.shutdown()


async def test_cuda_ipc_entry_point_hands_the_rebuilt_tensor_to_load_weights(
    shim, model_dir, cuda_on_cpu, monkeypatch
):
    """The colocated path's plumbing: WorkerWrap.update_weight_cuda_ipc picks this GPU's handle, rebuilds the
    tensor (a stand-in rebuild function here; CUDA IPC needs a GPU) and loads it; a sync that leaves a
    parameter
    stale is refused."""
    import openrlhf.trainer.ray.utils as ray_utils

    monkeypatch.setattr(ray_utils, "get_physical_gpu_id", lambda: "GPU-this")
    actor = await make_actor(model_dir)
    try:
        await actor.wake_up(tags=["weights"])
        params = list(actor.llm.hf.model.named_parameters())
        seen_args = []

        def rebuild(*args):
            seen_args.append(args)
            return args[0]

        for i, (name, p) in enumerate(params):
            value = torch.full_like(p.data, 0.25)
            handles = {
                "GPU-this": (rebuild, (value, 1, 2, 3, 4, 5, "device-slot", 7)),
                "GPU-other": (None, ()),
            }
            await actor.update_weight_cuda_ipc(
                name, dtype=p.dtype, shape=p.shape, ipc_handles=handles, empty_cache=i == len(params) - 1
            )
        assert all(a[6] == actor.llm.device.index for a in seen_args)  # WorkerWrap rewrote the device slot
        assert all(torch.all(p == 0.25) for _, p in actor.llm.hf.model.named_parameters())
        name, p = params[0]
        with pytest.raises(RuntimeError, match="stale"):
            await actor.update_weight_cuda_ipc(
                name,
                dtype=p.dtype,
                shape=p.shape,
                ipc_handles={"GPU-this": (rebuild, (p.data, 1, 2, 3, 4, 5, 6, 7))},
                empty_cache=True,
            )
    finally:
        actor.llm.shutdown()


def test_sampling_params_take_openrlhfs_fields_and_refuse_what_the_engine_would_ignore(shim):
    sp = shim.SamplingParams(
        temperature=0.7,
        top_p=0.9,
        top_k=-1,
        max_tokens=None,
        min_tokens=1,
        skip_special_tokens=False,
        logprobs=1,
    )
    assert copy.deepcopy(sp) == sp
    with pytest.raises(TypeError):
        shim.SamplingParams(guided_decoding={"json": {}})
    with pytest.raises(NotImplementedError):
        shim.SamplingParams(prompt_logprobs=1)
    with pytest.raises(NotImplementedError):
        shim.SamplingParams(n=2)
    with pytest.raises(NotImplementedError, match="tensor_parallel_size"):
        shim.AsyncEngineArgs(model="x", tensor_parallel_size=2)


def _openrlhf_file(rel: str) -> Path:
    import openrlhf

    return Path(openrlhf.__file__).parent / rel


def test_every_vllm_name_openrlhf_uses_on_the_ray_path_exists_in_the_shim(shim):
    """Reads OpenRLHF's source: each ``from vllm... import X``, ``vllm.X`` and ``self.llm.X`` must resolve."""
    files = [
        "trainer/ray/vllm_engine.py",
        "trainer/ray/vllm_worker_wrap.py",
        "trainer/ray/ppo_actor.py",
        "trainer/ppo_utils/samples_generator.py",
        "utils/distributed_util.py",
        "cli/train_ppo_ray.py",
    ]
    from vllm.engine.async_llm_engine import AsyncLLMEngine, ShimWorkerBase

    wanted_llm: set[str] = set()
    wanted_self: set[str] = set()
    for rel in files:
        tree = ast.parse(_openrlhf_file(rel).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "vllm":
                mod = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(mod, alias.name), f"{rel}: from {node.module} import {alias.name}"
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "vllm"
            ):
                assert hasattr(shim, node.attr), f"{rel}: vllm.{node.attr}"
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "llm"
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "self"
            ):
                wanted_llm.add(node.attr)
            if (
                rel.endswith("vllm_worker_wrap.py")
                and isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
            ):
                wanted_self.add(node.attr)
    assert wanted_llm >= {
        "generate",
        "collective_rpc",
        "sleep",
        "wake_up",
        "is_sleeping",
        "reset_prefix_cache",
    }
    for attr in wanted_llm:
        assert hasattr(AsyncLLMEngine, attr) or attr == "output_processor", f"self.llm.{attr}"
    set_by_wrap = {"_model_update_with_ray", "_model_update_group"}
    worker_attrs = {"device", "model_config", "model_runner"}
    assert wanted_self - set_by_wrap == worker_attrs
    assert all(a in ShimWorkerBase.__init__.__code__.co_names for a in worker_attrs)
