"""K-fold cross-validation as a Hydra multirun: `python train.py +experiment=X cv.folds=5`.

`cv.folds=K` switches Hydra into MULTIRUN (`hydra.mode`) with the sweep
`cv.fold=range(0,K)` (`hydra.sweeper.params`, both in conf/train.yaml), so the K folds run with whatever launcher is configured:
one after another here, as Slurm jobs with `hydra/launcher=submitit_slurm`. Each fold's datamodule
takes its split from datamodules/cv.py. This callback records every finished fold next to the sweep
(`<sweep dir>/cv/fold_K.json`, written by the job, wherever it ran) and, when the multirun ends,
aggregates them into `<sweep dir>/cv_summary.json` and `cv_summary.md` (per fold, mean ± std).
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from core.rundir import CV_SUMMARY_JSON as SUMMARY_JSON
from core.rundir import CV_SUMMARY_MD as SUMMARY_MD
from core.rundir import METRICS


def _fold_dir(config: DictConfig) -> Path:
    return Path(config.hydra.sweep.dir) / "cv"


class CrossValidationCallback(Callback):
    """Per-fold records on job end; cv_summary.{json,md} on multirun end (only when cv.folds is set)."""

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        cv = config.get("cv")
        if not cv or not cv.get("folds") or cv.get("fold") is None:
            return
        from trainers.rundir import atomic_write_json

        run_dir = Path(config.paths.run_dir)
        metrics_path = run_dir / METRICS
        record = {"fold": int(cv.fold), "folds": int(cv.folds), "run_dir": str(run_dir.resolve()),
                  "status": getattr(getattr(job_return, "status", None), "name", "UNKNOWN"),
                  "metrics": json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}}
        atomic_write_json(_fold_dir(config) / f"fold_{int(cv.fold)}.json", record)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        cv = config.get("cv")
        if not cv or not cv.get("folds"):
            return
        write_summary(Path(config.hydra.sweep.dir), int(cv.folds))


def summarize(records: list[dict[str, Any]], folds: int) -> dict[str, Any]:
    """Per-fold metrics and mean ± sample standard deviation over the folds that finished."""
    keys = sorted({k for r in records for k in r["metrics"]})
    metrics = {}
    for key in keys:
        values = [r["metrics"][key] for r in records if key in r["metrics"]]
        metrics[key] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                        "n": len(values)}
    done = sorted(r["fold"] for r in records)
    return {"folds": folds, "completed": done, "missing": [k for k in range(folds) if k not in done],
            "per_fold": sorted(records, key=lambda r: r["fold"]), "metrics": metrics, "std": "sample (ddof=1)"}


def write_summary(sweep_dir: Path, folds: int) -> dict[str, Any]:
    """Aggregate <sweep_dir>/cv/fold_*.json into cv_summary.json and cv_summary.md."""
    from trainers.rundir import atomic_write_json, atomic_write_text

    records = [json.loads(p.read_text()) for p in sorted((sweep_dir / "cv").glob("fold_*.json"))]
    summary = summarize(records, folds)
    atomic_write_json(sweep_dir / SUMMARY_JSON, summary)
    lines = [f"# Cross-validation: {folds} folds", "",
             f"completed folds: {summary['completed']}" + (f"; **missing: {summary['missing']}**" if summary["missing"] else ""),
             "", "| metric | mean ± std | " + " | ".join(f"fold {r['fold']}" for r in summary["per_fold"]) + " |",
             "|---|---|" + "---|" * len(summary["per_fold"])]
    for key, m in summary["metrics"].items():
        cells = [f"{r['metrics'][key]:.4f}" if key in r["metrics"] else "—" for r in summary["per_fold"]]
        lines.append(f"| {key} | {m['mean']:.4f} ± {m['std']:.4f} | " + " | ".join(cells) + " |")
    lines += ["", "Runs:", *[f"- fold {r['fold']}: `{r['run_dir']}`" for r in summary["per_fold"]]]
    atomic_write_text(sweep_dir / SUMMARY_MD, "\n".join(lines) + "\n")
    for record in records:  # each fold's run directory (and so its MODEL_CARD.md) knows its siblings' spread
        if Path(record["run_dir"]).is_dir():
            atomic_write_json(Path(record["run_dir"]) / SUMMARY_JSON, {**summary, "sweep_dir": str(sweep_dir.resolve())})
    print(f"cross-validation summary: {sweep_dir / SUMMARY_MD}")
    return summary
