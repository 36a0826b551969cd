"""Lifecycle fixtures: the serving fixtures' tiny exported runs, plus a second version of the digits model."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.built_once import built_once
from tests.conftest import run_entry
from tests.exported_runs import ExportedRun, exported_run


@pytest.fixture(scope="session")
def digits_v2(exported_digits: ExportedRun, tmp_path_factory: pytest.TempPathFactory) -> ExportedRun:
    """The same trained run exported again as version 2.0 (a second immutable registry/serving version)."""
    def build(root: Path) -> None:
        dest = root / "digits_cnn" / "v2run"
        shutil.copytree(exported_digits.run_dir, dest, ignore=shutil.ignore_patterns("export", "monitoring"))
        run_entry("export.py", f"run_dir={dest}", "version=2.0", "parity.batches=1", "targets=[torchscript]")

    return exported_run(built_once(tmp_path_factory, "digits_v2", build) / "digits_cnn" / "v2run")


def grep_tree(root: Path, secrets: dict[str, str], allowed: set[Path]) -> list[str]:
    """Files under root (other than `allowed`) that contain any secret value: '<file>: <secret name>'."""
    hits = []
    for path in root.rglob("*"):
        if not path.is_file() or path in allowed:
            continue
        data = path.read_bytes()
        hits += [f"{path}: {name}" for name, value in secrets.items() if value.encode() in data]
    return hits


@pytest.fixture(scope="session")
def stack(tmp_path_factory, exported_digits, digits_v2):
    """The shared TorchServe + gateway stack of the test_gateway_*.py modules (tests/lifecycle/gateway_stack.py),
    its background traffic running; `stack.close()` ends it early once no later test needs it."""
    from contextlib import ExitStack

    from tests.conftest import require_service
    from tests.lifecycle.gateway_stack import open_stack
    from tests.serving.servers import require_torchserve

    require_service(shutil.which("nginx") is not None, "nginx is not installed (scripts/services.sh up)")
    require_torchserve()
    with ExitStack() as cleanup:
        shared = cleanup.enter_context(open_stack(tmp_path_factory, exported_digits, digits_v2))
        shared.close = cleanup.close
        yield shared
