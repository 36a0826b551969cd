"""Read CSV, JSONL or Parquet tables (training data and batch-scoring inputs) with pandas only."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

TABLE_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


def read_table(path: Path) -> pd.DataFrame:
    """Read .csv, .jsonl/.json (one object per line) or .parquet into a DataFrame."""
    suffix = path.suffix.lower()
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist")
    if suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=True)
    if suffix in (".jsonl", ".json"):
        return pd.read_json(path, lines=True, dtype=False)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    raise ValueError(f"unsupported data file {path}: use .csv, .jsonl or .parquet")
