"""train() exports the run id only while it runs: later runs in the same process resolve their own."""
from __future__ import annotations

import os

from trainers.compose import compose_train
from trainers.resolvers import RUN_ID_ENV
from trainers.run import train


def test_run_id_env_is_restored_after_train(tmp_path, monkeypatch):
    monkeypatch.delenv(RUN_ID_ENV, raising=False)
    cfg = compose_train(["+experiment=digits_cnn", "run_id=first", "trainer.fast_dev_run=true",
                         "callbacks.progress_bar=null", "evaluate=false"], tmp_path)
    train(cfg)
    assert RUN_ID_ENV not in os.environ
    second = compose_train(["+experiment=digits_cnn"], tmp_path)
    assert second.run_id != "first"
