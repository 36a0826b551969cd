"""Shared pieces of the benchmarks: the machine and medians of interleaved repeats."""
from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {
        "cpu": cpu_model(), "cores": cores, "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    try:
        info["load_average_1m"] = round(os.getloadavg()[0], 2)  # other work on the machine skews every figure
    except OSError:
        pass
    try:
        import lightning

        info["lightning"] = lightning.__version__
    except ImportError:
        pass
    return info


def median_of(fn: Callable[[], float], repeats: int) -> tuple[float, list[float]]:
    """The median of `repeats` calls (callers run their own warm-up first) and every value."""
    values = [fn() for _ in range(repeats)]
    return statistics.median(values), values


def interleaved(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, dict[str, Any]]:
    """Run each function `repeats` times, alternating, so that drifting machine load hits all alike."""
    values: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            values[key].append(fn())
    return {k: {"median": statistics.median(v), "values": [round(x, 4) for x in v]} for k, v in values.items()}


def plain_parts(experiment: str, overrides: list[str], root: Path) -> tuple[Any, Any, Any, Any]:
    """What a hand-written loop needs from train.py's config: (cfg, set-up datamodule, net, optimizer), seeded."""
    from hydra.utils import instantiate
    from lightning.pytorch import seed_everything
    from omegaconf import open_dict

    from trainers.compose import compose_train

    cfg = compose_train([f"+experiment={experiment}", *overrides], root)
    seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.datamodule)
    datamodule.setup("fit")
    with open_dict(cfg):
        cfg.model.num_classes = datamodule.num_classes
    net = instantiate(cfg.model.net)
    optimizer = instantiate(cfg.model.optimizer)(params=net.parameters())
    return cfg, datamodule, net, optimizer
