"""Session fixtures: each tabular experiment is trained ONCE per session, across xdist workers (tests/built_once.py;
real runs, full length: < 20 s each)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from tests.built_once import built_once
from tests.conftest import run_entry

QUIET = ["callbacks.progress_bar=null", "trainer.enable_model_summary=false", "logger=csv"]


@pytest.fixture(scope="session")
def tabular_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """tabular_run("tabular_diabetes_mlp") → its run directory (trained and evaluated with train.py once)."""
    def get(experiment: str) -> Path:
        root = built_once(tmp_path_factory, experiment, lambda root: run_entry(
            "train.py", f"+experiment={experiment}", f"paths.output_root={root}", "run_id=fixture", "evaluate=true",
            *QUIET))
        return root / experiment / "fixture"

    return get


def metrics_of(run_dir: Path) -> dict[str, float]:
    """metrics.json of a run."""
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="session")
def exported_tabular(tabular_run: Callable[[str], Path],
                     tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """exported_tabular("tabular_diabetes_mlp") → its .mar (export.py once per session, after evaluation)."""
    def get(experiment: str) -> Path:
        run_dir = tabular_run(experiment)
        built_once(tmp_path_factory, f"{experiment}_export", lambda _: run_entry(
            "export.py", f"run_dir={run_dir}", "version=1.0", "parity.batches=2"))
        report = json.loads((run_dir / "export" / "export.json").read_text())
        return run_dir / "export" / report["archive"]["path"]

    return get
