"""The session's shared strategy runs (tests/distributed/runs.py, tests/distributed/lm_runs.py)."""
from __future__ import annotations

import pytest

from tests.built_once import built_once
from tests.distributed.lm_runs import LMRuns
from tests.distributed.runs import ClassificationRuns


@pytest.fixture(scope="session")
def strategy_runs(tmp_path_factory: pytest.TempPathFactory) -> ClassificationRuns:
    """The session's shared classification training runs, each built once across xdist workers."""
    return ClassificationRuns(lambda name, build: built_once(tmp_path_factory, f"strategy_{name}", build))


@pytest.fixture(scope="session")
def lm_strategy_runs(tmp_path_factory: pytest.TempPathFactory) -> LMRuns:
    """The session's shared language-model training runs (and their token corpus), each built once."""
    return LMRuns(lambda name, build: built_once(tmp_path_factory, f"lm_strategy_{name}", build))
