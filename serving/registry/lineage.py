"""What a run directory contributes to a registered version: files to store and lineage tags."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from core.export_dir import ARCHIVE_DATA_FILES, MODEL_FILES
from core.rundir import EXPORT_JSON, EXPORT_TOKENIZER_DIR, RunDir

# the export's own files, when present, stored under their own names (and evaluation's report, RUN_DIR/report/)
OPTIONAL_FILES = (*ARCHIVE_DATA_FILES, *MODEL_FILES, EXPORT_JSON)


def packaged_files(run_dir: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    """registry path → local file for a run's export (the .mar first), and the export report."""
    run = RunDir(run_dir)
    export_dir, report_path = run.export_dir, run.export_json_path
    if not report_path.exists():
        raise FileNotFoundError(f"{report_path} does not exist: run `python export.py run_dir={run_dir}` first")
    report = json.loads(report_path.read_text())
    if report.get("status") != "ok":
        raise ValueError(f"{report_path}: export status is {report.get('status')!r}, not 'ok'; fix the export first")
    mar = export_dir / report["archive"]["path"]
    if not mar.exists():
        raise FileNotFoundError(f"the archive {mar} named by {report_path} does not exist; re-run export.py")
    files = {f"archive/{mar.name}": mar}
    for name in OPTIONAL_FILES:
        if (export_dir / name).exists():
            files[name] = export_dir / name
    for path in (run.report_json_path, run.report_md_path):
        if path.exists():
            files[f"evaluation/{path.name}"] = path
    tokenizer = run.export.tokenizer_dir
    if tokenizer.is_dir():
        files.update({f"{EXPORT_TOKENIZER_DIR}/{p.relative_to(tokenizer).as_posix()}": p for p in tokenizer.rglob("*") if p.is_file()})
    return files, report


def lineage_tags(run_dir: Path, report: dict[str, Any]) -> dict[str, str]:
    """Run id, git revision, config hash, data fingerprint, metrics: the way back from a version to its run."""
    run_dir_ = RunDir(run_dir)
    run, metrics = run_dir_.read_info(), run_dir_.read_metrics()
    git = run.get("git") or {}
    tags = {
        "lineage.run_id": str(run.get("run_id")),
        "lineage.run_dir": str(run_dir.resolve()),
        "lineage.experiment": str(run.get("experiment")),
        "lineage.git_revision": str(git.get("revision")),
        "lineage.git_dirty": str(git.get("dirty")),
        "lineage.config_sha256": hashlib.sha256(run_dir_.config_path.read_bytes()).hexdigest(),
        "lineage.data_fingerprint": str(run.get("data_fingerprint")),
        "lineage.kind": str(report.get("kind")),
        "serving.model_name": str(report["model_name"]),
        "serving.version": str(report["version"]),
        "serving.archive": f"archive/{Path(report['archive']['path']).name}",
    }
    tags.update({f"metric.{k}": repr(float(v)) for k, v in metrics.items() if isinstance(v, (int, float))})
    return tags
