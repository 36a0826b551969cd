"""What a scoring job reads: an image folder, a file list, or a CSV/JSONL/Parquet table of texts or paths.

Every input becomes a `RecordTable`: stable record ids (a path or a row key) and, per record, either an
image path or a text value. Values are checked later, one by one, so a bad record is rejected with a
reason instead of stopping the job; only problems with the input as a whole (missing file, unknown
column, duplicate ids) are errors here. `RecordDataset` decodes and preprocesses records in DataLoader
workers with the handlers' own functions; a record that fails becomes a reject (id + reason) in its batch.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.tables import TABLE_SUFFIXES, read_table
from runtime.preprocessing import BadInputError
from serving.scoring.config import Columns, InputError


LIST_SUFFIXES = (".txt", ".lst")
# the Columns field holding each model kind's values (image: paths to read; prompt/document: language models)
VALUE_COLUMNS = {"image": "path", "text": "text", "prompt": "prompt", "document": "text"}


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


def read_records(path: str | Path, model_kind: str, columns: Columns = Columns(), spec: Any = None) -> RecordTable:
    """Read any supported input for a model of `model_kind` (image, text, prompt, document; tabular: row dicts)."""
    path = Path(path)
    if model_kind == "tabular":
        if not path.is_file() or path.suffix.lower() not in TABLE_SUFFIXES:
            raise InputError(f"input={path}: a tabular model scores a {', '.join(TABLE_SUFFIXES)} table")
        from serving.scoring.tabular import read_tabular_records

        ids, rows = read_tabular_records(path, spec, columns.id)
        table = RecordTable(str(path), "row", ids, rows, f"table {path}")
        _check_unique(table)
        return table
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
        key = VALUE_COLUMNS.get(model_kind, "text")
        raise InputError(f"input={path} lists files, but the model is a {model_kind} model: give a table "
                         f"with a {getattr(columns, key)!r} column (or set columns.{key}=NAME)")
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
    """Rows of a table: texts/prompts (VALUE_COLUMNS) or image paths (image models), ids from `columns.id`."""
    try:
        frame = read_table(path)
    except ValueError as err:  # pandas parse errors are ValueErrors too
        raise InputError(f"input={path} cannot be read as a table: {err}") from err
    key = VALUE_COLUMNS.get(model_kind, "text")
    value_column, option = getattr(columns, key), f"columns.{key}"
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



@dataclass
class Batch:
    """Positions of the records that made it (with their model inputs) and of those rejected (with why)."""

    positions: list[int]
    inputs: dict[str, torch.Tensor]
    rejected: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # position, {"reason", "code"}

    def pin_memory(self) -> "Batch":
        """Called by the DataLoader when pin_memory=True (GPU): faster, asynchronous host→device copies."""
        return Batch(self.positions, {k: v.pin_memory() for k, v in self.inputs.items()}, self.rejected)


class RecordDataset(Dataset):
    """Position → (position, preprocessed item or None, {"reason", "code"} or None).

    `with_id`: `prepare(value, record_id)`, for kinds whose item depends on the record's identity (a language
    model's prompt is sampled with a seed derived from its id, so the completion is the same in any batch).
    """

    def __init__(self, table: RecordTable, prepare: Callable[..., Any], with_id: bool = False) -> None:
        self.table = table
        self.prepare = prepare
        self.with_id = with_id

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, position: int) -> tuple[int, Any, dict[str, str] | None]:
        value = self.table.values[position]
        try:
            if self.table.kind == "path":
                return position, self.prepare(read_file(value)), None
            if self.with_id:
                return position, self.prepare(value, self.table.ids[position]), None
            return position, self.prepare(value), None
        except BadInputError as err:
            return position, None, {"reason": str(err), "code": getattr(err, "code", "bad_input")}


def read_file(path: str | None) -> bytes:
    """Bytes of an image file, or BadInputError naming why it cannot be read."""
    if path is None:
        raise BadInputError("missing path: the row has no value in the path column", code="missing_value")
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as err:
        raise BadInputError(f"file not found: {path}", code="missing_file") from err
    except IsADirectoryError as err:
        raise BadInputError(f"is a directory, not an image file: {path}", code="unreadable_file") from err
    except OSError as err:
        raise BadInputError(f"cannot read {path}: {err.strerror or err}", code="unreadable_file") from err


class Collate:
    """Good items → one batch of model inputs (`to_inputs`), bad ones → rejects; picklable for workers."""

    def __init__(self, to_inputs: Callable[[list[Any]], dict[str, torch.Tensor]]) -> None:
        self.to_inputs = to_inputs

    def __call__(self, items: Sequence[tuple[int, Any, dict[str, str] | None]]) -> Batch:
        good = [(pos, item) for pos, item, reason in items if reason is None]
        rejected = [(pos, reason) for pos, _, reason in items if reason is not None]
        inputs = self.to_inputs([item for _, item in good]) if good else {}
        return Batch([pos for pos, _ in good], inputs, rejected)


class RejectMissingText:
    """Empty table cells arrive as None: say 'missing text' instead of 'text must be a string, got NoneType'."""

    def __init__(self, prepare: Callable[[Any], Any]) -> None:
        self.prepare = prepare

    def __call__(self, value: Any) -> Any:
        if value is None:
            raise BadInputError("missing text: the row has no value in the text column", code="missing_value")
        return self.prepare(value)


def make_loader(dataset: RecordDataset, batches: list[list[int]], collate: Collate, num_workers: int,
                pin_memory: bool) -> DataLoader:
    """Ordered batches (they must come back in plan order, chunk by chunk) decoded by `num_workers` workers."""
    return DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers > 0 else None,
        persistent_workers=False,
    )
