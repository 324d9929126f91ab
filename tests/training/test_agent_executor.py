"""AgentExecutor.execute end to end: the whole graph against the in-actor endpoint and a scripted engine that
returns real token ids of a real tokenizer; many rows out, ids/masks/logprobs aligned, failed subagents
dropped, reward attached."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from training.agent_executor import AgentExecutor, ExecutorSettings
from training.data import convert_wideseek_record
from training.engine import SamplingParamsLite
from training.rows import validate_row
from training.testing import ScriptedEngine, TextScript, default_logprob, model_text

ASSETS = Path(__file__).parent / "assets"
REPO = Path(__file__).resolve().parents[2]

QUESTION = (
    "List the albums of the band Nimbus Quartet with their release year. Answer with a markdown table "
    "with columns Album, Year."
)
TASK = {
    "instance_id": "width_test_1",
    "question": QUESTION,
    "answer": (
        "| Album | Year |\n|---|---|\n| First Light | 1999 |\n| Second Wind | 2003 |\n| Third Rail | 2008 |"
    ),
    "is_markdown": True,
    "unique_columns": ["Album"],
    "evaluation": {"required": ["album", "year"]},
    "language": "en",
}
CORPUS = [
    {
        "url": "https://music.example/nimbus",
        "title": "Nimbus Quartet",
        "text": "Nimbus Quartet is a jazz band. Their debut album First Light was released in 1999.",
    },
    {
        "url": "https://music.example/second-wind",
        "title": "Second Wind (album)",
        "text": "Second Wind is the second album by Nimbus Quartet, released in 2003.",
    },
]
FINAL_TABLE = "```markdown\n| Album | Year |\n|---|---|\n| First Light | 1999 |\n| Second Wind | 2003 |\n```"

LEAD_CALL = model_text(
    reasoning="Split by album.",
    tool_calls=[
        (
            "create_sub_agents",
            {
                "sub_agents": [
                    {"prompt": "Find the release year of the album First Light"},
                    {"prompt": "Find the release year of the album Second Wind"},
                    {"prompt": "Find the release year of the album Third Rail"},
                ]
            },
        )
    ],
)
LEAD_FINAL = model_text(FINAL_TABLE, reasoning="Two of three found.")
SUB_FIRST = [
    model_text(
        reasoning="search", tool_calls=[("search", {"queries": [{"query": "Nimbus Quartet First Light"}]})]
    ),
    model_text(
        reasoning="read",
        tool_calls=[
            (
                "access",
                {
                    "urls": [
                        {
                            "url": "https://music.example/nimbus",
                            "info_to_extract": "release year of First Light",
                        }
                    ]
                },
            )
        ],
    ),
    model_text("First Light was released in 1999.", reasoning="done"),
]
SUB_SECOND = [model_text("Second Wind: 2003.", reasoning="I know this one.")]
SUB_THIRD_FOREVER = model_text(
    reasoning="keep looking", tool_calls=[("search", {"queries": [{"query": "Third Rail"}]})]
)


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(str(ASSETS / "tiny-qwen3"))


@pytest.fixture()
def corpus(tmp_path) -> Path:
    p = tmp_path / "corpus.jsonl"
    p.write_text("".join(json.dumps(d) + "\n" for d in CORPUS))
    return p


def settings(tmp_path: Path, corpus: Path, **graph) -> ExecutorSettings:
    g = {
        "search": "local",
        "corpus": str(corpus),
        "index_dir": str(tmp_path / "index"),
        "summarize_pages": False,
        "max_subagent_turns": 3,
        "max_lead_turns": 3,
        "max_retries": 0,
        **graph,
    }
    return ExecutorSettings(graph=g)


def openrlhf_params(**kw) -> SamplingParamsLite:
    return SamplingParamsLite(
        **{
            "temperature": 1.0,
            "top_p": 1.0,
            "top_k": -1,
            "max_tokens": None,
            "min_tokens": 1,
            "skip_special_tokens": False,
            "logprobs": None,
            **kw,
        }
    )


def script() -> TextScript:
    return TextScript(
        lead=[LEAD_CALL, LEAD_FINAL],
        subagents={
            "album First Light": SUB_FIRST,
            "album Second Wind": SUB_SECOND,
            "album Third Rail": [SUB_THIRD_FOREVER] * 3,
        },
    )


def row_share(result, label) -> tuple[float, dict[str, float]]:
    """A stand-in reward: the share of gold rows present in the answer table."""
    gold = {"first light", "second wind", "third rail"}
    got = {r.get("Album", "").strip().lower() for r in result.table or []}
    share = len(gold & got) / len(gold)
    return share, {"row_share": share}


async def test_execute_returns_aligned_rows_for_every_kept_call(tok, tmp_path, corpus):
    sc = script()
    engine = ScriptedEngine(tok, sc)
    ex = AgentExecutor(settings(tmp_path, corpus), reward_fn=row_share)
    record = convert_wideseek_record(TASK)
    try:
        rows = await ex.execute(record["prompt"], record["label"], openrlhf_params(), 8192, tok, engine)
    finally:
        await ex.aclose()
    assert sc.failures == []
    # 2 lead + 3 (First Light) + 1 (Second Wind); Third Rail hit the turn limit and the run succeeded ->
    # dropped
    assert len(engine.calls) == 2 + 3 + 1 + 3
    assert len(rows) == 6
    roles = [(r["wideseek"]["role"], r["wideseek"]["turn"]) for r in rows]
    assert roles == [
        ("lead", 1),
        ("lead", 2),
        ("subagent", 1),
        ("subagent", 2),
        ("subagent", 3),
        ("subagent", 1),
    ]

    engine_prompts = [tuple(p) for p, _ in engine.calls]
    end_id = tok.convert_tokens_to_ids("<|im_end|>")
    texts = []
    for row in rows:
        validate_row(row)
        (start, end) = row["action_ranges"][0]
        obs = row["observation_tokens"]
        assert end == len(obs)
        assert tuple(obs[:start]) in engine_prompts  # the exact ids the engine saw
        action = obs[start:end]
        assert action[-1] == end_id
        assert row["rollout_log_probs"][start:end] == pytest.approx(
            [default_logprob(i, t) for i, t in enumerate(action)]
        )
        assert set(row["rollout_log_probs"][:start]) == {0.0}
        texts.append(tok.decode(action[:-1]))
        assert row["reward"] == pytest.approx(2 / 3) and row["scores"] == pytest.approx(2 / 3)
        assert row["prompt"] == QUESTION and row["label"] == record["label"]
        assert row["truncated"] is False
        w = row["wideseek"]
        assert w["num_agents"] == 3 and w["agent_weight"] == pytest.approx(1 / 3)
        logs = row["extra_logs"]
        assert logs["failed_subagents"] == 1 and logs["subagents"] == 3 and logs["rows"] == 6
        assert logs["endpoint_calls"] == 9 and logs["model_calls"] == 9
        assert logs["reward_row_share"] == pytest.approx(2 / 3) and logs["used_access"] == 1.0
    assert texts == [LEAD_CALL, LEAD_FINAL, *SUB_FIRST, *SUB_SECOND]

    # one rollout id for all rows; per-agent token totals match the agent's kept actions
    assert len({r["wideseek"]["rollout_id"] for r in rows}) == 1
    for agent in {r["wideseek"]["agent_id"] for r in rows}:
        mine = [r for r in rows if r["wideseek"]["agent_id"] == agent]
        total = sum(e - s for r in mine for s, e in r["action_ranges"])
        assert {r["wideseek"]["agent_token_total"] for r in mine} == {total}

    # the lead's second prompt holds the subagents' reports (think blocks removed) and the failure text
    lead2 = tok.decode(rows[1]["observation_tokens"][: rows[1]["action_ranges"][0][0]])
    assert "# Subtask 1:" in lead2 and "First Light was released in 1999." in lead2
    assert "could not complete this subtask" in lead2
    # subagent prompts carry their own tools and the search results from the local corpus
    sub2 = tok.decode(rows[3]["observation_tokens"][: rows[3]["action_ranges"][0][0]])
    assert '"name": "search"' in sub2 and '"name": "create_sub_agents"' not in sub2
    assert "https://music.example/nimbus" in sub2


async def test_openrlhf_sampling_params_drive_every_call(tok, tmp_path, corpus):
    engine = ScriptedEngine(tok, script())
    ex = AgentExecutor(settings(tmp_path, corpus), reward_fn=row_share)
    rec = convert_wideseek_record(TASK)
    try:
        await ex.execute(
            rec["prompt"], rec["label"], openrlhf_params(temperature=0.6, top_p=0.95), 8192, tok, engine
        )
    finally:
        await ex.aclose()
    temps = {(sp.temperature, sp.top_p, sp.top_k, sp.min_tokens) for _, sp in engine.calls}
    assert temps == {(0.6, 0.95, -1, 1)}
    # every call may use the rest of the context, never more
    for prompt_ids, sp in engine.calls:
        assert sp.max_tokens <= 8192 - len(prompt_ids)


async def test_lead_failure_keeps_every_row_with_reward_zero(tok, tmp_path, corpus):
    calls = []

    def reward(result, label):
        calls.append(result)
        return 1.0

    sc = TextScript(
        lead=[LEAD_CALL, LEAD_CALL],
        subagents={
            "album First Light": SUB_SECOND,
            "album Second Wind": SUB_SECOND,
            "album Third Rail": [SUB_THIRD_FOREVER] * 3,
        },
    )
    engine = ScriptedEngine(tok, sc)
    ex = AgentExecutor(settings(tmp_path, corpus, max_lead_turns=2), reward_fn=reward)
    rec = convert_wideseek_record(TASK)
    try:
        rows = await ex.execute(rec["prompt"], rec["label"], openrlhf_params(), 8192, tok, engine)
    finally:
        await ex.aclose()
    # the reward is still asked (every row logs the same parts) but the rollout's reward is forced to 0
    assert len(calls) == 1 and calls[0].status == "failed"
    # the lead's 2nd turn is its last (max_lead_turns=2) and asks for more subagents: the lead fails there
    assert len(rows) == len(engine.calls) == 2 + (1 + 1 + 3)
    assert {r["reward"] for r in rows} == {0.0}
    assert {r["wideseek"]["num_agents"] for r in rows} == {1 + 3}  # the failed subagent is kept too
    assert rows[0]["extra_logs"]["lead_failed"] == 1.0 and rows[0]["extra_logs"]["wideseek_reward"] == 0.0


async def test_concurrent_samples_share_one_endpoint_and_keep_rollouts_apart(tok, tmp_path, corpus):
    engine = ScriptedEngine(tok, script(), delay=0.001)
    ex = AgentExecutor(settings(tmp_path, corpus), reward_fn=row_share)
    rec = convert_wideseek_record(TASK)
    try:
        outs = await asyncio.gather(
            *[ex.execute(rec["prompt"], rec["label"], openrlhf_params(), 8192, tok, engine) for _ in range(4)]
        )
        port = ex.endpoint.port
    finally:
        await ex.aclose()
    assert [len(o) for o in outs] == [6, 6, 6, 6]
    ids = [{r["wideseek"]["rollout_id"] for r in o} for o in outs]
    assert all(len(s) == 1 for s in ids) and len(set.union(*ids)) == 4
    assert port and ex.row_stats.rows == 24 and ex.row_stats.dropped_failed_subagents == 4


async def test_context_limit_fails_the_overflowing_agent_not_the_step(tok, tmp_path, corpus):
    long_report = model_text("word " * 3000, reasoning="verbose")
    sc = TextScript(
        lead=[LEAD_CALL, LEAD_FINAL],
        subagents={
            "album First Light": [long_report],
            "album Second Wind": SUB_SECOND,
            "album Third Rail": [SUB_THIRD_FOREVER] * 3,
        },
    )
    engine = ScriptedEngine(tok, sc)
    ex = AgentExecutor(settings(tmp_path, corpus), reward_fn=row_share)
    rec = convert_wideseek_record(TASK)
    try:
        rows = await ex.execute(rec["prompt"], rec["label"], openrlhf_params(), 2400, tok, engine)
    finally:
        await ex.aclose()
    # the verbose subagent hit the context (finish "length") and failed: its call is not trained on
    agents = {r["wideseek"]["agent_id"] for r in rows if r["wideseek"]["role"] == "subagent"}
    assert len(agents) == 1
    assert all(len(r["observation_tokens"]) <= 2400 for r in rows)
    assert rows[0]["extra_logs"]["truncated_calls"] >= 1
    assert rows[0]["extra_logs"]["failed_subagents"] == 2


async def test_reward_errors_raise_or_drop_the_rollout(tok, tmp_path, corpus):
    def broken(result, label):
        raise RuntimeError("judge unreachable")

    rec = convert_wideseek_record(TASK)
    ex = AgentExecutor(settings(tmp_path, corpus), reward_fn=broken)
    try:
        with pytest.raises(RuntimeError, match="judge unreachable"):
            await ex.execute(
                rec["prompt"], rec["label"], openrlhf_params(), 8192, tok, ScriptedEngine(tok, script())
            )
        assert ex.endpoint is not None and ex.endpoint._slots == {}  # the rollout was closed anyway
    finally:
        await ex.aclose()
    s = settings(tmp_path, corpus)
    s.on_rollout_error = "drop"
    ex = AgentExecutor(s, reward_fn=broken)
    try:
        rows = await ex.execute(
            rec["prompt"], rec["label"], openrlhf_params(), 8192, tok, ScriptedEngine(tok, script())
        )
    finally:
        await ex.aclose()
    assert rows == []


async def test_a_label_not_built_by_training_data_is_rejected(tok, tmp_path, corpus):
    ex = AgentExecutor(settings(tmp_path, corpus), reward_fn=row_share)
    with pytest.raises(ValueError, match="python -m training.data"):
        await ex.execute("q", "the answer is 42", openrlhf_params(), 8192, tok, ScriptedEngine(tok, script()))
    templated = tok.apply_chat_template(
        [{"role": "user", "content": QUESTION}], tokenize=False, add_generation_prompt=True
    )
    with pytest.raises(ValueError, match="--data.apply_chat_template"):
        await ex.execute(
            templated,
            convert_wideseek_record(TASK)["label"],
            openrlhf_params(),
            8192,
            tok,
            ScriptedEngine(tok, script()),
        )
    await ex.aclose()


@pytest.mark.slow  # a fresh interpreter importing OpenRLHF, LangGraph and transformers: about 7 s
def test_openrlhf_loads_the_file_by_path_from_anywhere(tmp_path, corpus):
    """What OpenRLHF 0.11.2 does in each Ray actor: import the file as a bare module, check the base class,
    call the no-argument constructor (settings from WIDESEEK_TRAIN_CONFIG)."""
    cfg = tmp_path / "train.json"
    cfg.write_text(
        json.dumps(
            {
                "graph": {"search": "local", "corpus": str(corpus)},
                "reward": {"function": f"{REPO / 'tests/training/test_agent_executor.py'}:row_share"},
                "rollout_timeout": 600,
            }
        )
    )
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('agent_module', "
        f"{str(REPO / 'training/agent_executor.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "assert issubclass(m.AgentExecutor, m.AgentExecutorBase)\n"
        "ex = m.AgentExecutor()\n"
        "print(ex.settings.rollout_timeout, ex.settings.graph['search'], "
        "ex.runner.reward.function.__name__)\n"
        "print(m.AgentExecutorBase.__module__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["WIDESEEK_TRAIN_CONFIG"] = str(cfg)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["600.0", "local", "row_share"]
    # with OpenRLHF installed the class derives from OpenRLHF's own base (its issubclass check passes)
    expect = "openrlhf.utils.agent" if importlib.util.find_spec("openrlhf") else "agent_module"
    assert lines[1] == expect


def test_bad_settings_file_is_a_clear_error(tmp_path, monkeypatch):
    cfg = tmp_path / "train.json"
    monkeypatch.setenv("WIDESEEK_TRAIN_CONFIG", str(cfg))
    with pytest.raises(FileNotFoundError, match="no such file"):
        ExecutorSettings.from_env()
    cfg.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ExecutorSettings.from_env()
    cfg.write_text('{"graph": {}, "unknown_knob": 1}')
    with pytest.raises(ValueError, match="unknown_knob"):
        ExecutorSettings.from_env()
    cfg.write_text('{"reward": {"function": "no_colon_here"}}')
    with pytest.raises(ValueError, match="module:function"):
        AgentExecutor()
