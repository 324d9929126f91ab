"""WideSeekConfig: the paper's defaults, environment fallbacks, validation, and secrets kept out of output."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from langgraph_wideseek import WideSeekConfig

KEY = "sk-config-secret-91c2"
TAVILY = "tvly-secret-55aa"


def test_defaults_are_the_papers():
    cfg = WideSeekConfig()
    limits = (cfg.max_lead_turns, cfg.max_subagent_turns, cfg.max_subagents, cfg.max_tool_items)
    assert limits == (10, 20, 10, 5)
    assert (cfg.context_tokens, cfg.max_prompt_tokens) == (32_000, 4_096)
    assert (cfg.temperature, cfg.top_p, cfg.top_k, cfg.repetition_penalty) == (1.0, 1.0, None, 1.0)
    assert (cfg.snippet_chars, cfg.page_chars, cfg.search_count_default) == (5_000, 25_000, 3)
    assert cfg.search == "local" and cfg.language == "en" and cfg.summarize_pages is True
    assert cfg.api_key is None and cfg.secrets() == []


def test_conventional_env_fallbacks(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("WIDESEEK_MODEL", "my-model")
    monkeypatch.setenv("TAVILY_API_KEY", TAVILY)
    cfg = WideSeekConfig()
    assert cfg.base_url == "http://127.0.0.1:9/v1"  # trailing slash dropped
    assert cfg.api_key_value() == KEY
    assert cfg.model == "my-model"
    assert cfg.tavily_api_key.get_secret_value() == TAVILY
    assert sorted(cfg.secrets()) == sorted([KEY, TAVILY])


def test_wideseek_variables_win_over_conventional_ones_and_arguments_win_over_both(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("WIDESEEK_BASE_URL", "http://127.0.0.1:2/v1")
    assert WideSeekConfig().base_url == "http://127.0.0.1:2/v1"
    assert WideSeekConfig(base_url="http://127.0.0.1:3/v1").base_url == "http://127.0.0.1:3/v1"


def test_every_field_reads_its_wideseek_variable(monkeypatch):
    monkeypatch.setenv("WIDESEEK_MAX_SUBAGENTS", "4")
    monkeypatch.setenv("WIDESEEK_SUMMARIZE_PAGES", "false")
    monkeypatch.setenv("WIDESEEK_LANGUAGE", "zh")
    monkeypatch.setenv("WIDESEEK_CORPUS", "/data/c.jsonl")
    cfg = WideSeekConfig()
    assert cfg.max_subagents == 4 and cfg.summarize_pages is False and cfg.language == "zh"
    assert str(cfg.corpus) == "/data/c.jsonl"


def test_summary_endpoint_defaults_to_the_main_one():
    cfg = WideSeekConfig(base_url="http://127.0.0.1:5/v1", model="m", api_key=KEY)
    assert cfg.summary_endpoint() == ("http://127.0.0.1:5/v1", "m", KEY)
    cfg2 = WideSeekConfig(
        api_key=KEY, summary_base_url="http://127.0.0.1:6/v1/", summary_model="s", summary_api_key="other"
    )
    assert cfg2.summary_endpoint() == ("http://127.0.0.1:6/v1", "s", "other")


@pytest.mark.parametrize(
    "bad",
    [
        {"max_subagents": 0},
        {"temperature": -1},
        {"top_p": 1.5},
        {"search": "bing"},
        {"language": "fr"},
        {"context_tokens": 4000, "max_prompt_tokens": 4096},
        {"no_such_field": 1},
    ],
)
def test_invalid_values_are_rejected_with_the_field_named(bad):
    with pytest.raises(ValidationError) as ei:
        WideSeekConfig(**bad)
    assert any(k in str(ei.value) for k in list(bad) + ["max_prompt_tokens"])


def test_invalid_env_value_is_rejected(monkeypatch):
    monkeypatch.setenv("WIDESEEK_MAX_LEAD_TURNS", "many")
    with pytest.raises(ValidationError, match="max_lead_turns"):
        WideSeekConfig()


def test_secrets_never_in_repr_str_or_dumps(monkeypatch):
    monkeypatch.setenv("TAVILY_API_KEY", TAVILY)
    cfg = WideSeekConfig(api_key=KEY, summary_api_key=KEY + "x")
    dumps = (
        repr(cfg),
        str(cfg),
        cfg.model_dump_json(),
        str(cfg.model_dump()),
        str(cfg.model_dump(mode="json")),
    )
    for text in dumps:
        assert KEY not in text and TAVILY not in text


def test_assignment_is_validated():
    cfg = WideSeekConfig()
    cfg.max_subagents = 3
    assert cfg.max_subagents == 3
    with pytest.raises(ValidationError):
        cfg.max_subagents = 0
