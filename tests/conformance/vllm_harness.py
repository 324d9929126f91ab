"""vLLM's own OpenAI API server on a CPU, over a scripted engine core.

What runs is vLLM 0.29's ``vllm serve`` path as far as it goes without a model: its CLI parser and argument
checks, ``build_async_engine_client`` (the real ``AsyncLLM``: the input processor that turns a rendered prompt
into an engine request, the output processor with vLLM's detokenizer, logprobs processing and stop-string
handling), ``build_app`` and ``init_app_state`` (``OpenAIServingChat`` with the chat template renderer, the
``hermes`` tool parser and the ``qwen3`` reasoning parser), served by uvicorn on 127.0.0.1.

The one stand-in is the engine *core* (scheduler + model + sampler, which vLLM runs in a separate process):
``EngineCoreClient.make_async_mp_client`` is replaced, for the server's start only, by :class:`ScriptedCore`.
It takes each engine request's prompt token ids and sampling params, asks an engine with OpenRLHF's
``generate(prompt_token_ids, sampling_params)`` shape (usually :class:`training.testing.ScriptedEngine`) for
the completion, and streams it back one token per step, with the sampled token's logprob, the way the real
core does. So the same engine object can drive both vLLM's server and the in-actor endpoint
(``training.endpoint``), and their responses can be compared field by field.

Importing this module imports vLLM (about 15 s). Environment set here, before vLLM reads it:
``VLLM_TARGET_DEVICE=cpu`` (vLLM's CPU platform; without it the platform is undetected and the engine config
cannot be built), no usage statistics, Hugging Face offline.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self
from unittest import mock

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

import numpy as np
import uvicorn
import vllm
from vllm.entrypoints.launchers.api_server.app_state import init_app_state
from vllm.entrypoints.launchers.api_server.entry import build_async_engine_client
from vllm.entrypoints.launchers.app import build_app
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.utils.argparse_utils import FlexibleArgumentParser
from vllm.v1.engine import EngineCoreOutput, EngineCoreOutputs, EngineCoreRequest, FinishReason
from vllm.v1.engine.core_client import EngineCoreClient
from vllm.v1.outputs import LogprobsLists

from training.engine import read_generation

VLLM_VERSION = vllm.__version__
ASSETS = Path(__file__).resolve().parents[1] / "training" / "assets" / "tiny-qwen3"

# The flags issue 11 names, as a WideSeek deployment starts vLLM.
SERVE_FLAGS = ("--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--reasoning-parser", "qwen3")

_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH, "abort": FinishReason.ABORT}


def make_model_dir(path: Path, *, tokenizer_dir: Path = ASSETS) -> Path:
    """A model folder vLLM can configure itself from: the project's tiny Qwen3-style tokenizer and chat template,
    a small ``Qwen3ForCausalLM`` config (never loaded: no weights exist), and a generation config with Qwen3's
    two end tokens."""
    from transformers import AutoTokenizer, Qwen3Config

    path.mkdir(parents=True, exist_ok=True)
    for f in tokenizer_dir.iterdir():
        if f.is_file():
            shutil.copy(f, path / f.name)
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    cfg = Qwen3Config(vocab_size=2048, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=40960,
                      eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                      pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"))
    cfg.architectures = ["Qwen3ForCausalLM"]
    cfg.save_pretrained(str(path))
    (path / "generation_config.json").write_text(json.dumps({
        "eos_token_id": [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")],
        "pad_token_id": tok.convert_tokens_to_ids("<|endoftext|>"),
    }))
    return path


class ScriptedCore:
    """Stands in for vLLM's engine-core client (``AsyncMPClient``) inside the real ``AsyncLLM``.

    ``engine`` (settable between requests) is anything with ``await engine.generate(prompt_token_ids,
    sampling_params)`` returning a vLLM-shaped ``RequestOutput``. Its completion is streamed back one token per
    engine step as ``EngineCoreOutputs``; the last step carries the finish reason. The sampled token's logprob
    travels as a one-column ``LogprobsLists`` when the request asked for logprobs, as vLLM's sampler sends it.
    A request aborted by the output processor (a stop string) stops producing steps, as in the real core.
    """

    engine_ranks_managed = (0,)

    def __init__(self, engine: Any = None) -> None:
        self.engine = engine
        self.requests: list[EngineCoreRequest] = []
        self._queue: asyncio.Queue[EngineCoreOutputs] | None = None
        self._aborted: set[str] = set()
        self._tasks: set[asyncio.Task] = set()

    def _q(self) -> asyncio.Queue[EngineCoreOutputs]:
        if self._queue is None:
            self._queue = asyncio.Queue()
        return self._queue

    # --- what AsyncLLM calls -------------------------------------------------------------------------------
    async def add_request_async(self, request: EngineCoreRequest) -> None:
        self.requests.append(request)
        task = asyncio.get_running_loop().create_task(self._run(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def get_output_async(self) -> EngineCoreOutputs:
        return await self._q().get()

    async def abort_requests_async(self, request_ids: Sequence[str]) -> None:
        self._aborted.update(request_ids)

    async def get_supported_tasks_async(self) -> tuple[str, ...]:
        return ("generate",)

    async def reset_mm_cache_async(self) -> None:
        return None

    async def reset_prefix_cache_async(self, *args: Any, **kwargs: Any) -> bool:
        return True

    async def is_sleeping_async(self) -> bool:
        return False

    def dp_engines_running(self) -> bool:
        return False

    def shutdown(self, timeout: float | None = None) -> None:
        for t in list(self._tasks):
            t.cancel()

    class resources:  # AsyncLLM reads engine_core.resources.engine_dead
        engine_dead = False

    # --- the scripted "model" ------------------------------------------------------------------------------
    async def _run(self, request: EngineCoreRequest) -> None:
        rid = request.request_id
        params = request.sampling_params
        try:
            gen = read_generation(await self.engine.generate(list(request.prompt_token_ids or []), params))
        except Exception:
            # the real core reports a failed request as finish_reason "error" (the server answers 500)
            self._q().put_nowait(EngineCoreOutputs(outputs=[EngineCoreOutput(
                request_id=rid, new_token_ids=[], finish_reason=FinishReason.ERROR)]))
            raise
        want_logprobs = params is not None and params.logprobs is not None
        if want_logprobs and gen.logprobs is None:
            raise RuntimeError("the scripted engine returned no logprobs although the request asked for them")
        ids = gen.token_ids
        eos = getattr(request, "eos_token_id", None)
        # A stop *string* is found by the frontend's detokenizer, which then aborts the request: the core itself
        # never reports it, so those tokens go out unfinished.
        by_stop_string = isinstance(gen.stop_reason, str)
        for i, tok in enumerate(ids):
            if rid in self._aborted:
                return
            last = i == len(ids) - 1
            finish = _FINISH[gen.finish_reason] if last and not by_stop_string else None
            stop_reason = None
            if last and gen.finish_reason == "stop" and tok != eos and tok in (params.stop_token_ids or ()):
                stop_reason = tok  # what vLLM's scheduler records for a stop token that is not the EOS
            new_logprobs = None
            if want_logprobs:
                new_logprobs = LogprobsLists(
                    logprob_token_ids=np.array([[tok]], dtype=np.int32),
                    logprobs=np.array([[gen.logprobs[i]]], dtype=np.float32),
                    sampled_token_ranks=np.array([1], dtype=np.int32),
                )
            self._q().put_nowait(EngineCoreOutputs(outputs=[EngineCoreOutput(
                request_id=rid, new_token_ids=[tok], new_logprobs=new_logprobs, finish_reason=finish,
                stop_reason=stop_reason)]))
            await asyncio.sleep(0)
        if by_stop_string:
            for _ in range(100):  # the output handler aborts once it has seen the stop string
                if rid in self._aborted:
                    return
                await asyncio.sleep(0.001)
            self._q().put_nowait(EngineCoreOutputs(outputs=[EngineCoreOutput(
                request_id=rid, new_token_ids=[], finish_reason=FinishReason.STOP)]))


class VLLMServer:
    """vLLM's OpenAI API server on 127.0.0.1 in a background thread with its own event loop.

    ``serve_args`` are ``vllm serve`` arguments after the model path (the parser flags by default).
    """

    def __init__(self, model_dir: Path, *, max_model_len: int = 16384, served_model_name: str = "policy",
                 serve_args: Sequence[str] = SERVE_FLAGS, engine: Any = None) -> None:
        self.model_dir = model_dir
        self.argv = ["--model", str(model_dir), "--served-model-name", served_model_name,
                     "--max-model-len", str(max_model_len), "--disable-log-stats", "--host", "127.0.0.1",
                     "--port", "0", *serve_args]
        self.core = ScriptedCore(engine)
        self.max_model_len = max_model_len
        self.model_name = served_model_name
        self.startup_seconds: float | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port: int | None = None

    @property
    def engine(self) -> Any:
        return self.core.engine

    @engine.setter
    def engine(self, engine: Any) -> None:
        self.core.engine = engine

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def parse_args(self):
        parser = make_arg_parser(FlexibleArgumentParser(description="vLLM OpenAI-compatible server (CPU test)"))
        args = parser.parse_args(self.argv)
        validate_parsed_serve_args(args)
        return args

    def start(self, timeout: float = 300.0) -> VLLMServer:
        t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._thread_main, name="vllm-api-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"vLLM's API server did not start within {timeout:g}s")
        if self._error is not None:
            raise RuntimeError(f"vLLM's API server failed to start: {self._error!r}") from self._error
        self.startup_seconds = time.perf_counter() - t0
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # noqa: BLE001  (reported to start())
            self._error = e
        finally:
            self._ready.set()

    async def _main(self) -> None:
        args = self.parse_args()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        core = self.core
        try:
            with mock.patch.object(EngineCoreClient, "make_async_mp_client", staticmethod(lambda *a, **k: core)):
                client_cm = build_async_engine_client(args)
                engine_client = await client_cm.__aenter__()
            try:
                tasks = await engine_client.get_supported_tasks()
                app = build_app(args, tasks, engine_client.model_config)
                await init_app_state(engine_client, app.state, args, tasks)
                config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=30)
                self._server = uvicorn.Server(config)
                serving = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))
                while not self._server.started and not serving.done():
                    await asyncio.sleep(0.01)
                self._ready.set()
                await serving
            finally:
                await client_cm.__aexit__(None, None, None)
        finally:
            sock.close()
