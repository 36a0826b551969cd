"""Shared machinery of Shipyard's classification datamodules: splits, loaders, artifacts, bad records."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from core import rundir
from core.errors import ConfigError, DataError
from datamodules.checks.config import load_checks_config
from datamodules.cv import check_fold, cv_splits
from datamodules.epoch_state import EpochResumeMixin
from runtime.preprocessing import PreprocessSpec
from datamodules.records import BadRecord, as_dicts, check_bad_records
from datamodules.splits import stratified_split

SPLITS = ("train", "val", "test")


class ClassificationDataModule(EpochResumeMixin, LightningDataModule):
    """Subclasses list their items (`_load`); this class splits, reports, and serves loaders."""

    task: str | None = "classification"  # the task the data is for (trainers.tasks.TASKS); tabular: set by setup

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        max_bad_fraction: float = 0.0,
        pin_memory: bool = False,
        cv_folds: int | None = None,
        cv_fold: int | None = None,
        data_checks: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_fold(cv_fold, cv_folds)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"datamodule.batch_size={batch_size!r} must be a positive integer")
        self.cv_folds = cv_folds  # k-fold cross-validation: fold cv_fold of cv_folds (datamodules/cv.py)
        self.cv_fold = cv_fold
        # thresholds: checked here (a typo fails at once); the checks run once per training run, on rank 0
        # before fit (trainers.run) and in `python -m datamodules.validate`, never in setup(): rebuilding a
        # datamodule (export parity, evaluation, the drift reference) does not re-run them
        load_checks_config(data_checks)
        self.data_checks = data_checks
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.max_bad_fraction = max_bad_fraction
        self.pin_memory = pin_memory
        self.labels: list[str] = []
        self.item_ids: list[str] = []  # a stable id per usable item (path or row key)
        self.item_labels: list[int] = []
        self.splits: dict[str, list[int]] = {}
        self.bad_records: list[BadRecord] = []
        self.total_records = 0
        self.datasets: dict[str, Dataset] = {}
        self._hash = hashlib.sha256()
        self._ready = False

    # ---------------------------------------------------------------- subclass API
    def _load(self) -> None:
        """Fill labels, item_ids, item_labels, bad_records, total_records; feed `_hash`; maybe splits."""
        raise NotImplementedError

    def _make_dataset(self, split: str, indices: list[int]) -> Dataset:
        raise NotImplementedError

    def preprocess_spec(self) -> PreprocessSpec:
        """The serialisable preprocessing this datamodule applies (saved with the run)."""
        raise NotImplementedError

    def collate_fn(self) -> Any:
        return None

    # ---------------------------------------------------------------- Lightning API
    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        self._load()
        check_bad_records(self.bad_records, self.total_records, self.max_bad_fraction, type(self).__name__)
        if self.cv_folds:
            fixed_test = self.splits.get("test") if self.splits else None
            self.splits = cv_splits(self.item_labels, self.cv_fold, self.cv_folds, self.val_fraction, self.seed, fixed_test)
        if not self.splits:
            self.splits = stratified_split(
                self.item_labels,
                {"train": 0.0, "val": self.val_fraction, "test": self.test_fraction},
                self.seed,
            )
        for split in SPLITS:
            if not self.splits.get(split):
                raise DataError(f"{type(self).__name__}: the {split} split is empty; add data or adjust "
                                "datamodule.val_fraction / test_fraction")
            self.datasets[split] = self._make_dataset(split, self.splits[split])
        self._ready = True

    def run_data_checks(self) -> dict[str, Any]:
        """The cheap checks (leakage, missing values, class balance) train() runs once, rank 0, before fit."""
        from datamodules.checks.setup import run_setup_checks

        return run_setup_checks(self, self.data_checks)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def _loader(self, split: str) -> DataLoader:
        train = split == "train"
        sampler = None
        generator = torch.Generator().manual_seed(self.seed)  # keeps loaders off the global RNG
        if train:
            sampler = self.train_sampler(len(self.datasets[split]))
            generator = sampler.loader_generator
        else:
            sampler = self.eval_sampler(len(self.datasets[split]))
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=False,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            collate_fn=self.collate_fn(),
            drop_last=False,
            generator=generator,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    # ---------------------------------------------------------------- run artifacts
    def fingerprint(self) -> str:
        """sha256 over the data's content, labels and split assignment."""
        h = self._hash.copy()
        h.update(json.dumps({"labels": self.labels, "splits": self.splits}, sort_keys=True).encode())
        return h.hexdigest()

    def artifacts(self) -> dict[str, Any]:
        """Plain-data files the run directory keeps under `data/` and at its top."""
        return {
            rundir.SPLITS: {s: [self.item_ids[i] for i in self.splits[s]] for s in SPLITS},
            rundir.LABELS: self.labels,
            rundir.BAD_RECORDS: {
                "total_records": self.total_records,
                "bad_count": len(self.bad_records),
                "bad_records": as_dicts(self.bad_records),
            },
            rundir.PREPROCESS: self.preprocess_spec().to_dict(),
        }


def read_split_ids(run_dir: str | Path) -> dict[str, list[str]]:
    """The item ids of each split that a run trained on."""
    return rundir.RunDir(run_dir).read_json(rundir.SPLITS)
