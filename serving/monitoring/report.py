"""Write a drift report: JSON (machine), Markdown (people), PNG plots, and a Prometheus textfile."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from serving.monitoring.drift import DriftResult
from trainers.rundir import atomic_write_json, atomic_write_text

PROM_FILE = "shipyard_drift.prom"


def write_report(result: DriftResult, reference: dict[str, list], current: dict[str, list], out_dir: Path,
                 context: dict[str, Any]) -> dict[str, Path]:
    """All report files into out_dir; returns their paths by kind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {**context, **result.to_dict()}
    paths = {"json": out_dir / "drift_report.json", "markdown": out_dir / "drift_report.md",
             "plot": out_dir / "drift_features.png", "prometheus": out_dir / PROM_FILE}
    atomic_write_json(paths["json"], data)
    atomic_write_text(paths["markdown"], markdown(data))
    plot(result, reference, current, paths["plot"])
    atomic_write_text(paths["prometheus"], prometheus_text(result, context.get("model") or "all"))
    return paths


def markdown(data: dict[str, Any]) -> str:
    """A short human report: verdict, confidence, one row per feature."""
    verdict = "DRIFT" if data["drifted"] else "no drift"
    conf = data["confidence"]
    lines = [
        f"# Drift report: {verdict}",
        "",
        f"- reference: `{data.get('reference')}` (split `{data.get('split')}`, n={data.get('n_reference')})",
        f"- current: `{data.get('current')}` (n={data.get('n_current')}, unreadable lines: {data.get('bad_lines', 0)})",
        f"- thresholds: alpha={data['thresholds']['alpha']} (Bonferroni: {data['corrected_alpha']:.2g} per test), "
        f"min PSI={data['thresholds']['min_psi']}, max confidence drop={data['thresholds']['max_confidence_drop']}",
        f"- drift score (max PSI): {data['drift_score']:.3f}",
        f"- mean confidence: reference {_fmt(conf['reference_mean'])}, current {_fmt(conf['current_mean'])}, "
        f"drop {_fmt(conf['drop'])}{' **ALARM**' if conf['alarm'] else ''}",
        "",
        "| feature | test | statistic | p-value | PSI | drifted |",
        "|---|---|---|---|---|---|",
    ]
    for f in data["features"]:
        lines.append(f"| {f['name']} | {f['test']} | {f['statistic']:.4g} | {f['p_value']:.3g} | {f['psi']:.3f} | "
                     f"{'**yes**' if f['drifted'] else 'no'} |")
    for f in data.get("informational", []):
        lines.append(f"| {f['name']} (informational) | {f['test']} | {f['statistic']:.4g} | {f['p_value']:.3g} | "
                     f"{f['psi']:.3f} | - |")
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def plot(result: DriftResult, reference: dict[str, list], current: dict[str, list], path: Path) -> None:
    """One panel per feature: overlaid histograms (numeric) or side-by-side shares (categorical)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    feats = result.features
    ncols = 3
    nrows = max(1, math.ceil(len(feats) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), squeeze=False)
    for ax, f in zip(axes.flat, feats):
        if f.kind == "numeric":
            ref = [v for v in reference[f.name] if v is not None]
            cur = [v for v in current[f.name] if v is not None]
            ax.hist(ref, bins=20, alpha=0.5, density=True, label="reference")
            ax.hist(cur, bins=20, alpha=0.5, density=True, label="current")
        else:
            cats = sorted(set(f.reference_summary) | set(f.current_summary))
            xs = range(len(cats))
            ax.bar([x - 0.2 for x in xs], [f.reference_summary.get(c, 0) for c in cats], 0.4, label="reference")
            ax.bar([x + 0.2 for x in xs], [f.current_summary.get(c, 0) for c in cats], 0.4, label="current")
            ax.set_xticks(list(xs), cats, rotation=90, fontsize=7)
        ax.set_title(f"{f.name}: p={f.p_value:.2g} PSI={f.psi:.2f}", color="red" if f.drifted else "black", fontsize=9)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(feats):]:
        ax.axis("off")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)


def prometheus_text(result: DriftResult, model: str) -> str:
    """Prometheus text exposition (node_exporter textfile collector / pushgateway body)."""
    label = f'model="{_escape(model)}"'
    drifted_count = sum(1 for f in result.features if f.drifted)
    rows = [
        ("shipyard_drift_score", "gauge", "Largest PSI over the monitored features of the last drift check",
         result.drift_score),
        ("shipyard_drift_detected", "gauge", "1 when the last drift check exceeded its thresholds", int(result.drifted)),
        ("shipyard_drift_features_drifted", "gauge", "Number of features that drifted in the last check",
         drifted_count),
        ("shipyard_drift_confidence_drop", "gauge", "Reference minus current mean top-1 confidence",
         result.confidence_drop or 0.0),
        ("shipyard_drift_last_run_timestamp_seconds", "gauge", "Unix time of the last drift check", time.time()),
    ]
    out = []
    for name, kind, help_text, value in rows:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name}{{{label}}} {float(value):.10g}"]
    return "\n".join(out) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
