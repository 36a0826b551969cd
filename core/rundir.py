"""The run directory: the ONLY code that knows its file names and layout; every write is atomic (umask honoured).

    RUN_DIR/
      config.yaml  run.json  metrics.json  preprocess.json  calibration.json  train.log  MODEL_CARD.md
      data/        splits.json  labels.json  bad_records.json  tokenizer/
      checkpoints/ *.ckpt files, DeepSpeed / FSDP2 folders (COMPLETE marker written last), last.ckpt
      report/      report.json  report.md  evaluation_error.txt  *.png
      data_checks/ data_report.json  data_report.md
      export/      model.pt  model.pt2  export.json  metadata.json  preprocess.json  index_to_name.json  MODEL_CARD.md
                   tokenizer/  archives/<version>/<name>.mar  (the export/ files are the .mar's model-dir files)
      monitoring/  reference_<split>.json
      tb/          TensorBoard events
      config_history/  NN-config.yaml + NN-changes.json: the config before each resume that changed keys
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_json, atomic_write_text
from core.errors import UserError
from core.export_dir import ExportDir
from core.run_layout import (  # noqa: F401  (re-exported: core's callers import them from here)
    CONFIG, RUN_INFO, METRICS, PREPROCESS, CALIBRATION, TRAIN_LOG, MODEL_CARD, DATA_DIR, SPLITS, LABELS,
    BAD_RECORDS, TABULAR_ROLES, TOKENS_INFO, TOKENIZER_DIR, TOKENIZER_FILE, CHECKPOINT_DIR, LAST_CHECKPOINT, COMPLETE_MARKER, REPORT_DIR, REPORT_JSON,
    REPORT_MD, EVALUATION_ERROR, CV_SUMMARY_JSON, CV_SUMMARY_MD, DATA_CHECKS_DIR, DATA_REPORT_JSON, DATA_REPORT_MD,
    EXPORT_DIR, EXPORT_JSON, ARCHIVES_DIR, SCRIPTED_MODEL, EXPORTED_PROGRAM, METADATA, INDEX_TO_NAME,
    EXPORT_TOKENIZER_DIR, MONITORING_DIR, TB_DIR, CONFIG_HISTORY_DIR,
)


class RunDirError(UserError, FileNotFoundError):
    """The folder is not a (complete enough) Shipyard run directory; the message says what is missing."""


def is_complete_checkpoint(path: Path) -> bool:
    """A file checkpoint is a readable zip (torch.save's format); a directory needs its COMPLETE marker."""
    path = Path(path)
    if path.is_dir():
        return (path / COMPLETE_MARKER).exists()
    if not path.is_file() or path.name.startswith("."):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError):
        return False


def read_json(path: str | Path) -> Any:
    """Read a JSON file with an error that names it."""
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path} does not exist: is this a Shipyard run directory?")
    return json.loads(path.read_text())


class RunDir:
    """One run directory: paths of its parts, and atomic readers/writers for its files."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, rel: str) -> Path:
        return self.path / rel

    # ---- paths -------------------------------------------------------------------------------------------
    config_path = property(lambda self: self.path / CONFIG,
                           doc="RUN_DIR/config.yaml: the resolved config the run was trained with.")
    info_path = property(lambda self: self.path / RUN_INFO,
                         doc="RUN_DIR/run.json: provenance, task, best/last checkpoint, cost.")
    metrics_path = property(lambda self: self.path / METRICS, doc="RUN_DIR/metrics.json: the final logged metrics.")
    spec_path = property(lambda self: self.path / PREPROCESS, doc="RUN_DIR/preprocess.json.")
    calibration_path = property(lambda self: self.path / CALIBRATION, doc="RUN_DIR/calibration.json.")
    model_card_path = property(lambda self: self.path / MODEL_CARD, doc="RUN_DIR/MODEL_CARD.md.")
    train_log_path = property(lambda self: self.path / TRAIN_LOG, doc="RUN_DIR/train.log.")
    data_dir = property(lambda self: self.path / DATA_DIR, doc="RUN_DIR/data: the datamodule's artifacts.")
    splits_path = property(lambda self: self.path / SPLITS, doc="RUN_DIR/data/splits.json: item ids per split.")
    labels_path = property(lambda self: self.path / LABELS, doc="RUN_DIR/data/labels.json.")
    bad_records_path = property(lambda self: self.path / BAD_RECORDS, doc="RUN_DIR/data/bad_records.json.")
    tokenizer_dir = property(lambda self: self.path / TOKENIZER_DIR, doc="RUN_DIR/data/tokenizer.")
    tokenizer_file = property(lambda self: self.path / TOKENIZER_FILE,
                              doc="RUN_DIR/data/tokenizer/tokenizer.json (language-model runs).")
    checkpoints_dir = property(lambda self: self.path / CHECKPOINT_DIR, doc="RUN_DIR/checkpoints.")
    @property
    def last_checkpoint_path(self) -> Path:
        """RUN_DIR/checkpoints/last.ckpt (a file or a sharded folder)."""
        return self.checkpoints_dir / LAST_CHECKPOINT

    report_dir = property(lambda self: self.path / REPORT_DIR, doc="RUN_DIR/report.")
    @property
    def report_json_path(self) -> Path:
        """RUN_DIR/report/report.json."""
        return self.report_dir / REPORT_JSON

    @property
    def report_md_path(self) -> Path:
        """RUN_DIR/report/report.md."""
        return self.report_dir / REPORT_MD

    @property
    def evaluation_error_path(self) -> Path:
        """RUN_DIR/report/evaluation_error.txt (a failed evaluation after training)."""
        return self.report_dir / EVALUATION_ERROR

    data_checks_dir = property(lambda self: self.path / DATA_CHECKS_DIR, doc="RUN_DIR/data_checks.")
    @property
    def data_report_path(self) -> Path:
        """RUN_DIR/data_checks/data_report.json."""
        return self.data_checks_dir / DATA_REPORT_JSON

    cv_summary_path = property(lambda self: self.path / CV_SUMMARY_JSON,
                               doc="RUN_DIR/cv_summary.json (every fold's run of a cross-validation).")
    export_dir = property(lambda self: self.path / EXPORT_DIR, doc="RUN_DIR/export.")
    @property
    def export(self) -> ExportDir:
        """RUN_DIR/export as an ExportDir (model.pt, export.json, metadata.json, archives/, ...)."""
        return ExportDir(self.export_dir)

    @property
    def export_json_path(self) -> Path:
        """RUN_DIR/export/export.json."""
        return self.export.export_json_path

    @property
    def scripted_model_path(self) -> Path:
        """RUN_DIR/export/model.pt (TorchScript)."""
        return self.export.scripted_model_path

    @property
    def archives_dir(self) -> Path:
        """RUN_DIR/export/archives."""
        return self.export.archives_dir

    monitoring_dir = property(lambda self: self.path / MONITORING_DIR, doc="RUN_DIR/monitoring.")
    def reference_path(self, split: str) -> Path:
        """RUN_DIR/monitoring/reference_<split>.json (the drift reference cache)."""
        return self.monitoring_dir / f"reference_{split}.json"

    tb_dir = property(lambda self: self.path / TB_DIR, doc="RUN_DIR/tb.")
    # ---- checks ------------------------------------------------------------------------------------------
    def is_run(self) -> bool:
        """Whether the folder holds a run's config.yaml."""
        return self.config_path.is_file()

    def require(self, what: str = "run_dir") -> "RunDir":
        """Raise a clear RunDirError unless this is a run directory (a folder with config.yaml)."""
        if not self.path.is_dir():
            raise RunDirError(f"{what}={self.path} is not a directory: pass the folder train.py printed")
        if not self.is_run():
            raise RunDirError(f"{self.config_path} is missing: {self.path} is not a Shipyard run directory")
        return self

    # ---- readers / writers -------------------------------------------------------------------------------
    def read_config(self) -> Any:
        """The resolved config.yaml as an OmegaConf DictConfig."""
        from omegaconf import OmegaConf

        self.require()
        return OmegaConf.load(self.config_path)

    def write_config(self, cfg: Any) -> Path:
        """Save a (resolved) config: a DictConfig or YAML text."""
        if not isinstance(cfg, str):
            from omegaconf import OmegaConf

            cfg = OmegaConf.to_yaml(cfg, resolve=True)
        return atomic_write_text(self.config_path, cfg)

    config_history_dir = property(lambda self: self.path / CONFIG_HISTORY_DIR,
                                  doc="RUN_DIR/config_history: earlier configs + the keys each resume changed.")
    def replace_config(self, cfg: Any, changes: dict[str, Any]) -> Path:
        """A resume changed keys: keep config.yaml as config_history/NN-config.yaml (+ NN-changes.json), write cfg."""
        n = len(list(self.config_history_dir.glob("*-config.yaml"))) if self.config_history_dir.is_dir() else 0
        atomic_write_text(self.config_history_dir / f"{n:02d}-config.yaml", self.config_path.read_text())
        atomic_write_json(self.config_history_dir / f"{n:02d}-changes.json", changes)
        return self.write_config(cfg)

    def read_info(self, default: Any = None) -> dict[str, Any]:
        """run.json (a RunDirError naming it when it is missing, unless a default is given)."""
        if default is not None and not self.info_path.exists():
            return default
        return read_json(self.info_path)

    def write_info(self, info: dict[str, Any]) -> Path:
        """Replace run.json."""
        return atomic_write_json(self.info_path, info)

    def update_info(self, **changes: Any) -> dict[str, Any]:
        """Read, update and rewrite run.json (rank 0 only)."""
        info = self.read_info(default={})
        info.update(changes)
        self.write_info(info)
        return info

    def read_metrics(self) -> dict[str, Any]:
        """metrics.json ({} when the run wrote none)."""
        return read_json(self.metrics_path) if self.metrics_path.exists() else {}

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        """Replace metrics.json."""
        return atomic_write_json(self.metrics_path, metrics)

    def read_calibration(self) -> dict[str, Any] | None:
        """calibration.json, or None when evaluation has not written one."""
        return read_json(self.calibration_path) if self.calibration_path.is_file() else None

    def read_split_ids(self) -> dict[str, list[str]] | None:
        """data/splits.json (item ids per split), or None for runs that predate it."""
        return read_json(self.splits_path) if self.splits_path.is_file() else None

    def read_json(self, rel: str) -> Any:
        """Any JSON file of the run, by its path relative to the run directory."""
        return read_json(self.path / rel)

    def write_json(self, rel: str, data: Any) -> Path:
        """Write a JSON file of the run atomically (e.g. a datamodule artifact `data/labels.json`)."""
        return atomic_write_json(self.path / rel, data)

    def write_text(self, rel: str, text: str) -> Path:
        """Write a text file of the run atomically."""
        return atomic_write_text(self.path / rel, text)

    # ---- checkpoints -------------------------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        """Visible checkpoint files/folders, newest first (last.ckpt wins a tie)."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = [p for p in self.checkpoints_dir.iterdir() if p.suffix == ".ckpt" and not p.name.startswith(".")]
        return sorted(found, key=lambda p: (p.stat().st_mtime, p.name == LAST_CHECKPOINT), reverse=True)

    def newest_complete_checkpoint(self) -> Path | None:
        """The most recently written complete checkpoint (None when there is none)."""
        return next((p for p in self.checkpoints() if is_complete_checkpoint(p)), None)

    def recorded_checkpoint(self, key: str) -> Path | None:
        """run.json's `best_checkpoint` / `last_checkpoint`, found inside this folder if the run was moved."""
        recorded = self.read_info(default={}).get(key) if self.info_path.exists() else None
        if not recorded:
            return None
        path = Path(recorded)
        if path.exists():
            return path
        moved = self.checkpoints_dir / path.name
        return moved if moved.exists() else path
