"""Training overhead: optimizer steps/s of train.py's path (trainers.run.train) vs a hand-written PyTorch loop.

Both run in this process on the same composed config: the same net (same seed), optimizer, scheduler,
datamodule loader (same batches, same order), batch size, precision and number of steps. Steady state only:
the window opens after `warmup` optimizer steps and closes at the last; validation (and the checkpoint
saved right after it), which the hand-written loop does not do, is kept out of our window.
"""
from __future__ import annotations

import json
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from benchmarks.common import interleaved, plain_parts
from trainers.compose import compose_train

# per experiment: warm-up steps (about one epoch) and timed steps
STEPS: dict[str, tuple[int, int]] = {"digits_cnn": (20, 160), "text_transformer": (11, 55)}  # whole epochs (20, 11 batches)


class StepTimer(Callback):
    """Seconds of training between the end of optimizer step `warmup_steps` and the last step, validation excluded."""

    def __init__(self, warmup_steps: int, out: str) -> None:
        self.warmup_steps = warmup_steps
        self.out = Path(out)
        self.t0: float | None = None
        self.paused = 0.0
        self._pause_start: float | None = None

    def _now(self, trainer: Trainer) -> float:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize(trainer.strategy.root_device)
        return time.perf_counter()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if trainer.global_step == self.warmup_steps and self.t0 is None:
            self.t0 = self._now(trainer)
        elif trainer.global_step == trainer.max_steps and self.t0 is not None:
            seconds = self._now(trainer) - self.t0 - self.paused
            steps = trainer.max_steps - self.warmup_steps
            self.out.write_text(json.dumps({"seconds": seconds, "steps": steps, "paused": self.paused}))

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.t0 is not None and not trainer.sanity_checking:
            self._pause_start = self._now(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # validation runs just before the epoch ends; ModelCheckpoint saves at its end: resume here
        if self._pause_start is not None:
            self.paused += time.perf_counter() - self._pause_start
            self._pause_start = None


def ours_steps_per_s(experiment: str, root: Path, tag: str, extra: list[str] = ()) -> float:
    """Steady-state steps/s of `trainers.run.train` on the composed experiment (callbacks, loggers as configured)."""
    from trainers.run import train

    warmup, timed = STEPS[experiment]
    out = root / f"timer_{tag}.json"
    cfg = compose_train([
        f"+experiment={experiment}", f"run_id=bench_{tag}", f"trainer.max_steps={warmup + timed}",
        "trainer.max_epochs=100000", "test_after_fit=false", "evaluate=false",
        # never stop early (conf: strict=false, a max_steps inside an epoch ends before its validation)
        "callbacks.early_stopping.patience=100000",
        "+callbacks.bench_timer._target_=benchmarks.training_overhead.StepTimer",
        f"+callbacks.bench_timer.warmup_steps={warmup}", f"+callbacks.bench_timer.out={out}", *extra,
    ], root)
    train(cfg)
    result = json.loads(out.read_text())
    return result["steps"] / result["seconds"]


def plain_steps_per_s(experiment: str, root: Path, extra: list[str] = ()) -> float:
    """The same work as a hand-written loop: net, optimizer, scheduler and loader built from the same config."""
    from hydra.utils import instantiate

    warmup, timed = STEPS[experiment]
    cfg, datamodule, net, optimizer = plain_parts(experiment, ["run_id=bench_plain", *extra], root)
    scheduler = instantiate(cfg.model.scheduler)(optimizer=optimizer) if cfg.model.get("scheduler") else None
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.model.label_smoothing)
    precision = str(cfg.trainer.precision)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if "bf16" in precision else nullcontext()
    loader = datamodule.train_dataloader()
    net.train()
    step, total, t0 = 0, warmup + timed, 0.0
    while step < total:
        for batch in loader:
            labels = batch["labels"]
            with autocast:
                loss = loss_fn(net(**{k: v for k, v in batch.items() if k != "labels"}), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step == warmup:
                t0 = time.perf_counter()
            if step == total:
                break
        if scheduler is not None:
            scheduler.step()  # the configs step per epoch
    return timed / (time.perf_counter() - t0)


def bench(experiments: tuple[str, ...] = ("digits_cnn", "text_transformer"), repeats: int = 5,
          steps: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """Interleaved repeats of ours and the plain loop per experiment; ratio of medians (target ≥ 0.97)."""
    if steps:
        STEPS.update(steps)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        root = Path(tmp)
        for experiment in experiments:
            counter = iter(range(10**6))
            plain_steps_per_s(experiment, root)  # warm-up: imports, allocator, thread pools
            runs = interleaved({
                "plain": lambda: plain_steps_per_s(experiment, root),
                "shipyard": lambda: ours_steps_per_s(experiment, root, f"{experiment}_{next(counter)}"),
            }, repeats)
            warmup, timed = STEPS[experiment]
            results[experiment] = {
                "plain_steps_per_s": runs["plain"]["median"], "shipyard_steps_per_s": runs["shipyard"]["median"],
                "ratio": runs["shipyard"]["median"] / runs["plain"]["median"], "target": 0.97,
                "warmup_steps": warmup, "timed_steps": timed, "repeats": repeats,
                "values": {"plain": runs["plain"]["values"], "shipyard": runs["shipyard"]["values"]},
            }
    return results


if __name__ == "__main__":
    print(json.dumps(bench(), indent=1))
