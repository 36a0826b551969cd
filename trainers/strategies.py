"""Strategy configs → Lightning strategies."""
from __future__ import annotations

import torch
from lightning.pytorch.strategies import SingleDeviceStrategy


def single_device(accelerator: str = "auto") -> SingleDeviceStrategy:
    """One process on one device: the first GPU when there is one (and accelerator allows it), else the CPU."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return SingleDeviceStrategy(device=torch.device("cuda", 0))
    if accelerator in ("gpu", "cuda"):
        raise ValueError("trainer.accelerator=gpu but no CUDA device is visible; use trainer.accelerator=cpu")
    return SingleDeviceStrategy(device=torch.device("cpu"))
