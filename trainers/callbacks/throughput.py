"""Throughput of training: samples/s, tokens/s, achieved TFLOP/s and MFU, logged to every logger."""
from __future__ import annotations

import os
import sys
import time
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from torch.utils.flop_counter import FlopCounterMode

from trainers.flops import PEAK_FLOPS, device_peak_flops, peak_flops_for_name, precision_key

__all__ = ["PEAK_FLOPS", "ThroughputMonitor", "batch_size_and_tokens", "device_peak_flops", "peak_flops_for_name",
           "precision_key"]

# set → the callback prints "SHIPYARD_FIRST_STEP <unix time>" to stderr when the first optimizer step is done
# (benchmarks/startup.py measures `python train.py` → first step with it)
FIRST_STEP_MARKER_ENV = "SHIPYARD_FIRST_STEP_MARKER"
# a task's throughput_unit → the LightningModule method that may declare the training FLOPs of one unit
UNITS = {"samples": "flops_per_sample", "tokens": "flops_per_token"}


def batch_size_and_tokens(batch: Any) -> tuple[int, torch.Tensor | int]:
    """Samples and tokens of a Shipyard batch: non-padding tokens (a device tensor: no sync) or input_ids' size."""
    if isinstance(batch, dict):
        key = "labels" if "labels" in batch else next(iter(batch))
        size = len(batch[key])
        mask = batch.get("attention_mask")
        if mask is not None:
            return size, mask.sum()
        ids = batch.get("input_ids")
        return size, ids.numel() if ids is not None else 0
    first = batch[0] if isinstance(batch, (list, tuple)) else batch
    return len(first), 0


class ThroughputMonitor(Callback):
    """Rates over windows of `log_every_n_steps` optimizer steps (validation excluded).

    The unit whose FLOPs are counted is the task's `throughput_unit` (trainers/tasks/): "samples" (default)
    or "tokens". FLOPs per unit (forward + backward) come from the LightningModule's `flops_per_sample()` /
    `flops_per_token()` when it declares one (e.g. a decoder's 6N + 12LHQT), else from torch's FlopCounterMode
    on one batch. MFU needs the device's peak (trainers.flops.PEAK_FLOPS); on CPUs only samples/s, tokens/s
    and TFLOP/s are logged.
    """

    def __init__(self, log_every_n_steps: int = 50, measure_flops: bool = True) -> None:
        self.log_every_n_steps = log_every_n_steps
        self.measure_flops = measure_flops
        self.unit = "samples"  # the task's throughput_unit, read at train start
        self.flops_per_unit: float | None = None
        self.last_metrics: dict[str, float] = {}
        self._counter: FlopCounterMode | None = None
        self._marker = bool(os.environ.get(FIRST_STEP_MARKER_ENV))
        self._mark: float | None = None  # start of the open window
        self._paused_at: float | None = None
        self._last_step = -1
        self._samples = 0
        self._tokens: torch.Tensor | int = 0

    @property
    def flops_per_sample(self) -> float | None:
        """Training FLOPs of one sample (None when the task counts tokens)."""
        return self.flops_per_unit if self.unit == "samples" else None

    @property
    def flops_per_token(self) -> float | None:
        """Training FLOPs of one token (None when the task counts samples)."""
        return self.flops_per_unit if self.unit == "tokens" else None

    def _sync(self, trainer: Trainer) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize(trainer.strategy.root_device)

    def _open_window(self, trainer: Trainer) -> None:
        self._sync(trainer)
        self._mark = time.perf_counter()
        self._samples, self._tokens = 0, 0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.unit = getattr(pl_module, "throughput_unit", "samples")
        if self.unit not in UNITS:
            raise ValueError(f"{type(pl_module).__name__}.throughput_unit={self.unit!r}: use one of {', '.join(UNITS)}")
        declared = getattr(pl_module, UNITS[self.unit], None)
        if callable(declared):
            self.flops_per_unit = float(declared())
        self._last_step = trainer.global_step

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        # batch 0 pays for lazy init (cuDNN autotune, compile); count the FLOPs of a later one
        if self.measure_flops and self.flops_per_unit is None and self._counter is None and batch_idx >= 1:
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        size, tokens = batch_size_and_tokens(batch)
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            total = self._counter.get_total_flops()
            self._counter, self.measure_flops = None, False
            units = size if self.unit == "samples" else int(tokens)
            self.flops_per_unit = total / max(units, 1) if total else None
            if not total:
                rank_zero_warn("ThroughputMonitor: FlopCounterMode counted no FLOPs (compiled or fused model?); "
                               f"declare {UNITS[self.unit]}() on the LightningModule to get TFLOP/s and MFU")
            self._mark = None  # the counted batch ran slower: keep it out of the rates
        stepped = trainer.global_step != self._last_step  # False between the micro-batches of an accumulation
        self._last_step = trainer.global_step
        if stepped and self._marker:  # the first optimizer step of this process (resumed runs included)
            self._marker = False
            print(f"SHIPYARD_FIRST_STEP {time.time():.6f}", file=sys.stderr, flush=True)
        if self._mark is None:
            self._open_window(trainer)
            return
        self._samples += size
        self._tokens = self._tokens + tokens
        if stepped and trainer.global_step % self.log_every_n_steps == 0:
            self._sync(trainer)
            elapsed = time.perf_counter() - self._mark
            self._log(trainer, elapsed, int(self._tokens))
            self._open_window(trainer)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self._mark is None:
            return
        self._sync(trainer)
        self._paused_at = time.perf_counter()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._paused_at is not None and self._mark is not None:
            self._mark += time.perf_counter() - self._paused_at  # validation time is not training throughput
        self._paused_at = None

    @rank_zero_only
    def _log(self, trainer: Trainer, elapsed: float, tokens: int) -> None:
        world = trainer.world_size  # every rank runs the same local batch size
        metrics = {"perf/samples_per_sec": world * self._samples / elapsed}
        if tokens:
            metrics["perf/tokens_per_sec"] = world * tokens / elapsed
        if self.flops_per_unit:
            units = self._samples if self.unit == "samples" else tokens
            achieved = self.flops_per_unit * units / elapsed  # per device: local samples or tokens
            metrics["perf/tflops_per_device"] = achieved / 1e12
            peak = device_peak_flops(trainer.strategy.root_device, str(trainer.precision))
            if peak:
                metrics["perf/mfu"] = achieved / peak
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        self.last_metrics = metrics
