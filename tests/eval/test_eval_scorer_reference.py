"""End-to-end differential test: score_response against the pandas-based reference of the official algorithm.

600 seeded perturbed replies over the 20 sample tasks (dropped/extra/wrong/duplicate rows, missing cells,
shifted numbers, keys that collide after normalisation, renamed/extra columns, over-long rows, unfenced
tables) must give the same six metrics and success. Skipped unless pandas 2.3.1 is installed.
"""

from __future__ import annotations

import pytest

pd = pytest.importorskip("pandas")
if pd.__version__ != "2.3.1":
    pytest.skip(f"the reference needs pandas 2.3.1, found {pd.__version__}", allow_module_level=True)

from langgraph_wideseek.eval import ExactJudge, score_response  # noqa: E402

from .perturb import perturbed_replies  # noqa: E402
from .reference_pandas import reference_score  # noqa: E402

KEYS = ("item_precision", "item_recall", "item_f1", "row_precision", "row_recall", "row_f1")


@pytest.mark.parametrize(
    "iid", [f"ws_en_{i:03d}" for i in range(1, 11)] + [f"ws_zh_{i:03d}" for i in range(1, 11)]
)
async def test_scorer_matches_the_pandas_reference(sample_tasks, sample_dir, iid):
    task = sample_tasks[iid]
    judge = ExactJudge()
    statuses = set()
    for k, reply in enumerate(perturbed_replies(task, 30, seed=7)):
        ours = await score_response(task, reply, judge=judge)
        ref = await reference_score(task, reply, sample_dir / "widesearch_gold" / f"{iid}.csv", judge)
        statuses.add(ours.status)
        for key in KEYS:
            assert getattr(ours, key) == pytest.approx(ref[key], abs=1e-12), (
                k,
                key,
                ours.status,
                ours.errors,
            )
        assert ours.success == ref["success"], k
    assert "ok" in statuses
