"""Classification export: pixel_values or input_ids + attention_mask in; parity on logits and their argmax."""
from __future__ import annotations

from typing import Any

import torch

from serving.export.parity import compare  # noqa: F401 - the classification parity: logits + argmax agreement

INPUT_NAMES = {"image": ("pixel_values",), "text": ("input_ids", "attention_mask"), "tabular": ("x_num", "x_cat")}


def input_names(spec: Any) -> tuple[str, ...]:
    """The net's positional inputs for the spec's input kind."""
    if spec.kind not in INPUT_NAMES:
        raise KeyError(f"classification export knows input kinds {sorted(INPUT_NAMES)}, not {spec.kind!r}")
    return INPUT_NAMES[spec.kind]


def dynamic_shapes(spec: Any) -> dict[str, dict[int, Any]]:
    """torch.export's dynamic_shapes: only the batch is dynamic (fixed image size; texts padded to max_length)."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    return {name: {0: batch} for name in input_names(spec)}


def example_args(batch: dict[str, torch.Tensor], spec: Any) -> tuple[torch.Tensor, ...]:
    """The net's positional inputs taken from a datamodule batch."""
    return tuple(batch[name] for name in input_names(spec))
