"""Data checks on fixtures with planted problems: a duplicate, a train/test leak, an email; thresholds fail setup."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.checks.runner import DataCheckError, run_checks, write_report
from datamodules.checks.setup import run_checks_before_fit
from datamodules.image_folder import ImageFolderDataModule
from datamodules.text import TextClassificationDataModule
from tests.conftest import REPO, run_entry

WORDS = {"billing": "invoice refund charge payment", "shipping": "package parcel courier delivery"}


def _validate(*args: str) -> subprocess.CompletedProcess:
    """python -m datamodules.validate ARGS in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "datamodules.validate", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def _write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture
def planted_text(tmp_path: Path) -> tuple[Path, Path]:
    """12 distinct train texts + one exact duplicate + one email; the test file leaks one train text."""
    rows = [(f"r{i}", f"ticket {i} about my {WORDS[label].split()[i % 4]} number {i * 7919}", label)
            for i, label in enumerate(["billing", "shipping"] * 6)]
    rows.append(("dup", rows[0][1].upper() + "!", "billing"))  # same text after normalisation
    rows.append(("pii", "please email me at jane.roe@example.com about the refund", "billing"))
    test = [("t0", rows[3][1], rows[3][2]), ("t1", "where is my parcel, courier lost it", "shipping"),
            ("t2", "double charge on my invoice", "billing")]
    return _write_csv(tmp_path / "train.csv", rows), _write_csv(tmp_path / "test.csv", test)


def _text_dm(files: tuple[Path, Path], **checks) -> TextClassificationDataModule:
    return TextClassificationDataModule(train_file=str(files[0]), test_file=str(files[1]), id_column="id",
                                        val_fraction=0.2, seed=0, data_checks={"at_setup": False, **checks})


def test_planted_duplicate_leak_and_email_are_found(planted_text: tuple[Path, Path], tmp_path: Path, check_png) -> None:
    dm = _text_dm(planted_text)
    dm.setup()
    report = run_checks(dm, dm.data_checks)
    checks = report["checks"]
    # the planted duplicate is found: as an exact copy within one split, or as a train/val leak across two
    pair = {"train.csv:r0", "train.csv:dup"}
    found = [set(g) for g in checks["exact_duplicates"]["examples"]] + [set(p) for p in checks["leakage"]["pairs"]["train-val"]]
    assert pair in found
    # r3 lands in train or val (seeded split): either way the test copy t0 is a leak into test
    leaked = checks["leakage"]["pairs"]["train-test"] + checks["leakage"]["pairs"]["val-test"]
    assert ["train.csv:r3", "test.csv:t0"] in leaked
    assert checks["leakage"]["status"] == "fail"
    assert any(f["check"] == "leakage" and "test split: 1 of 3" in f["where"] and "train.csv:r3 == test.csv:t0" in f["where"]
               for f in report["failures"])
    assert checks["pii"]["counts"]["email"] == 1
    example = checks["pii"]["examples"][0]
    assert example["item"] == "train.csv:pii" and "[EMAIL]" in example["redacted"] and "jane.roe" not in example["redacted"]
    assert checks["schema"]["tables"]["train.csv"]["columns"].keys() == {"id", "text", "label"}
    assert checks["statistics"]["words"]["max"] >= checks["statistics"]["words"]["median"]
    path = write_report(report, tmp_path / "out")
    saved = json.loads(path.read_text())
    assert saved["passed"] is False and "jane.roe" not in path.read_text()
    assert "leakage" in (tmp_path / "out" / "data_report.md").read_text()
    for name in saved["figures"]:
        check_png(tmp_path / "out" / name)


def test_exact_duplicate_counted_within_split(planted_text: tuple[Path, Path]) -> None:
    dm = _text_dm(planted_text)
    dm.setup()
    items_split = {dm.item_ids[i]: s for s, idx in dm.splits.items() for i in idx}
    report = run_checks(dm, dm.data_checks, ("exact_duplicates",))
    same_split = items_split["train.csv:r0"] == items_split["train.csv:dup"]
    extra = report["checks"]["exact_duplicates"]["per_split"][items_split["train.csv:r0"]]["extra_copies"]
    assert extra == (1 if same_split else 0)


def test_setup_fails_on_leak_naming_check_and_place(planted_text: tuple[Path, Path]) -> None:
    dm = TextClassificationDataModule(train_file=str(planted_text[0]), test_file=str(planted_text[1]), id_column="id",
                                      val_fraction=0.2, seed=0, data_checks={"max_leaked_fraction": 0.0})
    dm.setup()  # setup only loads and splits: rebuilding a datamodule (export, evaluation, drift) re-runs no checks
    with pytest.raises(DataCheckError, match=r"leakage: test split: 1 of 3 items also in (train|val), e\.g\. "
                                             r"train\.csv:r3 == test\.csv:t0") as err:
        run_checks_before_fit(dm, dm.data_checks)  # what train() runs once, on rank 0, before fit
    assert "datamodule.data_checks" in str(err.value)
    # opting out of the setup checks (or a looser threshold) lets the same data through
    opted_out = _text_dm(planted_text)
    opted_out.setup()
    assert run_checks_before_fit(opted_out, opted_out.data_checks) is None
    loose = TextClassificationDataModule(train_file=str(planted_text[0]), test_file=str(planted_text[1]), id_column="id",
                                         val_fraction=0.2, seed=0, data_checks={"max_leaked_fraction": 0.5})
    loose.setup()
    run_checks_before_fit(loose, loose.data_checks)


def test_training_runs_the_checks_once_before_fit(planted_text: tuple[Path, Path], tmp_path: Path) -> None:
    proc = run_entry("train.py", "+experiment=text_transformer", f"paths.output_root={tmp_path}", "run_id=leak",
                     f"datamodule.train_file={planted_text[0]}", f"datamodule.test_file={planted_text[1]}",
                     "datamodule.id_column=id", "datamodule.val_fraction=0.2", "datamodule.data_checks.max_leaked_fraction=0.0",
                     "callbacks.progress_bar=null", "logger=csv", check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "leakage: test split: 1 of 3" in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "text_transformer" / "leak").glob("checkpoints/*")), "fit ran despite the check"


def test_unknown_threshold_key_is_named(planted_text: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError, match="max_leak_fraction"):
        TextClassificationDataModule(train_file=str(planted_text[0]), test_file=str(planted_text[1]),
                                     data_checks={"max_leak_fraction": 0.1}).setup()


def test_image_duplicate_and_leak(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)) for _ in range(4)]
    for split in ("train", "val", "test"):
        for label in ("x", "y"):
            (tmp_path / split / label).mkdir(parents=True)
    images[0].save(tmp_path / "train" / "x" / "a.png")
    images[0].save(tmp_path / "train" / "x" / "a_copy.png")   # planted duplicate
    images[1].save(tmp_path / "train" / "y" / "b.png")
    images[1].save(tmp_path / "test" / "y" / "b_leak.png")   # planted train/test leak
    images[2].save(tmp_path / "val" / "x" / "c.png")
    images[3].save(tmp_path / "val" / "y" / "d.png")
    images[2].transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "test" / "x" / "e.png")
    dm = ImageFolderDataModule(root=str(tmp_path), image_size=[12, 12], data_checks={"at_setup": False})
    dm.setup()
    checks = run_checks(dm, dm.data_checks)["checks"]
    assert checks["exact_duplicates"]["per_split"]["train"]["extra_copies"] == 1
    assert checks["leakage"]["pairs"]["train-test"] == [["train/y/b.png", "test/y/b_leak.png"]]
    assert checks["leakage"]["counts"] == {"train-val": 0, "train-test": 1, "val-test": 0}
    assert checks["statistics"]["modes"] == {"RGB": 7} and checks["statistics"]["width"]["max"] == 12
    assert "pii" not in checks


@pytest.mark.slow
def test_validate_entry_point_writes_report_and_fails_on_threshold(tmp_path: Path, check_png) -> None:
    proc = _validate("+experiment=digits_cnn", f"paths.output_root={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "digits_cnn" / "data_checks"
    report = json.loads((out / "data_report.json").read_text())
    assert report["passed"] and report["checks"]["class_balance"]["status"] == "ok" and "leakage" in proc.stdout
    for name in report["figures"]:
        check_png(out / name)
    failed = _validate("+experiment=digits_cnn", f"paths.output_root={tmp_path}",
                       "datamodule.data_checks.max_class_imbalance=1.01")
    assert failed.returncode == 1
    assert "class_balance: train split: largest/smallest class" in failed.stderr
