"""MODEL_CARD.md from whatever a run directory holds; richer once evaluate.py and the data checks ran."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import yaml

from core.errors import MissingPathError
from core.rundir import RunDir
from trainers.rundir import atomic_write_text

NOT_EVALUATED = "_Not evaluated yet — run `python evaluate.py run_dir=RUN_DIR`._"
DEFAULT_TASK = "classification"  # runs from before run.json recorded a task


def _load(path: Path) -> Any:
    """JSON or YAML file → data; None when absent or unreadable (a card is written from what exists)."""
    if not path.is_file():
        return None
    try:
        text = path.read_text()
        return yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (OSError, ValueError, yaml.YAMLError):
        return None


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


class _Run:
    """The files of one run directory, read once."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        run = RunDir(run_dir)
        self.config = _load(run.config_path) or {}
        self.info = _load(run.info_path) or {}
        self.metrics = _load(run.metrics_path) or {}
        self.bad = _load(run.bad_records_path)
        self.splits = _load(run.splits_path)
        self.preprocess = _load(run.spec_path) or {}
        self.report = _load(run.report_json_path)
        self.calibration = _load(run.calibration_path)
        self.data_checks = _load(run.data_report_path)
        self.cv = _load(run.cv_summary_path)  # written into every fold's run by the CV callback

    def section(self, key: str) -> Any:
        return (self.report or {}).get(key)

    @property
    def task(self) -> Any:
        """The run's evaluation/tasks/ module: the card's default wording comes from its task."""
        from evaluation.tasks import evaluation_for

        return evaluation_for(self.info.get("task") or DEFAULT_TASK)


def _details(run: _Run) -> str:
    git = run.info.get("git") or {}
    net = ((run.config.get("model") or {}).get("net") or {}).get("_target_", "?")
    rows = [
        ["experiment", run.info.get("experiment", run.config.get("name", "?"))],
        ["run id", run.info.get("run_id", run.dir.name)],
        ["network", f"`{net}`"],
        ["input kind", run.preprocess.get("kind", "?")],
        ["labels", ", ".join(run.info.get("labels") or run.preprocess.get("labels") or [])],
        ["git revision", f"{git.get('revision')} (dirty: {git.get('dirty')})"],
        ["trained", f"{run.info.get('start_time', '?')} → {run.info.get('end_time', 'not finished')}"],
        ["best checkpoint", run.info.get("best_checkpoint") or "—"],
    ]
    return "## Model details\n\n" + _table(["", ""], rows)


def _intended_use(run: _Run) -> str:
    card = run.section("card") or {}
    uses = run.task.CARD_USE
    text = card.get("intended_use") or uses.get(run.preprocess.get("kind"), next(iter(uses.values())))
    out = f"## Intended use\n\n{text}\n"
    if card.get("out_of_scope"):
        out += f"\n**Out of scope:** {card['out_of_scope']}\n"
    return out


def _data(run: _Run) -> str:
    dm = run.config.get("datamodule") or {}
    lines = ["## Data and its checks", "", f"- datamodule: `{dm.get('_target_', '?')}`"]
    for key in ("train_file", "test_file", "root"):
        if dm.get(key):
            lines.append(f"- {key}: `{dm[key]}`")
    if run.splits:
        lines.append("- split sizes: " + ", ".join(f"{s} {len(v)}" for s, v in run.splits.items()))
    if run.info.get("data_fingerprint"):
        lines.append(f"- data fingerprint (sha256): `{run.info['data_fingerprint']}`")
    if run.bad is not None:
        lines.append(f"- bad records skipped: {run.bad.get('bad_count', 0)} of {run.bad.get('total_records', '?')}")
        for rec in (run.bad.get("bad_records") or [])[:5]:
            lines.append(f"  - `{rec.get('where')}`: {rec.get('reason')}")
    checks = run.data_checks or run.section("data_checks")
    lines.append("")
    if not checks:
        lines.append("_Data checks not run yet — run `python -m datamodules.validate +experiment=NAME run_dir=RUN_DIR`._")
    else:
        lines.append(f"Data checks: **{'passed' if checks.get('passed') else 'FAILED'}**")
        rows = [[name, c.get("status", "?"), c.get("summary", "")] for name, c in (checks.get("checks") or {}).items()]
        if rows:
            lines += ["", _table(["check", "status", "summary"], rows)]
        for failure in checks.get("failures") or []:
            lines.append(f"- failed: {failure.get('check')} at {failure.get('where')}: {failure.get('message')}")
    return "\n".join(lines)


def _training(run: _Run) -> str:
    model = run.config.get("model") or {}
    trainer = run.config.get("trainer") or {}
    opt = model.get("optimizer") or {}
    sched = model.get("scheduler") or {}
    rows = [
        ["optimizer", f"`{opt.get('_target_', '?')}` lr={opt.get('lr', '?')} weight_decay={opt.get('weight_decay', '?')}"],
        ["scheduler", f"`{sched.get('_target_')}`" if sched else "none"],
        ["epochs run / max", f"{run.info.get('epochs', '?')} / {trainer.get('max_epochs', '?')}"],
        ["global steps", run.info.get("global_step", "?")],
        ["batch size", (run.config.get("datamodule") or {}).get("batch_size", "?")],
        ["precision", trainer.get("precision", "?")],
        ["strategy", (run.config.get("strategy") or {}).get("_target_", "?")],
        ["seed", run.info.get("seed", run.config.get("seed"))],
        ["fit wall time (s)", run.info.get("fit_wall_seconds", "?")],
        ["packages", ", ".join(f"{k} {v}" for k, v in (run.info.get("packages") or {}).items() if v)],
    ]
    return "## Training setup\n\n" + _table(["", ""], rows)


def _metrics(run: _Run) -> str:
    lines = ["## Metrics", ""]
    if run.metrics:
        lines += ["From training (best checkpoint):", "",
                  _table(["metric", "value"], [[k, v] for k, v in sorted(run.metrics.items())]), ""]
    cls = run.section("classification")
    reg = run.section("regression")
    if reg:
        test = reg.get("test") or {}
        ci = test.get("ci95") or {}
        lines.append(f"Evaluation on the test split (n={test.get('n', '?')}), in the target's units: "
                     f"RMSE {_fmt(test.get('rmse'))} (95% CI {ci.get('rmse')}), MAE {_fmt(test.get('mae'))}, "
                     f"R² {_fmt(test.get('r2'))} (95% CI {ci.get('r2')}).")
        conf = run.section("conformal")
        if conf:
            lines.append(f"Prediction intervals (split-conformal, α={conf.get('alpha')}): ± {_fmt(conf.get('q'))}, "
                         f"test coverage {_fmt(conf.get('test_coverage'))} (nominal {_fmt(conf.get('nominal_coverage'))}).")
    elif not cls:
        lines.append(NOT_EVALUATED)
    else:
        test = cls.get("test") or {}
        lines.append(f"Evaluation on the test split (n={test.get('n', '?')}): accuracy {_fmt(test.get('accuracy'))}, "
                     f"macro F1 {_fmt((test.get('macro') or {}).get('f1'))}, weighted F1 "
                     f"{_fmt((test.get('weighted') or {}).get('f1'))}, ROC-AUC (ovr, macro) {_fmt(test.get('roc_auc_macro'))}.")
        per_class = test.get("per_class") or {}
        rows = [[lab, m.get("precision"), m.get("recall"), m.get("f1"), m.get("support")] for lab, m in per_class.items()]
        if rows:
            lines += ["", _table(["label", "precision", "recall", "F1", "support"], rows)]
    base = run.section("baselines")
    if base:
        lines += ["", f"Baselines ({base.get('features', '')}): best is **{base.get('best')}**; the deep model's margin "
                      f"over it: {_fmt((base.get('margin') or {}).get(base.get('metric', 'accuracy')))} "
                      f"({base.get('metric', 'accuracy')})."]
    success = run.section("success")
    if success and success.get("threshold") is not None:
        lines += ["", f"Success criterion: {success.get('metric')} {'≥' if success.get('greater_is_better', True) else '≤'} "
                      f"{success.get('threshold')} → value {_fmt(success.get('value'))}: **{success.get('verdict')}**"]
    cv = run.cv
    if cv:
        lines += ["", f"Cross-validation ({cv.get('folds')} folds, this run is one of them): " + ", ".join(
            f"{k} {_fmt(v.get('mean'))} ± {_fmt(v.get('std'))}" for k, v in (cv.get("metrics") or {}).items())]
    return "\n".join(lines)


def _calibration(run: _Run) -> str:
    cal = run.calibration or run.section("calibration")
    if run.section("regression"):
        return "## Calibration\n\nRegression: see the prediction intervals under Metrics (split-conformal on val)."
    if not cal:
        return "## Calibration\n\n" + NOT_EVALUATED
    rows = [["ECE", cal.get("ece_before"), cal.get("ece_after")],
            ["MCE", cal.get("mce_before"), cal.get("mce_after")],
            ["NLL (val)", cal.get("nll_before"), cal.get("nll_after")]]
    return ("## Calibration\n\n"
            f"Temperature scaling fitted on {cal.get('fitted_on', 'val')}: T = {_fmt(cal.get('temperature'))} "
            "(the served model divides logits by T before the softmax).\n\n"
            + _table(["", "before", "after"], rows))


def _fairness(run: _Run) -> str:
    fair = run.section("fairness")
    if not fair:
        return "## Fairness findings\n\n" + NOT_EVALUATED
    lines = ["## Fairness findings", "",
             f"Group attribute: `{fair.get('attribute')}` — {fair.get('description', '')}", ""]
    groups = fair.get("groups") or {}
    if groups:
        keys = [k for k in ("count", "accuracy", "f1_macro", "selection_rate", "rmse", "mae") if any(k in g for g in groups.values())]
        lines += [_table(["group", *keys], [[name, *[g.get(k) for k in keys]] for name, g in groups.items()]), ""]
    lines.append(f"- demographic parity difference (max over classes, one-vs-rest): "
                 f"{_fmt(fair.get('demographic_parity_difference'))} (threshold {_fmt((fair.get('thresholds') or {}).get('demographic_parity_difference'))})")
    lines.append(f"- equalized odds difference (max over classes, one-vs-rest): "
                 f"{_fmt(fair.get('equalized_odds_difference'))} (threshold {_fmt((fair.get('thresholds') or {}).get('equalized_odds_difference'))})")
    flags = fair.get("flags") or []
    lines.append("- flags: " + ("; ".join(flags) if flags else "none"))
    return "\n".join(lines)


def _limitations(run: _Run) -> str:
    card = run.section("card") or {}
    items = list(card.get("limitations") or run.task.CARD_LIMITATIONS)
    fair = run.section("fairness") or {}
    items += [f"Fairness flag: {f}" for f in fair.get("flags") or []]
    base = run.section("baselines") or {}
    margin = (base.get("margin") or {}).get(base.get("metric", "accuracy"))
    if isinstance(margin, (int, float)) and margin <= 0:
        items.append(f"The deep model does not beat the best simple baseline ({base.get('best')}).")
    if (run.section("success") or {}).get("verdict") == "FAIL":
        items.append("The run FAILED its configured success criterion.")
    if run.metrics and not run.section(run.info.get("task") or DEFAULT_TASK):
        items.append("Not yet evaluated beyond training metrics: no calibration, fairness or baseline evidence.")
    return "## Limitations\n\n" + "\n".join(f"- {i}" for i in items)


SECTIONS: list[Callable[[_Run], str]] = [_details, _intended_use, _data, _training, _metrics, _calibration,
                                         _fairness, _limitations]


def render_model_card(run_dir: str | Path) -> str:
    """The model card's Markdown text for a run directory."""
    run = _Run(Path(run_dir))
    title = f"# Model card: {run.info.get('experiment', run.config.get('name', 'model'))} ({run.info.get('run_id', run.dir.name)})"
    return "\n\n".join([title, *(section(run) for section in SECTIONS)]) + "\n"


def write_model_card(run_dir: Path) -> Path:
    """Write RUN_DIR/MODEL_CARD.md (atomically) and return its path."""
    run_dir = Path(run_dir)
    if not RunDir(run_dir).info_path.is_file() and not RunDir(run_dir).config_path.is_file():
        raise MissingPathError(f"{run_dir} has neither run.json nor config.yaml: not a Shipyard run directory")
    path = RunDir(run_dir).model_card_path
    atomic_write_text(path, render_model_card(run_dir))
    return path
