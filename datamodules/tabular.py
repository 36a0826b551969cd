"""Tabular data (CSV / JSONL / Parquet): column roles, preprocessing fitted on the training split, tensors.

Batches are {"x_num": float [B, D], "x_cat": long [B, C], "labels": long [B]} (classification) or
{..., "target": float [B]} (regression, standardised with the training split's mean/std). The encoding
is runtime/tabular.py's, the very code the handler and batch scoring run.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, TensorDataset

from core import rundir
from core.errors import ConfigError, DataError
from datamodules.base import SPLITS, ClassificationDataModule
from runtime.preprocessing import SPEC_FILENAME, PreprocessSpec
from datamodules.records import BadRecord, as_dicts, check_bad_records
from datamodules.splits import stratified_split
from datamodules.tables import read_table
from datamodules.tabular_fit import Roles, fit_spec, infer_roles, is_missing
from runtime.tabular import RowError, TabularSpec, encode_rows, encode_target, parse_category, parse_number

log = logging.getLogger(__name__)
ROLES_FILE = rundir.TABULAR_ROLES
REGRESSION_BINS = 5  # regression splits are stratified on target quantiles


class DictDataset(Dataset):
    """Named tensors of equal length → one dict per item."""

    def __init__(self, **tensors: torch.Tensor) -> None:
        self.tensors = tensors
        self.length = len(next(iter(tensors.values())))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}


def frame_rows(path: Path) -> list[dict[str, Any]]:
    """A table's rows as dicts of plain values; only truly empty cells / nulls become None."""
    if path.suffix.lower() == ".csv":
        # only truly empty cells are missing: pandas' default NA strings ("NA", "None", "null", ...) are
        # values here (issue 16 point 5); read_table reads the other formats
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    else:
        frame = read_table(path)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [{str(k): v for k, v in row.items()} for row in rows]


class TabularDataModule(ClassificationDataModule):
    """datamodule=tabular: train_file (+ test_file, else a seeded test split), target, task, column roles."""

    def __init__(self, train_file: str, target: str, test_file: str | None = None, task: str | None = None,
                 numeric: Sequence[str] | None = None, categorical: Sequence[str] | None = None,
                 drop: Sequence[str] | None = None, id_column: str | None = None, min_frequency: int = 1,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if task not in (None, "classification", "regression"):
            raise ConfigError(f"datamodule.task={task!r}: use classification, regression or leave it unset")
        if min_frequency < 1:
            raise ConfigError(f"datamodule.min_frequency={min_frequency} must be >= 1")
        self.train_file = Path(train_file)
        self.test_file = Path(test_file) if test_file else None
        self.target = target
        self.configured = {"task": task, "numeric": list(numeric or []) or None,
                           "categorical": list(categorical or []) or None, "drop": list(drop or []) or None,
                           "id_column": id_column}
        self.min_frequency = min_frequency
        self.rows: list[dict[str, Any]] = []
        self.roles: Roles | None = None
        self.spec: TabularSpec | None = None
        self.task = task

    # ---------------------------------------------------------------- loading
    def _bad_reason(self, row: dict[str, Any], roles: Roles) -> str | None:
        """Why a row cannot be used for training (unparsable number, missing target), or None."""
        try:
            for name in roles.numeric:
                if not is_missing(row[name]):
                    parse_number(name, row[name])
            for name in roles.categorical:
                if not is_missing(row[name]):
                    parse_category(name, row[name])
            if is_missing(row[roles.target]):
                raise RowError(roles.target, "missing_target", "target is missing")
            if roles.task == "regression":
                parse_number(roles.target, row[roles.target])
        except RowError as err:
            return f"column {err.column!r}: {err.message}"
        return None

    def _load(self) -> None:
        train_rows = frame_rows(self.train_file)
        test_rows = frame_rows(self.test_file) if self.test_file else []
        self._hash.update(self.train_file.read_bytes())
        if self.test_file:
            self._hash.update(self.test_file.read_bytes())
        if not train_rows:
            raise DataError(f"datamodule.train_file={self.train_file} has no rows")
        columns = {c: [r.get(c) for r in train_rows] for c in train_rows[0]}
        roles = infer_roles(columns, self.target, self.configured["task"], self.configured["numeric"],
                            self.configured["categorical"], self.configured["drop"], self.configured["id_column"])
        if "task" in roles.inferred:
            log.warning("datamodule.task is not set: inferred %s (set datamodule.task to choose)", roles.inferred["task"])
            print(f"datamodule.task inferred: {roles.inferred['task']}")
        self.roles, self.task = roles, roles.task
        good: list[tuple[str, dict[str, Any]]] = []
        n_train = 0
        for source, rows in ((self.train_file, train_rows), (self.test_file, test_rows)):
            for number, row in enumerate(rows, start=1):
                missing = [c for c in (*roles.numeric, *roles.categorical, roles.target) if c not in row]
                if missing:
                    raise DataError(f"{source} lacks columns {missing} of the training table: every file needs the same columns")
                key = row.get(roles.id_column) if roles.id_column else None
                where = f"{source.name}:{key if key is not None else number}"
                self.total_records += 1
                reason = self._bad_reason(row, roles)
                if reason:
                    self.bad_records.append(BadRecord(where, reason))
                    continue
                good.append((where, row))
            if source == self.train_file:
                n_train = len(good)
        if roles.task == "classification":
            self.labels = sorted({parse_category(roles.target, r[roles.target]) for _, r in good})
            index = {label: i for i, label in enumerate(self.labels)}
            self.item_labels = [index[parse_category(roles.target, r[roles.target])] for _, r in good]
        else:
            self.labels = []
            y = np.array([parse_number(roles.target, r[roles.target]) for _, r in good[:n_train]])
            edges = np.quantile(y, np.linspace(0, 1, REGRESSION_BINS + 1)[1:-1]) if len(y) else []
            self.item_labels = [int(np.searchsorted(edges, parse_number(roles.target, r[roles.target]), side="right"))
                                for _, r in good]
        self.item_ids = [w for w, _ in good]
        self.rows = [r for _, r in good]
        if self.test_file:
            inner = stratified_split(self.item_labels[:n_train], {"train": 0.0, "val": self.val_fraction}, self.seed)
            self.splits = {"train": inner["train"], "val": inner["val"], "test": list(range(n_train, len(self.rows)))}

    def setup(self, stage: str | None = None) -> None:
        """As the base class, then fit the preprocessing on train (the checks run once per run: run_data_checks)."""
        if self._ready:
            return
        self._load()
        check_bad_records(self.bad_records, self.total_records, self.max_bad_fraction, type(self).__name__)
        if self.cv_folds:
            from datamodules.cv import cv_splits

            fixed_test = self.splits.get("test") if self.splits else None
            self.splits = cv_splits(self.item_labels, self.cv_fold, self.cv_folds, self.val_fraction, self.seed, fixed_test)
        if not self.splits:
            self.splits = stratified_split(self.item_labels, {"train": 0.0, "val": self.val_fraction,
                                                              "test": self.test_fraction}, self.seed)
        for split in SPLITS:
            if not self.splits.get(split):
                raise DataError(f"{type(self).__name__}: the {split} split is empty; add data or adjust fractions")
        self.spec = self._fit()
        for split in SPLITS:
            self.datasets[split] = self._make_dataset(split, self.splits[split])
        self._ready = True

    def run_data_checks(self) -> Any:
        """The table checks (datamodules/checks/tables.py) that train() runs once before fit."""
        from datamodules.checks.tables import run_table_setup_checks

        return run_table_setup_checks(self, self.data_checks)

    def _fit(self) -> TabularSpec:
        """The preprocessing, fitted on the training split only."""
        assert self.roles is not None
        train = [self.rows[i] for i in self.splits["train"]]
        targets = [parse_number(self.target, r[self.target]) for r in train] if self.task == "regression" else None
        return fit_spec(train, self.roles, self.labels, self.min_frequency, targets)

    def encode(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Rows → the net's input tensors and the training target (standardised for regression)."""
        assert self.spec is not None
        rows = [self.rows[i] for i in indices]
        encoded = encode_rows(rows, self.spec, nan_is_missing=True)
        if encoded.errors:  # rows were validated when loaded; an error here is a bug, not bad data
            first = next(iter(encoded.errors.items()))
            raise RuntimeError(f"row {self.item_ids[indices[first[0]]]} failed to encode: {first[1]}")
        out = {"x_num": torch.from_numpy(encoded.x_num), "x_cat": torch.from_numpy(encoded.x_cat)}
        y = [encode_target(r[self.target], self.spec) for r in rows]
        if self.task == "regression":
            out["target"] = torch.tensor(y, dtype=torch.float32)
        else:
            out["labels"] = torch.tensor(y, dtype=torch.long)
        return out

    def _make_dataset(self, split: str, indices: list[int]) -> Dataset:
        return DictDataset(**self.encode(indices))

    # ---------------------------------------------------------------- what the net and run directory need
    @property
    def num_classes(self) -> int:
        return len(self.labels) if self.task == "classification" else 1

    def net_config(self) -> dict[str, Any]:
        """Sizes the net is built with (written into the run's config.yaml: export rebuilds the same net)."""
        assert self.spec is not None
        return {"num_numeric": self.spec.num_numeric_inputs, "cardinalities": self.spec.cardinalities}

    def preprocess_spec(self) -> PreprocessSpec:
        """preprocess.json of a tabular run: kind "tabular", the class labels, the fitted TabularSpec."""
        assert self.spec is not None
        return PreprocessSpec(kind="tabular", labels=list(self.labels), tabular=self.spec.to_dict())

    @property
    def id_column(self) -> str | None:
        """The id column (configured or inferred): item ids are FILE:ID."""
        return self.roles.id_column if self.roles else self.configured["id_column"]

    def artifacts(self) -> dict[str, Any]:
        assert self.roles is not None and self.spec is not None
        return {
            rundir.SPLITS: {s: [self.item_ids[i] for i in self.splits[s]] for s in SPLITS},
            rundir.LABELS: self.labels,
            rundir.BAD_RECORDS: {"total_records": self.total_records, "bad_count": len(self.bad_records),
                                      "bad_records": as_dicts(self.bad_records)},
            ROLES_FILE: {"task": self.roles.task, "target": self.roles.target, "numeric": self.roles.numeric,
                         "categorical": self.roles.categorical, "drop": self.roles.drop,
                         "id_column": self.roles.id_column, "inferred": self.roles.inferred,
                         "configured": self.configured},
            SPEC_FILENAME: self.preprocess_spec().to_dict(),
        }

    def split_rows(self, split: str) -> list[dict[str, Any]]:
        """Raw rows of one split (baselines, evaluation, parity tests)."""
        return [self.rows[i] for i in self.splits[split]]

    def split_targets(self, split: str) -> np.ndarray:
        """Targets of one split in the target's units (regression) or label indices (classification)."""
        if self.task == "regression":
            return np.array([parse_number(self.target, r[self.target]) for r in self.split_rows(split)])
        return np.array([self.item_labels[i] for i in self.splits[split]])


__all__ = ["TabularDataModule", "frame_rows"]
