"""Training overhead: optimizer steps/s of train.py's path (trainers.run.train) vs a hand-written PyTorch loop
and vs a bare Lightning Trainer (no callbacks, loggers, progress bar or checkpoints; a loss-only module).

All three run in this process on the same composed config: the same net (same seed), optimizer, scheduler,
datamodule loader (same batches, same order), batch size, precision and number of steps, interleaved
(A B C A B C ...) so that the shared machine's load hits each alike; medians. Steady state only: the window
opens after `warmup` optimizer steps and closes at the last. Validation and the epoch-end checkpoints
(best + last), which the hand-written loop does not do, are kept out of the window and reported on their
own (`epoch_end_seconds`): they are a cost per epoch, not per step. Shipyard's own per-step cost is
`overhead_ms_per_step` = Shipyard's step time minus bare Lightning's (target <= 0.3 ms).
"""
from __future__ import annotations

import json
import statistics
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
EPOCH_END: dict[str, list[float | None]] = {"digits_cnn": [], "text_transformer": []}  # Shipyard's runs: s per epoch end


class StepTimer(Callback):
    """Seconds of training between the end of optimizer step `warmup_steps` and the last step.

    Paused from each validation start to the next training epoch start: validation, then the checkpoints
    that ModelCheckpoint writes in on_train_epoch_end (Lightning runs checkpoint callbacks after every other
    callback's and the module's hook, so a pause that ended in this callback's on_train_epoch_end timed them).
    """

    def __init__(self, warmup_steps: int, out: str) -> None:
        self.warmup_steps = warmup_steps
        self.out = Path(out)
        self.t0: float | None = None
        self.paused = 0.0
        self.pauses = 0
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
            self.out.write_text(json.dumps({"seconds": seconds, "steps": steps, "paused": self.paused,
                                            "epoch_end_seconds": self.paused / self.pauses if self.pauses else None}))

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.t0 is not None and not trainer.sanity_checking:
            self._pause_start = self._now(trainer)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # validation, the epoch-end hooks and both checkpoint saves are behind us: resume the clock
        if self._pause_start is not None:
            self.paused += time.perf_counter() - self._pause_start
            self.pauses += 1
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
    EPOCH_END[experiment].append(result["epoch_end_seconds"])
    return result["steps"] / result["seconds"]


class BareModule(LightningModule):
    """The least a LightningModule does: the net's loss, the configured optimizer and scheduler."""

    def __init__(self, net: torch.nn.Module, optimizer: Any, scheduler: Any, label_smoothing: float) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.loss_fn(self.net(**{k: v for k, v in batch.items() if k != "labels"}), batch["labels"])

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer),
                                                         "interval": "epoch"}}


def bare_lightning_steps_per_s(experiment: str, root: Path, tag: str, extra: list[str] = ()) -> float:
    """A bare Lightning Trainer on the same parts: no callbacks but the timer, no logger, bar, checkpoint or validation."""
    from hydra.utils import instantiate

    warmup, timed = STEPS[experiment]
    cfg, datamodule, net, _ = plain_parts(experiment, ["run_id=bench_bare", *extra], root)
    scheduler = instantiate(cfg.model.scheduler) if cfg.model.get("scheduler") else None
    module = BareModule(net, instantiate(cfg.model.optimizer), scheduler, cfg.model.label_smoothing)
    out = root / f"timer_{tag}.json"
    trainer = Trainer(accelerator=cfg.trainer.accelerator, devices=1, precision=cfg.trainer.precision,
                      max_steps=warmup + timed, max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0,
                      logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, callbacks=[StepTimer(warmup, str(out))], default_root_dir=str(root))
    trainer.fit(module, train_dataloaders=datamodule.train_dataloader())
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
    """Interleaved repeats of the plain loop, bare Lightning and Shipyard per experiment; ratios of medians.

    Targets: Shipyard >= 0.97 of the plain loop (text_transformer), Shipyard >= 0.97 of bare Lightning and
    Shipyard's own cost above bare Lightning <= 0.3 ms per step (digits_cnn, whose step is short enough to
    show a fixed per-step cost).
    """
    if steps:
        STEPS.update(steps)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        root = Path(tmp)
        for experiment in experiments:
            counter = iter(range(10**6))
            EPOCH_END[experiment] = []
            plain_steps_per_s(experiment, root)  # warm-up: imports, allocator, thread pools
            runs = interleaved({
                "plain": lambda: plain_steps_per_s(experiment, root),
                "bare_lightning": lambda: bare_lightning_steps_per_s(experiment, root, f"bare_{next(counter)}"),
                "shipyard": lambda: ours_steps_per_s(experiment, root, f"{experiment}_{next(counter)}"),
            }, repeats)
            warmup, timed = STEPS[experiment]
            plain, bare, ours = (runs[k]["median"] for k in ("plain", "bare_lightning", "shipyard"))
            epoch_end = [x for x in EPOCH_END[experiment] if x is not None]
            results[experiment] = {
                "plain_steps_per_s": plain, "bare_lightning_steps_per_s": bare, "shipyard_steps_per_s": ours,
                "ratio": ours / plain, "target": 0.97,
                "ratio_vs_bare_lightning": ours / bare, "bare_lightning_vs_plain": bare / plain,
                "overhead_ms_per_step": 1000.0 / ours - 1000.0 / bare, "overhead_target_ms": 0.3,
                "step_ms": {"plain": 1000.0 / plain, "bare_lightning": 1000.0 / bare, "shipyard": 1000.0 / ours},
                # validation + best/last checkpoint saves, once per epoch, outside the per-step window
                "epoch_end_seconds": statistics.median(epoch_end) if epoch_end else None,
                "warmup_steps": warmup, "timed_steps": timed, "repeats": repeats,
                "values": {k: runs[k]["values"] for k in runs},
            }
    return results


if __name__ == "__main__":
    print(json.dumps(bench(), indent=1))
