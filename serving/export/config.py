"""export.py's config: ExportConfig is the schema and holds the defaults (conf/export.yaml only sets Hydra up)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from core.schema import MISSING, validate

FORMATS = ("torchserve", "hf")


@dataclass
class ParityConfig:
    """How closely each export must match the eager net."""

    batches: int = 4  # validation batches compared between the eager net and each export
    max_abs_diff: float = 1.0e-4  # on logits
    min_argmax_agreement: float = 1.0


@dataclass
class ExportConfig:
    """python export.py run_dir=PATH [checkpoint=best|last|PATH] [version=1.0] [key=value ...]."""

    run_dir: str = MISSING  # the run directory train.py wrote
    checkpoint: str = "best"  # best (run.json's best_checkpoint) | last (checkpoints/last.ckpt) | a .ckpt path
    version: str = "1.0"  # model version: 1 to 3 dot-separated numbers (1, 1.0, 2.1.3)
    model_name: str | None = None  # archive/model name; None: the run's experiment name
    overwrite: bool = False  # replace an existing archive of the same name and version
    format: str = "torchserve"  # torchserve (model.pt/.pt2 + .mar) | hf (LM runs: RUN_DIR/export/hf for transformers)
    package: bool = True  # build the .mar (false: export + parity only)
    # torchscript is required (TorchServe serves it); torch_export is best effort
    targets: list[str] = field(default_factory=lambda: ["torchscript", "torch_export"])
    parity: ParityConfig = field(default_factory=ParityConfig)

    def check(self) -> list[str]:
        """Value rules beyond the types."""
        if self.format not in FORMATS:
            return [f"format={self.format!r} is not known: use one of {', '.join(FORMATS)}"]
        return []


def export_config(cfg: Mapping[str, Any]) -> ExportConfig:
    """The composed config checked against ExportConfig: unknown keys and wrong types raise ConfigError (exit 2)."""
    return validate(ExportConfig, cfg)
