"""`make demo`: the main job end to end on bundled data.

train digits_cnn → export (TorchScript + torch.export, parity checked) → package v1.0 (.mar) → start a
real TorchServe (instance `demo-<run id>`, token auth on) → predict the PNG digits in data/digits_samples/ over
HTTP with the inference token → print the answers → stop the server (always, also on failure).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "data" / "digits_samples"
sys.path.insert(0, str(REPO))

from core.rundir import RunDir  # noqa: E402  (after the path insert: the demo runs as a script)


def run(step: str, *args: str) -> str:
    """Run an entry point; on failure print its output tail and exit with its code."""
    out = subprocess.run([sys.executable, *args], cwd=REPO, text=True, capture_output=True)
    if out.returncode:
        sys.stderr.write(out.stdout[-2000:] + out.stderr[-4000:])
        print(f"demo: {step} failed (exit {out.returncode})", file=sys.stderr)
        raise SystemExit(out.returncode)
    return out.stdout


def train() -> Path:
    """Train digits_cnn; return its run directory."""
    stdout = run("training", "train.py", "+experiment=digits_cnn", "callbacks.progress_bar=null")
    run_dir = REPO / next(line.split(": ", 1)[1] for line in stdout.splitlines() if line.startswith("run directory: "))
    metrics = RunDir(run_dir).read_metrics()
    print(f"trained digits_cnn: test/acc={metrics['test/acc']:.4f} test/f1_macro={metrics['test/f1_macro']:.4f}")
    print(f"run directory: {run_dir}")
    return run_dir


def export(run_dir: Path) -> Path:
    """Export with parity and package version 1.0; return the .mar."""
    run("export", "export.py", f"run_dir={run_dir}", "version=1.0")
    report = json.loads(RunDir(run_dir).export_json_path.read_text())
    for target, info in report["targets"].items():
        parity = info.get("parity") or {}
        print(f"export {target}: {info['status']}"
              + (f" (max abs diff {parity['max_abs_diff']:.2g}, argmax agreement {parity['argmax_agreement']:.4f})"
                 if parity else ""))
    mar = RunDir(run_dir).export_dir / report["archive"]["path"]
    print(f"archive: {mar}")
    return mar


def serve_and_predict(mar: Path, instance_name: str) -> int:
    """Start TorchServe with the archive, predict every sample digit over HTTP, always stop it."""
    from serving.torchserve.client import ServingError
    from serving.torchserve.server import TorchServeInstance
    from serving.torchserve.server_config import compose_serve_config

    # one server instance per demo run: its model store never holds another run's digits_cnn 1.0
    instance = TorchServeInstance(compose_serve_config([f"instance={instance_name}"]))
    samples = sorted(SAMPLES.glob("*.png"))
    correct = 0
    try:
        [info] = instance.start([mar])
        print(f"TorchServe up: {info.name} {info.version} READY ({instance.dir}); predicting {len(samples)} digits")
        client = instance.client()
        for path in samples:
            resp = client.predict(info.name, path.read_bytes(), content_type="image/png")
            answer = resp.json()
            if resp.status_code != 200:
                raise ServingError(f"{path.name}: HTTP {resp.status_code} {answer}")
            expected = path.stem.rsplit("digit", 1)[1]
            correct += answer["label"] == expected
            print(f"  {path.name}: {answer['label']} (p={answer['probability']:.3f}, expected {expected})")
        print(f"{correct}/{len(samples)} sample digits right")
    except ServingError as err:
        print(f"demo: serving failed: {err}", file=sys.stderr)
        return 1
    finally:
        instance.stop(quiet=True)
        print("TorchServe stopped")
    return 0


def main() -> int:
    """Train, export, serve, predict, stop."""
    run_dir = train()
    return serve_and_predict(export(run_dir), f"demo-{run_dir.name}")


if __name__ == "__main__":
    raise SystemExit(main())
