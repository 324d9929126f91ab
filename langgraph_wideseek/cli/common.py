"""Options shared by the commands that run the agent (``run``, ``eval``)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..config import WideSeekConfig
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..graph.builder import WideSeekGraph

# CLI flag -> config field. Flags default to None so that unset flags fall through to env and defaults.
AGENT_FLAGS: dict[str, str] = {
    "base_url": "base_url",
    "model": "model",
    "api_key": "api_key",
    "search": "search",
    "corpus": "corpus",
    "index_dir": "index_dir",
    "retriever_url": "retriever_url",
    "max_subagents": "max_subagents",
    "max_lead_turns": "max_lead_turns",
    "max_subagent_turns": "max_subagent_turns",
    "context_tokens": "context_tokens",
    "temperature": "temperature",
    "language": "language",
    "prompt_dir": "prompt_dir",
    "summary_base_url": "summary_base_url",
    "summary_model": "summary_model",
    "summary_api_key": "summary_api_key",
    "tavily_api_key": "tavily_api_key",
    "cache_dir": "cache_dir",
    "max_inflight": "max_inflight_requests",
    "request_timeout": "request_timeout",
}


def add_agent_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model endpoint (defaults: OPENAI_BASE_URL, OPENAI_API_KEY, WIDESEEK_MODEL)")
    g.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    g.add_argument("--model", help="served model name (default RLinf/WideSeek-R1-4b)")
    g.add_argument("--api-key", help="API key of the endpoint (prefer the OPENAI_API_KEY variable)")
    g.add_argument("--temperature", type=float)
    g.add_argument("--request-timeout", type=float, help="seconds per model request")
    g.add_argument("--max-inflight", type=int, help="model requests in flight per endpoint")
    g = p.add_argument_group("tools")
    g.add_argument(
        "--search",
        choices=["local", "tavily", "web", "retriever"],
        help="search/access backend (default local)",
    )
    g.add_argument("--corpus", help="JSONL corpus for --search local: {url, title, text} per line")
    g.add_argument("--index-dir", help="where the local index is cached")
    g.add_argument("--retriever-url", help="retrieval server for --search retriever")
    g.add_argument("--tavily-api-key", help="Tavily key (prefer the TAVILY_API_KEY variable)")
    g.add_argument("--cache-dir", help="on-disk cache for fetched pages")
    g.add_argument(
        "--no-summarize", action="store_true", help="return raw page text from access (no LLM summary)"
    )
    g.add_argument("--summary-base-url", help="endpoint of the page summariser (default: the main endpoint)")
    g.add_argument("--summary-model", help="model of the page summariser (default: the main model)")
    g.add_argument("--summary-api-key", help=argparse.SUPPRESS)
    g = p.add_argument_group("limits and prompts (defaults: the paper's)")
    g.add_argument("--max-subagents", type=int, help="subagents per create_sub_agents call (10)")
    g.add_argument("--max-lead-turns", type=int, help="lead turns (10)")
    g.add_argument("--max-subagent-turns", type=int, help="subagent turns (20)")
    g.add_argument("--context-tokens", type=int, help="context budget per agent (32000)")
    g.add_argument("--language", choices=["en", "zh"], help="prompt language (en)")
    g.add_argument("--prompt-dir", help="folder of prompt files overriding the packaged ones")


def config_from_args(args: argparse.Namespace, **extra: Any) -> WideSeekConfig:
    """Build the config from set flags, then environment, then defaults; SystemExit(2) on bad values."""
    values: dict[str, Any] = {}
    for flag, field in AGENT_FLAGS.items():
        v = getattr(args, flag, None)
        if v is not None:
            values[field] = v
    if getattr(args, "no_summarize", False):
        values["summarize_pages"] = False
    values.update(extra)
    try:
        return WideSeekConfig(**values)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors())
        # SystemExit with a message exits with status 1; configuration errors are documented as status 2.
        print(f"wideseek: invalid configuration: {problems}", file=sys.stderr)
        raise SystemExit(2) from None


def build_graph(cfg: WideSeekConfig) -> WideSeekGraph | None:
    """The graph for ``cfg``, or ``None`` after printing why it cannot be built (the command exits with 2)."""
    from ..graph.builder import WideSeekGraph

    try:
        return WideSeekGraph(cfg)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"wideseek: {e}", file=sys.stderr)
        return None
