"""What a run directory contributes to a registered version: files to store and lineage tags."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# evaluation's report (RUN_DIR/report/) and the export's own files, when present
OPTIONAL_FILES = ("MODEL_CARD.md", "metadata.json", "preprocess.json", "index_to_name.json", "model.pt", "model.pt2",
                  "export.json")
REPORT_FILES = ("report.json", "report.md")


def packaged_files(run_dir: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    """registry path → local file for a run's export (the .mar first), and the export report."""
    export_dir = run_dir / "export"
    report_path = export_dir / "export.json"
    if not report_path.exists():
        raise FileNotFoundError(f"{run_dir} has no export/export.json: run `python export.py run_dir={run_dir}` first")
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
    for name in REPORT_FILES:
        if (run_dir / "report" / name).exists():
            files[f"evaluation/{name}"] = run_dir / "report" / name
    tokenizer = export_dir / "tokenizer"
    if tokenizer.is_dir():
        files.update({f"tokenizer/{p.relative_to(tokenizer).as_posix()}": p for p in tokenizer.rglob("*") if p.is_file()})
    return files, report


def lineage_tags(run_dir: Path, report: dict[str, Any]) -> dict[str, str]:
    """Run id, git revision, config hash, data fingerprint, metrics: the way back from a version to its run."""
    run = json.loads((run_dir / "run.json").read_text())
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    git = run.get("git") or {}
    tags = {
        "lineage.run_id": str(run.get("run_id")),
        "lineage.run_dir": str(run_dir.resolve()),
        "lineage.experiment": str(run.get("experiment")),
        "lineage.git_revision": str(git.get("revision")),
        "lineage.git_dirty": str(git.get("dirty")),
        "lineage.config_sha256": hashlib.sha256((run_dir / "config.yaml").read_bytes()).hexdigest(),
        "lineage.data_fingerprint": str(run.get("data_fingerprint")),
        "lineage.kind": str(report.get("kind")),
        "serving.model_name": str(report["model_name"]),
        "serving.version": str(report["version"]),
        "serving.archive": f"archive/{Path(report['archive']['path']).name}",
    }
    tags.update({f"metric.{k}": repr(float(v)) for k, v in metrics.items() if isinstance(v, (int, float))})
    return tags
