"""Issue 16 point 12: a run trained with relative data paths is evaluated and exported from another folder."""
from __future__ import annotations

import shutil

from core.rundir import RunDir
from evaluation.predictions import load_evaluation_data
from serving.export.run_loading import validation_batches
from tests.conftest import REPO
from trainers.compose import compose_train
from trainers.run import train


def test_evaluate_and_export_read_the_data_from_another_folder(tmp_path, monkeypatch):
    (tmp_path / "project" / "data").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    for name in ("train.csv", "test.csv"):
        shutil.copy(REPO / "data" / "support_tickets" / name, tmp_path / "project" / "data" / name)
    monkeypatch.chdir(tmp_path / "project")
    train(compose_train(["+experiment=text_transformer", "run_id=rel", "datamodule.train_file=data/train.csv",
                         "datamodule.test_file=data/test.csv", "trainer.max_steps=1", "trainer.limit_val_batches=1",
                         "trainer.num_sanity_val_steps=0", "test_after_fit=false", "evaluate=false",
                         "callbacks.progress_bar=null", "trainer.accelerator=cpu"], tmp_path / "out"))
    run = RunDir(tmp_path / "out" / "text_transformer" / "rel")
    config = run.read_config()
    assert config.datamodule.train_file == str(tmp_path / "project" / "data" / "train.csv")
    assert len(run.read_info()["data_fingerprint"]) == 64

    monkeypatch.chdir(tmp_path / "elsewhere")  # evaluate.py / export.py run from another folder
    data = load_evaluation_data(run.path, ("val",), 32)
    assert len(data.outputs["val"].labels) > 0
    assert next(validation_batches(run.read_config(), 1))["labels"].numel() > 0
