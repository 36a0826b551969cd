"""Start-up: seconds from `python train.py` to the first optimizer step, and import time of train.py's modules.

The first step is read from the marker ThroughputMonitor prints when SHIPYARD_FIRST_STEP_MARKER is set.
Baselines, measured in the same run: a plain script doing the same first step (import torch, load the
digits, build the same CNN, one AdamW step), and `import torch` alone.
"""
from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, interleaved
from trainers.callbacks.throughput import FIRST_STEP_MARKER_ENV

MARKER = re.compile(r"SHIPYARD_FIRST_STEP (\d+\.\d+)")

PLAIN_FIRST_STEP = """
import time, torch
from sklearn.datasets import load_digits
from trainers.nets.cnn import SimpleCNN
d = load_digits()
x = torch.tensor(d.images[:64], dtype=torch.float32).unsqueeze(1) / 16.0
y = torch.tensor(d.target[:64])
net = SimpleCNN(num_classes=10, in_channels=1)
opt = torch.optim.AdamW(net.parameters(), lr=0.003)
torch.nn.functional.cross_entropy(net(x), y).backward()
opt.step()
print(f"SHIPYARD_FIRST_STEP {time.time():.6f}", flush=True)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", FIRST_STEP_MARKER_ENV: "1"}


def _until_marker(cmd: list[str], timeout: float = 300.0) -> float:
    """Seconds from spawning cmd to its first-step marker; the process is killed once the marker is seen."""
    started = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            match = MARKER.search(line)
            if match:
                return float(match.group(1)) - started
            tail = (tail + [line])[-20:]
            if time.time() - started > timeout:
                break
    finally:
        proc.kill()  # SIGKILL: the preemption callback would turn SIGTERM into a checkpoint + requeue
        proc.wait()
    raise RuntimeError(f"{' '.join(cmd[:3])}: no first-step marker (exit {proc.returncode}):\n{''.join(tail)}")


def train_to_first_step(output_root: Path) -> float:
    """`python train.py +experiment=digits_cnn` (as a user runs it) until its first optimizer step."""
    return _until_marker([sys.executable, str(REPO / "train.py"), "+experiment=digits_cnn",
                          f"paths.output_root={output_root}"])


def plain_to_first_step() -> float:
    """The baseline: the same first step from a plain script."""
    return _until_marker([sys.executable, "-c", PLAIN_FIRST_STEP])


def import_seconds(module: str) -> float:
    """Wall seconds of `import module` in a fresh interpreter, minus an empty interpreter's start."""
    def run(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), check=True, capture_output=True)
        return time.perf_counter() - t0
    return run(f"import {module}") - run("pass")


def top_imports(module: str, n: int = 8) -> list[dict[str, Any]]:
    """Where `import module` spends its time: self time of `python -X importtime` summed per top-level package."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=REPO, env=_env(),
                          capture_output=True, text=True, check=True)
    per_package: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        self_us = parts[0].rsplit(":", 1)[-1].strip() if len(parts) == 3 else ""
        if not self_us.isdigit():
            continue
        package = parts[2].strip().split(".")[0]
        per_package[package] = per_package.get(package, 0.0) + int(self_us) / 1e6
    ranked = sorted(per_package.items(), key=lambda kv: -kv[1])[:n]
    return [{"module": k, "seconds": round(v, 3)} for k, v in ranked]


def bench(repeats: int = 3) -> dict[str, Any]:
    """Medians of interleaved repeats after one warm-up (file cache) of each."""
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        root = Path(tmp)
        train_to_first_step(root)
        plain_to_first_step()
        first = interleaved({"train_py": lambda: train_to_first_step(root), "plain": plain_to_first_step}, repeats)
    imports = interleaved({"trainers_run": lambda: import_seconds("trainers.run"),
                           "torch": lambda: import_seconds("torch")}, repeats)
    return {
        "first_step_seconds": {"train_py": first["train_py"]["median"], "plain_script": first["plain"]["median"],
                               "ratio": first["train_py"]["median"] / first["plain"]["median"],
                               "values": {k: v["values"] for k, v in first.items()}},
        "import_seconds": {"trainers.run": imports["trainers_run"]["median"], "torch": imports["torch"]["median"],
                           "ratio": imports["trainers_run"]["median"] / imports["torch"]["median"]},
        "slowest_imports_of_trainers_run": top_imports("trainers.run"),
        "repeats": repeats,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(bench(), indent=1))
