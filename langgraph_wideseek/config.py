"""One validated configuration for the whole system.

Every field can be given in Python, through the CLI, or through the environment. Environment names are
``WIDESEEK_<FIELD>`` plus the conventional fallbacks ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``,
``WIDESEEK_MODEL`` and ``TAVILY_API_KEY``. Defaults are the WideSeek-R1 paper's settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SearchBackendName = Literal["local", "tavily", "web", "retriever"]

#: Hard ceilings: a setting above them is refused (each subagent is a concurrent agent loop with its own
#: context; thousands of them exhaust memory long before they help).
MAX_SUBAGENTS_CEILING = 100
MAX_TOTAL_SUBAGENTS_CEILING = 1_000
#: Default byte limit of one reply from the model server, the judge or a search service (16 MiB): a reply
#: filling a 32k-token context with token ids and per-token logprobs takes about 5 MB.
DEFAULT_MAX_REPLY_BYTES = 16 * 1024 * 1024
Language = Literal["en", "zh"]


def check_http_url(url: str, what: str = "base_url") -> str:
    """``url`` without its trailing slash, or ``ValueError`` saying why it is not an http(s) URL of a host.

    Every endpoint URL (model server, summariser, judge, retriever, Tavily) goes through this at start-up, so
    a typo fails at once with its name instead of being retried as a connection error.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises ValueError for a port that is not a number in 0-65535
    except ValueError as e:
        raise ValueError(f"{what} {url!r} is not a valid URL ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} {url!r} is not an http(s) URL with a host, e.g. http://localhost:8000/v1")
    if port == 0:
        raise ValueError(f"{what} {url!r} has port 0")
    if any(c.isspace() for c in url.strip()):
        raise ValueError(f"{what} {url!r} contains whitespace")
    return url.strip().rstrip("/")


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, the unit a credential is given for."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def key_for(url: str, key: str | None, *, given_for: str) -> str | None:
    """``key`` if ``url`` is on the host it was ``given_for``, else ``None``: a key goes only to its own host.

    The page summariser and any other secondary endpoint get the main key only through this, so a separate
    host (``--summary-base-url``) never receives ``OPENAI_API_KEY``. The judge never reads the main key.
    """
    return key if key and origin(url) == origin(given_for) else None


def _env(field: str, *extra: str) -> AliasChoices:
    return AliasChoices(field, f"WIDESEEK_{field.upper()}", *extra)


class WideSeekConfig(BaseSettings):
    """Settings for the model endpoint, sampling, limits and tool backends."""

    model_config = SettingsConfigDict(
        env_prefix="WIDESEEK_",
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
        frozen=False,
    )

    # --- model endpoint -------------------------------------------------------------------------------------
    base_url: str = Field(
        "http://localhost:8000/v1",
        validation_alias=_env("base_url", "OPENAI_BASE_URL"),
        description="OpenAI-compatible endpoint (a vLLM server) serving the shared model.",
    )
    api_key: SecretStr | None = Field(None, validation_alias=_env("api_key", "OPENAI_API_KEY"), repr=False)
    model: str = Field("RLinf/WideSeek-R1-4b", validation_alias=_env("model"))
    request_timeout: float = Field(
        300.0,
        gt=0,
        validation_alias=_env("request_timeout"),
        description="Seconds one model request may take (vLLM sends a whole reply only when it is done); a "
        "request that times out is retried once, so a hung server fails a call in about twice this.",
    )
    connect_timeout: float = Field(
        10.0,
        gt=0,
        validation_alias=_env("connect_timeout"),
        description="Seconds to open a connection to the model server, the judge or a search service.",
    )
    first_response_timeout: float = Field(
        60.0,
        ge=0,
        validation_alias=_env("first_response_timeout"),
        description="Seconds a model request waits before the server is asked whether it is alive (GET "
        "/models, answered at once by a busy vLLM); no answer within 10 s fails the call as hung. 0: off.",
    )
    max_retries: int = Field(
        4,
        ge=0,
        validation_alias=_env("max_retries"),
        description="Retries of a model request on 429, 5xx and connection errors (timeouts: at most one).",
    )
    max_reply_bytes: int = Field(
        DEFAULT_MAX_REPLY_BYTES,
        ge=1024,
        validation_alias=_env("max_reply_bytes"),
        description="Bytes one reply of the model server, the judge or a search service may have; a longer "
        "reply is cut off at the limit and fails without a retry. The default holds a reply filling a 32k "
        "context with its token ids and logprobs several times over.",
    )
    max_inflight_requests: int = Field(
        256,
        ge=1,
        validation_alias=_env("max_inflight_requests"),
        description="Requests in flight per endpoint, shared by every agent of every run in this process "
        "(vLLM's default max_num_seqs is 256).",
    )
    return_token_ids: bool = Field(
        True,
        validation_alias=_env("return_token_ids"),
        description="Ask vLLM for prompt/completion token ids (for trajectories).",
    )
    logprobs: bool = Field(
        True,
        validation_alias=_env("logprobs"),
        description="Ask for per-token logprobs of generated tokens (for trajectories).",
    )
    keep_reasoning: bool = Field(
        True,
        validation_alias=_env("keep_reasoning"),
        description="Send earlier turns' reasoning back in each agent's context, as in training.",
    )

    # --- sampling (paper: identical for training and evaluation) -------------------------------------------
    temperature: float = Field(1.0, ge=0, validation_alias=_env("temperature"))
    top_p: float = Field(1.0, gt=0, le=1, validation_alias=_env("top_p"))
    top_k: int | None = Field(None, validation_alias=_env("top_k"))
    repetition_penalty: float = Field(1.0, gt=0, validation_alias=_env("repetition_penalty"))
    seed: int | None = Field(None, validation_alias=_env("seed"))

    # --- limits (spec section 3) ----------------------------------------------------------------------------
    max_lead_turns: int = Field(10, ge=1, validation_alias=_env("max_lead_turns"))
    max_subagent_turns: int = Field(20, ge=1, validation_alias=_env("max_subagent_turns"))
    max_subagents: int = Field(
        10,
        ge=1,
        le=MAX_SUBAGENTS_CEILING,
        validation_alias=_env("max_subagents"),
        description="Subagents per create_sub_agents call (the paper: 10); extra entries are dropped. "
        f"At most {MAX_SUBAGENTS_CEILING}.",
    )
    max_total_subagents: int = Field(
        100,
        ge=1,
        le=MAX_TOTAL_SUBAGENTS_CEILING,
        validation_alias=_env("max_total_subagents"),
        description="Subagents per run, over all waves (default: 10 per call x 10 lead turns); a call "
        f"beyond it starts only what is left, and the lead is told. At most {MAX_TOTAL_SUBAGENTS_CEILING}.",
    )
    max_tool_items: int = Field(
        5,
        ge=1,
        validation_alias=_env("max_tool_items"),
        description="Queries per search call and URLs per access call.",
    )
    context_tokens: int = Field(
        32_000,
        ge=256,
        validation_alias=_env("context_tokens"),
        description="Token budget of one agent's whole context.",
    )
    max_prompt_tokens: int = Field(
        4_096,
        ge=64,
        validation_alias=_env("max_prompt_tokens"),
        description="Budget of an agent's initial prompt.",
    )
    subagent_timeout: float | None = Field(
        None,
        gt=0,
        validation_alias=_env("subagent_timeout"),
        description="Wall-clock seconds one subagent may run before it reports failure (None: no limit).",
    )

    # --- prompts --------------------------------------------------------------------------------------------
    language: Language = Field("en", validation_alias=_env("language"))
    prompt_dir: Path | None = Field(
        None,
        validation_alias=_env("prompt_dir"),
        description="Folder whose files override the packaged prompt files of the same name.",
    )

    # --- tools ----------------------------------------------------------------------------------------------
    search: SearchBackendName = Field("local", validation_alias=_env("search"))
    corpus: Path | None = Field(
        None,
        validation_alias=_env("corpus"),
        description="JSONL corpus for the local backend: {url, title, text} per line.",
    )
    index_dir: Path | None = Field(
        None,
        validation_alias=_env("index_dir"),
        description="Where the local index is cached (default: beside the corpus).",
    )
    retriever_url: str | None = Field(None, validation_alias=_env("retriever_url"))
    tavily_api_key: SecretStr | None = Field(
        None, validation_alias=_env("tavily_api_key", "TAVILY_API_KEY"), repr=False
    )
    tavily_base_url: str = Field("https://api.tavily.com", validation_alias=_env("tavily_base_url"))
    tavily_keyless: bool = Field(
        False,
        validation_alias=_env("tavily_keyless"),
        description="Use Tavily's rate-limited keyless mode when no key is set (off: no key is an error).",
    )
    search_count_default: int = Field(3, ge=1, le=50, validation_alias=_env("search_count_default"))
    search_count_max: int = Field(10, ge=1, le=50, validation_alias=_env("search_count_max"))
    snippet_chars: int = Field(5_000, ge=100, validation_alias=_env("snippet_chars"))
    page_chars: int = Field(25_000, ge=500, validation_alias=_env("page_chars"))
    allow_private_urls: bool = Field(
        False,
        validation_alias=_env("allow_private_urls"),
        description="Let the web reader fetch loopback/private addresses (off: SSRF guard).",
    )
    fetch_timeout: float = Field(
        20.0,
        gt=0,
        validation_alias=_env("fetch_timeout"),
        description="Seconds the web reader may spend on one page, redirects included.",
    )
    fetch_max_bytes: int = Field(
        10 * 1024 * 1024,
        ge=1024,
        validation_alias=_env("fetch_max_bytes"),
        description="Bytes the web reader downloads from one page before it gives up.",
    )
    fetch_max_redirects: int = Field(5, ge=0, le=20, validation_alias=_env("fetch_max_redirects"))
    cache_dir: Path | None = Field(
        None,
        validation_alias=_env("cache_dir"),
        description="On-disk cache for fetched pages and judge replies.",
    )

    # --- debugging ----------------------------------------------------------------------------------------
    strict: bool = Field(
        False,
        validation_alias=_env("strict"),
        description=(
            "Let tool, backend and model-server failures propagate out of the graph instead of becoming "
            "messages for the model (the model's own mistakes, such as bad tool arguments, still become "
            "messages). For debugging: a run stops where a failure happens. Env: WIDESEEK_STRICT=1."
        ),
    )

    # --- access summariser ----------------------------------------------------------------------------------
    summarize_pages: bool = Field(
        True,
        validation_alias=_env("summarize_pages"),
        description="Summarise accessed pages with an LLM for info_to_extract.",
    )
    summary_base_url: str | None = Field(None, validation_alias=_env("summary_base_url"))
    summary_model: str | None = Field(None, validation_alias=_env("summary_model"))
    summary_api_key: SecretStr | None = Field(None, validation_alias=_env("summary_api_key"), repr=False)
    summary_max_tokens: int = Field(2_048, ge=16, validation_alias=_env("summary_max_tokens"))

    @field_validator("base_url", "summary_base_url", "retriever_url", "tavily_base_url")
    @classmethod
    def _check_url(cls, v: str | None, info: ValidationInfo) -> str | None:
        return check_http_url(v, info.field_name or "url") if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check_backend_inputs(self) -> WideSeekConfig:
        if self.max_prompt_tokens >= self.context_tokens:
            raise ValueError("max_prompt_tokens must be smaller than context_tokens")
        return self

    # Helpers that keep secrets out of reprs and payload-building code.
    def api_key_value(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key else None

    def summary_endpoint(self) -> tuple[str, str, str | None]:
        """(base_url, model, api_key) of the page summariser; defaults to the main endpoint.

        Without its own ``summary_api_key`` the summariser gets the main key only when it runs on the main
        endpoint's host (:func:`key_for`): the key never travels to a host it was not given for.
        """
        base_url = self.summary_base_url or self.base_url
        if self.summary_api_key is not None:
            key: str | None = self.summary_api_key.get_secret_value()
        else:
            key = key_for(base_url, self.api_key_value(), given_for=self.base_url)
        return base_url, self.summary_model or self.model, key

    def secrets(self) -> list[str]:
        """Every secret value this config holds, for redaction."""
        out: list[str] = []
        for s in (self.api_key, self.tavily_api_key, self.summary_api_key):
            if s is not None and s.get_secret_value():
                out.append(s.get_secret_value())
        return out
