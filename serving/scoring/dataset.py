"""Decode and preprocess records in DataLoader workers with the serving handlers' own functions.

Each item is checked on its own: a record that cannot be read or preprocessed becomes a reject
(id + reason) in its batch instead of an exception that would stop the job.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from runtime.preprocessing import BadInputError
from serving.scoring.inputs import RecordTable


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
    """Position → (position, preprocessed item or None, {"reason", "code"} or None)."""

    def __init__(self, table: RecordTable, prepare: Callable[[Any], Any]) -> None:
        self.table = table
        self.prepare = prepare

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, position: int) -> tuple[int, Any, dict[str, str] | None]:
        value = self.table.values[position]
        try:
            if self.table.kind == "path":
                return position, self.prepare(read_file(value)), None
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

