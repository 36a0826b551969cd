"""The session's shared strategy runs (tests/distributed/runs.py)."""
from __future__ import annotations

import pytest

from tests.distributed.runs import Runs


@pytest.fixture(scope="session")
def strategy_runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """The session's shared training runs (see the module docstring)."""
    return Runs(tmp_path_factory.mktemp("strategies"))
