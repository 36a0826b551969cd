"""ThroughputMonitor: rates, FLOPs per sample, MFU peak lookup, accumulation, the first-step marker (CPU)."""
from __future__ import annotations

from typing import Any

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import Logger
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from trainers.callbacks.throughput import FIRST_STEP_MARKER_ENV, ThroughputMonitor
from trainers.flops import device_peak_flops, peak_flops_for_name, precision_key
from trainers.nets.cnn import SimpleCNN


class CaptureLogger(Logger):
    """Keeps every log_metrics call in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[int, dict[str, float]]] = []

    name = "capture"
    version = "0"

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.records.append((step, dict(metrics)))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


class Digits(Dataset):
    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {"pixel_values": torch.randn(1, 8, 8, generator=g), "labels": torch.tensor(i % 10)}


class Module(LightningModule):
    def __init__(self, declared: float | None = None) -> None:
        super().__init__()
        self.net = SimpleCNN(num_classes=10, in_channels=1)
        self.declared = declared
        if declared is not None:
            self.flops_per_sample = lambda: declared

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(self.net(batch["pixel_values"]), batch["labels"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def fit(module: LightningModule, monitor: ThroughputMonitor, accumulate: int = 1, steps: int = 6) -> CaptureLogger:
    logger = CaptureLogger()
    trainer = Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=logger, callbacks=[monitor],
                      accumulate_grad_batches=accumulate, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, log_every_n_steps=1)
    trainer.fit(module, DataLoader(Digits(), batch_size=4))
    return logger


def perf_records(logger: CaptureLogger) -> list[tuple[int, dict[str, float]]]:
    return [(s, m) for s, m in logger.records if "perf/samples_per_sec" in m]


@pytest.mark.parametrize("name, precision, peak", [
    ("NVIDIA H100 80GB HBM3", "bf16-mixed", 989.5e12),
    ("NVIDIA H100 PCIe", "bf16-mixed", 756.0e12),
    ("NVIDIA H100 NVL", "16-mixed", 835.5e12),
    ("NVIDIA H200", "bf16-true", 989.5e12),
    ("NVIDIA H200 NVL", "bf16-mixed", 835.5e12),
    ("NVIDIA A100-SXM4-80GB", "bf16-mixed", 312.0e12),
    ("NVIDIA L40S", "bf16-mixed", 362.1e12),
    ("Tesla T4", "bf16-mixed", None),
])
def test_peak_table_lookup_by_device_name(name: str, precision: str, peak: float | None) -> None:
    assert peak_flops_for_name(name, precision) == peak


def test_fp32_peak_follows_matmul_precision() -> None:
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        assert precision_key("32-true") == "fp32" and peak_flops_for_name("NVIDIA H100 80GB HBM3", "32-true") == 66.9e12
        torch.set_float32_matmul_precision("high")
        assert precision_key("32-true") == "tf32" and peak_flops_for_name("NVIDIA H100 80GB HBM3", "32-true") == 494.7e12
    finally:
        torch.set_float32_matmul_precision(before)
    assert device_peak_flops(torch.device("cpu"), "bf16-mixed") is None


def test_logs_samples_per_second_and_counted_tflops_on_cpu() -> None:
    monitor = ThroughputMonitor(log_every_n_steps=2)
    records = perf_records(fit(Module(), monitor))
    assert [s for s, _ in records] == [4, 6]  # step 2 (batch 1) was FLOP-counted: kept out of every window
    # the counted FLOPs equal an independent count of forward + backward of one batch of 4
    net = SimpleCNN(num_classes=10, in_channels=1)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(net(torch.randn(4, 1, 8, 8)), torch.arange(4)).backward()
    assert monitor.flops_per_sample == pytest.approx(counter.get_total_flops() / 4)
    for _, metrics in records:
        assert metrics["perf/samples_per_sec"] > 0
        # a sane CPU figure: above zero, far below any CPU's peak (and no MFU without a known peak)
        assert 1e-7 < metrics["perf/tflops_per_device"] < 5.0
        assert metrics["perf/tflops_per_device"] == pytest.approx(monitor.flops_per_sample * metrics["perf/samples_per_sec"] / 1e12)
        assert "perf/mfu" not in metrics and "perf/tokens_per_sec" not in metrics


def test_accumulation_logs_once_per_optimizer_step_and_uses_declared_flops() -> None:
    monitor = ThroughputMonitor(log_every_n_steps=2)
    records = perf_records(fit(Module(declared=1.0e6), monitor, accumulate=2, steps=6))
    assert [s for s, _ in records] == [2, 4, 6]  # not once per micro-batch
    assert monitor.flops_per_sample == 1.0e6
    for _, metrics in records:
        assert metrics["perf/tflops_per_device"] == pytest.approx(1.0e6 * metrics["perf/samples_per_sec"] / 1e12)


def test_first_step_marker(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    monkeypatch.setenv(FIRST_STEP_MARKER_ENV, "1")
    fit(Module(), ThroughputMonitor(log_every_n_steps=2), steps=3)
    err = capfd.readouterr().err
    assert err.count("SHIPYARD_FIRST_STEP ") == 1


class Tokens(Dataset):
    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": torch.arange(8) % 5}


class TokenModule(LightningModule):
    """A task whose throughput unit is tokens (as a language model's), with its FLOPs per token declared."""

    throughput_unit = "tokens"

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Embedding(5, 5)

    def flops_per_token(self) -> float:
        return 2.0e5

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self.net(batch["input_ids"])
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["input_ids"].flatten())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_token_unit_counts_flops_per_token() -> None:
    monitor = ThroughputMonitor(log_every_n_steps=2)
    logger = CaptureLogger()
    trainer = Trainer(accelerator="cpu", devices=1, max_steps=6, logger=logger, callbacks=[monitor],
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      limit_val_batches=0, num_sanity_val_steps=0, log_every_n_steps=1)
    trainer.fit(TokenModule(), DataLoader(Tokens(), batch_size=4))
    assert monitor.flops_per_token == 2.0e5 and monitor.flops_per_sample is None
    records = perf_records(logger)
    assert records
    for _, metrics in records:
        assert metrics["perf/tokens_per_sec"] == pytest.approx(8 * metrics["perf/samples_per_sec"])
        assert metrics["perf/tflops_per_device"] == pytest.approx(2.0e5 * metrics["perf/tokens_per_sec"] / 1e12)
