"""Throughput of training: samples/s, tokens/s, achieved TFLOP/s and MFU, logged to every logger."""
from __future__ import annotations

import time
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.flop_counter import FlopCounterMode

# Dense peak FLOP/s per device, by a lower-case substring of torch.cuda.get_device_name (vendor datasheets).
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "h200": {"bf16": 989.5e12, "fp16": 989.5e12, "fp32": 66.9e12, "tf32": 494.7e12},
    "h100 nvl": {"bf16": 835.5e12, "fp16": 835.5e12, "fp32": 60.0e12, "tf32": 417.6e12},
    "h100 pcie": {"bf16": 756.0e12, "fp16": 756.0e12, "fp32": 51.2e12, "tf32": 378.0e12},
    "h100": {"bf16": 989.5e12, "fp16": 989.5e12, "fp32": 66.9e12, "tf32": 494.7e12},
    "a100": {"bf16": 312.0e12, "fp16": 312.0e12, "fp32": 19.5e12, "tf32": 156.0e12},
    "l40s": {"bf16": 362.1e12, "fp16": 362.1e12, "fp32": 91.6e12, "tf32": 183.0e12},
    "a10g": {"bf16": 70.0e12, "fp16": 70.0e12, "fp32": 31.2e12, "tf32": 35.0e12},
}


def precision_key(precision: str) -> str:
    """Lightning precision string → key of PEAK_FLOPS."""
    if "bf16" in precision:
        return "bf16"
    if "16" in precision:
        return "fp16"
    return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "fp32"


def device_peak_flops(device: torch.device, precision: str) -> float | None:
    """Peak dense FLOP/s of one device for the precision, or None when unknown (CPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device).lower()
    for key, table in PEAK_FLOPS.items():  # ordered: specific names first
        if key in name:
            return table[precision_key(precision)]
    return None


def batch_size_and_tokens(batch: Any) -> tuple[int, int]:
    """Samples and non-padding tokens of a Shipyard batch (dict with labels, maybe attention_mask)."""
    if isinstance(batch, dict) and "labels" in batch:
        size = len(batch["labels"])
        mask = batch.get("attention_mask")
        return size, int(mask.sum()) if mask is not None else 0
    first = batch[0] if isinstance(batch, (list, tuple)) else batch
    return len(first), 0


class ThroughputMonitor(Callback):
    """Counts samples/tokens per optimizer step; FLOPs of a step are measured once with FlopCounterMode."""

    def __init__(self, log_every_n_steps: int = 50, measure_flops: bool = True) -> None:
        self.log_every_n_steps = log_every_n_steps
        self.measure_flops = measure_flops
        self.flops_per_sample: float | None = None
        self._counter: FlopCounterMode | None = None
        self._reset()

    def _reset(self) -> None:
        self._t0 = None
        self._samples = 0
        self._tokens = 0

    def _sync(self, trainer: Trainer) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize(trainer.strategy.root_device)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self.measure_flops and self.flops_per_sample is None and self._counter is None and batch_idx == 1:
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()
        if self._t0 is None:
            self._sync(trainer)
            self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        size, tokens = batch_size_and_tokens(batch)
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            total = self._counter.get_total_flops()
            self.flops_per_sample = total / max(size, 1) if total else None
            self._counter = None
            self.measure_flops = False
            self._reset()  # the counted step ran slower: keep it out of the rates
            return
        self._samples += size
        self._tokens += tokens
        if trainer.global_step % self.log_every_n_steps == 0 and trainer.global_step > 0:
            self._sync(trainer)
            elapsed = time.perf_counter() - self._t0
            self._log(trainer, elapsed)
            self._reset()

    @rank_zero_only
    def _log(self, trainer: Trainer, elapsed: float) -> None:
        world = trainer.world_size
        metrics = {"perf/samples_per_sec": world * self._samples / elapsed}
        if self._tokens:
            metrics["perf/tokens_per_sec"] = world * self._tokens / elapsed
        if self.flops_per_sample:
            achieved = self.flops_per_sample * self._samples / elapsed  # per device
            metrics["perf/tflops_per_device"] = achieved / 1e12
            peak = device_peak_flops(trainer.strategy.root_device, str(trainer.precision))
            if peak:
                metrics["perf/mfu"] = achieved / peak
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        self.last_metrics = metrics
