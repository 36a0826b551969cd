"""Text classification from CSV, JSONL or Parquet files with configurable text/label columns."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch
from torch.utils.data import Dataset

from core.errors import ConfigError, DataError
from datamodules.base import ClassificationDataModule
from datamodules.hf_assets import resolve_model_dir
from runtime.preprocessing import BadInputError, PreprocessSpec, clean_text, load_tokenizer, tokenize
from datamodules.records import BadRecord
from datamodules.splits import stratified_split
from datamodules.tables import read_table  # re-exported: batch scoring reads tables without Lightning


class TokenizedDataset(Dataset):
    """Pre-tokenised rows → {"input_ids", "attention_mask", "labels"}."""

    def __init__(self, encoded: dict[str, torch.Tensor], labels: torch.Tensor) -> None:
        self.encoded = encoded
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.encoded["input_ids"][i], "attention_mask": self.encoded["attention_mask"][i],
                "labels": self.labels[i]}


class TextClassificationDataModule(ClassificationDataModule):
    """Train file (val split carved from it by seed) and a separate test file; MiniLM tokenizer by default."""

    def __init__(
        self,
        train_file: str,
        test_file: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        id_column: str | None = None,
        tokenizer: str = "minilm",
        max_length: int = 64,
        labels: Sequence[str] | None = None,
        na_values: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise ConfigError(f"datamodule.max_length={max_length!r} must be an integer >= 2 (the tokenizer's "
                              "[CLS] and [SEP] take two tokens)")
        self.na_values = list(na_values) if na_values else None  # strings that mean "missing" beyond empty cells
        self.train_file = Path(train_file)
        self.test_file = Path(test_file) if test_file else None
        self.text_column = text_column
        self.label_column = label_column
        self.id_column = id_column
        self.tokenizer_dir = resolve_model_dir(tokenizer)
        self.max_length = max_length
        self.fixed_labels = list(labels) if labels else None
        self.texts: list[str] = []
        self._tokenizer = None

    def preprocess_spec(self) -> PreprocessSpec:
        return PreprocessSpec(kind="text", labels=self.labels, tokenizer_dir=self.tokenizer_dir, max_length=self.max_length)

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.tokenizer_dir)
        return self._tokenizer

    def _read(self, path: Path) -> list[tuple[str, str, str]]:
        frame = read_table(path, self.na_values)
        for column in (self.text_column, self.label_column, self.id_column):
            if column and column not in frame.columns:
                raise ConfigError(
                    f"{path} has no column {column!r}; its columns are {list(frame.columns)} "
                    "(set datamodule.text_column / label_column / id_column)"
                )
        self._hash.update(path.read_bytes())
        spec = PreprocessSpec(kind="text", labels=["?"], max_length=self.max_length)
        rows = []
        for row_number, row in enumerate(frame.itertuples(index=False), start=1):
            record = row._asdict() if hasattr(row, "_asdict") else dict(zip(frame.columns, row))
            where = f"{path.name}:{record[self.id_column] if self.id_column else row_number}"
            self.total_records += 1
            text, label = record[self.text_column], record[self.label_column]
            if label is None or (isinstance(label, float) and pd.isna(label)) or not str(label).strip():
                self.bad_records.append(BadRecord(where, "missing label"))
                continue
            if text is None or (isinstance(text, float) and pd.isna(text)):
                self.bad_records.append(BadRecord(where, "missing text"))
                continue
            try:
                rows.append((where, clean_text(text, spec), str(label).strip()))
            except BadInputError as err:
                self.bad_records.append(BadRecord(where, str(err)))
        return rows

    def _load(self) -> None:
        train_rows = self._read(self.train_file)
        test_rows = self._read(self.test_file) if self.test_file else []
        seen = sorted({r[2] for r in train_rows + test_rows})
        if self.fixed_labels:
            unknown = set(seen) - set(self.fixed_labels)
            if unknown:
                raise DataError(f"labels {sorted(unknown)} are not in datamodule.labels={self.fixed_labels}: add them "
                                "there, or drop datamodule.labels to take every label the data has")
            self.labels = self.fixed_labels
        else:
            self.labels = seen
        index = {label: i for i, label in enumerate(self.labels)}
        for where, text, label in train_rows + test_rows:
            self.item_ids.append(where)
            self.texts.append(text)
            self.item_labels.append(index[label])
        if self.test_file:
            n_train = len(train_rows)
            inner = stratified_split(self.item_labels[:n_train], {"train": 0.0, "val": self.val_fraction}, self.seed)
            self.splits = {"train": inner["train"], "val": inner["val"], "test": list(range(n_train, len(self.texts)))}

    def _make_dataset(self, split: str, indices: list[int]) -> TokenizedDataset:
        encoded = tokenize([self.texts[i] for i in indices], self.tokenizer, self.preprocess_spec())
        labels = torch.tensor([self.item_labels[i] for i in indices], dtype=torch.long)
        return TokenizedDataset(encoded, labels)
