"""``report.md`` and ``scores.png`` for an evaluation run."""

from __future__ import annotations

from pathlib import Path

from .summary import EvalSummary, GroupSummary

__all__ = ["PUBLISHED", "render_report", "write_plot", "write_report"]

# Reference points (x100, Avg@4 / Max@4 / Pass@4 on the 200 tasks, official scorer); spec section 8.
PUBLISHED = {
    "WideSeek-R1-4B (multi-agent)": {"item_f1": (40.0, 51.8), "row_f1": (15.3, 24.4), "success": (0.4, 1.0)},
    "Qwen3-4B, same harness, untrained": {
        "item_f1": (31.2, 42.3),
        "row_f1": (8.4, 15.5),
        "success": (0.0, 0.0),
    },
    "DeepSeek-R1-671B (single agent)": {
        "item_f1": (41.3, 55.1),
        "row_f1": (20.7, 31.7),
        "success": (0.4, 1.5),
    },
}

_HEADLINE = (("item_f1", "Item F1"), ("row_f1", "Row F1"), ("success", "Success"))


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def _group_rows(name: str, g: GroupSummary) -> list[str]:
    cells = []
    for key, _ in _HEADLINE:
        m = g.metrics[key]
        cells += [_fmt(m.avg), _fmt(m.max), _fmt(m.min)]
    return [f"| {name} | {g.tasks} | {g.trials} | " + " | ".join(cells) + " |"]


def render_report(
    summary: EvalSummary,
    *,
    title: str = "WideSearch evaluation",
    plot: str | None = "scores.png",
    notes: list[str] | None = None,
) -> str:
    n = summary.samples
    lines = [f"# {title}", ""]
    lines.append(
        f"Judge: `{summary.judge}`. Samples per task: {n}. Scores are x100; Max@{n} of success is "
        f"Pass@{n}. Every trial counts, failed ones as 0."
    )
    lines.append("")
    header = (
        "| group | tasks | trials | "
        + " | ".join(
            f"{label} Avg@{n} | {label} {'Pass' if key == 'success' else 'Max'}@{n} | {label} Min@{n}"
            for key, label in _HEADLINE
        )
        + " |"
    )
    lines += [header, "|" + "---|" * (3 + 3 * len(_HEADLINE))]
    lines += _group_rows("all", summary.pooled)
    for lang, g in summary.by_language.items():
        lines += _group_rows(lang, g)
    lines.append("")
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(summary.statuses.items()))
    lines.append(
        f"Trials by status: {statuses}. Failed agent runs: {summary.failed_trials}. "
        f"Judge calls: {summary.judge_calls}, failed: {summary.judge_failures} "
        f"(in {summary.trials_with_judge_failures} trials)."
    )
    if summary.incomplete_tasks:
        shown = ", ".join(summary.incomplete_tasks[:20]) + (
            " ..." if len(summary.incomplete_tasks) > 20 else ""
        )
        lines.append(f"Tasks with fewer than {n} trials: {shown}.")
    for note in notes or []:
        lines.append(note)
    lines += [
        "",
        "Published reference points (200 tasks, Avg@4 / Max@4 or Pass@4, official scorer and judge):",
        "",
    ]
    lines += ["| system | Item F1 | Row F1 | Success |", "|---|---|---|---|"]
    for name, vals in PUBLISHED.items():
        lines.append(f"| {name} | " + " | ".join(f"{a} / {b}" for a, b in vals.values()) + " |")
    if plot:
        lines += ["", f"![scores per task]({plot})"]
    lines += ["", "## Per task", ""]
    lines += [
        (
            f"| task | lang | trials | Item F1 Avg | Item F1 Max | Row F1 Avg | Row F1 Max | Success Avg | "
            f"Pass@{n} | statuses | judge failures |"
        ),
        "|" + "---|" * 11,
    ]
    for t in summary.tasks:
        m = t.metrics
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(t.statuses.items()))
        lines.append(
            f"| {t.instance_id} | {t.language} | {t.trials} | {_fmt(m['item_f1'].avg)} | "
            f"{_fmt(m['item_f1'].max)} | "
            f"{_fmt(m['row_f1'].avg)} | {_fmt(m['row_f1'].max)} | {_fmt(m['success'].avg)} | "
            f"{_fmt(m['success'].max)} | {statuses} | {t.judge_failures} |"
        )
    return "\n".join(lines) + "\n"


def write_plot(summary: EvalSummary, path: str | Path) -> Path:
    """Item and row F1 per task (bars: Avg@N, ticks: Max@N). Needs matplotlib (the ``eval`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("the plot needs matplotlib: pip install 'langgraph-wideseek[eval]'") from None
    tasks = summary.tasks
    n = max(1, len(tasks))
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.22 * n + 1.2)))
    ys = list(range(len(tasks)))
    h = 0.4
    item = [t.metrics["item_f1"] for t in tasks]
    row = [t.metrics["row_f1"] for t in tasks]
    ax.barh(
        [y - h / 2 for y in ys],
        [m.avg for m in item],
        height=h,
        color="#4c72b0",
        label=f"item F1 Avg@{summary.samples}",
    )
    ax.barh(
        [y + h / 2 for y in ys],
        [m.avg for m in row],
        height=h,
        color="#dd8452",
        label=f"row F1 Avg@{summary.samples}",
    )
    ax.scatter(
        [m.max for m in item],
        [y - h / 2 for y in ys],
        marker="|",
        color="black",
        s=60,
        zorder=3,
        label=f"Max@{summary.samples}",
    )
    ax.scatter([m.max for m in row], [y + h / 2 for y in ys], marker="|", color="black", s=60, zorder=3)
    ax.set_yticks(ys, [t.instance_id for t in tasks], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("score (x100)")
    pooled = summary.pooled.metrics
    ax.set_title(
        f"item F1 {pooled['item_f1'].avg:.1f}, row F1 {pooled['row_f1'].avg:.1f}, "
        f"success {pooled['success'].avg:.1f} (Avg@{summary.samples}, {summary.pooled.tasks} tasks)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_report(
    summary: EvalSummary, out_dir: str | Path, *, title: str = "WideSearch evaluation"
) -> list[str]:
    """Write ``report.md`` (and ``scores.png`` when matplotlib is available). Returns warnings, if any."""
    out = Path(out_dir)
    warnings: list[str] = []
    plot: str | None = "scores.png"
    try:
        write_plot(summary, out / "scores.png")
    except RuntimeError as e:
        warnings.append(str(e))
        plot = None
    notes = [f"(No plot: {w})" for w in warnings]
    (out / "report.md").write_text(
        render_report(summary, title=title, plot=plot, notes=notes), encoding="utf-8"
    )
    return warnings
