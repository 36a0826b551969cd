"""Issue 16 points 12 and 15: absolute data paths in the run's config; stale temp files cleaned at start."""
from __future__ import annotations

import os

from trainers.compose import compose_train
from trainers.run import absolute_data_paths, remove_stale_temps


def test_relative_data_paths_are_recorded_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = compose_train(["+experiment=text_transformer", "datamodule.train_file=data/x.csv"], tmp_path)
    absolute_data_paths(cfg)
    assert cfg.datamodule.train_file == str(tmp_path / "data" / "x.csv")
    assert os.path.isabs(cfg.datamodule.test_file)


def test_temp_files_of_a_killed_save_are_removed_at_start(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / ".last.ckpt.abc123.tmp").write_bytes(b"partial")
    (folder / "last.ckpt").write_bytes(b"kept")
    assert [p.name for p in remove_stale_temps(tmp_path)] == [".last.ckpt.abc123.tmp"]
    assert [p.name for p in folder.iterdir()] == ["last.ckpt"]
