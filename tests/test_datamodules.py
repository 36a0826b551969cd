"""Datamodules on fixture files: corrupt and grayscale images, rows with missing values, splits."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from core.errors import ConfigError
from datamodules.digits import DigitsDataModule
from datamodules.image_folder import ImageFolderDataModule
from datamodules.records import TooManyBadRecords
from datamodules.text import TextClassificationDataModule
from tests.test_experiments import make_image_folder


def test_digits_split_is_deterministic_stratified_and_disjoint():
    a, b = DigitsDataModule(seed=3), DigitsDataModule(seed=3)
    a.setup(), b.setup()
    assert a.splits == b.splits and a.fingerprint() == b.fingerprint()
    train, val, test = (set(a.splits[s]) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert len(train | val | test) == 1797
    c = DigitsDataModule(seed=4)
    c.setup()
    assert c.splits != a.splits and c.fingerprint() != a.fingerprint()
    batch = next(iter(a.train_dataloader()))
    assert batch["pixel_values"].shape[1:] == (1, 8, 8) and batch["labels"].dtype == torch.long


def test_image_folder_reports_corrupt_and_converts_grayscale(tmp_path):
    root = make_image_folder(tmp_path / "img", per_class=10)
    (root / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (root / "blue" / "empty.jpg").write_bytes(b"")
    dm = ImageFolderDataModule(root=str(root), image_size=(12, 12), channels=3, max_bad_fraction=0.2,
                               val_fraction=0.2, test_fraction=0.2, augment=None)
    dm.setup()
    bad = {b.where: b.reason for b in dm.bad_records}
    assert set(bad) == {"red/broken.png", "blue/empty.jpg"}
    assert "not a readable image" in bad["red/broken.png"] and "empty" in bad["blue/empty.jpg"]
    assert dm.total_records == 32 and len(dm.item_ids) == 30
    batch = next(iter(dm.train_dataloader()))
    assert batch["pixel_values"].shape[1:] == (3, 12, 12)  # grayscale files became RGB, every size resized
    report = dm.artifacts()["data/bad_records.json"]
    assert report["bad_count"] == 2 and report["total_records"] == 32


def test_image_folder_fails_above_bad_fraction_and_says_so(tmp_path):
    root = make_image_folder(tmp_path / "img", per_class=3)
    for i in range(3):
        (root / "green" / f"junk{i}.png").write_bytes(b"junk")
    dm = ImageFolderDataModule(root=str(root), max_bad_fraction=0.1)
    with pytest.raises(TooManyBadRecords, match=r"3 of 12 records .*max_bad_fraction=0.1"):
        dm.setup()


def test_image_folder_given_split_folders_are_used(tmp_path):
    for split in ("train", "val", "test"):
        make_image_folder(tmp_path / "img" / split, per_class=2)
    dm = ImageFolderDataModule(root=str(tmp_path / "img"), augment=None)
    dm.setup()
    ids = dm.artifacts()["data/splits.json"]
    assert all(i.startswith("train/") for i in ids["train"]) and all(i.startswith("test/") for i in ids["test"])


def test_text_rows_with_missing_values_are_reported(tmp_path):
    train = tmp_path / "train.csv"
    rows = ["id,text,label"] + [f"r{i},message number {i} about billing,billing" for i in range(20)]
    rows += [f"s{i},the app crashes on start {i},technical" for i in range(20)]
    rows += ["m1,,billing", "m2,a text without a label,", "m3,   ,technical"]
    train.write_text("\n".join(rows) + "\n")
    test = tmp_path / "test.jsonl"
    test.write_text("\n".join(json.dumps({"id": f"x{i}", "text": f"refund please {i}", "label": "billing"})
                              for i in range(5)) + "\n")
    dm = TextClassificationDataModule(train_file=str(train), test_file=str(test), id_column="id",
                                      max_length=16, max_bad_fraction=0.1)
    dm.setup()
    bad = {b.where: b.reason for b in dm.bad_records}
    assert bad == {"train.csv:m1": "missing text", "train.csv:m2": "missing label", "train.csv:m3": "text is empty"}
    assert dm.labels == ["billing", "technical"] and len(dm.splits["test"]) == 5
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[1] == 16 and set(batch) == {"input_ids", "attention_mask", "labels"}


def test_text_parquet_and_missing_column_message(tmp_path):
    import pandas as pd

    path = tmp_path / "d.parquet"
    pd.DataFrame({"body": ["a b c"] * 10 + ["x y z"] * 10, "y": ["a"] * 10 + ["b"] * 10}).to_parquet(path)
    dm = TextClassificationDataModule(train_file=str(path), text_column="text", label_column="y")
    with pytest.raises(ConfigError, match=r"no column 'text'.*'body'"):
        dm.setup()
    dm = TextClassificationDataModule(train_file=str(path), text_column="body", label_column="y",
                                      val_fraction=0.2, test_fraction=0.2)
    dm.setup()
    assert dm.num_classes == 2 and len(dm.splits["test"]) == 4


def test_train_only_augmentation(tmp_path):
    from torchvision.transforms import v2

    dm = DigitsDataModule(augment=[v2.RandomAffine(degrees=30)], seed=0)
    dm.setup()
    assert dm.datasets["train"].augment is not None
    assert dm.datasets["val"].augment is None and dm.datasets["test"].augment is None


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_class_names_that_look_like_na_survive(tmp_path, suffix):
    import pandas as pd

    names = ["None", "NA", "null", "N/A"]
    frame = pd.DataFrame({"text": [f"message {i} number {i % 7}" for i in range(40)] + ["no label here", "plain", "gone"],
                          "label": [names[i % 4] for i in range(40)] + ["", "other", "other"]})
    path = tmp_path / f"train{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_json(path, orient="records", lines=True)
    dm = TextClassificationDataModule(train_file=str(path), max_length=8, max_bad_fraction=0.1, test_fraction=0.2)
    dm.setup()
    assert sorted(dm.labels) == sorted(names + ["other"])
    assert [b.reason for b in dm.bad_records] == ["missing label"]  # only the truly empty cell
    configured = TextClassificationDataModule(train_file=str(path), max_length=8, max_bad_fraction=0.3,
                                              test_fraction=0.2, na_values=["N/A"])
    configured.setup()
    assert "N/A" not in configured.labels and len(configured.bad_records) == 11


def test_text_experiment_needs_no_id_column(tmp_path):
    from hydra.utils import instantiate

    from trainers.compose import compose_train

    path = tmp_path / "mine.csv"
    path.write_text("text,label\n" + "".join(f"text number {i},{'ab'[i % 2]}\n" for i in range(20)))
    cfg = compose_train(["+experiment=text_transformer", f"datamodule.train_file={path}", "datamodule.test_file=null",
                         "+datamodule.test_fraction=0.2"], tmp_path)
    dm = instantiate(cfg.datamodule)
    dm.setup()
    assert dm.labels == ["a", "b"] and dm.item_ids[0] == "mine.csv:1"
