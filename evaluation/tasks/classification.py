"""The classification task's report: per-class P/R/F1, confusion, ROC/PR, calibration, fairness, explanations, baselines."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
from omegaconf import DictConfig

from evaluation.baselines import BASELINES, compare, plot_baselines, run_baselines
from evaluation.calibration import calibrate, write_calibration
from evaluation.classification import classification_metrics, plot_confusion_matrices, plot_roc_pr
from evaluation.explain import explain
from evaluation.fairness import fairness_report, plot_fairness
from evaluation.groups import resolve_groups
from evaluation.predictions import EvaluationData, load_evaluation_data
from evaluation.report_md import fmt, table

Timed = Callable[..., Any]  # timed(name, fn, *args): runs one section and records its wall time
# MODEL_CARD.md's default wording for this task (evaluation/model_card.py; cfg.card overrides it)
CARD_USE = {
    "image": "Classifies a single image into one of the labels listed under Model details. Inputs must look like the "
             "training images (same kind of subject, size and colour mode after the served preprocessing).",
    "text": "Classifies a short piece of text into one of the labels listed under Model details. Inputs must be in the "
            "language and register of the training texts; longer texts are truncated to the tokenizer's max length.",
    "tabular": "Classifies one row of a table into one of the labels listed under Model details. Rows must have the "
               "training table's columns, with values in the ranges and categories it held.",
}
CARD_LIMITATIONS = [
    "Trained and evaluated on one small dataset; performance on other sources is unmeasured.",
    "Probabilities are only as calibrated as the calibration section says; re-check after any data shift.",
    "Labels outside the model's label list are never predicted: every input is forced into one of them.",
]


def load(run_dir: Path, batch_size: int) -> EvaluationData:
    """The run's net, datamodule and logits of the val and test splits."""
    return load_evaluation_data(run_dir, ("val", "test"), batch_size)


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
    if data.kind == "tabular":  # linear, random forest, XGBoost, LightGBM on the run's own encoding
        from evaluation.tabular import BASELINES as TABULAR_BASELINES
        from evaluation.tabular import classification_scores, run_tabular_baselines

        models = run_tabular_baselines(data, classification_scores, list(cfg.baselines.models or TABULAR_BASELINES))
    else:
        models = run_baselines(data.features("train"), train_y, data.features("test"), test_y, data.kind,
                               list(cfg.baselines.models or BASELINES), int(data.cfg.get("seed", 0)))
    deep_scores = {"accuracy": deep["accuracy"], "f1_macro": deep["macro"]["f1"]}
    plot_baselines(deep_scores, models, out_dir / "baselines.png")
    features = {"text": "TF-IDF word 1-2 grams", "tabular": "the run's imputation + standardisation, categories one-hot"
                }.get(data.kind, "flattened preprocessed pixels (standardised)")
    return {"features": features, "trained_on": "train split", "evaluated_on": "test split", "models": models,
            "deep": deep_scores, **compare(deep_scores, models, cfg.baselines.metric or "accuracy")}


def sections(data: EvaluationData, cfg: DictConfig, out_dir: Path, timed: Timed) -> dict[str, Any]:
    """report.json's classification sections, in report order (each switched by its cfg.<section>.enabled)."""
    report: dict[str, Any] = {"kind": data.kind, "labels": data.labels}
    report["classification"] = timed("classification", _classification, data, out_dir)
    if cfg.calibration.enabled:
        report["calibration"] = timed("calibration", _calibration, data, cfg, out_dir)
    if cfg.fairness.enabled:
        report["fairness"] = timed("fairness", _fairness, data, cfg, out_dir)
    if cfg.explanations.enabled:
        report["explanations"] = timed("explanations", explain, data, cfg.explanations, out_dir)
    if cfg.baselines.enabled:
        report["baselines"] = timed("baselines", _baselines, data, cfg, report["classification"]["test"], out_dir)
    return report


def summary(report: dict[str, Any]) -> list[str]:
    """The summary line's parts: accuracy, F1, ECE before/after, fairness flags, baseline margin."""
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
    return parts


def markdown(r: dict[str, Any]) -> list[str]:
    """report.md's classification sections."""
    return _md_classification(r) + _md_calibration(r) + _md_fairness(r) + _md_explanations(r) + _md_baselines(r)


def _md_classification(r: dict[str, Any]) -> list[str]:
    out = ["## Classification", ""]
    for split, m in r["classification"].items():
        out += [f"### {split} (n={m['n']})", "",
                f"accuracy **{fmt(m['accuracy'])}**, ROC-AUC (one-vs-rest, macro) {fmt(m['roc_auc_macro'])}, "
                f"PR-AUC (macro) {fmt(m['pr_auc_macro'])}", ""]
        rows = [[lab, c["precision"], c["recall"], c["f1"], c["support"], c["roc_auc"], c["pr_auc"]]
                for lab, c in m["per_class"].items()]
        rows += [[f"**{avg}**", m[avg]["precision"], m[avg]["recall"], m[avg]["f1"], m["n"], None, None]
                 for avg in ("macro", "weighted")]
        out += table(["label", "precision", "recall", "F1", "support", "ROC-AUC", "PR-AUC"], rows)
    out += ["![confusion matrices](confusion_matrix.png)", "", "![ROC and PR curves](roc_pr.png)", ""]
    return out


def _md_calibration(r: dict[str, Any]) -> list[str]:
    c = r.get("calibration")
    if not c:
        return []
    return ["## Calibration", "",
            f"Temperature scaling fitted on **{c['fitted_on']}** (NLL, LBFGS on log T): **T = {fmt(c['temperature'])}**; "
            "saved in `calibration.json` (export applies it)." + (f" Note: {c['note']}." if c.get("note") else ""), "",
            *table(["", "before", "after"], [["ECE (test)", c["ece_before"], c["ece_after"]],
                                             ["MCE (test)", c["mce_before"], c["mce_after"]],
                                             ["NLL (val)", c["nll_before"], c["nll_after"]],
                                             ["NLL (test)", c["test_nll_before"], c["test_nll_after"]]]),
            "![reliability diagram](reliability_diagram.png)", ""]


def _md_fairness(r: dict[str, Any]) -> list[str]:
    f = r.get("fairness")
    if not f:
        return []
    out = ["## Fairness", "", f"Group attribute **{f['attribute']}**: {f['description']}", ""]
    out += table(["group", "count", "accuracy", "macro F1"],
                 [[g, m["count"], m["accuracy"], m["f1_macro"]] for g, m in f["groups"].items()])
    rows = [[k.replace("_", " "), f[k], f.get(f"{k}_class"), f["thresholds"].get(k)]
            for k in ("demographic_parity_difference", "equalized_odds_difference")]
    rows.append(["accuracy difference", f["accuracy_difference"], "—", f["thresholds"].get("accuracy_difference")])
    out += table(["gap (max over classes, one-vs-rest)", "value", "worst class", "threshold"], rows)
    out += ["**Flags:** " + ("; ".join(f["flags"]) if f["flags"] else "none"), "", "![fairness](fairness.png)", ""]
    return out


def _md_explanations(r: dict[str, Any]) -> list[str]:
    e = r.get("explanations")
    if not e:
        return []
    out = ["## Explanations", "", f"Methods: {', '.join(e['method'])} (IG steps {e['ig_steps']}, "
           f"KernelShap samples {e['shap_samples']}).", ""]
    if isinstance(e["samples"], list):
        rows = [[s["item_id"], s["true"], s["pred"], ", ".join(t for t, *_ in s["integrated_gradients"]),
                 ", ".join(t for t, *_ in s["kernel_shap"])] for s in e["samples"]]
        out += table(["item", "true", "pred", "top tokens (IG)", "top tokens (KernelShap)"], rows)
    out += ["![attributions](explanations.png)", ""]
    return out


def _md_baselines(r: dict[str, Any]) -> list[str]:
    b = r.get("baselines")
    if not b:
        return []
    rows = [["**deep model**", b["deep"]["accuracy"], b["deep"]["f1_macro"], None]]
    rows += [[n, m["accuracy"], m["f1_macro"], m["fit_seconds"]] for n, m in b["models"].items()]
    return ["## Baselines", "", f"scikit-learn on the same split ({b['features']}).", "",
            *table(["model", "accuracy", "macro F1", "fit s"], rows),
            f"Best baseline by {b['metric']}: **{b['best']}**; deep model's margin: accuracy "
            f"{b['margin']['accuracy']:+.4f}, macro F1 {b['margin']['f1_macro']:+.4f}.", "",
            "![baselines](baselines.png)", ""]
