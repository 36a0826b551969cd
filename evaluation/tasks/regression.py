"""The regression task's report: RMSE/MAE/R² with bootstrap CIs, residual plots, per-group errors, split-conformal
intervals (calibrated on val, coverage on test), permutation importance + Captum attributions, baselines."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from omegaconf import DictConfig

from core.errors import ConfigError
from core.rundir import RunDir, atomic_write_json
from core.figures import new_figure, save_png
from evaluation.groups import resolve_groups
from evaluation.predictions import EvaluationData, load_evaluation_data
from evaluation.report_md import fmt, table
from evaluation.tabular import BASELINES, captum_attributions, encoded, permutation_importance, run_tabular_baselines
from runtime.tabular_io import destandardise

Timed = Callable[..., Any]
REGRESSION_METRICS = ("r2", "rmse", "mae")  # what baselines.metric may judge a regression run on
DEFAULT_SUCCESS = ("test/r2", 0.0, "max")  # used when success.metric is left at the classification default
# MODEL_CARD.md's default wording for this task (evaluation/model_card.py; cfg.card overrides it)
CARD_USE = {
    "tabular": "Predicts a number for one row of a table, with a prediction interval when evaluation calibrated "
               "one. Rows must have the training table's columns, with values in the ranges and categories it held.",
}
CARD_LIMITATIONS = [
    "Trained and evaluated on one small dataset; error on other sources is unmeasured.",
    "Intervals cover the target as often as the conformal section measured on test; re-check after any data shift.",
    "Predictions outside the training target's range are extrapolations the evaluation did not test.",
]


def load(run_dir: Path, batch_size: int) -> EvaluationData:
    """The run's net, datamodule and standardised outputs of the val and test splits."""
    return load_evaluation_data(run_dir, ("val", "test"), batch_size)


def scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, R² in the target's units."""
    err = pred - y
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {"rmse": float(np.sqrt((err ** 2).mean())), "mae": float(np.abs(err).mean()),
            "r2": 1.0 - float((err ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")}


def predictions(data: EvaluationData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) of a split in the target's units."""
    spec = data.datamodule.spec
    out = data.outputs[split]
    return destandardise(out.labels.numpy(), spec), destandardise(out.logits.numpy(), spec)


def bootstrap(y: np.ndarray, pred: np.ndarray, seed: int, n: int = 1000) -> dict[str, list[float]]:
    """95% percentile bootstrap intervals of each score over resampled rows."""
    generator = np.random.default_rng(seed)
    samples = [scores(y[idx], pred[idx]) for idx in (generator.integers(0, len(y), len(y)) for _ in range(n))]
    return {k: [float(np.nanpercentile([s[k] for s in samples], 2.5)), float(np.nanpercentile([s[k] for s in samples], 97.5))]
            for k in ("rmse", "mae", "r2")}


def _metrics(data: EvaluationData, out_dir: Path) -> dict[str, Any]:
    seed = int(data.cfg.get("seed", 0))
    result = {}
    for split in data.outputs:
        y, pred = predictions(data, split)
        result[split] = {"n": int(len(y)), **scores(y, pred), "ci95": bootstrap(y, pred, seed)}
    y, pred = predictions(data, "test")
    residual = y - pred
    fig, axes = new_figure(13, 4, 1, 3)
    axes[0].scatter(y, pred, s=10, alpha=0.7)
    lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    axes[0].plot([lo, hi], [lo, hi], "k--", linewidth=1)
    axes[0].set(xlabel="actual", ylabel="predicted", title="predicted vs actual (test)")
    axes[1].scatter(pred, residual, s=10, alpha=0.7)
    axes[1].axhline(0, color="k", linewidth=1)
    axes[1].set(xlabel="predicted", ylabel="residual (actual - predicted)", title="residuals vs predicted")
    axes[2].hist(residual, bins=30)
    axes[2].set(xlabel="residual", ylabel="rows", title="residual histogram")
    save_png(fig, out_dir / "regression.png")
    return result


def conformal(data: EvaluationData, alpha: float, write: bool) -> dict[str, Any]:
    """Split-conformal intervals pred ± q, q the ⌈(n+1)(1-α)⌉-th smallest |residual| on val; coverage on test."""
    y_val, p_val = predictions(data, "val")
    y_test, p_test = predictions(data, "test")
    residuals = np.sort(np.abs(y_val - p_val))
    n = len(residuals)
    k = math.ceil((n + 1) * (1 - alpha))
    q = float(residuals[k - 1]) if k <= n else float("inf")
    coverage = float((np.abs(y_test - p_test) <= q).mean())
    result = {"alpha": alpha, "nominal_coverage": 1 - alpha, "q": q, "calibrated_on": f"val ({n} rows)",
              "test_coverage": coverage, "test_rows": int(len(y_test)), "mean_width": 2 * q}
    if write and math.isfinite(q):  # export puts it into the served spec: answers carry interval [pred-q, pred+q]
        path = RunDir(data.run_dir).calibration_path
        atomic_write_json(path, {"temperature": 1.0, "conformal": {"alpha": alpha, "q": q}})
    return result


def _fairness(data: EvaluationData, cfg: DictConfig) -> dict[str, Any]:
    spec = data.datamodule.spec
    group = cfg.fairness.group
    if group == "auto":  # a table's own columns: the first categorical one, else the first numeric one
        group = f"column:{(spec.categorical or spec.numeric)[0].name}"
    attribute = resolve_groups(group, data, "test", cfg.fairness.max_groups)
    y, pred = predictions(data, "test")
    values = np.asarray([str(v) for v in attribute.values])
    groups = {}
    for g in sorted(set(values)):
        mask = values == g
        groups[g] = {"count": int(mask.sum()), **{k: v for k, v in scores(y[mask], pred[mask]).items() if k != "r2"}}
    judged = [m for m in groups.values() if m["count"] >= cfg.fairness.min_group_size]
    gaps = {f"{k}_gap": (max(m[k] for m in judged) - min(m[k] for m in judged)) if len(judged) > 1 else 0.0
            for k in ("rmse", "mae")}
    small = [g for g, m in groups.items() if m["count"] < cfg.fairness.min_group_size]
    return {"attribute": attribute.name, "description": attribute.description, "spec": group, "groups": groups,
            **gaps, "too_small": small}


def _explanations(data: EvaluationData, cfg: DictConfig) -> dict[str, Any]:
    spec = data.datamodule.spec

    def predict(rows: list[dict[str, Any]]) -> np.ndarray:
        with torch.no_grad():
            return destandardise(data.net(*encoded(data, rows)).numpy(), spec)

    perm = permutation_importance(data, "test", lambda y, p: scores(y, p)["r2"], predict)
    perm["metric"] = "r2"
    captum = captum_attributions(data, "test", max(cfg.explanations.samples, 32), lambda out: None)
    return {"permutation_importance": perm, "attributions": captum}


def _baselines(data: EvaluationData, deep: dict[str, float], names: Sequence[str] | None = None,
               metric: str | None = None) -> dict[str, Any]:
    """The tabular baselines (`names`, default all four) beside the net, the best judged on `metric` (default r2)."""
    metric = metric or "r2"
    if metric not in REGRESSION_METRICS:
        raise ConfigError(f"baselines.metric={metric!r}: a regression run is judged on one of {list(REGRESSION_METRICS)}")
    models = run_tabular_baselines(data, scores, list(names or BASELINES))
    # the best baseline by `metric` (higher R², lower RMSE / MAE)
    best = (max if metric == "r2" else min)(models, key=lambda n: models[n][metric])
    # positive margin = the deep model is better (higher R², lower RMSE / MAE)
    margin = {"r2": deep["r2"] - models[best]["r2"], "rmse": models[best]["rmse"] - deep["rmse"],
              "mae": models[best]["mae"] - deep["mae"]}
    return {"features": "the run's imputation + standardisation, categories one-hot", "trained_on": "train split",
            "evaluated_on": "test split", "models": models, "deep": {k: deep[k] for k in ("rmse", "mae", "r2")},
            "best": best, "metric": metric, "margin": margin}


def sections(data: EvaluationData, cfg: DictConfig, out_dir: Path, timed: Timed) -> dict[str, Any]:
    """report.json's regression sections."""
    report: dict[str, Any] = {"kind": data.kind, "target": data.datamodule.spec.target}
    report["regression"] = timed("regression", _metrics, data, out_dir)
    report["conformal"] = timed("conformal", conformal, data, float(cfg.conformal.alpha), bool(cfg.conformal.write))
    if cfg.fairness.enabled:
        report["fairness"] = timed("fairness", _fairness, data, cfg)
    if cfg.explanations.enabled:
        report["explanations"] = timed("explanations", _explanations, data, cfg)
    if cfg.baselines.enabled:
        report["baselines"] = timed("baselines", _baselines, data, report["regression"]["test"],
                                    cfg.baselines.models, cfg.baselines.metric)
    return report


def flat(report: dict[str, Any]) -> dict[str, float]:
    """The scalars success.metric may name: test/rmse, test/r2, test/coverage, test/baseline_margin_r2, ..."""
    out = {f"{split}/{k}": m[k] for split, m in report.get("regression", {}).items() for k in ("rmse", "mae", "r2")}
    if report.get("conformal"):
        out["test/coverage"] = report["conformal"]["test_coverage"]
    return out


def summary(report: dict[str, Any]) -> list[str]:
    """The summary line's parts."""
    t = report["regression"]["test"]
    parts = [f"test RMSE {t['rmse']:.4g}", f"MAE {t['mae']:.4g}", f"R² {t['r2']:.4f}"]
    c = report.get("conformal")
    if c:
        parts.append(f"interval coverage {c['test_coverage']:.3f} (nominal {c['nominal_coverage']:.2f})")
    if report.get("baselines"):
        b = report["baselines"]
        parts.append(f"R² margin over {b['best']} {b['margin']['r2']:+.4f}")
    return parts


def markdown(r: dict[str, Any]) -> list[str]:
    """report.md's regression sections."""
    out = ["## Regression", "", f"Target **{r['target']}** (errors in its units; 95% bootstrap intervals).", ""]
    out += table(["split", "n", "RMSE", "MAE", "R²"], [[s, m["n"], f"{fmt(m['rmse'])} [{fmt(m['ci95']['rmse'][0])}, "
                  f"{fmt(m['ci95']['rmse'][1])}]", f"{fmt(m['mae'])} [{fmt(m['ci95']['mae'][0])}, {fmt(m['ci95']['mae'][1])}]",
                  f"{fmt(m['r2'])} [{fmt(m['ci95']['r2'][0])}, {fmt(m['ci95']['r2'][1])}]"] for s, m in r["regression"].items()])
    out += ["![regression](regression.png)", ""]
    if c := r.get("conformal"):
        out += ["## Prediction intervals", "", f"Split-conformal, calibrated on {c['calibrated_on']}: prediction ± "
                f"**{fmt(c['q'])}** (α={c['alpha']}); test coverage **{fmt(c['test_coverage'])}** against nominal "
                f"{fmt(c['nominal_coverage'])}. Served as `interval: [lo, hi]`.", ""]
    if f := r.get("fairness"):
        out += ["## Error by group", "", f"Group attribute **{f['attribute']}**: {f['description']}", ""]
        out += table(["group", "count", "RMSE", "MAE"], [[g, m["count"], m["rmse"], m["mae"]] for g, m in f["groups"].items()])
        out += [f"RMSE gap {fmt(f['rmse_gap'])}, MAE gap {fmt(f['mae_gap'])}", ""]
    if e := r.get("explanations"):
        p, a = e["permutation_importance"], e["attributions"]
        out += ["## Feature importance", ""]
        out += table(["column", "permutation ΔR² (mean)", "std"], [[n, p["columns"][n]["mean"], p["columns"][n]["std"]]
                                                                   for n in p["ranking"]])
        out += [f"Captum ({a['method']}, {a['samples']} test rows), mean |attribution|: "
                + ", ".join(f"{n} {fmt(a['mean_abs_attribution'][n])}" for n in a["ranking"][:8]), ""]
    if b := r.get("baselines"):
        rows = [["**deep model**", b["deep"]["rmse"], b["deep"]["mae"], b["deep"]["r2"], None]]
        rows += [[n, m["rmse"], m["mae"], m["r2"], m["fit_seconds"]] for n, m in b["models"].items()]
        out += ["## Baselines", "", f"Same split, {b['features']}.", "", *table(["model", "RMSE", "MAE", "R²", "fit s"], rows),
                f"Best baseline by R²: **{b['best']}**; deep model's margin: R² {b['margin']['r2']:+.4f}, "
                f"RMSE {b['margin']['rmse']:+.4g}, MAE {b['margin']['mae']:+.4g} (positive: the deep model is better).", ""]
    return out
