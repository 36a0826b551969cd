"""Preemption-safe training: a signal only sets a flag; the next step boundary saves, requeues and exits.

Slurm sends SIGUSR1 before the time limit (`#SBATCH --signal=B:USR1@N`, forwarded to every task by the
batch script), submitit sends SIGUSR2, a preempting scheduler or `kill` sends SIGTERM. The handler does
nothing but record the signal (anything more is unsafe inside a handler and would race the training
step). After every optimizer step the ranks agree (all_reduce of the flag: a signal seen by any rank
counts for all), save one checkpoint together (atomic: `AtomicCheckpointIO` for files, staged folders
with a COMPLETE marker for sharded strategies), rank 0 requeues the Slurm job (`scontrol requeue`), and
every rank exits. The requeued job runs with `resume=auto`, finds the newest complete checkpoint of the
same run directory and continues the same TensorBoard run. Outside Slurm: save and exit, no requeue.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from core.rundir import RunDir
from trainers.rundir import atomic_write_json, now_iso, read_json

DEFAULT_SIGNALS = ("SIGUSR1", "SIGUSR2", "SIGTERM", "SIGINT")  # SIGINT: Ctrl-C saves too (never requeues)
CHECKPOINT_PREFIX = "preempted-step"


class Preempted(SystemExit):
    """Raised on every rank once the preemption checkpoint is saved (and the job requeued)."""


def slurm_job_id() -> str | None:
    """The id `scontrol requeue` takes: `<array>_<task>` for array jobs, else SLURM_JOB_ID."""
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def requeue_slurm_job(job_id: str) -> tuple[bool, str]:
    """`scontrol requeue JOB`: Slurm stops every task and starts the job again (same id, same run_id)."""
    if not re.fullmatch(r"[0-9]+(_[0-9]+)?", job_id):
        return False, f"not a Slurm job id: {job_id!r}"
    try:
        proc = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, str(err)
    return proc.returncode == 0, (proc.stderr or proc.stdout).strip()


def resume_command(run_id: str) -> str:
    """The command line that continues this run: this one's arguments with its run_id and resume=auto."""
    args = [a for a in sys.argv[1:] if not a.startswith(("run_id=", "resume="))]
    return " ".join(["python", Path(sys.argv[0]).name, *args, f"run_id={run_id}", "resume=auto"])


class Preemption(Callback):
    """SIGUSR1/SIGUSR2/SIGTERM → checkpoint at the next optimizer step on every rank → requeue (Slurm) → exit."""

    def __init__(self, checkpoint_dir: str, signals: Sequence[str] = DEFAULT_SIGNALS, requeue: bool = True) -> None:
        names = [str(s).upper() for s in signals]
        unknown = [n for n in names if not isinstance(getattr(signal, n, None), signal.Signals)]
        if unknown:
            raise ValueError(f"callbacks.preemption.signals: unknown signal(s) {unknown}; use names like SIGUSR1, SIGTERM")
        self.checkpoint_dir = Path(checkpoint_dir)
        self.signals = [signal.Signals[n] for n in names]
        self.requeue = requeue
        self.received: int = 0  # signal number, 0 = none
        self._previous: dict[signal.Signals, Any] = {}
        if "SLURM_JOB_ID" in os.environ:
            # in a job, from now on: a warning that lands during data setup must not kill the task
            # (outside jobs only from fit's setup: building callbacks in-process has no side effects)
            self._install()

    # ------------------------------------------------------------------ signal handling
    def _on_signal(self, signum: int, frame: Any) -> None:
        self.received = int(signum)  # only a flag: the training loop acts on it at a step boundary

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only
        for sig in self.signals:
            previous = signal.signal(sig, self._on_signal)
            self._previous.setdefault(sig, previous)

    def _restore(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            self._install()  # a signal during setup or the sanity check is kept, not fatal

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning installed its own SIGTERM (and, on Slurm, SIGUSR1 requeue) handlers after setup: they would
        # broadcast inside the handler and requeue without agreement. Ours own the signals during training.
        self._install()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            self._restore()

    # ------------------------------------------------------------------ the step boundary
    def _agreed_signal(self, trainer: Trainer) -> int:
        """The signal any rank received (max over ranks); every rank calls this at the same step."""
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            flag = torch.tensor([self.received], dtype=torch.int64, device=trainer.strategy.root_device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            return int(flag.item())
        return self.received

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        accumulating = ((batch_idx + 1) % trainer.accumulate_grad_batches != 0
                        and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)
        if accumulating:
            return  # a checkpoint between micro-batches would lose the accumulated gradients
        signum = self._agreed_signal(trainer)
        if signum:
            self._save_and_exit(trainer, signal.Signals(signum))

    def _save_and_exit(self, trainer: Trainer, sig: signal.Signals) -> None:
        path = self.checkpoint_dir / f"{CHECKPOINT_PREFIX}{trainer.global_step:07d}.ckpt"
        trainer.save_checkpoint(path)  # all ranks take part; returns after the strategy's barrier
        job_id = slurm_job_id() if sig != signal.SIGINT else None  # Ctrl-C stops the run: no requeue
        requeued, detail = False, f"resume with: {resume_command(self.checkpoint_dir.parent.name)}"
        if trainer.is_global_zero:
            for old in self.checkpoint_dir.glob(f"{CHECKPOINT_PREFIX}*.ckpt"):
                if old != path:  # the newest preemption checkpoint is the only one resume needs
                    shutil.rmtree(old) if old.is_dir() else old.unlink()
            if job_id and self.requeue:
                requeued, detail = requeue_slurm_job(job_id)
                if not requeued:
                    rank_zero_warn(f"preemption: `scontrol requeue {job_id}` failed ({detail}); was the job "
                                   "submitted with --requeue? The checkpoint is saved; resubmit to continue.")
            self._record(trainer, sig, path, job_id, requeued, detail)
        if trainer.is_global_zero:  # one line on the console (not through logging: its handlers may repeat it)
            print(f"preemption: {sig.name} at step {trainer.global_step}: saved {path}"
                  + (f", requeued Slurm job {job_id}" if requeued else f" ({detail})"), file=sys.stderr, flush=True)
        raise Preempted(0 if job_id and self.requeue else 128 + int(sig))

    def _record(self, trainer: Trainer, sig: signal.Signals, path: Path, job_id: str | None, requeued: bool,
                detail: str) -> None:
        run_json = RunDir(self.checkpoint_dir.parent).info_path
        if not run_json.exists():
            return
        info = read_json(run_json)
        info.setdefault("preemptions", []).append({
            "time": now_iso(), "signal": sig.name, "global_step": trainer.global_step, "epoch": trainer.current_epoch,
            "checkpoint": str(path), "slurm_job_id": job_id, "requeued": requeued, "detail": detail,
        })
        atomic_write_json(run_json, info)
