"""``wideseek simulate``: the simulated model as a server, over a generated world, to try everything offline.

It writes a generated world (corpus, WideSearch-format tasks with gold tables, one file per question) to a
folder, starts the simulated OpenAI-compatible server on 127.0.0.1 and prints what to paste into another
terminal so that ``wideseek run``, ``wideseek eval``, ``langgraph dev``, the examples or your own code use it.
The model is a scripted policy that plays the WideSeek protocol (hermes tool calls, reasoning, token ids,
logprobs), not an LLM: it answers only questions phrased like the world's tasks, and every reply's model name
says it is simulated.

This and the demo are the only production code that imports the simulator (docs/architecture.md); it does so
inside the command, so other commands never load it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import filecmp
import importlib.util
import shlex
import shutil
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from .exits import EXIT_USAGE

if TYPE_CHECKING:
    from ..testing import FakeOpenAIServer, Reply, SyntheticTask, World

# Every reply names this model, whatever the request asked for, so no log or trajectory passes for a real one.
SIMULATED_MODEL = "simulated-wideseek-r1"
DEFAULT_OUT = "wideseek-sim"
DEFAULT_PORT = 8000  # vLLM's: a setup written for `vllm serve` on this machine works unchanged
SAMPLE_QUESTIONS = 3
# Largest --categories / --entities: a task over 50 entities takes the policy 1 + 5 waves + the answer, within
# the paper's 10 lead turns; a bigger world would only generate tasks the default settings cannot finish.
MAX_WORLD = 50


def register(sub: Any) -> None:
    # conflict_handler="resolve": shared CLI plumbing that adds --version to every command replaces ours.
    p = sub.add_parser(
        "simulate",
        help="serve the simulated model over a generated world, to try every command offline",
        description=(
            "Write a generated world (corpus.jsonl, tasks.jsonl with widesearch_gold/, questions/) to --out, "
            "start the simulated OpenAI-compatible model server on 127.0.0.1 and print what to paste into "
            "another terminal to run `wideseek run`, `wideseek eval` and `langgraph dev` against it. The "
            "simulated model is a scripted policy speaking vLLM's protocol, not an LLM: it answers the "
            "world's tasks only. Ctrl-C stops it (exit status 130; SIGTERM: 143). Invalid options, a busy "
            "port or an --out that cannot be written: exit status 2."
        ),
        conflict_handler="resolve",
    )
    p.add_argument(
        "--out", default=DEFAULT_OUT, help=f"folder for the world's files (default ./{DEFAULT_OUT})"
    )
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}, vLLM's; 0 picks a free one)",
    )
    g = p.add_argument_group("world (the same arguments always give the same world)")
    g.add_argument("--seed", type=int, default=0, help="seed of the world (default 0)")
    g.add_argument(
        "--categories",
        type=int,
        default=3,
        help=f"categories of entities (rivers, companies, athletes, ...); two tasks each (default 3, at most "
        f"{MAX_WORLD})",
    )
    g.add_argument(
        "--entities", type=int, default=8, help=f"entities per category (default 8, at most {MAX_WORLD})"
    )
    g = p.add_argument_group("model")
    g.add_argument(
        "--think-tokens",
        type=int,
        default=40,
        help="reasoning tokens added to each reply (default 40): with --latency-token, longer replies cost "
        "time",
    )
    g.add_argument(
        "--max-context",
        type=int,
        help="reject requests longer than this many tokens, as vLLM's --max-model-len does (default: none)",
    )
    g.add_argument(
        "--no-parsers",
        action="store_true",
        help="act like vLLM started without --tool-call-parser/--reasoning-parser: <think> and <tool_call> "
        "stay in the reply text, for the client to parse",
    )
    g = p.add_argument_group(
        "latency model (seconds per request = REQUEST + tokens x (TOKEN + CONCURRENCY x other requests in "
        "flight)), to rehearse width and concurrency settings"
    )
    g.add_argument(
        "--latency-request",
        type=float,
        default=0.05,
        metavar="REQUEST",
        help="fixed seconds per request (default 0.05)",
    )
    g.add_argument(
        "--latency-token",
        type=float,
        default=0.0,
        metavar="TOKEN",
        help="seconds per generated token (default 0; about 0.01 is a 4B model on one GPU)",
    )
    g.add_argument(
        "--latency-concurrency",
        type=float,
        default=0.0,
        metavar="CONCURRENCY",
        help="seconds added to each token per other request in flight (default 0): wide waves decode slower, "
        "as on a batching server",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.set_defaults(func=simulate_command)


def _check(args: argparse.Namespace) -> str | None:
    """The first invalid option, as a message (None when all are valid)."""
    if not 0 <= args.port <= 65535:
        return f"invalid port {args.port}"
    for name in ("categories", "entities"):
        if not 1 <= getattr(args, name) <= MAX_WORLD:
            return f"--{name} must be within 1..{MAX_WORLD}"
    if args.think_tokens < 0:
        return "--think-tokens must be >= 0"
    if args.max_context is not None and args.max_context < 1:
        return "--max-context must be >= 1"
    for name in ("latency_request", "latency_token", "latency_concurrency"):
        if not getattr(args, name) >= 0:  # also rejects nan
            return f"--{name.replace('_', '-')} must be >= 0"
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return f"--out {out} exists and is not a folder"
    return None


class _Files:
    """Where the world's files go under ``--out``."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.corpus = out / "corpus.jsonl"
        self.tasks = out / "tasks.jsonl"
        self.gold = out / "widesearch_gold"  # the name `wideseek eval` finds beside tasks.jsonl unaided
        self.questions = out / "questions"
        self.index = out / "index"
        self.env = out / "env.sh"


def _write_world(world: World, files: _Files) -> list[SyntheticTask]:
    """Write the corpus (only when it changed, so the cached index stays valid), the tasks, their gold tables
    and one file per question; build the local index ahead of the first run."""
    from ..tools.local import LocalIndex

    files.out.mkdir(parents=True, exist_ok=True)
    files.env.unlink(missing_ok=True)  # a stale one would name another run's port
    fresh = world.write_corpus(files.out / ".corpus.jsonl.new")
    if files.corpus.is_file() and filecmp.cmp(fresh, files.corpus, shallow=False):
        fresh.unlink()
    else:
        fresh.replace(files.corpus)
        shutil.rmtree(files.index, ignore_errors=True)  # indexes of an earlier world
    tasks = world.tasks()
    for folder in (files.gold, files.questions):  # an earlier world's files would pass for this one's
        shutil.rmtree(folder, ignore_errors=True)
    world.write_tasks(files.out, tasks, gold_dir=files.gold.name)
    files.questions.mkdir()
    for t in tasks:
        (files.questions / f"{t.instance_id}.txt").write_text(t.query, encoding="utf-8")
    LocalIndex.open(files.corpus, files.index)
    return tasks


class _AnswersOnlyItsWorld:
    """The policy, except that a lead turn it cannot play (a question that is not one of the world's tasks)
    gets a final answer saying so, instead of an HTTP 500 the client would retry."""

    def __init__(self, policy: Any, questions: Path) -> None:
        self.policy = policy
        self.questions = questions

    def __call__(self, body: dict[str, Any]) -> Reply:
        from ..testing import Reply, request_role

        reply = self.policy(body)
        if reply.status == 200 or request_role(body) != "lead":
            return reply
        return Reply(
            hermes_text=self.policy.hermes_text,
            reasoning=f"The simulated model cannot play this task ({reply.error}).",
            content=(
                "This is the simulated model (a scripted policy, not an LLM): it answers only the tasks of "
                f"its generated world. Ask one of the questions in {self.questions}, or point "
                "OPENAI_BASE_URL at a real model server."
            ),
        )


def _make_server(args: argparse.Namespace, questions: Path) -> FakeOpenAIServer:
    from ..testing import AssistantPolicy, FakeOpenAIServer, LatencyModel, WideSeekPolicy

    # others: an agent holding the graph as a tool uses the same server (examples/langgraph_app.py)
    policy = WideSeekPolicy(
        think_tokens=args.think_tokens, hermes_text=args.no_parsers, others=AssistantPolicy()
    )
    latency = LatencyModel(
        base=args.latency_request,
        per_token=args.latency_token,
        per_token_inflight=args.latency_concurrency,
    )
    return FakeOpenAIServer(
        _AnswersOnlyItsWorld(policy, questions),
        model=SIMULATED_MODEL,
        echo_model=False,
        port=args.port,
        latency=latency,
        max_context=args.max_context,
        record_requests=False,  # a long-running server keeps no history
    )


def _env_lines(base_url: str, files: _Files) -> list[str]:
    """The shell lines that point a terminal at the server: the venv this runs in, then the settings."""
    q = shlex.quote
    activate = Path(sys.prefix) / "bin" / "activate"
    venv = [f". {q(str(activate))}"] if sys.prefix != sys.base_prefix and activate.is_file() else []
    return venv + [
        f"export OPENAI_BASE_URL={q(base_url)}",
        f"export WIDESEEK_MODEL={SIMULATED_MODEL}",
        "export WIDESEEK_SEARCH=local",
        f"export WIDESEEK_CORPUS={q(str(files.corpus))}",
        f"export WIDESEEK_INDEX_DIR={q(str(files.index))}",
        "export LANGGRAPH_CLI_NO_ANALYTICS=1  # langgraph dev sends no usage analytics",
    ]


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


def _first_line(query: str) -> str:
    return query.split("\n", 1)[0].strip()


def repository() -> Path | None:
    """The source checkout this package runs from (it holds ``langgraph.json`` and ``examples/``), or None
    for an installed wheel."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "langgraph.json").is_file() and (root / "examples").is_dir() else None


def _instructions(base_url: str, files: _Files, tasks: list[SyntheticTask]) -> str:
    """What the command prints once the server listens: everything after it can be pasted as it stands."""
    q = shlex.quote
    lines = ["", "# Paste into another terminal (or: . " + q(str(files.env)) + "):"]
    lines += _env_lines(base_url, files)
    lines += [
        "",
        f"# Sample questions (all {len(tasks)} are in {files.questions}; the simulated model answers only "
        "questions phrased like these):",
    ]
    for t in tasks[:SAMPLE_QUESTIONS]:
        lines.append(f"#   {_first_line(t.query)}")
        lines.append(f"wideseek run - < {q(str(files.questions / (t.instance_id + '.txt')))}")
    plot = "  # scores.png needs the eval extra: pip install 'langgraph-wideseek[eval]'"
    lines += [
        "",
        "# Every task, scored with the WideSearch scorer (report.md, summary.json, scores.png):",
        f"wideseek eval --tasks {q(str(files.tasks))} --out {q(str(files.out / 'eval'))} --samples 2 "
        "--exact-judge" + (plot if _missing("matplotlib") else ""),
    ]
    repo = repository()
    studio = (
        "  # needs the studio extra: pip install 'langgraph-wideseek[studio]'"
        if _missing("langgraph_cli")
        else ""
    )
    if repo is None:
        lines += ["", "# LangGraph Studio, from a clone of the repository (it holds langgraph.json):"]
        lines.append("langgraph dev" + studio)
        return "\n".join(lines + ["", "# Ctrl-C here stops the server."])
    lines += [
        "",
        "# LangGraph Studio (graph `wideseek`; your browser loads Studio's UI from smith.langchain.com):",
        f"(cd {q(str(repo))} && langgraph dev){studio}",
        "",
        "# The examples use the server when OPENAI_BASE_URL is set:",
        f"python {q(str(repo / 'examples' / 'quickstart.py'))}",
        f"python {q(str(repo / 'examples' / 'langgraph_app.py'))}",
        f"python {q(str(repo / 'examples' / 'eval_widesearch.py'))} --tasks {q(str(files.tasks))} "
        f"--out {q(str(files.out / 'eval-example'))}",
        "",
        "# Ctrl-C here stops the server.",
    ]
    return "\n".join(lines)


def _listen_error(port: int, e: OSError) -> str:
    if e.errno == errno.EADDRINUSE:
        why = "the port is in use (another server, or an earlier `wideseek simulate`?)"
    elif e.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges)"
    else:
        why = e.strerror or str(e)
    return f"cannot listen on 127.0.0.1:{port}: {why}; --port 0 picks a free port"


class _Stop:
    """SIGINT and SIGTERM, caught on the running loop from before the server starts until it has stopped, so
    a signal at any point of the start-up still stops the server cleanly. ``status`` is what a shell reports
    for the signal: 128 + its number (Ctrl-C: 130)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.signal: asyncio.Future[int] = self.loop.create_future()
        self.installed: list[signal.Signals] = []

    def __enter__(self) -> _Stop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.loop.add_signal_handler(sig, self._got, int(sig))
            except (NotImplementedError, RuntimeError):  # not on this platform, or not the main thread
                continue
            self.installed.append(sig)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig in self.installed:
            self.loop.remove_signal_handler(sig)

    def _got(self, signum: int) -> None:
        if not self.signal.done():
            self.signal.set_result(signum)

    async def wait(self) -> int:
        return 128 + await self.signal


def simulate_command(args: argparse.Namespace) -> int:
    problem = _check(args)
    if problem:
        print(f"wideseek: {problem}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_serve(args, _Files(Path(args.out).resolve())))


async def _serve(args: argparse.Namespace, files: _Files) -> int:
    """Listen (so a busy port fails before anything is written), write the world, serve until SIGINT or
    SIGTERM; the exit status."""
    from ..testing import World
    from ..tools.local import CorpusError

    server = _make_server(args, files.questions)
    with _Stop() as stop:
        try:
            await server.start()
        except OSError as e:
            print(f"wideseek: {_listen_error(args.port, e)}", file=sys.stderr)
            return EXIT_USAGE
        try:
            world = World.generate(
                seed=args.seed, n_categories=args.categories, entities_per_category=args.entities
            )
            try:
                tasks = await asyncio.to_thread(_write_world, world, files)
                # Written once the world is ready: a script can wait for this file and source it.
                await asyncio.to_thread(
                    files.env.write_text, "\n".join(_env_lines(server.base_url, files)) + "\n", "utf-8"
                )
            except (OSError, CorpusError) as e:
                why = e.strerror if isinstance(e, OSError) and e.strerror else e
                print(f"wideseek: cannot write the world to {files.out}: {why}", file=sys.stderr)
                return EXIT_USAGE
            _print_ready(args, server.base_url, world, files, tasks)
            status = await stop.wait()
        finally:
            await server.stop()
            with contextlib.suppress(OSError):  # an --out that could not be written holds none
                await asyncio.to_thread(files.env.unlink, missing_ok=True)
    st = server.stats
    print(
        f"stopped by {signal.Signals(status - 128).name}: {st.requests} requests (at most {st.peak_inflight} "
        f"in flight), {st.prompt_tokens} prompt + {st.completion_tokens} completion tokens",
        file=sys.stderr,
    )
    return status


def _print_ready(
    args: argparse.Namespace, base_url: str, world: World, files: _Files, tasks: list[SyntheticTask]
) -> None:
    # The first line says what this is and where it listens (scripts can wait for it and read the URL).
    print(
        f"SIMULATED model server at {base_url} (model {SIMULATED_MODEL}: a scripted policy, not an LLM)",
        flush=True,
    )
    latency = f"latency: {args.latency_request:g} s per request + {args.latency_token:g} s per token"
    if args.latency_concurrency:
        latency += f" (+{args.latency_concurrency:g} s per token per other request in flight)"
    print(
        f"world: seed {args.seed}, {len(world.categories)} categories x {args.entities} entities, "
        f"{len(world.pages)} pages, {len(tasks)} tasks in {files.out}\n{latency}"
    )
    print(_instructions(base_url, files, tasks), flush=True)
