"""Config errors fail before any work, naming the key and the valid choices."""
from __future__ import annotations

import pytest

from tests.conftest import EXPERIMENTS, run_entry
from trainers.compose import compose_train
from trainers.config_check import ConfigError
from trainers.run import check_config


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_passes_the_schema(experiment, tmp_path):
    extra = [f"datamodule.root={tmp_path}"] if experiment == "imagefolder_cnn" else []  # a folder that exists
    if experiment == "lm_llama_350m":  # the GPU configuration: this machine has none
        extra = ["trainer.accelerator=cpu"]
    cfg = compose_train([f"+experiment={experiment}", *extra], tmp_path)
    check_config(cfg)
    assert cfg.name == experiment


def test_typo_in_trainer_key_names_key_and_suggestion(tmp_path):
    cfg = compose_train(["+experiment=digits_cnn", "+trainer.max_epoch=3"], tmp_path)
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    message = str(err.value)
    assert "trainer.max_epoch" in message and "'max_epochs'" in message and "Valid keys" in message


def test_wrong_type_is_reported(tmp_path):
    cfg = compose_train(["+experiment=digits_cnn", "trainer.max_epochs=abc"], tmp_path)
    with pytest.raises(ConfigError, match=r"'trainer.max_epochs' must be int"):
        check_config(cfg)


def test_typo_in_datamodule_key(tmp_path):
    cfg = compose_train(["+experiment=digits_cnn", "+datamodule.batchsize=8"], tmp_path)
    with pytest.raises(ConfigError, match=r"datamodule.batchsize.*'batch_size'"):
        check_config(cfg)


def test_unknown_top_level_key(tmp_path):
    cfg = compose_train(["+experiment=digits_cnn", "+sed=3"], tmp_path)
    with pytest.raises(ConfigError, match=r"unknown key 'sed'. Did you mean 'seed'"):
        check_config(cfg)


def test_cli_typo_fails_fast_without_traceback(tmp_path):
    proc = run_entry("train.py", "+experiment=digits_cnn", "trainer.max_epoch=3",
                     f"paths.output_root={tmp_path}", check=False)
    assert proc.returncode != 0
    assert "max_epoch" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(tmp_path.rglob("*.ckpt"))


def test_cli_unknown_experiment_lists_choices(tmp_path):
    proc = run_entry("train.py", "+experiment=digits_cnnn", f"paths.output_root={tmp_path}", check=False)
    assert proc.returncode != 0
    assert "digits_cnnn" in proc.stderr
    for name in EXPERIMENTS:
        assert name in proc.stderr


def test_cli_plus_typo_is_caught_by_schema(tmp_path):
    proc = run_entry("train.py", "+experiment=digits_cnn", "+trainer.max_epoch=3",
                     f"paths.output_root={tmp_path}", check=False)
    assert proc.returncode != 0
    assert "did you mean 'max_epochs'" in proc.stderr.lower() or "'max_epochs'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # two entry-point starts (~15 s idle)
@pytest.mark.parametrize("override", ["trainer.max_epoch=3", "+trainer.max_epoch=3"])
def test_typo_in_a_trainer_key_says_did_you_mean_with_or_without_plus(tmp_path, override):
    proc = run_entry("train.py", "+experiment=digits_cnn", f"paths.output_root={tmp_path}", override, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Did you mean 'max_epochs'" in proc.stderr and "Traceback" not in proc.stderr
