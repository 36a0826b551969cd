"""Run Python code in a child interpreter where the project and the training stack cannot be imported.

`python -I` drops PYTHONPATH, the cwd and user site-packages from sys.path; a meta-path finder
installed before anything else refuses the listed top-level packages even if some path still
reaches them. What is left is what a stock TorchServe host has: torch, PIL, tokenizers, ts.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BLOCKED_TRAINING = ("lightning", "pytorch_lightning", "lightning_fabric", "hydra", "omegaconf",
                    "datamodules", "trainers", "serving", "evaluation", "tests")
BLOCKED_SERVING_HOST = BLOCKED_TRAINING + ("transformers", "torchvision", "sklearn", "pandas", "deepspeed")

PRELUDE = '''
import importlib.abc, sys
BLOCKED = set({blocked!r})

class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked in this interpreter (isolation test)")
        return None

sys.meta_path.insert(0, _Blocker())
for _name in list(sys.modules):
    if _name.split(".")[0] in BLOCKED:
        del sys.modules[_name]
'''


def run_isolated(code: str, blocked: tuple[str, ...] = BLOCKED_TRAINING, cwd: Path | None = None,
                 timeout: int = 180) -> subprocess.CompletedProcess:
    """Run `code` under `python -I` with `blocked` packages unimportable; asserts a zero exit."""
    script = PRELUDE.format(blocked=tuple(blocked)) + "\n" + code
    proc = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(Path.home())})
    assert proc.returncode == 0, f"isolated child failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc
