"""Strict mode: the failures a run normally turns into messages for the model propagate instead, at every
layer (backend, tool, graph, model call), except the model's own mistakes; without it they are logged."""

from __future__ import annotations

import logging

import pytest

from langgraph_wideseek import WideSeekConfig
from langgraph_wideseek.errors import BackendError, ModelUnavailableError, PageNotFound, raise_if_strict
from langgraph_wideseek.testing import Reply

from .helpers import call
from .test_graph_protocol import one_wave, requests_of, tool_msgs


class Failing:
    """A search backend and page reader that fail the way the test says."""

    name = "failing"

    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def search(self, query: str, count: int):
        raise self.error

    async def read(self, url: str):
        raise self.error


def test_strict_is_a_config_field_and_an_env_variable(monkeypatch):
    assert WideSeekConfig().strict is False
    monkeypatch.setenv("WIDESEEK_STRICT", "1")
    assert WideSeekConfig().strict is True


def test_only_the_model_s_own_mistakes_stay_data_in_strict_mode():
    raise_if_strict(RuntimeError("x"), False)
    raise_if_strict(PageNotFound("no such page"), True)
    with pytest.raises(BackendError):
        raise_if_strict(BackendError("the service is down"), True)


@pytest.mark.parametrize("error", [RuntimeError("a bug in the backend"), BackendError("the service is down")])
async def test_backend_failures_propagate_out_of_the_graph_in_strict_mode(serve, make_graph, error, caplog):
    policy = one_wave(
        ("STRICT", [Reply(tool_calls=[call("search", queries=["x"])]), Reply(content="report")])
    )
    srv = await serve(policy)
    lenient = make_graph(srv)
    lenient.search_tool.backend = Failing(error)
    with caplog.at_level(logging.INFO, logger="langgraph_wideseek"):
        result = await lenient.arun("Q")
    assert (
        result.status == "ok"
        and "Search failed for this query" in tool_msgs(requests_of(srv, "STRICT")[1])[-1]
    )
    assert any("failing" in r.getMessage() for r in caplog.records)  # what was swallowed is logged

    strict = make_graph(srv, strict=True)
    strict.search_tool.backend = Failing(error)
    with pytest.raises(type(error), match=str(error)):
        await strict.arun("Q")


async def test_the_model_s_own_mistakes_are_still_answered_in_strict_mode(serve, make_graph):
    policy = one_wave(
        (
            "MISTAKES",
            [
                Reply(
                    tool_calls=[
                        call("access", urls=[{"url": "https://nowhere.example/x", "info_to_extract": "all"}])
                    ]
                ),
                Reply(tool_calls=[call("search", queries=[])]),
                Reply(content="report"),
            ],
        )
    )
    srv = await serve(policy)
    result = await make_graph(srv, strict=True).arun("Q")
    assert result.status == "ok"
    first, second = (tool_msgs(r)[-1] for r in requests_of(srv, "MISTAKES")[1:3])
    assert "Could not read this URL" in first and second.startswith("Error: 'queries' is empty")


async def test_model_server_failures_propagate_in_strict_mode(serve, make_graph):
    srv = await serve(lambda body: Reply(status=503, error="overloaded"))
    result = await make_graph(srv, max_retries=1).arun("Q")
    assert result.status == "failed" and "overloaded" in result.errors[0]
    with pytest.raises(ModelUnavailableError, match="overloaded"):
        await make_graph(srv, max_retries=1, strict=True).arun("Q")


async def test_a_summariser_failure_propagates_in_strict_mode(serve, make_graph):
    from langgraph_wideseek.errors import SummaryError

    from .helpers import LIST_URL, with_summarizer

    policy = one_wave(
        (
            "SUMMARY",
            [
                Reply(tool_calls=[call("access", urls=[{"url": LIST_URL, "info_to_extract": "rivers"}])]),
                Reply(content="report"),
            ],
        )
    )
    srv = await serve(with_summarizer(policy, lambda req: Reply(status=400, error="bad summary request")))
    result = await make_graph(srv, summarize_pages=True).arun("Q")
    assert result.status == "ok" and any("summariser failed" in e for e in result.errors)
    with pytest.raises(SummaryError, match="bad summary request"):
        await make_graph(srv, summarize_pages=True, strict=True).arun("Q")
