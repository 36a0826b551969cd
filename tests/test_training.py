"""Real training runs: accuracy target, resume equality, atomic checkpoints, clear resume errors."""
from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import run_entry
from trainers.rundir import is_complete_checkpoint, newest_complete_checkpoint, resolve_resume_checkpoint


@pytest.mark.slow
def test_digits_cnn_reaches_095_test_accuracy(tmp_path):
    run_entry("train.py", "+experiment=digits_cnn", f"paths.output_root={tmp_path}", "run_id=acc")
    run_dir = tmp_path / "digits_cnn" / "acc"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test/acc"] >= 0.95, metrics
    info = json.loads((run_dir / "run.json").read_text())
    assert info["best_checkpoint"] and is_complete_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert info["task"] == "classification"  # every later layer looks its per-task module up by this name
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.slow
def test_resume_gives_the_same_final_weights(tmp_path):
    common = ["+experiment=digits_cnn", f"paths.output_root={tmp_path}", "test_after_fit=false",
              "callbacks.early_stopping=null", "trainer.limit_train_batches=6", "trainer.limit_val_batches=2",
              "model.scheduler.T_max=2"]  # the schedule must not depend on where the first attempt stops
    run_entry("train.py", *common, "run_id=straight", "trainer.max_epochs=2")
    run_entry("train.py", *common, "run_id=split", "trainer.max_epochs=1")
    run_entry("train.py", *common, "run_id=split", "trainer.max_epochs=2", "resume=auto")
    last = {run: torch.load(tmp_path / "digits_cnn" / run / "checkpoints" / "last.ckpt", map_location="cpu",
                            weights_only=False) for run in ("straight", "split")}
    for ckpt in last.values():  # last.ckpt holds the end of epoch 2 (12 steps), not a stale earlier state
        assert (ckpt["epoch"], ckpt["global_step"]) == (1, 12)
    a, b = last["straight"]["state_dict"], last["split"]["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    info = json.loads((tmp_path / "digits_cnn" / "split" / "run.json").read_text())
    assert info["attempts"][1]["resumed_from"].endswith(".ckpt")
    # the resumed run kept its top-k bookkeeping: no stale best of the first attempt beside the new one
    files = {run: sorted(p.name for p in (tmp_path / "digits_cnn" / run / "checkpoints").iterdir())
             for run in ("straight", "split")}
    assert files["split"] == files["straight"], files


def test_truncated_checkpoint_is_never_chosen_and_is_a_clear_error(tmp_path):
    ckpt_dir = tmp_path / "checkpoints"
    ckpt_dir.mkdir()
    torch.save({"state_dict": {"w": torch.ones(3)}}, ckpt_dir / "epoch000.ckpt")
    good = (ckpt_dir / "epoch000.ckpt").read_bytes()
    (ckpt_dir / "last.ckpt").write_bytes(good[: len(good) // 2])  # a kill mid-write (non-atomic writer)
    assert newest_complete_checkpoint(tmp_path) == ckpt_dir / "epoch000.ckpt"
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        resolve_resume_checkpoint(tmp_path, str(ckpt_dir / "last.ckpt"), None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_resume_checkpoint(tmp_path, str(tmp_path / "nope.ckpt"), None)


def test_atomic_checkpoint_io_leaves_no_partial_file_on_failure(tmp_path, monkeypatch):
    from trainers.checkpoint_io import AtomicCheckpointIO

    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"a": torch.zeros(2)}, target)
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        AtomicCheckpointIO().save_checkpoint({"a": torch.ones(1000)}, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_missing_checkpoint_on_cli_is_a_clear_error(tmp_path):
    proc = run_entry("train.py", "+experiment=digits_cnn", f"paths.output_root={tmp_path}",
                     f"ckpt_path={tmp_path}/missing.ckpt", check=False)
    assert proc.returncode != 0 and "missing.ckpt does not exist" in proc.stderr
