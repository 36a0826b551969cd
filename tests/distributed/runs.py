"""Real multi-process training runs shared by the distributed tests: one run per strategy, started on demand.

`TrainRuns` is the machinery (a `train.py` subprocess per run, built once per session across xdist workers,
its logs and seconds kept); a subclass names its experiment and each run's overrides. `ClassificationRuns`:
the same deterministic config for every strategy: a tiny BERT-style encoder (LayerNorm, no BatchNorm, no
dropout) on the bundled support tickets, 4 optimizer steps over the same global batches (1 process x 16
samples, or 2 ranks x 8 samples: ranks take every 2nd index of one seeded permutation). Equal math, so every
strategy must reach the single-process result up to float reduction order. The language-model twin is
tests/distributed/lm_runs.py.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

REPO = Path(__file__).resolve().parents[2]
NAME = "text_transformer"
STEPS = 4
GLOBAL_BATCH = 16
RTOL = 2e-3  # float reduction order across 2 ranks (gloo all-reduce / reduce-scatter) vs one process
COMMON = [
    f"+experiment={NAME}", "trainer.accelerator=cpu", "trainer.max_epochs=1", f"trainer.limit_train_batches={STEPS}",
    "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "trainer.num_sanity_val_steps=0",
    "trainer.enable_model_summary=false", "callbacks.early_stopping=null", "callbacks.progress_bar=null",
    "callbacks.throughput=null", "callbacks.lr_monitor=null", "datamodule.max_length=32",
    "evaluate=false", "model.net.dropout=0.0", "+model.net.config.hidden_dropout_prob=0.0",
    "+model.net.config.attention_probs_dropout_prob=0.0", "model.net.config.intermediate_size=256",
    "model.scheduler=null",  # constant LR: a resumed second epoch must equal an uninterrupted one
    # keep the newest state every epoch: Lightning 2.6 refreshes last.ckpt only when a top-k save happened
    "callbacks.model_checkpoint.monitor=null",
]
STRATEGIES = ("single", "ddp", "fsdp", "deepspeed_stage_1", "deepspeed_stage_2", "deepspeed_stage_3",
              "deepspeed_stage_3_offload")


def strategy_table(global_batch: int) -> dict[str, tuple[list[str], int]]:
    """strategy name → (overrides, processes): one process x global_batch, or 2 ranks x global_batch / 2."""
    runs = {"single": (["strategy=single", f"datamodule.batch_size={global_batch}"], 1)}
    for name in STRATEGIES[1:]:
        runs[name] = ([f"strategy={name}", "trainer.devices=2", f"datamodule.batch_size={global_batch // 2}"], 2)
    return runs


RUNS = strategy_table(GLOBAL_BATCH)
# resume: ZeRO-3's folder checkpoint continued for a 2nd epoch vs one process training 2 epochs straight
RESUMED = "deepspeed_stage_3_resumed"
STRAIGHT = "single_two_epochs"
MULTINODE = "ddp_two_nodes"  # DDP across two torchrun launchers (node ranks 0 and 1), one process each
RDZV_ID = "shipyard-two-nodes"
# the ddp run also tests on every row of an odd-sized test file (119 rows, batch 8 per rank): torch's
# DistributedSampler would pad rank 1's share with a repeat of row 0; the metrics must count each row once
FULL_TEST = "ddp"
ODD_TEST_ROWS = 119


def run_env() -> dict[str, str]:
    """Environment of every training subprocess: offline, one thread per rank, venv first on PATH."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           # DeepSpeed keys its op cache by the ninja it finds: the venv's first, like the Makefile
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR",
                                                  str(Path.home() / ".cache/shipyard/torch_extensions"))}
    for key in ("SHIPYARD_RUN_ID", "SLURM_JOB_ID", "TORCHELASTIC_RUN_ID", "RANK", "WORLD_SIZE", "LOCAL_RANK",
                "NODE_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)  # nothing from the test process may decide ranks or the run directory
    return env


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Run:
    """One finished training run: where it wrote, what it printed, how long it took."""

    name: str
    root: Path  # paths.output_root of this run only
    experiment: str  # the run directories' parent folder under root
    logs: list[str]
    seconds: float

    @property
    def run_dirs(self) -> list[Path]:
        return sorted(p for p in (self.root / self.experiment).iterdir() if p.is_dir())

    @property
    def run_dir(self) -> Path:
        dirs = self.run_dirs
        assert len(dirs) == 1, f"{self.name}: expected one run directory, found {dirs}"
        return dirs[0]

    def run_json(self) -> dict:
        return json.loads((self.run_dir / "run.json").read_text())


def odd_test_file(root: Path) -> Path:
    """The bundled test CSV cut to its first ODD_TEST_ROWS rows (not divisible by 2 ranks), written into root."""
    path = root / "test_odd.csv"
    lines = (REPO / "data/support_tickets/test.csv").read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:1 + ODD_TEST_ROWS]))
    return path


def _check(proc: subprocess.CompletedProcess, what: str) -> str:
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"{what} failed ({proc.returncode}):\n{out[-6000:]}")
    return out


class TrainRuns:
    """Starts each run the first time a test asks for it, once per session across xdist workers (a file lock
    in the shared basetemp, tests/built_once.py), so each costs its time once. Subclasses give `experiment`
    and `overrides`."""

    experiment: ClassVar[str]

    def __init__(self, build_once: Callable[[str, Callable[[Path], object]], Path]) -> None:
        self.build_once = build_once  # (name, build(folder)) -> the folder, built by whichever worker came first
        self.done: dict[str, Run] = {}

    def get(self, name: str) -> Run:
        """The finished run `name` (trained now if no worker has yet)."""
        if name not in self.done:
            folder = self.build_once(name, lambda folder: self._run(name, folder))
            logs = json.loads((folder / "logs.json").read_text())
            self.done[name] = Run(name, folder, self.experiment, logs["logs"], logs["seconds"])
        return self.done[name]

    def overrides(self, name: str, root: Path) -> list[str]:
        """The train.py overrides of run `name` (paths.output_root is added)."""
        raise NotImplementedError

    def launch(self, name: str, root: Path) -> list[str]:
        """Train run `name` into root; the logs of its launcher processes."""
        return [self.train(name, root, self.overrides(name, root))]

    def train(self, name: str, root: Path, overrides: list[str]) -> str:
        """One `python train.py` (Lightning starts the other ranks itself); its output."""
        # no run_id: rank 0 resolves a timestamp; the ranks Lightning starts must land in the same directory
        cmd = [sys.executable, str(REPO / "train.py"), *overrides, f"paths.output_root={root}"]
        proc = subprocess.run(cmd, cwd=REPO, env=run_env(), capture_output=True, text=True, timeout=600)
        return _check(proc, f"train.py {self.experiment} strategy={name}")

    def _run(self, name: str, folder: Path) -> None:
        started = time.time()
        logs = self.launch(name, folder)
        (folder / "logs.json").write_text(json.dumps({"logs": logs, "seconds": time.time() - started}))


class ClassificationRuns(TrainRuns):
    """The text_transformer runs of RUNS, plus the resume, full-test and two-node runs."""

    experiment = NAME

    def launch(self, name: str, root: Path) -> list[str]:
        return self._two_nodes(root) if name == MULTINODE else super().launch(name, root)

    def overrides(self, name: str, root: Path) -> list[str]:
        if name == STRAIGHT:
            extra = [*RUNS["single"][0], "trainer.max_epochs=2"]
        elif name == RESUMED:
            first = self.get("deepspeed_stage_3").run_dir / "checkpoints" / "last.ckpt"
            extra = [*RUNS["deepspeed_stage_3"][0], "trainer.max_epochs=2", f"ckpt_path={first}"]
        else:
            extra = RUNS[name][0]
        if name == FULL_TEST:
            extra = [*extra, f"datamodule.test_file={odd_test_file(root)}", "trainer.limit_test_batches=1.0"]
        return [*COMMON, *extra]

    def _two_nodes(self, root: Path) -> list[str]:
        port = free_port()
        args = [*COMMON, "strategy=ddp", "trainer.devices=1", "trainer.num_nodes=2",
                f"datamodule.batch_size={GLOBAL_BATCH // 2}", f"paths.output_root={root}"]
        procs = []
        for node_rank in (0, 1):
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={node_rank}",
                   "--nproc_per_node=1", "--master_addr=127.0.0.1", f"--master_port={port}",
                   f"--rdzv_id={RDZV_ID}", str(REPO / "train.py"), *args]
            procs.append(subprocess.Popen(cmd, cwd=REPO, env=run_env(), stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
        logs = []
        for node_rank, proc in enumerate(procs):
            try:
                out, _ = proc.communicate(timeout=600)
            except subprocess.TimeoutExpired:
                for p in procs:
                    p.kill()
                raise
            logs.append(_check(subprocess.CompletedProcess(proc.args, proc.returncode, out, ""),
                               f"torchrun launcher node_rank={node_rank}"))
        return logs
