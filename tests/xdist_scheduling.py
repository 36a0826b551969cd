"""How `make test`'s xdist workers split the suite: by file, files that share a live stack together, slowest first.

--dist loadfile alone has two faults here. It sorts files by their number of tests, so a 200-second file with
one test could start last and leave the other worker idle for minutes; and it may split the test_gateway_*.py
modules across workers, while they share one running TorchServe + nginx stack (tests/lifecycle/gateway_stack.py)
that the token module stops once no later module of its worker needs it. This scheduler keeps those modules
one work unit (in file order) and hands out the slowest units first (longest-processing-time-first).
"""
from __future__ import annotations

from collections import OrderedDict

import pytest

# path prefix -> one work unit: the modules share a session fixture that cannot cross processes
SHARED_UNITS = {"tests/lifecycle/test_gateway_": "tests/lifecycle/test_gateway_*.py"}
# the slowest units, slowest first (seconds measured by `make test` with --durations); the rest follow in file order
SLOWEST = [
    "tests/lifecycle/test_gateway_*.py",
    "tests/distributed/test_consolidate.py",
    "tests/distributed/test_strategies.py",
    "tests/distributed/test_lm_strategies.py",
    "tests/test_gpu_check.py",
    "tests/test_demo.py",
    "tests/slurm/test_preemption.py",
    "tests/serving/test_malformed.py",
    "tests/lm/test_lm_export.py",
    "tests/test_training.py",
]


def unit_of(nodeid: str) -> str:
    """The work unit of a test id: its file, or the shared unit its file belongs to."""
    path = nodeid.split("::", 1)[0]
    return next((unit for prefix, unit in SHARED_UNITS.items() if path.startswith(prefix)), path)


def rank_of(unit: str) -> int:
    """Position in the hand-out order: the listed slow units first, in their order."""
    return SLOWEST.index(unit) if unit in SLOWEST else len(SLOWEST)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """The scheduler of `make test` (used whenever xdist distributes with --dist loadfile)."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SlowestFirstFileScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

        def _assign_work_unit(self, node) -> None:
            # the first hand-out sees the whole queue: reorder it once (a stable sort, so the rest keep file
            # order); the workers' collections stay as they are, since work is sent as indexes into them
            if not getattr(self, "_ordered", False):
                self.workqueue = OrderedDict(sorted(self.workqueue.items(), key=lambda unit: rank_of(unit[0])))
                self._ordered = True
            super()._assign_work_unit(node)

    config.option.loadscopereorder = False  # the order above, not "most tests first"
    return SlowestFirstFileScheduling(config, log)
