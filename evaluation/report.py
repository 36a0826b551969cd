"""evaluate_run(run_dir, cfg): every evaluation section → RUN_DIR/report/{report.json, report.md, *.png}."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from evaluation.baselines import compare, plot_baselines, run_baselines
from evaluation.calibration import calibrate, write_calibration
from evaluation.classification import classification_metrics, plot_confusion_matrices, plot_roc_pr
from evaluation.explain import explain
from evaluation.fairness import fairness_report, plot_fairness
from evaluation.groups import resolve_groups
from evaluation.layout import DATA_REPORT_JSON, REPORT_JSON, REPORT_MD, data_checks_dir, report_dir
from evaluation.model_card import write_model_card
from evaluation.predictions import EvaluationData, load_evaluation_data
from evaluation.report_md import render_markdown
from evaluation.success import verdict
from trainers.rundir import atomic_write_json, atomic_write_text, now_iso

log = logging.getLogger(__name__)


def _classification(data: EvaluationData, out_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for split, out in data.outputs.items():
        result[split] = classification_metrics(out.labels.numpy(), out.preds.numpy(), out.probs.numpy(), data.labels)
    test = data.outputs["test"]
    plot_confusion_matrices(test.labels.numpy(), test.preds.numpy(), data.labels, out_dir / "confusion_matrix.png")
    plot_roc_pr(test.labels.numpy(), test.probs.numpy(), data.labels, out_dir / "roc_pr.png")
    return result


def _calibration(data: EvaluationData, cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    val, test = data.outputs["val"], data.outputs["test"]
    result = calibrate(val.logits, val.labels, test.logits, test.labels, cfg.calibration.n_bins,
                       out_dir / "reliability_diagram.png",
                       (cfg.calibration.min_temperature, cfg.calibration.max_temperature))
    if cfg.calibration.write_temperature:
        write_calibration(data.run_dir, result)
    return result


def _fairness(data: EvaluationData, cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    fc = cfg.fairness
    attribute = resolve_groups(fc.group, data, "test", fc.max_groups)
    test = data.outputs["test"]
    result = fairness_report(test.labels.numpy(), test.preds.numpy(), attribute.values, data.labels,
                             dict(fc.thresholds), fc.min_group_size)
    result.update(attribute=attribute.name, description=attribute.description, spec=fc.group)
    plot_fairness(result, out_dir / "fairness.png")
    return result


def _baselines(data: EvaluationData, cfg: DictConfig, deep: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    train_y = np.array([data.datamodule.item_labels[i] for i in data.datamodule.splits["train"]])
    test_y = data.outputs["test"].labels.numpy()
    models = run_baselines(data.features("train"), train_y, data.features("test"), test_y, data.kind,
                           list(cfg.baselines.models), int(data.cfg.get("seed", 0)))
    deep_scores = {"accuracy": deep["accuracy"], "f1_macro": deep["macro"]["f1"]}
    plot_baselines(deep_scores, models, out_dir / "baselines.png")
    features = "TF-IDF word 1-2 grams" if data.kind == "text" else "flattened preprocessed pixels (standardised)"
    return {"features": features, "trained_on": "train split", "evaluated_on": "test split", "models": models,
            "deep": deep_scores, **compare(deep_scores, models, cfg.baselines.metric)}


def _data_checks(run_dir: Path) -> dict[str, Any] | None:
    path = data_checks_dir(run_dir) / DATA_REPORT_JSON
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    return {"passed": report.get("passed"), "failures": report.get("failures", []),
            "checks": {k: {"status": v.get("status"), "summary": v.get("summary")} for k, v in report.get("checks", {}).items()},
            "report": f"../{data_checks_dir(run_dir).name}/{DATA_REPORT_JSON}"}


def _timed(timings: dict[str, float], name: str, fn: Any, *args: Any) -> Any:
    started = time.time()
    result = fn(*args)
    timings[name] = round(time.time() - started, 2)
    log.info("evaluation: %s done in %.1fs", name, timings[name])
    return result


def evaluate_run(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate the run at cfg.run_dir; write report.json/.md, figures, calibration.json, MODEL_CARD.md."""
    run_dir = Path(cfg.run_dir)
    out_dir = report_dir(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    data = _timed(timings, "predictions", load_evaluation_data, run_dir, ("val", "test"), cfg.batch_size)
    report: dict[str, Any] = {
        "run_dir": str(run_dir.resolve()), "experiment": data.cfg.get("name"), "created": now_iso(),
        "checkpoint": str(data.checkpoint), "kind": data.kind, "labels": data.labels,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    report["classification"] = _timed(timings, "classification", _classification, data, out_dir)
    if cfg.calibration.enabled:
        report["calibration"] = _timed(timings, "calibration", _calibration, data, cfg, out_dir)
    if cfg.fairness.enabled:
        report["fairness"] = _timed(timings, "fairness", _fairness, data, cfg, out_dir)
    if cfg.explanations.enabled:
        report["explanations"] = _timed(timings, "explanations", explain, data, cfg.explanations, out_dir)
    if cfg.baselines.enabled:
        report["baselines"] = _timed(timings, "baselines", _baselines, data, cfg, report["classification"]["test"], out_dir)
    report["data_checks"] = _data_checks(run_dir)
    report["success"] = verdict(report, cfg.success.metric, cfg.success.threshold, cfg.success.mode)
    report["card"] = OmegaConf.to_container(cfg.card, resolve=True)
    report["figures"] = sorted(p.name for p in out_dir.glob("*.png"))
    report["timings_seconds"] = timings
    atomic_write_json(out_dir / REPORT_JSON, report)
    atomic_write_text(out_dir / REPORT_MD, render_markdown(report))
    if cfg.model_card:
        write_model_card(run_dir)
    return report


def summary_line(report: dict[str, Any]) -> str:
    """One line for logs: accuracy, F1, ECE before/after, fairness flags, baseline margin, verdict."""
    test = report["classification"]["test"]
    parts = [f"test acc {test['accuracy']:.4f}", f"macro F1 {test['macro']['f1']:.4f}"]
    if report.get("calibration"):
        c = report["calibration"]
        parts.append(f"ECE {c['ece_before']:.4f}→{c['ece_after']:.4f} (T={c['temperature']:.3f})")
    if report.get("fairness"):
        parts.append(f"fairness flags {len(report['fairness']['flags'])}")
    if report.get("baselines"):
        b = report["baselines"]
        parts.append(f"margin over {b['best']} {b['margin'][b['metric']]:+.4f}")
    s = report["success"]
    parts.append(f"{s['metric']}={s['value']:.4f} vs {s['threshold']} → {s['verdict']}")
    return "; ".join(parts)
