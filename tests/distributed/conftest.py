"""The session's shared strategy runs (tests/distributed/runs.py)."""
from __future__ import annotations

import pytest

from tests.built_once import built_once
from tests.distributed.runs import Runs


@pytest.fixture(scope="session")
def strategy_runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """The session's shared training runs (see the module docstring), each built once across xdist workers."""
    return Runs(lambda name, build: built_once(tmp_path_factory, f"strategy_{name}", build))
