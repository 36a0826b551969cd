"""export.py on real tiny runs: targets, parity figures, files + hashes, isolation, versions, failures."""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from core.rundir import RunDir
from serving.export import targets
from serving.export.exporter import export_run
from serving.export.package import HANDLERS_DIR, HELPER_FILES, archive_name, validate_version
from serving.export.parity import ParityError
from serving.export.run_loading import ExportError, build_net, resolve_checkpoint, validation_batches
from tests.conftest import run_entry
from tests.exported_runs import copy_run
from tests.serving.isolation import BLOCKED_SERVING_HOST, run_isolated



def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _eager_and_inputs(run_dir: Path, kind: str) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    cfg = OmegaConf.load(run_dir / "config.yaml")
    net = build_net(cfg, resolve_checkpoint(run_dir, "best"))
    batch = next(iter(validation_batches(cfg, 1)))
    names = ("pixel_values",) if kind == "image" else ("input_ids", "attention_mask")
    return net, tuple(batch[n] for n in names)


@pytest.mark.parametrize("fixture", ["exported_digits", "exported_text"])
def test_export_report_parity_and_every_file_hashed(fixture, request):
    exported = request.getfixturevalue(fixture)
    report = exported.export_json
    assert report["status"] == "ok" and report["version"] == "1.0"
    ts = report["targets"]["torchscript"]
    assert ts["status"] == "exported"
    assert ts["parity"]["passed"] and ts["parity"]["samples"] >= 30
    assert ts["parity"]["max_abs_diff"] <= report["tolerance"]["max_abs_diff"]
    assert ts["parity"]["argmax_agreement"] == 1.0
    # torch.export: exported with parity, or honestly reported unsupported with the reason
    te = report["targets"]["torch_export"]
    assert te["status"] in ("exported", "unsupported")
    assert te["parity"]["passed"] if te["status"] == "exported" else te["reason"]
    expected = {"model.pt", "preprocess.json", "index_to_name.json", "metadata.json", "MODEL_CARD.md",
                report["archive"]["path"]} | ({"model.pt2"} if te["status"] == "exported" else set())
    assert expected <= set(report["files"])
    for rel, record in report["files"].items():
        assert _sha(exported.export_dir / rel) == record["sha256"], rel
    on_disk = {p.relative_to(exported.export_dir).as_posix() for p in exported.export_dir.rglob("*") if p.is_file()}
    assert on_disk - set(report["files"]) == {"export.json", f"archives/1.0/export.json"}


def test_saved_data_is_the_runs_spec_with_relative_tokenizer(exported_digits, exported_text):
    run_spec = json.loads((exported_digits.run_dir / "preprocess.json").read_text())
    assert json.loads((exported_digits.export_dir / "preprocess.json").read_text()) == run_spec
    labels = json.loads((exported_text.export_dir / "index_to_name.json").read_text())
    assert labels == {"0": "account", "1": "billing", "2": "shipping", "3": "technical"}
    text_spec = json.loads((exported_text.export_dir / "preprocess.json").read_text())
    original = json.loads((exported_text.run_dir / "preprocess.json").read_text())
    assert text_spec["tokenizer_dir"] == "tokenizer" and text_spec["max_length"] == original["max_length"] == 64
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json"):
        assert (exported_text.export_dir / "tokenizer" / name).read_bytes() == \
            (Path(original["tokenizer_dir"]) / name).read_bytes()
    assert not list((exported_text.export_dir / "tokenizer").glob("*.safetensors"))


def test_metadata_names_run_git_config_data_and_metrics(exported_digits):
    meta = json.loads((exported_digits.export_dir / "metadata.json").read_text())
    run = json.loads((exported_digits.run_dir / "run.json").read_text())
    assert meta["run_id"] == run["run_id"] == "fixture"
    assert meta["task"] == run["task"] == "classification"  # runtime/tasks/ and scoring pick their module by it
    assert meta["git"]["revision"] == run["git"]["revision"]
    assert meta["config_sha256"] == _sha(exported_digits.run_dir / "config.yaml")
    assert meta["data_fingerprint"] == run["data_fingerprint"]
    assert meta["metrics"] == json.loads((exported_digits.run_dir / "metrics.json").read_text())
    assert meta["export_packages"]["torch"] == torch.__version__.split("+")[0]
    assert meta["checkpoint"]["sha256"] == _sha(Path(run["best_checkpoint"]))
    assert [r.split("==")[0] for r in meta["host_requirements"]] == ["torch", "torchserve", "pillow", "pyyaml"]


def test_archive_contents(exported_digits, exported_text):
    for exported, handler in ((exported_digits, "image_classifier.py"), (exported_text, "text_classifier.py")):
        with zipfile.ZipFile(exported.mar) as mar:
            names = set(mar.namelist())
            manifest = json.loads(mar.read("MAR-INF/MANIFEST.json"))
            for helper in HELPER_FILES:  # runtime/ shipped whole, byte-identical to the repository's
                assert mar.read(archive_name(helper)) == helper.read_bytes(), helper
            assert mar.read(handler) == (HANDLERS_DIR / handler).read_bytes()
            assert mar.read("model.pt") == exported.model_pt.read_bytes()
            assert json.loads(mar.read("metadata.json"))["version"] == "1.0"
        base = {handler, "model.pt", "preprocess.json", "index_to_name.json", "metadata.json", "MODEL_CARD.md",
                "MAR-INF/MANIFEST.json"} | {archive_name(h) for h in HELPER_FILES}
        assert {"runtime/classifier_base.py", "runtime/classifier_io.py", "runtime/preprocessing.py"} <= base
        tokenizer = {n for n in names if n.startswith("tokenizer/")}
        assert names - tokenizer == base
        assert ("tokenizer/tokenizer.json" in tokenizer) == (exported.kind == "text")
        assert "requirements.txt" not in names  # torch + torchserve (+ tokenizers for text) suffice
        assert manifest["model"]["modelName"] == exported.name and manifest["model"]["modelVersion"] == "1.0"
        assert manifest["model"]["handler"] == handler and manifest["model"]["serializedFile"] == "model.pt"


def test_model_pt_predicts_the_same_without_lightning_or_project_code(exported_digits, exported_text, tmp_path):
    runs, eager = [], []
    for exported in (exported_digits, exported_text):
        net, inputs = _eager_and_inputs(exported.run_dir, exported.kind)
        torch.save(inputs, tmp_path / f"{exported.kind}.pt")
        runs.append((str(exported.model_pt), exported.kind, str(tmp_path / f"{exported.kind}.pt")))
        with torch.no_grad():
            eager.append(net(*inputs))
    code = f"""
import json, sys, torch
for name in {BLOCKED_SERVING_HOST!r}:
    try:
        __import__(name)
    except ImportError:
        continue
    raise SystemExit(f"{{name}} is importable: the isolation is broken")
for model_pt, kind, inputs_pt in {runs!r}:
    extra = {{"preprocess.json": ""}}
    model = torch.jit.load(model_pt, map_location="cpu", _extra_files=extra).eval()
    assert json.loads(extra["preprocess.json"])["kind"] == kind
    with torch.no_grad():
        torch.save(model(*torch.load(inputs_pt)), inputs_pt + ".out")
print("loaded:", sorted(m for m in sys.modules if m.split('.')[0] in {BLOCKED_SERVING_HOST!r}))
"""
    proc = run_isolated(code, blocked=BLOCKED_SERVING_HOST)
    assert "loaded: []" in proc.stdout
    for (_, _, inputs_pt), expected in zip(runs, eager):
        isolated = torch.load(inputs_pt + ".out")
        assert torch.equal(isolated.argmax(-1), expected.argmax(-1))
        assert (isolated - expected).abs().max() <= 1e-4


def test_traced_text_model_matches_eager_on_unpadded_and_odd_batches(exported_text):
    net, (ids, mask) = _eager_and_inputs(exported_text.run_dir, "text")
    model = torch.jit.load(str(exported_text.model_pt)).eval()
    full = torch.ones_like(mask[:3])  # no padding at all: the trace must not have baked in the padded path
    for args in ((ids[:3], full), (ids[:1], mask[:1]), (ids[:7], mask[:7])):
        with torch.no_grad():
            assert (model(*args) - net(*args)).abs().max() <= 1e-4


@pytest.mark.parametrize("good", ["1", "1.0", "2.1.3", "10.20"])
def test_valid_versions(good):
    assert validate_version(good) == good


@pytest.mark.parametrize("bad", ["", "v1", "1.0.0.0", "1.", "1.0-rc1", "latest", "1..0", " ", "1/0"])
def test_invalid_versions_are_refused_with_the_rule(bad):
    with pytest.raises(ExportError, match="1 to 3 dot-separated numbers"):
        validate_version(bad)


def test_cli_refuses_bad_version_and_never_overwrites_an_archive(exported_digits, tmp_path):
    run_dir = copy_run(exported_digits.run_dir, tmp_path)
    proc = run_entry("export.py", f"run_dir={run_dir}", "version=1.0-beta", check=False)
    assert proc.returncode == 1 and "version='1.0-beta' is not a valid model version" in proc.stderr
    assert not (run_dir / "export").exists()
    # version=1.10 stays 1.10 (Hydra alone would read it as the float 1.1)
    run_entry("export.py", f"run_dir={run_dir}", "version=1.10", "parity.batches=1", "targets=[torchscript]")
    mar = run_dir / "export" / "archives" / "1.10" / "digits_cnn.mar"
    before = _sha(mar)
    with pytest.raises(ExportError, match="already exists.*overwrite=true"):
        export_run(run_dir, version="1.10", parity_batches=1)
    assert _sha(mar) == before
    report = export_run(run_dir, version="1.10", checkpoint="last", overwrite=True, parity_batches=1,
                        wanted=["torchscript"])
    assert report["checkpoint"].endswith("last.ckpt") and report["files"]["archives/1.10/digits_cnn.mar"]
    assert sorted(p.name for p in (run_dir / "export" / "archives").iterdir()) == ["1.10"]


def test_missing_or_truncated_checkpoint_is_a_clear_error(exported_digits, tmp_path):
    run_dir = copy_run(exported_digits.run_dir, tmp_path)
    with pytest.raises(ExportError, match="does not exist"):
        export_run(run_dir, checkpoint=str(tmp_path / "nope.ckpt"))
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(ExportError, match="not a complete checkpoint"):
        export_run(run_dir, checkpoint="last")
    with pytest.raises(ExportError, match="is not a directory"):
        export_run(tmp_path / "missing")
    assert not (run_dir / "export").exists()


def test_export_json_names_the_checkpoint_and_how_it_was_chosen(exported_digits, tmp_path):
    run = RunDir(exported_digits.run_dir)
    report = exported_digits.export_json
    assert report["checkpoint"] == str(run.recorded_checkpoint("best_checkpoint"))
    assert report["checkpoint_choice"] == "best (run.json best_checkpoint)"
    copy = RunDir(copy_run(exported_digits.run_dir, tmp_path))
    info = copy.read_info()
    del info["best_checkpoint"]  # a run that recorded no best: export falls back, and says so
    copy.write_info(info)
    quick = dict(parity_batches=1, wanted=[targets.TORCHSCRIPT], build_archive=False)
    fallback = export_run(copy.path, **quick)
    assert fallback["checkpoint"] == str(copy.newest_complete_checkpoint())
    assert fallback["checkpoint_choice"] == "best: none recorded in run.json, so the newest complete checkpoint"
    last = export_run(copy.path, checkpoint="last", **quick)
    assert last["checkpoint"] == str(copy.last_checkpoint_path) and last["checkpoint_choice"].startswith("last")
    assert json.loads(copy.export_json_path.read_text())["checkpoint_choice"] == last["checkpoint_choice"]


def test_parity_failure_is_loud_and_publishes_nothing(exported_digits, tmp_path, monkeypatch):
    run_dir = copy_run(exported_digits.run_dir, tmp_path)
    real = targets.loader

    def drifting_loader(target):  # an export that computes something else than the trained net
        load = real(target)
        return lambda path: (lambda *args: load(path)(*args) + 0.01 * torch.arange(10.0))

    monkeypatch.setattr(targets, "loader", drifting_loader)
    with pytest.raises(ParityError, match="parity check FAILED for torchscript.*max_abs_diff"):
        export_run(run_dir, parity_batches=1)
    report = json.loads((run_dir / "export" / "export.json").read_text())
    assert report["status"] == "failed" and report["files"] == {}
    assert report["targets"]["torchscript"]["parity"]["max_abs_diff"] == pytest.approx(0.09, abs=1e-3)
    assert sorted(p.name for p in (run_dir / "export").iterdir()) == ["export.json"]  # no model, no archive


def test_calibration_temperature_goes_into_the_served_spec(exported_digits, tmp_path):
    run_dir = copy_run(exported_digits.run_dir, tmp_path)
    (run_dir / "calibration.json").write_text(json.dumps({"temperature": 2.5, "ece_before": 0.1}))
    report = export_run(run_dir, parity_batches=1, wanted=["torchscript"], build_archive=False)
    assert report["temperature"] == 2.5 and "archive" not in report
    assert json.loads((run_dir / "export" / "preprocess.json").read_text())["temperature"] == 2.5
    assert json.loads((run_dir / "export" / "metadata.json").read_text())["temperature"] == 2.5
    (run_dir / "calibration.json").write_text(json.dumps({"temperature": -1}))
    with pytest.raises(ExportError, match="positive finite number"):
        export_run(run_dir, parity_batches=1, wanted=["torchscript"], build_archive=False)


def test_model_card_is_written_when_missing_and_shipped(exported_digits):
    card = exported_digits.run_dir / "MODEL_CARD.md"
    assert card.is_file() and "digits_cnn" in card.read_text()
    with zipfile.ZipFile(exported_digits.mar) as mar:
        assert mar.read("MODEL_CARD.md") == card.read_bytes()
