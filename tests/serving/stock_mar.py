"""A tiny `.mar` built from a TorchScript model and TorchServe's stock `image_classifier` handler.

Server-lifecycle tests use it where the project's own handlers are not what is tested.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from torch import nn


class _TinyNet(nn.Module):
    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def build_stock_mar(out_dir: Path, name: str = "tiny", version: str = "1.0", seed: int = 0) -> Path:
    """TorchScript a 5-class (the stock handler answers top-5) tiny CNN (weights from `seed`) and archive it with the stock handler."""
    out_dir = Path(out_dir)
    work = out_dir / f"{name}-{version}-src"
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    torch.jit.script(_TinyNet().eval()).save(str(work / "model.pt"))
    (work / "index_to_name.json").write_text('{"0": "cat", "1": "dog", "2": "fish", "3": "bird", "4": "frog"}')
    export = out_dir / f"{name}-{version}"
    export.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(Path(sys.executable).parent / "torch-model-archiver"), "--model-name", name,
                    "--version", version, "--serialized-file", str(work / "model.pt"), "--handler",
                    "image_classifier", "--extra-files", str(work / "index_to_name.json"),
                    "--export-path", str(export), "-f"], check=True, capture_output=True)
    return export / f"{name}.mar"
