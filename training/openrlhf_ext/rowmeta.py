"""Reading ``AgentExecutor.execute`` results into rows stamped with their task group and rollout.

Pure Python (pydantic), no OpenRLHF import: the samples generator uses it inside Ray, the
tests and the GPU smoke run use it directly.

The row contract (fixed between training/agent_executor.py and this extension): ``execute``
returns a list of dicts, one per generation call kept for training, each with OpenRLHF's
single-row keys plus ``"wideseek"``: ``{rollout_id, agent_id, role, turn, num_agents,
agent_weight, agent_token_total}``. A plain dict without ``"wideseek"`` (a stock single-row
executor) is accepted as a one-row, one-agent rollout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import RowContractError

ROW_KEYS = ("prompt", "label", "observation_tokens", "action_ranges", "rollout_log_probs", "reward")
META_KEY = "wideseek"


class RowMeta(BaseModel):
    """The ``"wideseek"`` entry of one row."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    rollout_id: str = Field(min_length=1)
    agent_id: str = Field(min_length=1)
    role: Literal["lead", "subagent"]
    turn: int = Field(ge=0)
    num_agents: int = Field(ge=1)
    agent_weight: float = Field(gt=0)
    agent_token_total: int = Field(ge=0)


@dataclass(frozen=True)
class RowStamp:
    """Where a row belongs in the batch: task group, rollout within it, agent within that."""

    group: int
    sample: int  # which of the n_samples_per_prompt executes of the group
    meta: RowMeta

    @property
    def rollout_key(self) -> tuple[int, int]:
        return (self.group, self.sample)

    @property
    def agent_key(self) -> tuple[int, int, str]:
        return (self.group, self.sample, self.meta.agent_id)


def generated_tokens(row: Mapping[str, Any]) -> int:
    return sum(int(end) - int(start) for start, end in row["action_ranges"])


def _check_row_shape(row: Any, where: str) -> None:
    if not isinstance(row, Mapping):
        raise RowContractError(f"{where}: a row must be a dict, got {type(row).__name__}")
    missing = [k for k in ROW_KEYS if k not in row]
    if missing:
        raise RowContractError(f"{where}: row lacks keys {missing}")
    n_tok = len(row["observation_tokens"])
    for start, end in row["action_ranges"]:
        if not 0 <= int(start) <= int(end) <= n_tok:
            raise RowContractError(
                f"{where}: action range ({start}, {end}) outside the row's {n_tok} observation tokens"
            )
    lp = row["rollout_log_probs"]
    if lp is not None and len(lp) != n_tok:
        raise RowContractError(
            f"{where}: rollout_log_probs has {len(lp)} entries for {n_tok} observation tokens"
        )
    reward = row["reward"]
    if reward is None or not isinstance(reward, (int, float)) or not math.isfinite(float(reward)):
        raise RowContractError(f"{where}: reward must be a finite number, got {reward!r}")


def stamp_rollout(result: Any, *, group: int, sample: int) -> list[tuple[Mapping[str, Any], RowStamp]]:
    """Validate one ``execute`` result and stamp every row with (group, sample).

    Raises :class:`RowContractError` with the offending rollout named when the rows disagree
    on what must be one value per rollout (rollout id, reward, agent count) or per agent
    (token total), so a broken executor fails the step instead of training on garbage.
    """
    where = f"task group {group}, sample {sample}"
    if isinstance(result, Mapping):
        if META_KEY not in result:
            _check_row_shape(result, where)
            meta = RowMeta(
                rollout_id=f"g{group}s{sample}",
                agent_id="agent",
                role="lead",
                turn=0,
                num_agents=1,
                agent_weight=1.0,
                agent_token_total=generated_tokens(result),
            )
            return [(result, RowStamp(group, sample, meta))]
        rows: Sequence[Any] = [result]
    elif isinstance(result, Sequence) and not isinstance(result, (str, bytes)):
        rows = result
    else:
        raise RowContractError(
            f"{where}: execute must return a list of row dicts, got {type(result).__name__}"
        )

    out: list[tuple[Mapping[str, Any], RowStamp]] = []
    for i, row in enumerate(rows):
        rwhere = f"{where}, row {i}"
        _check_row_shape(row, rwhere)
        if META_KEY not in row:
            raise RowContractError(f"{rwhere}: a multi-row result needs the {META_KEY!r} entry on every row")
        try:
            meta = RowMeta.model_validate(row[META_KEY])
        except ValidationError as exc:
            raise RowContractError(f"{rwhere}: bad {META_KEY!r} entry: {exc}") from None
        out.append((row, RowStamp(group, sample, meta)))
    _check_rollout(out, where)
    return out


def _check_rollout(rows: list[tuple[Mapping[str, Any], RowStamp]], where: str) -> None:
    if not rows:
        return
    first_row, first = rows[0]
    agents: dict[str, int] = {}
    declared_total: dict[str, int] = {}
    log_keys = set((first_row.get("extra_logs") or {}).keys())
    for row, st in rows:
        m = st.meta
        if m.rollout_id != first.meta.rollout_id:
            raise RowContractError(
                f"{where}: rows of one execute carry rollout ids {first.meta.rollout_id!r} and "
                f"{m.rollout_id!r}"
            )
        if float(row["reward"]) != float(first_row["reward"]):
            raise RowContractError(f"{where}: rows of rollout {m.rollout_id!r} carry different rewards")
        if m.num_agents != first.meta.num_agents:
            raise RowContractError(f"{where}: rows of rollout {m.rollout_id!r} disagree on num_agents")
        if not math.isclose(m.agent_weight, 1.0 / m.num_agents, rel_tol=1e-6):
            raise RowContractError(
                f"{where}: agent_weight {m.agent_weight} is not 1/num_agents (num_agents={m.num_agents})"
            )
        if declared_total.setdefault(m.agent_id, m.agent_token_total) != m.agent_token_total:
            raise RowContractError(f"{where}: agent {m.agent_id!r} rows disagree on agent_token_total")
        if set((row.get("extra_logs") or {}).keys()) != log_keys:
            raise RowContractError(
                f"{where}: rows carry different extra_logs keys; OpenRLHF batches need equal keys"
            )
        agents[m.agent_id] = agents.get(m.agent_id, 0) + generated_tokens(row)
    if len(agents) != first.meta.num_agents:
        raise RowContractError(
            f"{where}: rollout {first.meta.rollout_id!r} declares num_agents={first.meta.num_agents} "
            f"but its rows come from {len(agents)} agents"
        )
    for agent, tokens in agents.items():
        if tokens != declared_total[agent]:
            raise RowContractError(
                f"{where}: agent {agent!r} generated {tokens} tokens over its rows but declares "
                f"agent_token_total={declared_total[agent]}"
            )


def representative_row(rows: Sequence[tuple[Mapping[str, Any], RowStamp]]) -> int:
    """Index of the row that stands for the rollout in evaluation: the lead's last turn."""
    if not rows:
        raise RowContractError("a rollout with no rows cannot be evaluated")
    best = 0
    for i, (_, st) in enumerate(rows):
        cur = rows[best][1].meta
        if (st.meta.role == "lead", st.meta.turn) > (cur.role == "lead", cur.turn):
            best = i
    return best
