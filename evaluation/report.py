"""evaluate_run(cfg): the run's task sections (evaluation/tasks/) → RUN_DIR/report/{report.json, report.md, *.png}."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from core.rundir import DATA_REPORT_JSON, REPORT_JSON, REPORT_MD, RunDir
from evaluation.model_card import write_model_card
from evaluation.report_md import render_markdown
from evaluation.success import NOT_SET, run_success, verdict
from evaluation.tasks import evaluation_for
from trainers.rundir import atomic_write_json, atomic_write_text, now_iso
from trainers.tasks import run_task

log = logging.getLogger(__name__)


def _data_checks(run_dir: Path) -> dict[str, Any] | None:
    path = RunDir(run_dir).data_report_path
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    return {"passed": report.get("passed"), "failures": report.get("failures", []),
            "checks": {k: {"status": v.get("status"), "summary": v.get("summary")} for k, v in report.get("checks", {}).items()},
            "report": f"../{RunDir(run_dir).data_checks_dir.name}/{DATA_REPORT_JSON}"}


def _timed(timings: dict[str, float], name: str, fn: Any, *args: Any) -> Any:
    started = time.time()
    result = fn(*args)
    timings[name] = round(time.time() - started, 2)
    log.info("evaluation: %s done in %.1fs", name, timings[name])
    return result


def evaluate_run(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate the run at cfg.run_dir with its task's sections; write report.json/.md, figures, MODEL_CARD.md."""
    run_dir = Path(cfg.run_dir)
    task = run_task(run_dir)
    sections = evaluation_for(task)
    out_dir = RunDir(run_dir).report_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    data = _timed(timings, "predictions", sections.load, run_dir, cfg.batch_size)
    report: dict[str, Any] = {
        "run_dir": str(run_dir.resolve()), "experiment": data.cfg.get("name"), "created": now_iso(),
        "checkpoint": str(data.checkpoint), "checkpoint_choice": data.checkpoint_choice, "task": task, "config": OmegaConf.to_container(cfg, resolve=True),
    }
    report.update(sections.sections(data, cfg, out_dir, lambda name, fn, *args: _timed(timings, name, fn, *args)))
    report["data_checks"] = _data_checks(run_dir)
    success = run_success(cfg.success, data.cfg)
    if success[0] == "test/acc" and hasattr(sections, "DEFAULT_SUCCESS"):
        success = sections.DEFAULT_SUCCESS  # the classification default names no metric of this task
    report["success"] = verdict(report, *success)
    report["card"] = OmegaConf.to_container(cfg.card, resolve=True)
    report["figures"] = sorted(p.name for p in out_dir.glob("*.png"))
    report["timings_seconds"] = timings
    atomic_write_json(out_dir / REPORT_JSON, report)
    atomic_write_text(out_dir / REPORT_MD, render_markdown(report, sections.markdown(report)))
    if cfg.model_card:
        write_model_card(run_dir)
    return report


def summary_line(report: dict[str, Any]) -> str:
    """One line for logs: the task's headline numbers (evaluation/tasks/), then the verdict."""
    parts = evaluation_for(report.get("task", "classification")).summary(report)
    s = report["success"]
    if s["verdict"] == NOT_SET:
        parts.append(f"{s['metric']}={s['value']:.4f} (no success.threshold set: nothing judged)")
    else:
        parts.append(f"{s['metric']}={s['value']:.4f} vs {s['threshold']} → {s['verdict']}")
    return "; ".join(parts)
