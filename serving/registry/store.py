"""The model registry on MLflow: register, champion alias moves with history, verified downloads."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.schema import env_default
from serving.registry.integrity import TamperedArtifactError, manifest, verify
from serving.registry.lineage import lineage_tags, packaged_files

CHAMPION = "champion"
HISTORY_TAG = "champion_history"  # JSON list of champion versions, oldest first (rollback pops it)
EVENTS_TAG = "champion_events"    # JSON list of {action, version, at}: the audit trail
MANIFEST_PREFIX = "sha256."
EXPERIMENT = "shipyard-registry"


class RegistryError(ValueError):
    """A registry request that cannot be honoured; the message says why and what to do."""


@dataclass
class RegistryConfig:
    """registry.*: where the registry lives (any MLflow tracking URI)."""

    root: str = env_default("SHIPYARD_REGISTRY_ROOT", "outputs/registry")  # sqlite DB + local artifact store live here
    tracking_uri: str | None = None  # default: $MLFLOW_TRACKING_URI, else sqlite:///<root>/mlflow.db
    artifact_location: str | None = None  # default: <root>/artifacts

    def uri(self) -> str:
        """The tracking (and registry) URI in use."""
        return self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or \
            f"sqlite:///{Path(self.root).resolve() / 'mlflow.db'}"


class ModelRegistry:
    """Immutable versions with lineage tags and sha256 manifests; the `champion` alias is what serves."""

    def __init__(self, cfg: RegistryConfig) -> None:
        from mlflow.tracking import MlflowClient

        self.cfg = cfg
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # CLI output stays JSON-only
        Path(cfg.root).mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=cfg.uri(), registry_uri=cfg.uri())

    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(EXPERIMENT)
        if exp is not None:
            return exp.experiment_id
        location = self.cfg.artifact_location or (Path(self.cfg.root).resolve() / "artifacts").as_uri()
        return self.client.create_experiment(EXPERIMENT, artifact_location=location)

    # ------------------------------------------------------------------ register
    def register(self, run_dir: Path, name: str | None = None) -> dict[str, Any]:
        """A new version from a run's export: files stored as MLflow artifacts, lineage + sha256 as tags."""
        run_dir = Path(run_dir).resolve()
        files, report = packaged_files(run_dir)
        tags = lineage_tags(run_dir, report)
        name = name or report["model_name"]
        with tempfile.TemporaryDirectory() as tmp:
            staged = Path(tmp) / "model"
            for rel, src in files.items():
                (staged / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, staged / rel)
            digests = manifest(staged)
            self._refuse_duplicate(name, tags["serving.version"], digests)
            run = self.client.create_run(self._experiment_id(), run_name=f"{name}-{tags['serving.version']}",
                                         tags={k: v for k, v in tags.items() if not k.startswith("metric.")})
            for key, value in tags.items():
                if key.startswith("metric."):
                    self.client.log_metric(run.info.run_id, key[len("metric."):].replace("/", "_"), float(value))
            self.client.log_artifacts(run.info.run_id, str(staged), artifact_path="model")
            self.client.set_terminated(run.info.run_id)
        if not self._exists(name):
            self.client.create_registered_model(name, description="Shipyard model (python -m serving registry)")
        all_tags = {**tags, "mlflow_run_id": run.info.run_id,
                    **{MANIFEST_PREFIX + rel: d for rel, d in digests.items()}}
        mv = self.client.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
                                              tags=all_tags)
        return {"name": name, "version": str(mv.version), "serving_version": tags["serving.version"],
                "files": sorted(digests), "mlflow_run_id": run.info.run_id}

    def _exists(self, name: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
            return True
        except MlflowException:
            return False

    def _refuse_duplicate(self, name: str, serving_version: str, digests: dict[str, str]) -> None:
        if not self._exists(name):
            return
        for mv in self.client.search_model_versions(f"name='{name}'"):
            if mv.tags.get("serving.version") == serving_version:
                same = self._manifest(mv.tags) == digests
                raise RegistryError(
                    f"{name} already has registry version {mv.version} for serving version {serving_version}"
                    + (" with identical files (nothing to do)" if same else " with DIFFERENT files")
                    + ": export with a new version=... to register a new immutable version")

    # ------------------------------------------------------------------ read
    @staticmethod
    def _manifest(tags: dict[str, str]) -> dict[str, str]:
        return {k[len(MANIFEST_PREFIX):]: v for k, v in tags.items() if k.startswith(MANIFEST_PREFIX)}

    def version(self, name: str, version: str | int) -> Any:
        """The MLflow ModelVersion, or a RegistryError naming the versions that exist."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version(name, str(version))
        except MlflowException as err:
            known = [mv.version for mv in self.client.search_model_versions(f"name='{name}'")] if self._exists(name) else []
            raise RegistryError(f"no version {version} of model {name!r} (registered: {known or 'none'})") from err

    def champion(self, name: str) -> str | None:
        """The version the champion alias points at (None before the first promotion)."""
        if not self._exists(name):
            return None
        champion = self.client.get_registered_model(name).aliases.get(CHAMPION)
        return None if champion is None else str(champion)

    def history(self, name: str) -> list[str]:
        """Champion versions, oldest first."""
        return [str(v) for v in json.loads(self.client.get_registered_model(name).tags.get(HISTORY_TAG, "[]"))]

    def show(self, name: str, version: str | None = None) -> dict[str, Any]:
        """A model (aliases, history) or one version (lineage, files and their sha256)."""
        if not self._exists(name):
            raise RegistryError(f"no registered model {name!r}; `python -m serving registry list` shows them")
        model = self.client.get_registered_model(name)
        if version is None:
            return {"name": name, "aliases": {k: str(v) for k, v in model.aliases.items()}, "history": self.history(name),
                    "events": json.loads(model.tags.get(EVENTS_TAG, "[]")),
                    "versions": [self._summary(mv) for mv in self._versions(name)]}
        mv = self.version(name, version)
        return {**self._summary(mv), "source": mv.source, "files": self._manifest(mv.tags),
                "tags": {k: v for k, v in mv.tags.items() if not k.startswith(MANIFEST_PREFIX)}}

    def _versions(self, name: str) -> list[Any]:
        return sorted(self.client.search_model_versions(f"name='{name}'"), key=lambda mv: int(mv.version))

    def _summary(self, mv: Any) -> dict[str, Any]:
        return {"version": str(mv.version), "serving_version": mv.tags.get("serving.version"),
                "run_id": mv.tags.get("lineage.run_id"), "aliases": list(mv.aliases),
                "created": mv.creation_timestamp}

    def list(self) -> list[dict[str, Any]]:
        """Every registered model with its champion and versions."""
        return [{"name": m.name, "champion": self.champion(m.name),
                 "versions": [str(mv.version) for mv in self._versions(m.name)]}
                for m in self.client.search_registered_models()]

    # ------------------------------------------------------------------ verified files
    def fetch_verified(self, name: str, version: str | int, dest: Path) -> Path:
        """Download a version's files into dest and check every sha256; returns dest (or raises)."""
        mv = self.version(name, version)
        import mlflow.artifacts

        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            got = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=tmp,
                                                           tracking_uri=self.cfg.uri()))
            verify(got, self._manifest(mv.tags), f"{name} version {mv.version}")
            got.rename(dest)
        return dest

    def archive(self, folder: Path, name: str, version: str | int) -> Path:
        """The verified .mar inside a fetched version folder."""
        return folder / self.version(name, version).tags["serving.archive"]

    # ------------------------------------------------------------------ champion moves
    def promote(self, name: str, version: str | int) -> dict[str, Any]:
        """Point `champion` at version; push it on the history (verification is the caller's, before)."""
        target = str(self.version(name, version).version)
        previous = self.champion(name)
        history = self.history(name)
        if previous == target:
            return {"name": name, "champion": target, "previous": previous, "changed": False}
        history.append(target)
        self._move(name, target, history, "promote")
        return {"name": name, "champion": target, "previous": previous, "changed": True}

    def rollback_target(self, name: str) -> str:
        """The champion before the current one, or a RegistryError."""
        history = self.history(name)
        if len(history) < 2:
            raise RegistryError(f"{name} has no previous champion to roll back to (history: {history})")
        return history[-2]

    def rollback(self, name: str) -> dict[str, Any]:
        """Move `champion` back to the previous champion (pops the history)."""
        target = self.rollback_target(name)
        history = self.history(name)
        current = history.pop()
        self._move(name, target, history, "rollback")
        return {"name": name, "champion": target, "previous": current, "changed": True}

    def _move(self, name: str, version: str, history: list[str], action: str) -> None:
        model = self.client.get_registered_model(name)
        events = json.loads(model.tags.get(EVENTS_TAG, "[]"))[-49:]
        events.append({"action": action, "version": version, "at": time.time()})
        self.client.set_registered_model_alias(name, CHAMPION, version)
        self.client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-50:]))
        self.client.set_registered_model_tag(name, EVENTS_TAG, json.dumps(events))


__all__ = ["ModelRegistry", "RegistryConfig", "RegistryError", "TamperedArtifactError", "CHAMPION"]
