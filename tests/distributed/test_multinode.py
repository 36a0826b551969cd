"""Two `torchrun` launchers (node ranks 0 and 1) on one machine train one run with trainer.num_nodes=2."""
from __future__ import annotations

import json
import re

import pytest

from tests.distributed.runs import MULTINODE, RDZV_ID, STEPS
from trainers.rundir import is_complete_checkpoint

# Lightning prints this on every rank when it joins the process group
JOINED = re.compile(r"Initializing distributed: GLOBAL_RANK: (\d+), MEMBER: (\d+)/(\d+)")


@pytest.mark.slow
def test_two_launchers_train_one_run_with_both_node_ranks(strategy_runs):
    run = strategy_runs.get(MULTINODE)
    node0, node1 = run.logs
    # rank-specific evidence: each launcher's process joined as its own global rank of a world of 2
    assert {m.groups() for m in JOINED.finditer(node0)} == {("0", "1", "2")}, node0[-3000:]
    assert {m.groups() for m in JOINED.finditer(node1)} == {("1", "2", "2")}, node1[-3000:]
    # ranks came from torchrun: Lightning started no process of its own (it would log a second rank per node)
    assert "train_ddp_process" not in node0 + node1
    assert "run directory:" in node0 and "metrics:" in node0 and "metrics:" not in node1  # rank 0 reports

    assert run.run_dir.name == f"torchrun-{RDZV_ID}"  # both nodes resolved the same run id from torchrun's
    info = run.run_json()
    assert len(info["attempts"]) == 1 and info["global_step"] == STEPS
    assert info["cost"]["nodes"] == 2 and info["cost"]["devices"] == 1
    assert info["cost"]["device_hours"] == pytest.approx(2 * info["attempts"][0]["cost"]["hours"], rel=1e-6)
    assert (run.run_dir / "config.yaml").is_file() and json.loads((run.run_dir / "metrics.json").read_text())
    assert is_complete_checkpoint(run.run_dir / "checkpoints" / "last.ckpt")
