"""What a handler loads from its extracted archive: preprocess.json with the serving limits, the TorchScript
model, the device TorchServe assigned.

Ships inside every `.mar` in the `runtime/` package; batch scoring loads a model folder with the same functions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from . import preprocessing as pp
from .preprocessing import PreprocessSpec

MODEL_FILE = "model.pt"


def load_spec(model_dir: str | Path) -> PreprocessSpec:
    """preprocess.json of an export folder or extracted .mar (tokenizer_dir resolved against it)."""
    model_dir = Path(model_dir)
    spec = PreprocessSpec.load(model_dir / pp.SPEC_FILENAME)
    if spec.tokenizer_dir and not Path(spec.tokenizer_dir).is_absolute():
        spec.tokenizer_dir = str(model_dir / spec.tokenizer_dir)
    return spec


LIMIT_KEYS = ("max_image_pixels", "max_image_bytes", "max_text_chars")
# decode cost grows with the pixel count, not the file size (a 140 KB PNG can hold 36 megapixels): a
# served model's default limit follows what it looks at, with room for camera-sized inputs
PIXELS_PER_INPUT_PIXEL = 256
MIN_PIXEL_LIMIT = 1 << 20


def serving_pixel_limit(spec: PreprocessSpec) -> int:
    """256x the model's input area (at least 1 MP), never above preprocess.json's max_image_pixels."""
    height, width = spec.image_size
    return min(spec.max_image_pixels, max(MIN_PIXEL_LIMIT, PIXELS_PER_INPUT_PIXEL * height * width))


def apply_limits(spec: PreprocessSpec, yaml_config: dict[str, Any]) -> None:
    """Serving limits: derived from the model's input size, or the archive's model-config YAML `limits:`."""
    limits = yaml_config.get("limits") or {}
    if spec.kind == "image":
        spec.max_image_pixels = serving_pixel_limit(spec)
    unknown = sorted(set(limits) - set(LIMIT_KEYS))
    if unknown:
        raise ValueError(f"unknown limits keys {unknown} in the model-config YAML; known: {list(LIMIT_KEYS)}")
    for key, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"limits.{key}={value!r}: must be a positive integer")
        setattr(spec, key, value)


def load_model(model_dir: str | Path, device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    """The TorchScript model of an export folder or extracted .mar, in eval mode."""
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the archive was not built by `python export.py`")
    model = torch.jit.load(str(path), map_location=device)
    return model.eval()


def device_for(context: Any) -> torch.device:
    """The GPU TorchServe assigned to this worker, else the CPU."""
    gpu_id = (getattr(context, "system_properties", None) or {}).get("gpu_id")
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{gpu_id}")
    return torch.device("cpu")

