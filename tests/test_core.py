"""core/: atomic writes honour the umask (secrets stay private); RunDir is the one map of a run directory."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core.atomic import atomic_copy, atomic_write_json, atomic_write_text
from core.rundir import RunDir, RunDirError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set a umask for one test and restore the previous one."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    assert _mode(atomic_write_text(tmp_path / "a" / "config.yaml", "x: 1\n")) == expected
    assert _mode(atomic_write_json(tmp_path / "run.json", {"a": 1})) == expected
    assert _mode(atomic_copy(tmp_path / "run.json", tmp_path / "copy.json")) == expected
    # what plain open() gives under the same umask: colleagues read runs exactly like any other file
    (tmp_path / "plain").write_text("x")
    assert _mode(tmp_path / "plain") == expected
    assert not list(tmp_path.rglob(".*.tmp")), "temp files left behind"


def test_secrets_stay_private_whatever_the_umask(tmp_path, umask):
    umask(0o000)
    assert _mode(atomic_write_text(tmp_path / "key", "secret", private=True)) == 0o600
    assert _mode(atomic_write_json(tmp_path / "token.json", {"t": "s"}, private=True)) == 0o600


def test_a_training_run_writes_shareable_files(tmp_path, umask):
    from trainers.rundir import atomic_write_bytes, atomic_write_json as trainers_write_json

    umask(0o022)
    assert _mode(trainers_write_json(tmp_path / "metrics.json", {})) == 0o644
    atomic_write_bytes(tmp_path / "checkpoints" / "last.ckpt", b"x")
    assert _mode(tmp_path / "checkpoints" / "last.ckpt") == 0o644


def test_rundir_names_every_part_and_reads_what_it_writes(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(RunDirError, match="is not a directory"):
        run.require()
    run.path.mkdir()
    with pytest.raises(RunDirError, match="config.yaml is missing"):
        run.require()
    run.write_config("seed: 1\n")
    assert run.read_config().seed == 1
    assert run.update_info(task="classification", best_checkpoint=None)["task"] == "classification"
    assert run.read_info()["task"] == "classification" and run.read_metrics() == {}
    run.write_metrics({"val/acc": 0.5})
    assert run.read_metrics() == {"val/acc": 0.5}
    assert run.read_calibration() is None and run.read_split_ids() is None
    assert run.report_json_path == run.path / "report" / "report.json"
    assert run.archives_dir == run.path / "export" / "archives"
    assert run.reference_path("val").name == "reference_val.json"
    assert run.newest_complete_checkpoint() is None
