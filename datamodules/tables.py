"""Read CSV, JSONL or Parquet tables (training data and batch-scoring inputs) with pandas only."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from core.errors import ConfigError, MissingPathError

TABLE_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


def read_table(path: Path, na_values: Sequence[str] | None = None) -> pd.DataFrame:
    """Read .csv, .jsonl/.json (one object per line) or .parquet; only empty cells (+ `na_values`) are missing.

    pandas' default NA strings ("None", "NA", "null", "N/A", ...) are real values here: a class named
    "None" must not turn into missing labels. Users who mean them as missing list them in `na_values`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise MissingPathError(f"data file {path} does not exist")
    extra = [str(v) for v in na_values or []]
    if suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=["", *extra])
    if suffix in (".jsonl", ".json"):
        frame = pd.read_json(path, lines=True, dtype=False)
    elif suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        raise ConfigError(f"unsupported data file {path}: use .csv, .jsonl or .parquet")
    # JSON null / Parquet null are missing already; configured strings become missing the same way
    return frame.mask(frame.isin(extra)) if extra else frame
