"""The WideSeek-R1 graph: a lead agent that fans out parallel subagents, as a LangGraph ``StateGraph``.

Shape (parent graph = the lead)::

    START -> start -> lead --(create_sub_agents)--> Send("subagent", ...) x N -> collect -> lead
                           --(malformed / empty / extra calls)--> lead_feedback -> lead
                           --(reply without a tool call, or failure)--> finalize -> END

``subagent`` runs one subagent with its own private state, turn by turn (the model call plus its tool call,
the last turn also writing the report): by default as a compiled subgraph (``START -> turn <-> turn -> END``)
taking one graph step per turn, or, with ``subagent_subgraph=False``, as one node looping over the same turns.
Either way only its report and its trajectory flow back. Every subagent of a wave runs concurrently (LangGraph
runs the Sends of one superstep together) and every item of a tool call runs concurrently (``asyncio.gather``
in the tool layer).

Both roles take a turn the same way (:meth:`WideSeekGraph._agent_turn`: first prompt, prompt budget, model
call, turn record, status) and answer their tool calls the same way (:meth:`WideSeekGraph._answer_calls`: the
first call runs, further calls of the turn are told so, the turn hint comes last); an :class:`_AgentSpec`
holds what differs between them.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, convert_to_messages
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import get_runtime
from langgraph.types import Send

from ..config import WideSeekConfig
from ..errors import ToolArgumentError, raise_if_strict
from ..model.chat import ChatVLLM
from ..model.hermes import strip_thinking
from ..prompts import Prompts, fill, load_prompts
from ..tools.access import AccessTool
from ..tools.base import PageReader, SearchBackend
from ..tools.schemas import ACCESS, CREATE_SUB_AGENTS, SEARCH, lead_tools, subagent_tools
from ..tools.search import SearchTool
from ..tools.summarize import PageSummarizer
from ..tools.tally import tallying
from .answer import extract_boxed, extract_table
from .context import CONTEXT_MAX_TURNS, WideSeekContext
from .result import Usage, WideSeekResult
from .state import (
    RESET,
    LeadInput,
    LeadOutput,
    LeadState,
    PendingCall,
    Report,
    SubagentInput,
    SubagentOutput,
    SubagentState,
    ToolCallRef,
    apply_update,
)
from .trajectory import AgentStatus, Role, Status, Trajectory, from_plain, to_plain
from .turns import (
    ChatRunnable,
    ReplyKind,
    TurnOutcome,
    build_agent_trajectory,
    call_model,
    estimate_tokens,
    ordered_calls,
    tool_reply,
)

__all__ = ["WideSeekGraph"]

log = logging.getLogger(__name__)


def _emit(event: dict[str, Any]) -> None:
    """Send a progress event to LangGraph clients streaming with ``stream_mode="custom"``."""
    try:
        writer = get_stream_writer()
    except RuntimeError:  # outside a runnable context (a node called directly): nothing to stream to
        return
    writer(event)


def _ref(call: dict[str, Any]) -> ToolCallRef:
    return {"id": call["id"], "name": call.get("name")}


@dataclass(frozen=True)
class _AgentSpec:
    """What differs between the lead and a subagent in taking a turn."""

    role: Role
    system: SystemMessage
    llm: ChatRunnable  # the chat model with the role's tools bound
    # the role's tool schemas as recorded in trajectories: a copy of the ones sent, so that editing a record
    # in place can never change what later requests send
    tools: list[dict[str, Any]]
    max_turns: int
    user_prompt: str  # the template of the first user message
    prompt_name: str  # what the first prompt is called in errors ("task", "subtask")
    outcome_name: str  # what the agent must produce ("a final answer", "a report")
    error_prefix: str  # put before the agent's errors ("lead: " for the lead)
    messages_key: str  # the state key of the agent's conversation


@dataclass(frozen=True)
class _Language:
    """Everything built from one language's prompts: the agents' specs and the tools that format text."""

    prompts: Prompts
    lead: _AgentSpec
    sub: _AgentSpec
    search_tool: SearchTool
    access_tool: AccessTool

    def tool(self, name: str) -> SearchTool | AccessTool | None:
        tools: dict[str, SearchTool | AccessTool] = {SEARCH: self.search_tool, ACCESS: self.access_tool}
        return tools.get(name)


@dataclass(frozen=True)
class _Run:
    """The settings one run uses: the config's, with the run's :class:`WideSeekContext` on top."""

    lang: _Language
    lead: _AgentSpec
    sub: _AgentSpec
    max_subagents: int
    subagent_timeout: float

    @property
    def prompts(self) -> Prompts:
        return self.lang.prompts


def _run_context() -> WideSeekContext | None:
    """The :class:`WideSeekContext` of the run in progress (None outside a run, or without one)."""
    try:
        return WideSeekContext.of(get_runtime().context)
    except RuntimeError:  # not inside a graph run (a node called directly)
        return None


class WideSeekGraph:
    """Builds and runs the WideSeek-R1 multi-agent graph.

    ``llm`` (any LangChain chat model that supports ``bind_tools``), ``search`` and ``reader`` replace what
    the config would build; ``summarizer_llm`` replaces the page summariser's model.

    By default each subagent is a compiled subgraph with one graph step per turn (each turn shows up in Studio
    and in ``stream(..., subgraphs=True)``, and a checkpointer saves each turn). ``subagent_subgraph=False``
    runs each subagent as one node that loops over the same turns: the same messages, trajectory and events,
    for about 40% less client CPU per model call (every LangGraph step costs about as much as the model call
    itself; docs/benchmarks.md). RL rollouts, where thousands of agent loops share a CPU, use it.

    With ``config.strict`` every failure a tool, backend or model call raises propagates out of the graph
    instead of becoming a message for the model (see :mod:`langgraph_wideseek.errors`).
    """

    def __init__(
        self,
        config: WideSeekConfig | None = None,
        *,
        llm: BaseChatModel | None = None,
        search: SearchBackend | None = None,
        reader: PageReader | None = None,
        summarizer_llm: BaseChatModel | None = None,
        prompts: Prompts | None = None,
        subagent_subgraph: bool = True,
    ) -> None:
        self.config = config or WideSeekConfig()
        self.subagent_subgraph = subagent_subgraph
        cfg = self.config
        self.prompts = prompts or load_prompts(cfg.language, cfg.prompt_dir)
        self.llm = llm or ChatVLLM.from_config(cfg)
        if search is None or reader is None:
            from ..tools.factory import build_backends

            built_search, built_reader = build_backends(cfg)
            search = search or built_search
            reader = reader or built_reader
        self.search_backend = search
        self.reader = reader
        self._summarizer_llm: BaseChatModel | None = None
        if cfg.summarize_pages:
            if summarizer_llm is None:
                base_url, model, key = cfg.summary_endpoint()
                if llm is not None and base_url == cfg.base_url and model == cfg.model:
                    summarizer_llm = llm  # an injected model also summarises unless told otherwise
                else:
                    summarizer_llm = ChatVLLM.from_config(
                        cfg,
                        base_url=base_url,
                        model=model,
                        api_key=key,
                        return_token_ids=False,
                        logprobs=False,
                    )
            self._summarizer_llm = summarizer_llm
        # Built once per language: byte-identical prompts and schemas for every agent of a role (vLLM prefix
        # cache). The config's language is built now; another one when a run's context asks for it.
        self._languages: dict[str, _Language] = {}
        default = self._language(cfg.language, self.prompts)
        self.search_tool, self.access_tool = default.search_tool, default.access_tool
        self.lead_tool_schemas = default.lead.tools
        self.subagent_tool_schemas = default.sub.tools
        self._default_run = _Run(
            default, default.lead, default.sub, cfg.max_subagents, float(cfg.subagent_timeout or 0)
        )
        self._compiled: CompiledStateGraph[Any, Any, Any, Any] | None = None

    def _language(self, language: str, prompts: Prompts | None = None) -> _Language:
        """The prompts, agent specs and tools of one language (built on first use, then kept)."""
        got = self._languages.get(language)
        if got is not None:
            return got
        cfg = self.config
        prompts = prompts or load_prompts(language, cfg.prompt_dir)
        summarizer = None
        if self._summarizer_llm is not None:
            summarizer = PageSummarizer(self._summarizer_llm, prompts, max_tokens=cfg.summary_max_tokens)
        search_tool = SearchTool(
            self.search_backend,
            prompts,
            max_items=cfg.max_tool_items,
            count_default=cfg.search_count_default,
            count_max=cfg.search_count_max,
            snippet_chars=cfg.snippet_chars,
            strict=cfg.strict,
        )
        access_tool = AccessTool(
            self.reader,
            prompts,
            summarizer=summarizer,
            max_items=cfg.max_tool_items,
            page_chars=cfg.page_chars,
            strict=cfg.strict,
        )
        lead_schemas, sub_schemas = lead_tools(prompts), subagent_tools(prompts)
        lead = _AgentSpec(
            role=Role.LEAD,
            system=SystemMessage(prompts.lead_system),
            llm=self.llm.bind_tools(lead_schemas),
            tools=copy.deepcopy(lead_schemas),
            max_turns=cfg.max_lead_turns,
            user_prompt=prompts.lead_user,
            prompt_name="task",
            outcome_name="a final answer",
            error_prefix="lead: ",
            messages_key="lead_messages",
        )
        sub = _AgentSpec(
            role=Role.SUBAGENT,
            system=SystemMessage(prompts.subagent_system),
            llm=self.llm.bind_tools(sub_schemas),
            tools=copy.deepcopy(sub_schemas),
            max_turns=cfg.max_subagent_turns,
            user_prompt=prompts.subagent_user,
            prompt_name="subtask",
            outcome_name="a report",
            error_prefix="",
            messages_key="messages",
        )
        got = self._languages[language] = _Language(prompts, lead, sub, search_tool, access_tool)
        return got

    def _run(self) -> _Run:
        """The settings of the run in progress: the config's, overridden by the run's context."""
        ctx = _run_context()
        if ctx is None or ctx == WideSeekContext():
            return self._default_run
        d = self._default_run
        lang = self._language(ctx.language) if ctx.language else d.lang
        lead, sub = lang.lead, lang.sub
        if ctx.max_lead_turns is not None:
            lead = replace(lead, max_turns=ctx.max_lead_turns)
        if ctx.max_subagent_turns is not None:
            sub = replace(sub, max_turns=ctx.max_subagent_turns)
        return _Run(
            lang,
            lead,
            sub,
            ctx.max_subagents if ctx.max_subagents is not None else d.max_subagents,
            ctx.subagent_timeout if ctx.subagent_timeout is not None else d.subagent_timeout,
        )

    # ================================================================================ one turn, both roles
    async def _agent_turn(
        self,
        run: _Run,
        agent: _AgentSpec,
        state: LeadState | SubagentState,
        first_user: dict[str, str],
        *,
        deadline: float | None = None,
        announce: Callable[[int], None] | None = None,
    ) -> tuple[dict[str, Any], TurnOutcome | None]:
        """One model call of ``agent``: the state update, and the call's outcome (``None``: no call was made).

        The first turn starts the agent's messages (system prompt, then the user prompt filled with
        ``first_user`` and the first-turn hint). The update sets ``status`` when the agent is done: ``OK`` for
        a final reply, ``FAILED`` (with ``error``) for a failed call, an oversized prompt or the turn limit.
        """
        cfg = self.config
        key = agent.messages_key
        messages: Sequence[BaseMessage] = state.get(key) or []  # type: ignore[assignment]
        update: dict[str, Any] = {}
        new: list[BaseMessage] = []
        if not messages:
            user = fill(agent.user_prompt, **first_user)
            user += run.prompts.text("first_turn_hint", max_turns=agent.max_turns)
            new = [agent.system, HumanMessage(user)]
            messages = new
            update.update(turn=0, ctx_tokens=0, ctx_messages=0, status=Status.RUNNING.value)
            if estimate_tokens(new) > cfg.max_prompt_tokens:
                update[key] = new
                reason = f"the {agent.prompt_name} prompt exceeds max_prompt_tokens ({cfg.max_prompt_tokens})"
                return self._failed(agent, update, reason), None
        turn = state.get("turn", 0) + 1
        if announce is not None:
            announce(turn)
        out = await call_model(
            agent.llm,
            messages,
            context_tokens=cfg.context_tokens,
            ctx_tokens=state.get("ctx_tokens", 0),
            ctx_messages=state.get("ctx_messages", 0),
            deadline=deadline,
            strict=cfg.strict,
            run_name=f"{agent.role.value} turn {turn}",
            metadata=self._trace_ids(agent, state, turn),
        )
        update["turn"] = turn
        if out.reply is not None:
            update["turn_meta"] = [{"turn": turn, "n_messages": len(messages), "reply_index": len(messages)}]
            new = [*new, out.reply]
            update.update(ctx_tokens=out.ctx_tokens, ctx_messages=len(messages) + 1)
        update[key] = new
        if out.kind is ReplyKind.FAILED:
            self._failed(agent, update, out.error or "the model call failed")
        elif out.kind is ReplyKind.FINAL:
            update["status"] = Status.OK.value
        elif turn >= agent.max_turns:
            self._failed(
                agent, update, f"turn limit ({agent.max_turns}) reached without {agent.outcome_name}"
            )
        return update, out

    @staticmethod
    def _trace_ids(agent: _AgentSpec, state: LeadState | SubagentState, turn: int) -> dict[str, Any]:
        """The ids a model call carries in traces: agent, role, wave, subagent index and turn."""
        if agent.role is Role.LEAD:
            return {"wideseek_agent": "lead", "wideseek_role": "lead", "wideseek_turn": turn}
        sub = cast(SubagentState, state)
        return {
            "wideseek_agent": sub.get("agent_id"),
            "wideseek_role": "subagent",
            "wideseek_wave": sub.get("wave"),
            "wideseek_subagent": sub.get("index"),
            "wideseek_turn": turn,
        }

    @staticmethod
    def _failed(agent: _AgentSpec, update: dict[str, Any], reason: str) -> dict[str, Any]:
        update.update(status=Status.FAILED.value, error=agent.error_prefix + reason)
        return update

    @staticmethod
    def _answer_calls(
        prompts: Prompts,
        first: ToolCallRef | None,
        first_text: str,
        is_error: bool,
        others: list[ToolCallRef],
        *,
        next_turn: int,
        max_turns: int,
    ) -> list[BaseMessage]:
        """The messages that answer one turn's tool calls: the first call's result with the turn hint, and
        "only the first call runs" for the others; a turn without calls gets a user nudge instead."""
        hint = prompts.text("next_turn_hint", turn=next_turn, max_turns=max_turns)
        if first is None:
            return [HumanMessage(prompts.text("empty_reply") + hint)]
        out: list[BaseMessage] = [
            tool_reply(first["id"], first_text + hint, name=first["name"], error=is_error)
        ]
        out += [
            tool_reply(c["id"], prompts.text("only_first_call"), name=c["name"], error=True) for c in others
        ]
        return out

    # ====================================================================================== subagent graph
    async def _sub_act(self, run: _Run, state: SubagentState) -> dict[str, Any]:
        deadline = state.get("deadline")
        first: dict[str, Any] = {}
        if not state.get("messages"):
            deadline = time.time() + run.subagent_timeout if run.subagent_timeout else None
            first["deadline"] = deadline
            _emit(
                {
                    "type": "subagent_start",
                    "agent_id": state["agent_id"],
                    "index": state["index"],
                    "wave": state["wave"],
                }
            )
        update, _ = await self._agent_turn(
            run,
            run.sub,
            state,
            {"question": state["question"], "subtask": state["subtask"]},
            deadline=deadline,
        )
        return {**first, **update}

    def _sub_route(self, state: SubagentState) -> str:
        return "turn" if state.get("status") == Status.RUNNING else END

    async def _sub_turn(self, state: SubagentState) -> SubagentState:
        """One subagent turn as one graph step: the model call, then its tool call, or (when the agent is
        done) its report. A LangGraph superstep costs the client about as much CPU as the model call itself
        (see docs/benchmarks.md), so each turn is one step rather than separate act/tools/finish steps."""
        run = self._run()
        update = await self._sub_act(run, state)
        after = apply_update(SubagentState, state, update)
        more = (
            await self._sub_tools(run, after)
            if after.get("status") == Status.RUNNING
            else self._sub_finish(run, after)
        )
        return apply_update(SubagentState, update, more)

    async def _run_tool(self, run: _Run, call: dict[str, Any]) -> tuple[str, list[str], bool]:
        """(tool message text, backend errors, is_error) for one subagent tool call."""
        prompts = run.prompts
        if not call["valid"]:
            return prompts.text("tool_error", error=call.get("error") or "malformed tool call"), [], True
        name, args = call["name"], call["args"]
        tool = run.lang.tool(name)
        if tool is None:
            err = prompts.text("unknown_tool", name=name, available=f"{SEARCH}, {ACCESS}")
            return prompts.text("tool_error", error=err), [], True
        try:
            text, errors = await tool.run(args)
            return text, errors, False
        except ToolArgumentError as e:
            return prompts.text("tool_error", error=str(e)), [], True
        except Exception as e:  # a bug in a tool costs this call, not the wave (unless strict)
            raise_if_strict(e, self.config.strict)
            log.exception("tool %s raised", name)
            reason = f"internal error {type(e).__name__}"
            return prompts.text("tool_error", error=f"the {name} tool failed ({reason})"), [reason], True

    async def _sub_tools(self, run: _Run, state: SubagentState) -> dict[str, Any]:
        reply = state["messages"][-1]
        assert isinstance(reply, AIMessage)
        turn_args = {"next_turn": state["turn"] + 1, "max_turns": run.sub.max_turns}
        calls = ordered_calls(reply)
        if not calls:
            return {"messages": self._answer_calls(run.prompts, None, "", False, [], **turn_args)}
        text, errors, is_error = await self._run_tool(run, calls[0])
        messages = self._answer_calls(
            run.prompts, _ref(calls[0]), text, is_error, [_ref(c) for c in calls[1:]], **turn_args
        )
        return {"messages": messages, "tool_errors": errors}

    def _sub_finish(self, run: _Run, state: SubagentState) -> dict[str, Any]:
        status: AgentStatus = Status.OK if state.get("status") == Status.OK else Status.FAILED
        error = state.get("error")
        if status == Status.OK:
            last = state["messages"][-1]
            report_text = strip_thinking(last.text)
        else:
            report_text = run.prompts.text("subagent_failed", reason=error or "unknown failure")
        traj = build_agent_trajectory(
            state["agent_id"],
            Role.SUBAGENT,
            state.get("messages") or [],
            state.get("turn_meta") or [],
            run.sub.tools,
            status=status,
            index=state["index"],
            error=error,
            keep_reasoning=self.config.keep_reasoning,
        )
        report: Report = {
            "index": state["index"],
            "agent_id": state["agent_id"],
            "subtask": state["subtask"],
            "status": status.value,
            "report": report_text,
            "error": error,
            "tool_errors": list(state.get("tool_errors") or []),
        }
        _emit(
            {
                "type": "subagent_done",
                "agent_id": state["agent_id"],
                "index": state["index"],
                "wave": state["wave"],
                "status": status.value,
                "turns": len(traj.turns),
                "error": error,
            }
        )
        return {"reports": [report], "agents": [to_plain(traj)]}

    async def _subagent_node(self, state: SubagentInput) -> dict[str, Any]:
        """A whole subagent as one node: the subgraph's turns, looped here instead of as graph steps."""
        current = cast(SubagentState, dict(state))
        while True:
            current = apply_update(SubagentState, current, await self._sub_turn(current))
            if current.get("status") != Status.RUNNING:
                return {"reports": current["reports"], "agents": current["agents"]}

    def build_subagent_graph(self) -> CompiledStateGraph:
        g = StateGraph(SubagentState, input_schema=SubagentInput, output_schema=SubagentOutput)
        g.add_node("turn", self._sub_turn)
        g.add_edge(START, "turn")
        g.add_conditional_edges("turn", self._sub_route, ["turn", END])
        return g.compile(name="subagent")

    # ========================================================================================== lead graph
    def _validate_subtasks(
        self, run: _Run, call: dict[str, Any], started: int = 0
    ) -> tuple[list[str], list[str], str | None]:
        """(subtask prompts, notes for the lead, error) for one create_sub_agents call, ``started`` subagents
        into the run: at most the run's ``max_subagents`` per call and ``max_total_subagents`` per run."""
        prompts_ = run.prompts
        if not call["valid"]:
            return [], [], call.get("error") or "malformed tool call"
        if call["name"] != CREATE_SUB_AGENTS:
            return [], [], prompts_.text("unknown_tool", name=call["name"], available=CREATE_SUB_AGENTS)
        items = call["args"].get("sub_agents")
        if not isinstance(items, list) or not items:
            return (
                [],
                [],
                ('create_sub_agents expects {"sub_agents": [{"prompt": str}, ...]} with at least one entry'),
            )
        prompts, skipped = [], 0
        for item in items:
            p = item.get("prompt") if isinstance(item, dict) else item if isinstance(item, str) else None
            if isinstance(p, str) and p.strip():
                prompts.append(p.strip())
            else:
                skipped += 1
        if not prompts:
            return [], [], "no entry of sub_agents has a non-empty string 'prompt'"
        notes = []
        if skipped:
            notes.append(prompts_.text("skipped_subagents", count=skipped))
        limit = run.max_subagents
        if len(prompts) > limit:
            notes.append(prompts_.text("dropped_subagents", max=limit, dropped=len(prompts) - limit))
            prompts = prompts[:limit]
        total = self.config.max_total_subagents
        left = max(0, total - started)
        if len(prompts) > left:
            note = prompts_.text("run_subagents_spent", max=total, dropped=len(prompts) - left)
            if not left:
                return [], [], note
            notes.append(note)
            prompts = prompts[:left]
        return prompts, notes, None

    async def _lead_node(self, state: LeadState) -> dict[str, Any]:
        run = self._run()
        update, out = await self._agent_turn(
            run,
            run.lead,
            state,
            {"question": state["question"]},
            announce=lambda turn: _emit({"type": "lead_turn", "turn": turn}),
        )
        update = {"reports": RESET, "pending": None, **update}
        wave = state.get("wave", 0)
        if update.get("status") == Status.FAILED:
            update["errors"] = [update["error"]]
        elif out is not None and out.kind is ReplyKind.TOOLS:
            assert out.reply is not None
            calls = ordered_calls(out.reply)
            started = sum(a.get("role") == Role.SUBAGENT for a in state.get("agents") or [])
            prompts, notes, error = self._validate_subtasks(run, calls[0], started)
            wave += 0 if error else 1
            update["wave"] = wave
            update["pending"] = PendingCall(
                call=_ref(calls[0]),
                others=[_ref(c) for c in calls[1:]],
                subtasks=prompts,
                notes=notes,
                error=error,
                wave=wave,
            )
        elif out is not None and out.kind is ReplyKind.EMPTY:
            update["pending"] = PendingCall(
                call=None, others=[], subtasks=[], notes=[], error=None, wave=wave
            )
        return update

    def _lead_route(self, state: LeadState) -> list[Send] | str:
        if state.get("status") != Status.RUNNING:
            return "finalize"
        pending = state.get("pending")
        if pending is not None and pending["subtasks"]:
            wave = pending["wave"]
            _emit({"type": "wave", "wave": wave, "subagents": len(pending["subtasks"])})
            return [
                Send(
                    "subagent",
                    SubagentInput(
                        question=state["question"], subtask=p, index=i, wave=wave, agent_id=f"w{wave}.s{i}"
                    ),
                )
                for i, p in enumerate(pending["subtasks"], 1)
            ]
        return "lead_feedback"

    def _answer_lead(self, run: _Run, state: LeadState, text: str, is_error: bool) -> list[BaseMessage]:
        pending = state.get("pending")
        assert pending is not None
        return self._answer_calls(
            run.prompts,
            pending["call"],
            text,
            is_error,
            pending["others"],
            next_turn=state["turn"] + 1,
            max_turns=run.lead.max_turns,
        )

    def _lead_feedback(self, state: LeadState) -> dict[str, Any]:
        pending = state.get("pending")
        error = (pending["error"] if pending is not None else None) or "malformed tool call"
        run = self._run()
        return {
            "lead_messages": self._answer_lead(run, state, run.prompts.text("tool_error", error=error), True),
            "pending": None,
        }

    def _collect(self, state: LeadState) -> dict[str, Any]:
        pending = state.get("pending")
        assert pending is not None
        reports = sorted(state.get("reports") or [], key=lambda r: r["index"])
        blocks = [f"# Subtask {r['index']}:\n{r['subtask']}\n# Result:\n{r['report']}" for r in reports]
        text = "\n\n".join(pending["notes"] + blocks)
        errors = [f"{r['agent_id']}: {r['error']}" for r in reports if r["status"] == Status.FAILED]
        errors += [f"{r['agent_id']}: {e}" for r in reports for e in r["tool_errors"]]
        answer = self._answer_lead(self._run(), state, text, False)
        return {"lead_messages": answer, "pending": None, "errors": errors}

    def _finalize(self, state: LeadState) -> dict[str, Any]:
        cfg = self.config
        status: AgentStatus = Status.OK if state.get("status") == Status.OK else Status.FAILED
        messages = state.get("lead_messages") or []
        answer = table = boxed = None
        if status == Status.OK:
            answer = strip_thinking(messages[-1].text)
            table = extract_table(answer)
            boxed = extract_boxed(answer)
        lead = build_agent_trajectory(
            "lead",
            Role.LEAD,
            messages,
            state.get("turn_meta") or [],
            self._run().lead.tools,
            status=status,
            error=state.get("error"),
            keep_reasoning=cfg.keep_reasoning,
        )
        subs = sorted(
            state.get("agents") or [],
            key=lambda a: (int(a["agent_id"].split(".")[0][1:]), a.get("index") or 0),
        )
        # Subagent trajectories are already plain data: build the record around them, without a validating
        # copy of every turn (see graph/trajectory.py)
        traj = to_plain(
            Trajectory(
                rollout_id=state.get("rollout_id") or uuid.uuid4().hex,
                question=state["question"],
                answer=answer,
                agents=[lead],
            )
        )
        traj["agents"] = traj["agents"] + subs
        _emit({"type": "final", "status": status.value})
        out: dict[str, Any] = {
            "status": status.value,
            "answer": answer,
            "table": table,
            "boxed": boxed,
            "trajectory": traj,
        }
        if state.get("reply_as_message"):  # asked with messages: answer with one message
            text = answer if answer is not None else self._failure_text(state.get("errors") or [])
            out["messages"] = [AIMessage(content=text, name="wideseek")]
        return out

    @staticmethod
    def _failure_text(errors: list[str]) -> str:
        return "The wide search failed: " + "; ".join(errors or ["no answer"])

    def _start(self, state: LeadState) -> dict[str, Any]:
        """Begin a run from a clean slate.

        With a checkpointer (Studio, an embedding app) a thread keeps its state between invocations, and the
        input of the next one is merged into it; without this reset the lead would go on with the previous
        task's messages and never see the new question.
        """
        rollout_id = state.get("rollout_id")
        if not rollout_id or rollout_id == (state.get("trajectory") or {}).get("rollout_id"):
            rollout_id = uuid.uuid4().hex  # not given for this run: the id left by the previous one
        update: dict[str, Any] = {}
        given = state.get("messages")
        if given:  # a parent graph's messages: the last human one is the question; answered with one message
            human = [m for m in convert_to_messages(given) if isinstance(m, HumanMessage)]
            if not human:
                raise ValueError("the input messages hold no human message to take the question from")
            update.update(question=human[-1].text, messages=[], reply_as_message=True)
        elif not (state.get("question") or "").strip():
            raise ValueError("the input needs a non-empty 'question' (or 'messages' with a human message)")
        else:
            update["reply_as_message"] = False
        return {
            **update,
            "rollout_id": rollout_id,
            "lead_messages": RESET,
            "turn_meta": RESET,
            "agents": RESET,
            "errors": RESET,
            "reports": RESET,
            "pending": None,
            "status": Status.RUNNING.value,
            "error": None,
            "turn": 0,
            "wave": 0,
            "ctx_tokens": 0,
            "ctx_messages": 0,
            "answer": None,
            "table": None,
            "boxed": None,
            "trajectory": None,
        }

    def build(self, *, full_output: bool = False) -> StateGraph[Any, Any, Any, Any]:
        """The uncompiled lead graph (add nodes or compile with your own checkpointer).

        Its input is :class:`LeadInput`, its output :class:`LeadOutput` (``full_output=True``: the whole
        state, trajectory included, as :meth:`arun` reads it), its context :class:`WideSeekContext`."""
        g = StateGraph(
            LeadState,
            context_schema=WideSeekContext,
            input_schema=LeadInput,
            output_schema=LeadState if full_output else LeadOutput,
        )
        g.add_node("start", self._start)
        g.add_node("lead", self._lead_node)
        g.add_node("subagent", self.build_subagent_graph() if self.subagent_subgraph else self._subagent_node)
        g.add_node("collect", self._collect)
        g.add_node("lead_feedback", self._lead_feedback)
        g.add_node("finalize", self._finalize)
        g.add_edge(START, "start")
        g.add_edge("start", "lead")
        g.add_conditional_edges("lead", self._lead_route, ["subagent", "lead_feedback", "finalize"])
        g.add_edge("subagent", "collect")
        g.add_edge("collect", "lead")
        g.add_edge("lead_feedback", "lead")
        g.add_edge("finalize", END)
        return g

    def recursion_limit(self) -> int:
        cfg = self.config
        # lead: 3 supersteps per wave; each subagent: 2 per turn (+ finish); generous headroom on top. Sized
        # for the largest turn limits a run's context may ask for.
        lead = max(cfg.max_lead_turns, CONTEXT_MAX_TURNS)
        sub = max(cfg.max_subagent_turns, CONTEXT_MAX_TURNS)
        return 3 * lead + 2 * sub + 20

    def compile(self, *, full_output: bool = False, **kwargs: Any) -> CompiledStateGraph[Any, Any, Any, Any]:
        """A compiled LangGraph graph; ``kwargs`` go to ``StateGraph.compile`` (checkpointer, store, ...).

        ``ainvoke({"question": ...})`` returns ``answer``, ``table`` and ``status`` (``full_output=True``:
        the whole state, with ``trajectory``, ``errors`` and ``boxed``); ``context=`` sets
        :class:`WideSeekContext` for one run."""
        app = self.build(full_output=full_output).compile(name="wideseek", **kwargs)
        return app.with_config(recursion_limit=self.recursion_limit())

    # ================================================================================================ running
    async def arun(
        self,
        question: str,
        *,
        rollout_id: str | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        config: RunnableConfig | None = None,
        context: WideSeekContext | dict[str, Any] | None = None,
    ) -> WideSeekResult:
        """Run one task to completion and return the answer, table, trajectory, usage and errors.

        ``context`` sets this run's :class:`WideSeekContext` (limits, language, number of subagents)."""
        if not isinstance(question, str) or not question.strip():
            raise ValueError("question must be a non-empty string")
        if self._compiled is None:
            self._compiled = self.compile(full_output=True)
        inputs: dict[str, Any] = {"question": question, "rollout_id": rollout_id or uuid.uuid4().hex}
        final: dict[str, Any] | None = None
        with tallying() as tools:
            if on_event is None:
                final = await self._compiled.ainvoke(inputs, config, context=WideSeekContext.of(context))
            else:
                # Subagent events are written inside the subagent subgraph; LangGraph streams a subgraph's
                # custom events only with subgraphs=True. Values are taken from the parent graph alone.
                async for ns, mode, chunk in self._compiled.astream(
                    inputs,
                    config,
                    stream_mode=["custom", "values"],
                    subgraphs=True,
                    context=WideSeekContext.of(context),
                ):
                    if mode == "custom":
                        on_event(cast(dict[str, Any], chunk))
                    elif not ns:
                        final = cast(dict[str, Any], chunk)
        assert final is not None
        result = self.result_from_state(final)
        result.tools = tools
        return result

    def run(self, question: str, **kwargs: Any) -> WideSeekResult:
        """Synchronous :meth:`arun` (not from inside a running event loop: use ``await arun`` there)."""

        async def go() -> WideSeekResult:
            try:
                return await self.arun(question, **kwargs)
            finally:
                await self.aclose()

        return asyncio.run(go())

    @staticmethod
    def result_from_state(state: dict[str, Any]) -> WideSeekResult:
        traj = from_plain(Trajectory, state["trajectory"])
        return WideSeekResult(
            question=traj.question,
            answer=state.get("answer"),
            table=state.get("table"),
            boxed=state.get("boxed"),
            status=Status.OK if state.get("status") == Status.OK else Status.FAILED,
            errors=list(state.get("errors") or []),
            usage=Usage.of(traj),
            trajectory=traj,
        )

    def as_tool(self, name: str = "wide_search", description: str | None = None) -> BaseTool:
        """The whole multi-agent system as one LangChain tool (for ReAct agents and tool-calling chains).

        The tool returns the final answer text; a failed run returns its errors instead of raising, so the
        calling agent can decide what to do.
        """

        async def wide_search(question: str) -> str:
            result = await self.arun(question)
            if result.status == Status.OK and result.answer is not None:
                return result.answer
            return self._failure_text(result.errors)

        return StructuredTool.from_function(
            coroutine=wide_search,
            name=name,
            description=description
            or (
                "Answer a broad information-seeking question (many entities, several attributes each) by "
                "dispatching parallel research subagents. Returns a markdown table or a short answer."
            ),
        )

    async def aclose(self) -> None:
        """Close this event loop's HTTP sessions and any backend that holds connections."""
        seen: set[int] = set()
        for obj in (
            self.llm,
            getattr(self.access_tool.summarizer, "llm", None),
            self.search_backend,
            self.reader,
        ):
            if obj is None or id(obj) in seen:
                continue
            seen.add(id(obj))
            close = getattr(obj, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # closing is best effort; it must not hide the run's result
                    log.warning("closing %r failed", obj, exc_info=True)

    async def __aenter__(self) -> WideSeekGraph:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
