"""The evaluation floor: WideSearch task loading, the exact official scorer, judges, the runner, the reward.

    from langgraph_wideseek.eval import load_tasks, score_response, ExactJudge
    tasks = load_tasks("widesearch.jsonl", gold_dir="widesearch_gold")
    trial = await score_response(tasks[0], response_text, judge=ExactJudge())
    trial.item_f1, trial.row_f1, trial.success, trial.errors

- :mod:`.tasks`, :mod:`.table`, :mod:`.preprocess`, :mod:`.metrics`, :mod:`.scorer`: the official algorithm;
- :mod:`.judge`: the judge protocol, the exact judge, the OpenAI-compatible judge and its cache;
- :mod:`.runner`, :mod:`.summary`, :mod:`.report`: N trials per task, resumable, then Avg@N reports;
- :mod:`.reward`: the WideSeek-R1 training reward of one rollout (table and QA tasks).
"""

from ..errors import (
    EvalError,
    IncompleteGrade,
    JudgeError,
    TableParseError,
    TaskLoadError,
    UnsupportedTaskError,
)
from .judge import GENERIC_CRITERION, QA_CRITERION, ExactJudge, Judge, JudgeCache, OpenAIJudge
from .scorer import ColumnResult, TrialScore, TrialStatus, score_response, zero_score
from .table import Frame, read_gold_csv, read_response_table
from .tasks import ColumnSpec, Task, load_tasks

__all__ = [
    "GENERIC_CRITERION",
    "QA_CRITERION",
    "ColumnResult",
    "ColumnSpec",
    "EvalError",
    "ExactJudge",
    "Frame",
    "IncompleteGrade",
    "Judge",
    "JudgeCache",
    "JudgeError",
    "OpenAIJudge",
    "TableParseError",
    "Task",
    "TaskLoadError",
    "TrialScore",
    "TrialStatus",
    "UnsupportedTaskError",
    "load_tasks",
    "read_gold_csv",
    "read_response_table",
    "score_response",
    "zero_score",
]
