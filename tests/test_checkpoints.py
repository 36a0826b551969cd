"""The one checkpoint loader: best|last|PATH resolved alike everywhere; files unpickled weights-only with an
allowlist, so a planted malicious checkpoint is refused by every entry point and never runs its code."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import run_entry
from tests.exported_runs import copy_run
from tests.lifecycle.cli import serving_cli
from trainers.checkpoints import (CheckpointError, CheckpointRefused, load_checkpoint_file, load_net_state_dict,
                                  resolve_checkpoint)


class Payload:
    """A pickle whose loading runs code: it writes a marker file (what an attacker's file would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def plant(checkpoint: Path, marker: Path) -> None:
    """Replace a real checkpoint by one with the same weights plus the payload."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state["hyper_parameters"] = {"innocent": Payload(marker)}
    checkpoint.unlink()
    torch.save(state, checkpoint)


@pytest.fixture
def planted(exported_digits, tmp_path):
    """A copy of the digits run whose every checkpoint carries the payload (and no export/)."""
    run_dir = copy_run(exported_digits.run_dir, tmp_path)
    # a drift reference cached by an earlier test on the shared run was computed from the clean checkpoints:
    # drop it, or `serving monitor` answers from the cache and never reads the planted checkpoint
    shutil.rmtree(run_dir / "monitoring", ignore_errors=True)
    marker = tmp_path / "MARKER"
    for ckpt in (run_dir / "checkpoints").glob("*.ckpt"):
        plant(ckpt, marker)
    info = json.loads((run_dir / "run.json").read_text())
    info["best_checkpoint"] = str(run_dir / "checkpoints" / Path(info["best_checkpoint"]).name)
    (run_dir / "run.json").write_text(json.dumps(info))
    return run_dir, marker


def test_shipyard_checkpoints_load_weights_only(exported_digits):
    chosen = resolve_checkpoint(exported_digits.run_dir, "best")
    assert chosen.how == "best (run.json best_checkpoint)"
    state = load_checkpoint_file(chosen.path)  # a real Lightning 2.6 .ckpt: loops, callbacks, optimizer, hparams
    assert {"state_dict", "loops", "callbacks", "optimizer_states"} <= set(state)
    assert load_net_state_dict(chosen.path)
    assert resolve_checkpoint(exported_digits.run_dir, "last").path.name == "last.ckpt"
    assert resolve_checkpoint(exported_digits.run_dir, chosen.path.name).path == chosen.path


def test_best_falls_back_to_the_newest_complete_checkpoint_and_says_so(exported_digits, tmp_path):
    run_dir = copy_run(exported_digits.run_dir, tmp_path)
    info = json.loads((run_dir / "run.json").read_text())
    info.pop("best_checkpoint")
    (run_dir / "run.json").write_text(json.dumps(info))
    chosen = resolve_checkpoint(run_dir, "best")
    assert "none recorded" in chosen.how and chosen.path.parent == run_dir / "checkpoints"
    shutil.rmtree(run_dir / "checkpoints")
    with pytest.raises(CheckpointError, match="holds no complete checkpoint"):
        resolve_checkpoint(run_dir, "best")


def test_malicious_checkpoint_is_refused_by_the_loader(planted):
    run_dir, marker = planted
    best = resolve_checkpoint(run_dir, "best").path
    with pytest.raises(CheckpointRefused, match="global 'exec'"):
        load_net_state_dict(best)
    assert not marker.exists()


@pytest.mark.parametrize("entry", ["export.py", "evaluate.py", "monitor"])
def test_every_entry_point_refuses_a_malicious_checkpoint(planted, entry, tmp_path):
    run_dir, marker = planted
    if entry == "monitor":
        (tmp_path / "logs").mkdir()
        proc = serving_cli("monitor", f"reference={run_dir}", f"current={tmp_path / 'logs'}", check=False)
    else:
        proc = run_entry(entry, f"run_dir={run_dir}", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode not in (0, 3), out  # neither success nor a drift/fail verdict: refused
    assert "refused to load" in out and "global 'exec'" in out, out
    assert "Traceback" not in out, out
    assert not marker.exists(), "the checkpoint's code ran"
    assert not (run_dir / "export").exists()
