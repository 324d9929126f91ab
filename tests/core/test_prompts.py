"""Prompt texts (en, zh), user overrides, tool schemas, and byte-identical prefixes for agents of a role."""

from __future__ import annotations

import json
import re

import pytest

from langgraph_wideseek.prompts import PROMPT_FILES, fill, load_prompts
from langgraph_wideseek.testing import Reply, ScriptedPolicy, is_lead
from langgraph_wideseek.tools.schemas import lead_tools, subagent_tools

from .helpers import call, spawn

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_packaged_prompts_are_complete(lang):
    p = load_prompts(lang)
    for name in PROMPT_FILES:
        assert getattr(p, name[:-3]).strip(), name
    assert "{question}" in p.lead_user
    assert "{question}" in p.subagent_user and "{subtask}" in p.subagent_user
    assert p.subagent_user.index("{question}") < p.subagent_user.index("{subtask}")
    for ph in ("{url}", "{info}", "{page}"):
        assert ph in p.summarizer_user
    # spec section 4: the lead's prompt names its tool, the limit per wave and both answer formats
    assert "create_sub_agents" in p.lead_system and "10" in p.lead_system
    assert "```markdown" in p.lead_system and "\\boxed{" in p.lead_system
    assert "<think>" in p.lead_system and "<think>" in p.subagent_system
    assert "search" in p.subagent_system and "access" in p.subagent_system
    if lang == "zh":
        for text in (p.lead_system, p.subagent_system, p.summarizer_system):
            assert len(CJK.findall(text)) > 50


def test_languages_define_the_same_texts_and_tool_descriptions():
    en, zh = load_prompts("en"), load_prompts("zh")
    assert en.texts.keys() == zh.texts.keys()
    assert en.texts["tool_descriptions"].keys() == zh.texts["tool_descriptions"].keys()
    for key, value in zh.texts["tool_descriptions"].items():
        assert CJK.search(value), key
    # placeholders agree, so code that fills them works in both languages
    for key in en.texts:
        if isinstance(en.texts[key], str):
            placeholders = [set(re.findall(r"\{\w+\}", p.texts[key])) for p in (en, zh)]
            assert placeholders[0] == placeholders[1], key


def test_unknown_language_and_missing_prompt_dir(tmp_path):
    with pytest.raises(ValueError, match="unsupported prompt language"):
        load_prompts("fr")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_prompts("en", tmp_path / "absent")


def test_prompt_dir_overrides_files_and_texts(tmp_path):
    (tmp_path / "lead_system.md").write_text("CUSTOM LEAD\n", encoding="utf-8")
    (tmp_path / "zh").mkdir()
    (tmp_path / "zh" / "subagent_system.md").write_text("定制子智能体", encoding="utf-8")
    (tmp_path / "texts.json").write_text(
        json.dumps(
            {
                "empty_reply": "Say something.",
                "tool_descriptions": {"search": "Custom search tool."},
            }
        ),
        encoding="utf-8",
    )
    en = load_prompts("en", tmp_path)
    assert en.lead_system == "CUSTOM LEAD"
    assert en.subagent_system == load_prompts("en").subagent_system  # not overridden for en
    assert en.text("empty_reply") == "Say something."
    assert en.tool_description("search") == "Custom search tool."
    # merged with the packaged descriptions, not replacing them
    assert en.tool_description("access") == load_prompts("en").tool_description("access")
    assert en.text("tool_error", error="x") == "Error: x"
    zh = load_prompts("zh", tmp_path)
    assert zh.subagent_system == "定制子智能体"
    assert zh.lead_system == "CUSTOM LEAD"  # a file at the top of prompt_dir serves every language


def test_fill_leaves_other_braces_alone():
    assert fill('{question} {"a": 1} \\boxed{x} {page}', question="Q?") == 'Q? {"a": 1} \\boxed{x} {page}'


def test_fill_inserts_values_verbatim():
    # a question that happens to contain another placeholder must not pull the subtask into itself
    out = fill("T: {question}\nS: {subtask}", question="what is {subtask}?", subtask="find X")
    assert out == "T: what is {subtask}?\nS: find X"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_tool_schemas_keep_the_trained_names_and_shapes(lang):
    p = load_prompts(lang)
    (lead,) = lead_tools(p)
    assert lead["function"]["name"] == "create_sub_agents"
    params = lead["function"]["parameters"]
    assert params["required"] == ["sub_agents"]
    assert params["properties"]["sub_agents"]["items"]["required"] == ["prompt"]
    search, access = subagent_tools(p)
    assert search["function"]["name"] == "search" and access["function"]["name"] == "access"
    q = search["function"]["parameters"]["properties"]["queries"]["items"]
    assert q["required"] == ["query"] and q["properties"]["count"] == {
        "type": "integer",
        "description": p.tool_description("search.count"),
        "default": 3,
    }
    u = access["function"]["parameters"]["properties"]["urls"]["items"]
    assert u["required"] == ["url", "info_to_extract"]


# ------------------------------------------------------------------------------------- over the wire
def _run_three_subagents() -> ScriptedPolicy:
    return ScriptedPolicy(
        lead=[
            spawn("SUBTASK-A find Amsel", "SUBTASK-B find Brenna", "SUBTASK-C find Corvo"),
            Reply(content="done"),
        ],
        default_subagent=lambda req, k: (
            Reply(tool_calls=[call("search", queries=[{"query": "Veloria river"}])])
            if k == 0
            else Reply(content="report")
        ),
    )


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_system_prompts_and_tools_are_byte_identical_across_agents(serve, make_graph, lang):
    policy = _run_three_subagents()
    srv = await serve(policy)
    result = await make_graph(srv, language=lang).arun("List the rivers of Veloria.")
    assert result.status == "ok" and policy.failures == []
    prompts = load_prompts(lang)

    subs = [r for r in srv.requests if not is_lead(r)]
    leads = [r for r in srv.requests if is_lead(r)]
    assert len(subs) == 6 and len(leads) == 2
    # the shared prefix: the same system message bytes and the same tool list bytes for every subagent turn
    assert {json.dumps(r["messages"][0], ensure_ascii=False) for r in subs} == {
        json.dumps({"role": "system", "content": prompts.subagent_system}, ensure_ascii=False)
    }
    assert len({json.dumps(r["tools"], ensure_ascii=False, sort_keys=False) for r in subs}) == 1
    assert subs[0]["tools"] == subagent_tools(prompts)
    assert {r["messages"][0]["content"] for r in leads} == {prompts.lead_system}
    assert leads[0]["tools"] == lead_tools(prompts)
    # the variable part comes last: the first user message is the template filled with task and subtask
    firsts = sorted(r["messages"][1]["content"] for r in subs if len(r["messages"]) == 2)
    head = prompts.subagent_user.split("{question}")[0]
    assert len(firsts) == 3 and all(f.startswith(head) for f in firsts)
    assert "SUBTASK-A" in firsts[0] and "List the rivers of Veloria." in firsts[0]
    if lang == "zh":
        assert CJK.search(leads[0]["messages"][1]["content"])  # the turn hint is Chinese too
        assert CJK.search(leads[1]["messages"][-1]["content"])
