"""report.json → a readable report.md: tables per section and links to the PNG figures."""
from __future__ import annotations

from typing import Any


def _f(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(_f(c) for c in row) + " |" for row in rows), ""]


def _classification(r: dict[str, Any]) -> list[str]:
    out = ["## Classification", ""]
    for split, m in r["classification"].items():
        out += [f"### {split} (n={m['n']})", "",
                f"accuracy **{_f(m['accuracy'])}**, ROC-AUC (one-vs-rest, macro) {_f(m['roc_auc_macro'])}, "
                f"PR-AUC (macro) {_f(m['pr_auc_macro'])}", ""]
        rows = [[lab, c["precision"], c["recall"], c["f1"], c["support"], c["roc_auc"], c["pr_auc"]]
                for lab, c in m["per_class"].items()]
        rows += [[f"**{avg}**", m[avg]["precision"], m[avg]["recall"], m[avg]["f1"], m["n"], None, None]
                 for avg in ("macro", "weighted")]
        out += _table(["label", "precision", "recall", "F1", "support", "ROC-AUC", "PR-AUC"], rows)
    out += ["![confusion matrices](confusion_matrix.png)", "", "![ROC and PR curves](roc_pr.png)", ""]
    return out


def _calibration(r: dict[str, Any]) -> list[str]:
    c = r.get("calibration")
    if not c:
        return []
    return ["## Calibration", "",
            f"Temperature scaling fitted on **{c['fitted_on']}** (NLL, LBFGS on log T): **T = {_f(c['temperature'])}**; "
            "saved in `calibration.json` (export applies it)." + (f" Note: {c['note']}." if c.get("note") else ""), "",
            *_table(["", "before", "after"], [["ECE (test)", c["ece_before"], c["ece_after"]],
                                              ["MCE (test)", c["mce_before"], c["mce_after"]],
                                              ["NLL (val)", c["nll_before"], c["nll_after"]],
                                              ["NLL (test)", c["test_nll_before"], c["test_nll_after"]]]),
            "![reliability diagram](reliability_diagram.png)", ""]


def _fairness(r: dict[str, Any]) -> list[str]:
    f = r.get("fairness")
    if not f:
        return []
    out = ["## Fairness", "", f"Group attribute **{f['attribute']}**: {f['description']}", ""]
    out += _table(["group", "count", "accuracy", "macro F1"],
                  [[g, m["count"], m["accuracy"], m["f1_macro"]] for g, m in f["groups"].items()])
    rows = [[k.replace("_", " "), f[k], f.get(f"{k}_class"), f["thresholds"].get(k)]
            for k in ("demographic_parity_difference", "equalized_odds_difference")]
    rows.append(["accuracy difference", f["accuracy_difference"], "—", f["thresholds"].get("accuracy_difference")])
    out += _table(["gap (max over classes, one-vs-rest)", "value", "worst class", "threshold"], rows)
    out += ["**Flags:** " + ("; ".join(f["flags"]) if f["flags"] else "none"), "", "![fairness](fairness.png)", ""]
    return out


def _explanations(r: dict[str, Any]) -> list[str]:
    e = r.get("explanations")
    if not e:
        return []
    out = ["## Explanations", "", f"Methods: {', '.join(e['method'])} (IG steps {e['ig_steps']}, "
           f"KernelShap samples {e['shap_samples']}).", ""]
    if isinstance(e["samples"], list):
        rows = [[s["item_id"], s["true"], s["pred"], ", ".join(t for t, _ in s["integrated_gradients"]),
                 ", ".join(t for t, _ in s["kernel_shap"])] for s in e["samples"]]
        out += _table(["item", "true", "pred", "top tokens (IG)", "top tokens (KernelShap)"], rows)
    out += ["![attributions](explanations.png)", ""]
    return out


def _baselines(r: dict[str, Any]) -> list[str]:
    b = r.get("baselines")
    if not b:
        return []
    rows = [["**deep model**", b["deep"]["accuracy"], b["deep"]["f1_macro"], None]]
    rows += [[n, m["accuracy"], m["f1_macro"], m["fit_seconds"]] for n, m in b["models"].items()]
    return ["## Baselines", "", f"scikit-learn on the same split ({b['features']}).", "",
            *_table(["model", "accuracy", "macro F1", "fit s"], rows),
            f"Best baseline by {b['metric']}: **{b['best']}**; deep model's margin: accuracy "
            f"{b['margin']['accuracy']:+.4f}, macro F1 {b['margin']['f1_macro']:+.4f}.", "",
            "![baselines](baselines.png)", ""]


def _data_checks(r: dict[str, Any]) -> list[str]:
    d = r.get("data_checks")
    if not d:
        return ["## Data checks", "", "Not run for this run directory: `python -m datamodules.validate "
                "+experiment=NAME run_dir=RUN_DIR`.", ""]
    rows = [[k, v["status"], v["summary"]] for k, v in d["checks"].items()]
    return ["## Data checks", "", f"**{'passed' if d['passed'] else 'FAILED'}** ([full report]({d['report']}))", "",
            *_table(["check", "status", "summary"], rows)]


def render_markdown(r: dict[str, Any]) -> str:
    """The whole report as Markdown (figures are linked relative to report/)."""
    s = r["success"]
    head = [f"# Evaluation report: {r['experiment']}", "", f"- run: `{r['run_dir']}`", f"- checkpoint: `{r['checkpoint']}`",
            f"- created: {r['created']}", "",
            f"**Verdict: {s['verdict']}** — {s['metric']} = {_f(s['value'])} "
            f"({'≥' if s['mode'] == 'max' else '≤'} {s['threshold']} required)", ""]
    body = (_classification(r) + _calibration(r) + _fairness(r) + _explanations(r) + _baselines(r) + _data_checks(r))
    return "\n".join(head + body) + "\n"
