"""``wideseek run --search tavily|web|retriever`` end to end, against the fake model server and the stand-ins.

Each run goes through the real CLI entry point (``cli.main``, in a worker thread, as the installed
``wideseek`` would run it), the real graph, the real tool layer and the real backend with its real HTTP
client; the model is ``FakeOpenAIServer`` replaying a script in which one subagent searches, then reads one
good and one bad URL. The checks read the tool messages the model received, so they test what the agent
actually saw.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from langgraph_wideseek.cli import main
from langgraph_wideseek.testing import FakeOpenAIServer, Reply, ScriptedPolicy

from .stand_ins import RetrievalStandIn, TavilyStandIn, serve

QUESTION = "List European rivers and their lengths."
TABLE = "```markdown\n| River | Length |\n|---|---|\n| Danube | 2850 km |\n```"


def script(query: str, good_url: str, bad_url: str, *, summary: str | None = None) -> ScriptedPolicy:
    subagent = [
        Reply(tool_calls=[{"name": "search", "arguments": {"queries": [{"query": query, "count": 2}]}}]),
        Reply(
            tool_calls=[
                {
                    "name": "access",
                    "arguments": {
                        "urls": [
                            {"url": good_url, "info_to_extract": "the length of the river"},
                            {"url": bad_url, "info_to_extract": "anything"},
                        ]
                    },
                }
            ]
        ),
        Reply(content="The Danube is 2850 km long."),
    ]
    subagents: dict[str, list[Reply]] = {"SUBTASK-RIVERS": subagent}
    if summary is not None:  # the access summariser's requests (same fake server) are keyed by their prompt
        subagents["# Page URL"] = [Reply(content=summary)]
    return ScriptedPolicy(
        lead=[
            Reply(
                tool_calls=[
                    {
                        "name": "create_sub_agents",
                        "arguments": {"sub_agents": [{"prompt": "SUBTASK-RIVERS: find river lengths"}]},
                    }
                ]
            ),
            Reply(content=TABLE),
        ],
        subagents=subagents,
    )


def tool_messages(requests: list[dict[str, Any]]) -> list[str]:
    """Every tool message the subagent was sent, from its last request (which holds its whole context)."""
    sub = [
        r
        for r in requests
        if "SUBTASK-RIVERS" in json.dumps(r["messages"][:3])
        and r.get("tools")
        and "create_sub_agents" not in json.dumps(r["tools"])
    ]
    last = max(sub, key=lambda r: len(r["messages"]))
    return [m["content"] for m in last["messages"] if m["role"] == "tool"]


async def run_cli(argv: list[str]) -> int:
    return await asyncio.to_thread(main, argv)


def common_args(srv: FakeOpenAIServer, tmp_path: Path) -> list[str]:
    return [
        "run",
        QUESTION,
        "--base-url",
        srv.base_url,
        "--model",
        "fake-model",
        "--max-subagents",
        "3",
        "--json",
        "--trajectory",
        str(tmp_path / "traj.jsonl"),
    ]


def check_output(capsys, tmp_path: Path, secret: str | None = None) -> dict[str, Any]:
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "ok" and "| Danube | 2850 km |" in result["answer"]
    if secret:
        traj = (tmp_path / "traj.jsonl").read_text()
        for text in (out, err, traj):
            assert secret not in text
    return result


async def test_run_with_tavily(tmp_path: Path, monkeypatch, capsys) -> None:
    key = "tvly-INTEGRATION-SECRET-0123456789"
    tavily = TavilyStandIn(api_key=key, pages={"https://example.org/danube/1": "The Danube is 2850 km long."})
    policy = script(
        "danube", "https://example.org/danube/1", "https://example.org/unreadable", summary="Length: 2850 km."
    )
    async with serve(tavily.app()) as tav, FakeOpenAIServer(policy) as srv:
        monkeypatch.setenv("TAVILY_API_KEY", key)
        monkeypatch.setenv("WIDESEEK_TAVILY_BASE_URL", tav)
        rc = await run_cli(
            common_args(srv, tmp_path) + ["--search", "tavily", "--summary-model", "fake-model"]
        )
    assert rc == 0 and not policy.failures
    result = check_output(capsys, tmp_path, secret=key)
    search_msg, access_msg = tool_messages(srv.requests)
    assert "# Search query: danube" in search_msg
    assert "[Doc 1](https://example.org/danube/1):" in search_msg and "Snippet 1 about danube." in search_msg
    assert "[Doc 2](https://example.org/danube/2):" in search_msg and "[Doc 3]" not in search_msg
    assert "# Access URL: https://example.org/danube/1" in access_msg and "Length: 2850 km." in access_msg
    assert "# Access URL: https://example.org/unreadable" in access_msg
    assert "Could not read this URL (Tavily could not extract this page)" in access_msg
    assert any("unreadable" in e for e in result["errors"])
    # One /extract for both URLs of the access call; the summariser saw the extracted page.
    assert [p for p, _, _ in tavily.requests] == ["/search", "/extract"]
    summary_req = next(r for r in srv.requests if "# Page URL" in json.dumps(r["messages"]))
    assert "The Danube is 2850 km long." in summary_req["messages"][-1]["content"]


async def test_run_with_a_failing_tavily_service_stays_alive(tmp_path: Path, monkeypatch, capsys) -> None:
    key = "tvly-INTEGRATION-SECRET-9876543210"
    tavily = TavilyStandIn(api_key=key)
    tavily.fail += [("/search", 401, {"detail": {"error": f"bad key {key}"}})]
    policy = script("danube", "https://example.org/x", "https://example.org/y")
    async with serve(tavily.app()) as tav, FakeOpenAIServer(policy) as srv:
        monkeypatch.setenv("TAVILY_API_KEY", key)
        monkeypatch.setenv("WIDESEEK_TAVILY_BASE_URL", tav)
        rc = await run_cli(common_args(srv, tmp_path) + ["--search", "tavily", "--no-summarize"])
    # the run stays alive and answers, but an answer resting on no search result is not a success (issue 13)
    assert rc == 3 and not policy.failures
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "failed" and "| Danube | 2850 km |" in result["answer"]
    assert result["reason"].startswith("every search call failed (1 of 1)")
    assert result["tools"]["search"] == {"calls": 1, "failed": 1, "items": 1, "failed_items": 1}
    for text in (out, err, (tmp_path / "traj.jsonl").read_text()):
        assert key not in text
    search_msg, access_msg = tool_messages(srv.requests)
    assert "# Search query: danube" in search_msg and "API key was rejected" in search_msg
    assert key not in search_msg + access_msg


async def test_run_with_web(tmp_path: Path, monkeypatch, capsys) -> None:
    from aiohttp import web

    async def article(request: web.Request) -> web.Response:
        return web.Response(
            content_type="text/html",
            text=(
                "<html><head><title>Danube</title></head><body><article><h1>Danube</h1>"
                + "<p>The Danube is Europe's second-longest river, 2850 km from the Black Forest to the "
                "Black Sea.</p>" * 5 + "</article></body></html>"
            ),
        )

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG\r\n\x1a\n", content_type="image/png")

    app = web.Application()
    app.router.add_get("/danube", article)
    app.router.add_get("/photo.png", image)
    async with serve(app) as site:
        # The keyless engine cannot reach the internet: a stand-in answers behind the DDGSEngine seam, like
        # DDGS.text would (see test_web_search.py for our side of the seam in detail).
        class StandInDDGS:
            def __init__(self, **kw: Any) -> None:
                pass

            def text(self, query: str, max_results: int) -> list[dict[str, Any]]:
                return [
                    {"title": "Danube", "href": f"{site}/danube", "body": f"{query}: the Danube river"},
                    {"title": "Photo", "href": f"{site}/photo.png", "body": "a photo"},
                ][:max_results]

        monkeypatch.setattr("langgraph_wideseek.tools.web.DDGSEngine", StandInDDGS)
        monkeypatch.setenv("WIDESEEK_ALLOW_PRIVATE_URLS", "true")  # the stand-in site is on 127.0.0.1
        policy = script("danube length", f"{site}/danube", f"{site}/photo.png")
        async with FakeOpenAIServer(policy) as srv:
            rc = await run_cli(
                common_args(srv, tmp_path)
                + ["--search", "web", "--no-summarize", "--cache-dir", str(tmp_path / "cache")]
            )
    assert rc == 0 and not policy.failures
    check_output(capsys, tmp_path)
    search_msg, access_msg = tool_messages(srv.requests)
    assert "# Search query: danube length" in search_msg
    assert f"[Doc 1]({site}/danube):" in search_msg and "danube length: the Danube river" in search_msg
    assert f"# Access URL: {site}/danube" in access_msg and "2850 km from the Black Forest" in access_msg
    assert "Could not read this URL (the URL serves image/png, which cannot be read as text)" in access_msg
    assert list((tmp_path / "cache").rglob("*.json"))  # the good page went to the page cache


async def test_run_with_web_refuses_private_addresses_by_default(tmp_path: Path, monkeypatch, capsys) -> None:
    class NoSearch:
        def __init__(self, **kw: Any) -> None:
            pass

        def text(self, query: str, max_results: int) -> list[dict[str, Any]]:
            return []

    monkeypatch.setattr("langgraph_wideseek.tools.web.DDGSEngine", NoSearch)
    monkeypatch.delenv("WIDESEEK_ALLOW_PRIVATE_URLS", raising=False)
    policy = script(
        "nothing", "http://127.0.0.1:9/admin", "http://[::ffff:169.254.169.254]/latest/meta-data/"
    )
    async with FakeOpenAIServer(policy) as srv:
        rc = await run_cli(common_args(srv, tmp_path) + ["--search", "web", "--no-summarize"])
    assert rc == 0 and not policy.failures
    check_output(capsys, tmp_path)
    search_msg, access_msg = tool_messages(srv.requests)
    assert "No results found for this query." in search_msg
    assert "refused to read '127.0.0.1': it points to a loopback address" in access_msg
    assert "cloud metadata address" in access_msg


async def test_run_with_retriever(tmp_path: Path, capsys) -> None:
    pages = {
        "https://en.wikipedia.org/wiki/Danube": '"Danube"\nThe Danube is a river in Europe, 2850 km long.',
        "https://en.wikipedia.org/wiki/Nile": '"Nile"\nThe Nile is a river in Africa, 6650 km long.',
    }
    retrieval = RetrievalStandIn(pages, fail=[("/retrieve", 503)])  # the first search meets a busy server
    policy = script(
        "danube river europe",
        "https://en.wikipedia.org/wiki/Danube",
        "https://en.wikipedia.org/wiki/Atlantis",
    )
    async with serve(retrieval.app()) as base, FakeOpenAIServer(policy) as srv:
        rc = await run_cli(
            common_args(srv, tmp_path) + ["--search", "retriever", "--retriever-url", base, "--no-summarize"]
        )
    assert rc == 0 and not policy.failures
    check_output(capsys, tmp_path)
    search_msg, access_msg = tool_messages(srv.requests)
    assert "# Search query: danube river europe" in search_msg
    assert (
        "[Doc 1](https://en.wikipedia.org/wiki/Danube):\nDanube\nThe Danube is a river in Europe, 2850 km "
        "long." in search_msg
    )
    assert "2850 km long." in access_msg
    assert "# Access URL: https://en.wikipedia.org/wiki/Atlantis" in access_msg
    assert "not in the retrieval server's corpus" in access_msg
    assert [p for p, _ in retrieval.requests] == ["/retrieve", "/retrieve", "/access"]  # 503 retried


def test_run_with_retriever_without_url_is_a_usage_error(capsys) -> None:
    rc = main(["run", QUESTION, "--search", "retriever", "--base-url", "http://127.0.0.1:9/v1"])
    assert rc == 2 and "retriever_url" in capsys.readouterr().err
