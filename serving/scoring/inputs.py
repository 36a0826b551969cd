"""What a scoring job reads: an image folder, a file list, or a CSV/JSONL/Parquet table of texts or paths.

Every input becomes a `RecordTable`: stable record ids (a path or a row key) and, per record, either an
image path or a text value. Values are checked later, one by one, so a bad record is rejected with a
reason instead of stopping the job; only problems with the input as a whole (missing file, unknown
column, duplicate ids) are errors here.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamodules.tables import TABLE_SUFFIXES, read_table
from serving.scoring.errors import InputError
from serving.scoring.options import Columns

LIST_SUFFIXES = (".txt", ".lst")


@dataclass
class RecordTable:
    """Record ids in input order and their values: image paths (kind 'path') or raw text values ('text')."""

    source: str
    kind: str  # "path" | "text"
    ids: list[str]
    values: list[Any]
    description: str = ""
    _fingerprint: str | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def fingerprint(self) -> str:
        """Hash of ids and values (paths, not image bytes): a resumed job must see the same input."""
        if self._fingerprint is None:
            digest = hashlib.sha256(self.kind.encode())
            for record_id, value in zip(self.ids, self.values):
                digest.update(record_id.encode("utf-8", "surrogatepass") + b"\0")
                digest.update(repr(value).encode("utf-8", "surrogatepass") + b"\0")
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint


def read_records(path: str | Path, model_kind: str, columns: Columns = Columns()) -> RecordTable:
    """Read any supported input for a model of `model_kind` ('image' or 'text')."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input={path} does not exist: give an image folder, a .txt file list, "
                         "or a .csv/.jsonl/.parquet table")
    if path.is_dir():
        table = read_image_folder(path)
    elif path.suffix.lower() in LIST_SUFFIXES:
        table = read_file_list(path)
    elif path.suffix.lower() in TABLE_SUFFIXES:
        table = read_table_records(path, model_kind, columns)
    else:
        raise InputError(f"input={path}: unsupported file type {path.suffix!r}; use an image folder, a .txt "
                         f"file list, or one of {', '.join(TABLE_SUFFIXES)}")
    if table.kind == "path" and model_kind != "image":
        raise InputError(f"input={path} lists files, but the model is a {model_kind} model: give a table "
                         f"with a {columns.text!r} column (or set columns.text=NAME)")
    _check_unique(table)
    return table


def read_image_folder(folder: Path) -> RecordTable:
    """Every non-hidden file below `folder` (sorted); id = its path relative to the folder."""
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        raise InputError(f"input={folder} is an empty folder: expected image files (png, jpg, ...)")
    ids = [p.relative_to(folder).as_posix() for p in files]
    return RecordTable(str(folder), "path", ids, [str(p) for p in files], f"image folder {folder}")


def read_file_list(list_file: Path) -> RecordTable:
    """One path per line (blank lines and '#' comments skipped); relative paths are under the list's folder."""
    ids: list[str] = []
    values: list[str] = []
    for line in list_file.read_text().splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        ids.append(entry)
        target = Path(entry)
        values.append(str(target if target.is_absolute() else list_file.parent / target))
    if not ids:
        raise InputError(f"input={list_file} lists no files (one path per line expected)")
    return RecordTable(str(list_file), "path", ids, values, f"file list {list_file}")


def read_table_records(path: Path, model_kind: str, columns: Columns) -> RecordTable:
    """Rows of a table: texts (text models) or image paths (image models), ids from `columns.id`."""
    try:
        frame = read_table(path)
    except ValueError as err:  # pandas parse errors are ValueErrors too
        raise InputError(f"input={path} cannot be read as a table: {err}") from err
    value_column = columns.text if model_kind == "text" else columns.path
    option = "columns.text" if model_kind == "text" else "columns.path"
    for column, key in ((value_column, option), (columns.id, "columns.id")):
        if column is not None and column not in frame.columns:
            raise InputError(f"input={path} has no column {column!r} (set {key}=NAME); its columns are "
                             f"{list(frame.columns)}")
    values = [_none_if_missing(v) for v in frame[value_column].tolist()]
    if columns.id is not None:
        raw_ids = frame[columns.id].tolist()
        missing = [i for i, v in enumerate(raw_ids) if _none_if_missing(v) is None]
        if missing:
            raise InputError(f"input={path}: column {columns.id!r} is empty in rows {missing[:10]}: every record "
                             "needs an id (fill them, or unset columns.id to use row numbers)")
        ids = [_id_text(v) for v in raw_ids]
    elif model_kind == "image":
        ids = [str(v) if v is not None else f"row-{i}" for i, v in enumerate(values)]
    else:
        ids = [str(i) for i in range(len(values))]
    if model_kind == "image":
        base = path.parent
        values = [None if v is None else str(Path(str(v)) if Path(str(v)).is_absolute() else base / str(v))
                  for v in values]
        return RecordTable(str(path), "path", ids, values, f"table {path} (paths in {value_column!r})")
    return RecordTable(str(path), "text", ids, values, f"table {path} (texts in {value_column!r})")


def _none_if_missing(value: Any) -> Any:
    """pandas marks empty cells as NaN/None/NA: make them None so they are rejected as 'missing'."""
    if value is None:
        return None
    try:
        import pandas as pd

        if pd.api.types.is_scalar(value) and pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def _id_text(value: Any) -> str:
    """Ids as text; whole floats (pandas turns int columns with gaps into floats) lose their '.0'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_unique(table: RecordTable) -> None:
    seen: set[str] = set()
    duplicates: list[str] = []
    for record_id in table.ids:
        if record_id in seen:
            duplicates.append(record_id)
        seen.add(record_id)
    if duplicates:
        raise InputError(f"{table.description}: {len(duplicates)} duplicate record ids, e.g. {duplicates[:5]}; "
                         "record ids must be unique (set columns.id to a unique key column, or remove duplicates)")
