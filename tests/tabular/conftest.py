"""Session fixtures: each tabular experiment is trained ONCE per session (real runs, full length: < 20 s each)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import run_entry

QUIET = ["callbacks.progress_bar=null", "trainer.enable_model_summary=false", "logger=csv"]


@pytest.fixture(scope="session")
def tabular_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """tabular_run("tabular_diabetes_mlp") → its run directory (trained and evaluated with train.py once)."""
    root = tmp_path_factory.mktemp("tabular_runs")
    done: dict[str, Path] = {}

    def get(experiment: str) -> Path:
        if experiment not in done:
            run_entry("train.py", f"+experiment={experiment}", f"paths.output_root={root}", "run_id=fixture",
                      "evaluate=true", *QUIET)
            done[experiment] = root / experiment / "fixture"
        return done[experiment]

    return get


def metrics_of(run_dir: Path) -> dict[str, float]:
    """metrics.json of a run."""
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="session")
def exported_tabular(tabular_run: Callable[[str], Path]) -> Callable[[str], Path]:
    """exported_tabular("tabular_diabetes_mlp") → its .mar (export.py once per session, after evaluation)."""
    done: dict[str, Path] = {}

    def get(experiment: str) -> Path:
        if experiment not in done:
            run_dir = tabular_run(experiment)
            run_entry("export.py", f"run_dir={run_dir}", "version=1.0", "parity.batches=2")
            report = json.loads((run_dir / "export" / "export.json").read_text())
            done[experiment] = run_dir / "export" / report["archive"]["path"]
        return done[experiment]

    return get
