"""OpenAIJudge over real HTTP (a fake OpenAI-compatible server on 127.0.0.1), reply parsing, cache."""

from __future__ import annotations

import asyncio
import json

import pytest

from langgraph_wideseek.eval import ExactJudge, JudgeError, OpenAIJudge, score_response
from langgraph_wideseek.eval.judge import IncompleteGrade, JudgeCache, parse_alignment, parse_grades
from langgraph_wideseek.eval.table import to_markdown
from langgraph_wideseek.runtime import RetryPolicy
from langgraph_wideseek.testing import FakeOpenAIServer, Reply

FAST = RetryPolicy(retries=3, base_delay=0.01, max_delay=0.02)
SECRET = "sk-test-0123456789abcdef"


def test_parse_alignment_takes_the_last_json_block_and_stringifies_scalars():
    reply = 'first\n```json\n{"a": "x"}\n```\nfinal:\n```json\n{"a": "b", "n": 5, "z": null, "l": [1]}\n```'
    assert parse_alignment(reply) == {"a": "b", "n": "5", "z": "None"}
    with pytest.raises(JudgeError):
        parse_alignment("no json here")
    with pytest.raises(JudgeError):
        parse_alignment("```json\n{broken\n```")


def test_parse_grades():
    assert parse_grades('```json\n{"idx_0": 1, "idx_1": 0, "idx_2": true}\n```', 3) == [1, 0, 1]
    with pytest.raises(IncompleteGrade) as e:
        parse_grades('```json\n{"idx_0": 1, "idx_2": 0.5}\n```', 3)
    assert e.value.scores == [1, 0, 0] and e.value.missing == [1, 2]


async def test_exact_judge():
    j = ExactJudge()
    assert await j.align(["a", "b"], ["b", "c"]) == {"b": "b"}
    assert await j.grade("any", [("x", "x"), ("x", "y")]) == [1, 0]


async def test_align_and_grade_over_http(fake_judge_model):
    model = fake_judge_model(synonyms={"MIT": "Massachusetts Institute of Technology"})
    async with (
        FakeOpenAIServer(model, api_key=SECRET) as srv,
        OpenAIJudge(srv.base_url, "judge-model", SECRET, retry=FAST) as judge,
    ):
        got = await judge.align(
            ["MIT", "Stanford", "Nowhere U"], ["Stanford", "Massachusetts Institute of Technology"]
        )
        assert got == {"MIT": "Massachusetts Institute of Technology", "Stanford": "Stanford"}
        assert await judge.grade("same meaning", [("a b", "ab"), ("x", "y")]) == [1, 0]
        assert await judge.map_columns(["name", "yr"], ["name", "year"]) == {"name": "name"}
        body = srv.requests[0]
        assert body["model"] == "judge-model" and "temperature" not in body  # official: never sent
        assert '"MIT"' in body["messages"][0]["content"]


async def test_temperature_and_max_tokens_are_sent_when_set():
    async with FakeOpenAIServer(lambda b: Reply(content='```json\n{"idx_0": 1}\n```')) as srv:
        judge = OpenAIJudge(srv.base_url, "m", temperature=0.0, max_tokens=512, retry=FAST)
        await judge.grade("c", [("a", "a")])
        await judge.aclose()
    assert srv.requests[0]["temperature"] == 0.0 and srv.requests[0]["max_tokens"] == 512


async def test_retries_on_429_and_5xx_then_succeeds():
    replies = iter(
        [
            Reply(status=503),
            Reply(status=429, headers={"Retry-After": "0"}),
            Reply(content='```json\n{"idx_0": 1}\n```'),
        ]
    )
    async with FakeOpenAIServer(lambda b: next(replies)) as srv:
        judge = OpenAIJudge(srv.base_url, "m", retry=FAST)
        assert await judge.grade("c", [("a", "a")]) == [1]
        await judge.aclose()
    assert srv.stats.requests == 3 and judge.stats.retries == 2 and judge.stats.failures == 0


async def test_gives_up_after_the_retries_and_says_why():
    async with FakeOpenAIServer(lambda b: Reply(status=500)) as srv:
        judge = OpenAIJudge(srv.base_url, "m", retry=FAST)
        with pytest.raises(JudgeError, match="after 3 retries"):
            await judge.align(["a"], ["a"])
        await judge.aclose()
    assert srv.stats.requests == 4 and judge.stats.failures == 1


async def test_a_client_error_is_not_retried_and_the_key_never_leaks(tmp_path):
    async with FakeOpenAIServer(lambda b: Reply(status=400, error=f"bad request from key {SECRET}")) as srv:
        judge = OpenAIJudge(srv.base_url, "m", SECRET, retry=FAST, cache_dir=tmp_path)
        with pytest.raises(JudgeError) as e:
            await judge.grade("c", [("a", "a")])
        await judge.aclose()
    assert srv.stats.requests == 1
    assert "HTTP 400" in str(e.value) and SECRET not in str(e.value) and "***" in str(e.value)
    assert SECRET not in repr(judge)


async def test_wrong_key_is_an_error():
    async with FakeOpenAIServer(lambda b: Reply(content="x"), api_key=SECRET) as srv:
        judge = OpenAIJudge(srv.base_url, "m", "sk-wrong", retry=FAST)
        with pytest.raises(JudgeError, match="HTTP 401"):
            await judge.align(["a"], ["a"])
        await judge.aclose()


async def test_timeouts_are_retried():
    calls = []

    def policy(body):
        calls.append(1)
        return Reply(content='```json\n{"idx_0": 0}\n```', delay=0.5 if len(calls) == 1 else 0.0)

    async with FakeOpenAIServer(policy) as srv:
        judge = OpenAIJudge(srv.base_url, "m", timeout=0.2, retry=FAST)
        assert await judge.grade("c", [("a", "b")]) == [0]
        await judge.aclose()
    assert len(calls) == 2 and judge.stats.retries == 1


async def test_cache_makes_repeat_calls_free_and_survives_a_new_judge(tmp_path, fake_judge_model):
    async with FakeOpenAIServer(fake_judge_model()) as srv:
        j1 = OpenAIJudge(srv.base_url, "m", cache_dir=tmp_path, retry=FAST)
        assert await j1.grade("c", [("a", "a"), ("b", "c")]) == [1, 0]
        assert await j1.grade("c", [("a", "a"), ("b", "c")]) == [1, 0]
        assert srv.stats.requests == 1 and j1.stats.cache_hits == 1
        j2 = OpenAIJudge(srv.base_url, "m", cache_dir=tmp_path, retry=FAST)
        assert await j2.grade("c", [("a", "a"), ("b", "c")]) == [1, 0]
        assert srv.stats.requests == 1
        # a different model is a different request
        j3 = OpenAIJudge(srv.base_url, "other", cache_dir=tmp_path, retry=FAST)
        await j3.grade("c", [("a", "a"), ("b", "c")])
        assert srv.stats.requests == 2
        for j in (j1, j2, j3):
            await j.aclose()
    entries = list(tmp_path.glob("*/*.json"))
    assert len(entries) == 2 and all(json.loads(p.read_text())["content"] for p in entries)


async def test_unreadable_replies_are_failures_and_not_cached(tmp_path):
    replies = iter([Reply(content="I think they match."), Reply(content='```json\n{"a": "a"}\n```')])
    async with FakeOpenAIServer(lambda b: next(replies)) as srv:
        judge = OpenAIJudge(srv.base_url, "m", cache_dir=tmp_path, retry=FAST)
        with pytest.raises(JudgeError, match="no fenced JSON"):
            await judge.align(["a"], ["a"])
        assert list(tmp_path.glob("*/*.json")) == []
        assert await judge.align(["a"], ["a"]) == {"a": "a"}  # asked again, not served from cache
        await judge.aclose()
    assert srv.stats.requests == 2 and judge.stats.failures == 1


async def test_concurrency_is_bounded():
    async with FakeOpenAIServer(lambda b: Reply(content='```json\n{"idx_0": 1}\n```', delay=0.05)) as srv:
        judge = OpenAIJudge(srv.base_url, "m", concurrency=2, retry=FAST)
        await asyncio.gather(*(judge.grade(f"c{i}", [("a", "a")]) for i in range(8)))
        await judge.aclose()
    assert srv.stats.requests == 8 and srv.stats.peak_inflight == 2


async def test_cache_key_covers_the_whole_request():
    k = JudgeCache.key
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert k(base) == k(json.loads(json.dumps(base)))
    assert k(base) != k({**base, "model": "n"})
    assert k(base) != k({**base, "temperature": 0.0})


async def test_scoring_with_the_http_judge_and_free_rescoring(sample_tasks, fake_judge_model, tmp_path):
    # ws_en_003 has multi-line judged cells: the fake model grades them as equal up to whitespace, as a model
    # judge would; a second scoring of the same response is served entirely from the cache.
    task = sample_tasks["ws_en_003"]
    response = to_markdown(list(task.required), [list(r) for r in task.gold.rows()])
    async with FakeOpenAIServer(fake_judge_model()) as srv:
        judge = OpenAIJudge(srv.base_url, "m", cache_dir=tmp_path, retry=FAST)
        first = await score_response(task, response, judge=judge)
        n = srv.stats.requests
        second = await score_response(task, response, judge=judge)
        await judge.aclose()
    # 3 grading calls (level, result, top3players) + 1 alignment call (gold event names carry stray spaces)
    assert first.success and first.judge_failures == 0 and n == first.judge_calls == 4
    assert second.model_dump() == first.model_dump() and srv.stats.requests == n


async def test_scoring_counts_http_judge_failures(sample_tasks):
    task = sample_tasks["ws_en_002"]
    response = to_markdown(list(task.required), [list(r) for r in task.gold.rows()])
    async with FakeOpenAIServer(lambda b: Reply(status=500)) as srv:
        judge = OpenAIJudge(srv.base_url, "m", retry=RetryPolicy(retries=1, base_delay=0.01))
        s = await score_response(task, response, judge=judge)
        await judge.aclose()
    # 1 key alignment (fails: column left as is) + 4 grading calls (fail: 0) -> only key cells count
    assert (s.judge_calls, s.judge_failures, s.status) == (5, 5, "ok")
    assert s.item_precision == pytest.approx(76 / 228)
    assert all("HTTP 500" in e for e in s.errors)
