"""Registry on MLflow: register with lineage + sha256, promote/rollback history, tampered artifacts refused."""
from __future__ import annotations

import hashlib
import json

import pytest

from serving.registry.deploy import RegistryCLIConfig, verified_archive
from serving.registry.integrity import TamperedArtifactError, sha256_file
from serving.registry.store import ModelRegistry, RegistryConfig, RegistryError
from tests.lifecycle.cli import serving_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    return ModelRegistry(RegistryConfig(root=str(root)))


def test_register_records_lineage_and_every_file_hash(registry, exported_digits, digits_v2):
    v1 = registry.register(exported_digits.run_dir)
    v2 = registry.register(digits_v2.run_dir)
    assert (v1["version"], v2["version"]) == ("1", "2") and v2["serving_version"] == "2.0"
    shown = registry.show("digits_cnn", "1")
    run = json.loads((exported_digits.run_dir / "run.json").read_text())
    metrics = json.loads((exported_digits.run_dir / "metrics.json").read_text())
    tags = shown["tags"]
    # lineage round trip: every tag leads back to the run that produced the version
    assert tags["lineage.run_id"] == run["run_id"]
    assert tags["lineage.git_revision"] == run["git"]["revision"]
    assert tags["lineage.data_fingerprint"] == run["data_fingerprint"]
    assert tags["lineage.config_sha256"] == hashlib.sha256((exported_digits.run_dir / "config.yaml").read_bytes()).hexdigest()
    assert float(tags["metric.test/acc"]) == pytest.approx(metrics["test/acc"])
    assert shown["files"]["archive/digits_cnn.mar"] == sha256_file(exported_digits.mar)
    assert shown["files"]["model.pt"] == sha256_file(exported_digits.model_pt)
    assert {"MODEL_CARD.md", "metadata.json", "export.json"} <= set(shown["files"])
    # immutable: the same serving version cannot be registered again
    with pytest.raises(RegistryError, match="already has registry version 1"):
        registry.register(exported_digits.run_dir)


def test_a_language_model_registers_with_its_perplexity_and_archive(exported_tiny_lm, tmp_path):
    registry = ModelRegistry(RegistryConfig(root=str(tmp_path / "registry")))  # its own: the module's lists digits
    v1 = registry.register(exported_tiny_lm.run_dir)
    shown = registry.show(exported_tiny_lm.name, v1["version"])
    metrics = json.loads((exported_tiny_lm.run_dir / "metrics.json").read_text())
    assert float(shown["tags"]["metric.test/perplexity"]) == pytest.approx(metrics["test/perplexity"])
    assert shown["files"][f"archive/{exported_tiny_lm.name}.mar"] == sha256_file(exported_tiny_lm.mar)
    cfg = RegistryCLIConfig(registry=registry.cfg, cache=str(tmp_path / "cache"))
    mar = verified_archive(registry, cfg, exported_tiny_lm.name, v1["version"])
    assert mar.read_bytes() == exported_tiny_lm.mar.read_bytes()


def test_promote_rollback_keeps_history(registry):
    assert registry.champion("digits_cnn") is None
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback("digits_cnn")
    registry.promote("digits_cnn", "1")
    registry.promote("digits_cnn", "2")
    assert registry.champion("digits_cnn") == "2" and registry.history("digits_cnn") == ["1", "2"]
    back = registry.rollback("digits_cnn")
    assert back == {"name": "digits_cnn", "champion": "1", "previous": "2", "changed": True}
    assert registry.champion("digits_cnn") == "1"
    events = [(e["action"], e["version"]) for e in registry.show("digits_cnn")["events"]]
    assert events == [("promote", "1"), ("promote", "2"), ("rollback", "1")]
    with pytest.raises(RegistryError, match="no version 9"):
        registry.promote("digits_cnn", "9")


def test_tampered_artifact_is_refused(registry, tmp_path):
    cfg = RegistryCLIConfig(registry=registry.cfg, cache=str(tmp_path / "cache"))
    mar = verified_archive(registry, cfg, "digits_cnn", "2")  # intact: verified
    assert mar.name == "digits_cnn.mar" and mar.stat().st_size > 1000
    stored = registry.version("digits_cnn", "2").source.removeprefix("file://")
    target = next(p for p in __import__("pathlib").Path(stored).rglob("digits_cnn.mar"))
    original = target.read_bytes()
    try:
        target.write_bytes(original[:-10] + b"0123456789")  # same size, different bytes
        with pytest.raises(TamperedArtifactError, match=r"archive/digits_cnn.mar: sha256 .* != registered"):
            verified_archive(registry, cfg, "digits_cnn", "2")
        assert not (tmp_path / "cache" / "digits_cnn" / "2").exists()  # nothing half-verified is left to serve
    finally:
        target.write_bytes(original)


def test_cli_list_show_and_errors(registry):
    env = {"SHIPYARD_REGISTRY_ROOT": registry.cfg.root}
    listed = json.loads(serving_cli("registry", "list", env=env).stdout)
    assert listed == [{"name": "digits_cnn", "champion": "1", "versions": ["1", "2"]}]
    bad = serving_cli("registry", "promote", "digits_cnn", "7", "switch_serving=false", env=env, check=False)
    assert bad.returncode == 1 and "no version 7" in bad.stderr and "Traceback" not in bad.stderr
    from serving.cli.registry import _dispatch

    with pytest.raises(ValueError, match="run_dir=PATH"):
        _dispatch("register", [], [f"registry.root={registry.cfg.root}"])
