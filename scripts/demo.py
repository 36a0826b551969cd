"""`make demo`: the main job end to end on bundled data (train digits_cnn, print metrics and the run directory)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    """Train digits_cnn and print where its run directory is."""
    out = subprocess.run([sys.executable, "train.py", "+experiment=digits_cnn", "callbacks.progress_bar=null"],
                         cwd=REPO, text=True, capture_output=True)
    sys.stderr.write(out.stderr[-4000:] if out.returncode else "")
    if out.returncode:
        print("demo: training failed", file=sys.stderr)
        return out.returncode
    run_dir = next(line.split(": ", 1)[1] for line in out.stdout.splitlines() if line.startswith("run directory: "))
    metrics = json.loads((REPO / run_dir / "metrics.json").read_text())
    print(f"trained digits_cnn: test/acc={metrics['test/acc']:.4f} test/f1_macro={metrics['test/f1_macro']:.4f}")
    print(f"run directory: {run_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
