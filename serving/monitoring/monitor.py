"""`python -m serving monitor reference=RUN_DIR current=LOG_DIR`: drift check, report, optional retrain."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from core.rundir import RunDir
from core.schema import MISSING, from_overrides
from serving.monitoring.drift import DriftResult, DriftThresholds, compare, compare_categorical
from serving.monitoring.lm_reference import KIND as LM_KIND, length_matched_nll
from serving.monitoring.reference import load_reference
from serving.monitoring.report import PROM_FILE, write_report
from serving.monitoring.window import columns, feature_names, read_records, top_words, vocabulary_column
from trainers.rundir import atomic_write_text

REPO = Path(__file__).resolve().parents[2]
EXIT_DRIFT = 3  # distinct from 1 (an error) and 2 (bad usage)


@dataclass
class RetrainConfig:
    """What `retrain_on_drift` launches."""

    experiment: str | None = None   # default: the reference run's experiment (its run.json)
    launcher: str = "local"         # local | slurm (train.py launcher=slurm)
    overrides: list[str] = field(default_factory=list)  # extra train.py overrides, e.g. [trainer.max_epochs=5]
    wait: bool = False              # local: wait for training to finish (else start it in the background)


@dataclass
class MonitorConfig:
    """python -m serving monitor reference=RUN_DIR current=LOG_DIR [key=value ...] (the schema and its defaults)."""

    reference: str = MISSING        # the run directory the served model was trained in
    current: str = MISSING          # folder of prediction logs (rotating *.jsonl written by the handlers)
    split: str = "val"              # reference split: held out, so its confidences look like serving's
    model_name: str | None = None   # only records of this model name (default: all)
    version: str | None = None      # only records of this model version (default: all)
    since: float | None = None      # only records at/after this unix time
    until: float | None = None      # only records at/before this unix time
    out: str | None = None          # report folder (default: <current>/../drift_reports/<timestamp>)
    textfile_dir: str | None = None  # also write shipyard_drift.prom here (node_exporter's textfile collector)
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    retrain_on_drift: bool = False  # on drift, launch train.py for `retrain.experiment`
    retrain: RetrainConfig = field(default_factory=RetrainConfig)


def compose(overrides: Sequence[str] = ()) -> MonitorConfig:
    """`key=value` overrides → a validated MonitorConfig (core/schema.py's errors, exit 2)."""
    return from_overrides(MonitorConfig, overrides)


def check_drift(cfg: MonitorConfig) -> tuple[DriftResult, dict[str, Path], dict[str, Any]]:
    """Compare the log window with the run's reference; write the report; return result, files, context."""
    ref = load_reference(cfg.reference, cfg.split)
    records, bad = read_records(cfg.current, cfg.model_name, cfg.version, cfg.since, cfg.until)
    kinds = {r.get("kind") for r in records} - {None}
    if kinds and kinds != {ref["kind"]}:
        raise ValueError(f"logs hold {sorted(kinds)} records but the reference run is {ref['kind']}: "
                         "filter with model_name=NAME")
    vocab = set(ref.get("vocabulary") or [])
    cur = columns(records, vocab)
    # tabular: every feature column is compared (KS numeric, chi² categorical, PSI both)
    # tabular and language models: the reference names its features; images and texts: window.feature_names
    numeric, categorical = (ref["numeric"], ref["categorical"]) if "numeric" in ref else feature_names(ref["kind"])
    missing = [n for n in numeric + categorical if n not in cur and records]
    if missing:
        raise ValueError(f"the logs lack features {missing}; were they written by an older handler?")
    ref_columns = ref["columns"]
    if ref["kind"] == LM_KIND:  # the reference cut to this window's prompt lengths (serving/monitoring/lm_reference.py)
        ref_columns = {**ref_columns, "prompt_nll": length_matched_nll(ref, cur.get("prompt_tokens", []))}
    result = compare(ref_columns, cur, numeric, categorical, cfg.thresholds)
    informational = []
    if ref["kind"] == "text":
        # words within a text are not independent draws, so this chi-squared is shown, not voted on
        top = top_words(ref["columns"]["text"])
        informational.append(asdict(compare_categorical(
            "vocabulary", vocabulary_column(ref["columns"]["text"], top), vocabulary_column(cur["text"], top),
            cfg.thresholds)))
    out = Path(cfg.out) if cfg.out else Path(cfg.current).resolve().parent / "drift_reports" / time.strftime("%Y%m%d-%H%M%S")
    context = {"reference": str(cfg.reference), "split": cfg.split, "current": str(cfg.current),
               "model": cfg.model_name, "version": cfg.version, "n_reference": ref["n"], "n_current": len(records),
               "bad_lines": bad, "informational": informational, "created": time.time()}
    files = write_report(result, ref_columns, cur, out, context)
    if cfg.textfile_dir:
        Path(cfg.textfile_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(cfg.textfile_dir) / PROM_FILE, files["prometheus"].read_text())
    return result, files, context


def retrain_command(cfg: MonitorConfig) -> list[str]:
    """The train.py command line a drift alarm launches (Slurm through the launcher config group)."""
    experiment = cfg.retrain.experiment
    if not experiment:
        info = RunDir(cfg.reference).read_info()
        experiment = info.get("experiment")
    if not experiment:
        raise ValueError("retrain_on_drift: set retrain.experiment=NAME (the reference run.json names none)")
    if cfg.retrain.launcher not in ("local", "slurm"):
        raise ValueError(f"retrain.launcher={cfg.retrain.launcher!r}: use local or slurm")
    cmd = [sys.executable, str(REPO / "train.py"), f"+experiment={experiment}", *cfg.retrain.overrides]
    if cfg.retrain.launcher == "slurm":
        cmd.append("launcher=slurm")
    return cmd


def launch_retrain(cfg: MonitorConfig, report_dir: Path) -> dict[str, Any]:
    """Start training (or submit it to Slurm); its output goes to report_dir/retrain.log."""
    cmd = retrain_command(cfg)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = open(report_dir / "retrain.log", "ab")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    info: dict[str, Any] = {"command": cmd, "pid": proc.pid, "log": str(report_dir / "retrain.log")}
    if cfg.retrain.wait or cfg.retrain.launcher == "slurm":  # a Slurm submission returns quickly: wait for the id
        info["returncode"] = proc.wait()
    log.close()
    return info


def main(overrides: list[str]) -> int:
    """CLI body: exit 0 (no drift), EXIT_DRIFT (drift), raise on errors."""
    cfg = compose(overrides)
    result, files, _ = check_drift(cfg)
    print(files["markdown"].read_text())
    print(f"report: {files['json'].parent}")
    if result.drifted and cfg.retrain_on_drift:
        info = launch_retrain(cfg, files["json"].parent)
        print(f"retrain launched: {' '.join(info['command'])} (log {info['log']})")
        if info.get("returncode"):
            print(f"retrain launch failed with exit code {info['returncode']}; see {info['log']}", file=sys.stderr)
    return EXIT_DRIFT if result.drifted else 0
