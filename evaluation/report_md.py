"""report.json → a readable report.md: the header, the task's sections (evaluation/tasks/), the data checks."""
from __future__ import annotations

from typing import Any


def fmt(value: Any, digits: int = 4) -> str:
    """A table cell: floats to `digits` places, None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table (one line per row, then a blank line)."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(fmt(c) for c in row) + " |" for row in rows), ""]


def _data_checks(r: dict[str, Any]) -> list[str]:
    d = r.get("data_checks")
    if not d:
        return ["## Data checks", "", "Not run for this run directory: `python -m datamodules.validate "
                "+experiment=NAME run_dir=RUN_DIR`.", ""]
    rows = [[k, v["status"], v["summary"]] for k, v in d["checks"].items()]
    return ["## Data checks", "", f"**{'passed' if d['passed'] else 'FAILED'}** ([full report]({d['report']}))", "",
            *table(["check", "status", "summary"], rows)]


def render_markdown(r: dict[str, Any], body: list[str]) -> str:
    """The whole report as Markdown: header, the task's `body` lines, data checks (figures relative to report/)."""
    s = r["success"]
    head = [f"# Evaluation report: {r['experiment']}", "", f"- run: `{r['run_dir']}`", f"- checkpoint: `{r['checkpoint']}`",
            f"- created: {r['created']}", "",
            (f"**Verdict: {s['verdict']}** — {s['metric']} = {fmt(s['value'])} "
             f"({'≥' if s['mode'] == 'max' else '≤'} {s['threshold']} required)" if s["threshold"] is not None else
             f"**No success criterion** — {s['metric']} = {fmt(s['value'])} (set `success.threshold` to judge)"), ""]
    return "\n".join(head + body + _data_checks(r)) + "\n"
