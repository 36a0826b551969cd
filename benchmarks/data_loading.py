"""Data loading: samples/s of each datamodule's train loader against the model's own step rate on those batches.

ratio = loader samples/s ÷ model samples/s (forward + backward + optimizer step on batches already in
memory). Above 1 the loader keeps up; it should be well above 1 so that it is never the bottleneck.
"""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import plain_parts

# experiment → extra overrides; imagefolder_cnn gets a generated folder of PNGs
EXPERIMENTS: dict[str, list[str]] = {"digits_cnn": [], "text_transformer": [], "imagefolder_cnn": []}


def make_image_folder(root: Path, classes: int = 3, per_class: int = 80, size: int = 32) -> Path:
    """An ImageFolder tree of distinct RGB PNGs (root/CLASS/i.png), each class a different colour pattern."""
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = (torch.rand(size, size, 3, generator=gen) * 128).to(torch.uint8)
            pixels[..., c] += 100  # a class signal in one channel
            Image.fromarray(pixels.numpy(), mode="RGB").save(folder / f"{i}.png")
    return root


def loader_samples_per_s(loader: Any, epochs: int) -> float:
    """Median samples/s over full epochs of the loader (one warm-up epoch first: workers, file cache)."""
    for _ in loader:
        pass
    rates = []
    for _ in range(epochs):
        samples, t0 = 0, time.perf_counter()
        for batch in loader:
            samples += len(batch["labels"])
        rates.append(samples / (time.perf_counter() - t0))
    return statistics.median(rates)


def model_samples_per_s(net: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: list[dict], repeats: int) -> float:
    """Median samples/s of training steps on batches already in memory (no loader in the way)."""
    net.train()

    def step(batch: dict) -> None:
        loss = torch.nn.functional.cross_entropy(net(**{k: v for k, v in batch.items() if k != "labels"}), batch["labels"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(batches[0])  # warm-up
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for batch in batches:
            step(batch)
        rates.append(sum(len(b["labels"]) for b in batches) / (time.perf_counter() - t0))
    return statistics.median(rates)


def bench(epochs: int = 3, repeats: int = 3, max_batches: int = 8) -> dict[str, Any]:
    """Per datamodule: loader samples/s, model samples/s, their ratio."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        root = Path(tmp)
        folder = make_image_folder(root / "images")
        for experiment, overrides in EXPERIMENTS.items():
            if experiment == "imagefolder_cnn":
                overrides = [*overrides, f"datamodule.root={folder}"]
            _, datamodule, net, optimizer = plain_parts(experiment, ["run_id=bench_data", *overrides], root)
            loader = datamodule.train_dataloader()
            loader_rate = loader_samples_per_s(loader, epochs)
            batches = [b for _, b in zip(range(max_batches), loader)]
            model_rate = model_samples_per_s(net, optimizer, batches, repeats)
            results[experiment] = {
                "datamodule": type(datamodule).__name__, "batch_size": datamodule.batch_size,
                "num_workers": datamodule.num_workers, "train_samples": len(datamodule.datasets["train"]),
                "loader_samples_per_s": loader_rate, "model_samples_per_s": model_rate,
                "ratio": loader_rate / model_rate, "target": "> 1 (never the bottleneck)",
            }
            del loader  # persistent workers end with their loader
    return results


if __name__ == "__main__":
    print(json.dumps(bench(), indent=1))
