"""One config mechanism: a typo'd key in any typed (non-_target_) config gives core/schema.py's message and exit 2.

In-process: `python -m serving`'s dispatcher is called directly (serving.cli.main), no subprocess.
"""
from __future__ import annotations

import pytest

from core.errors import ConfigError

# (command line of `python -m serving`, the typo'd key as typed, the key it should have been)
SERVING = {
    "serve": (["status", "server.start_timeot=3"], "server.start_timeot", "start_timeout"),
    "gateway": (["gateway", "status", "rate_limit.bursst=3"], "rate_limit.bursst", "burst"),
    "registry": (["registry", "list", "registry.rooot=x"], "registry.rooot", "root"),
    "canary": (["canary", "report", "model_name=m", "thresholds.min_requets=1"], "thresholds.min_requets",
               "min_requests"),
    "monitor": (["monitor", "reference=x", "current=y", "thresholds.alpah=0.1"], "thresholds.alpah", "alpha"),
}


def standard(key: str, meant: str) -> str:
    """The signature check's wording (core.schema.unknown_key) up to the suggestion."""
    return f"unknown key '{key}'. Did you mean '{meant}'"


@pytest.mark.parametrize("config", sorted(SERVING))
def test_serving_config_typo_exits_2_with_the_standard_message(config, tmp_path, monkeypatch, capsys):
    from serving.__main__ import COMMANDS
    from serving.cli import main

    for var in ("SHIPYARD_SERVE_ROOT", "SHIPYARD_GATEWAY_ROOT", "SHIPYARD_REGISTRY_ROOT"):
        monkeypatch.setenv(var, str(tmp_path / var))  # nothing real is touched, whatever the typo missed
    argv, key, meant = SERVING[config]
    assert main(COMMANDS, argv) == 2
    err = capsys.readouterr().err
    assert standard(key, meant) in err and "Traceback" not in err, err
    assert meant in err.split("Valid keys: ", 1)[1]


def test_data_checks_typo_uses_the_standard_message():
    from datamodules.checks.config import load_checks_config

    with pytest.raises(ConfigError) as err:
        load_checks_config({"max_missing_fractoin": 0.1})
    assert standard("datamodule.data_checks.max_missing_fractoin", "max_missing_fraction") in str(err.value)
    assert err.value.exit_code == 2


def compose_entry(config_dir: str, config_name: str, overrides: list[str]):
    """An entry point's composed config, as its @hydra.main gets it (in-process)."""
    from hydra import compose, initialize_config_dir

    from trainers.resolvers import REPO_ROOT

    with initialize_config_dir(config_dir=str(REPO_ROOT / config_dir), version_base="1.3"):
        return compose(config_name, overrides=overrides)


def test_score_config_typo_uses_the_standard_message(tmp_path):
    import score  # noqa: F401 - stores ScoreOptions' defaults as the `score_options` node
    from serving.scoring.config import options_from_config

    cfg = compose_entry("conf/score", "score", ["model=m", "input=i", f"output={tmp_path}", "+chunk_sise=8"])
    with pytest.raises(ConfigError) as err:
        options_from_config(cfg)
    assert standard("chunk_sise", "chunk_size") in str(err.value) and err.value.exit_code == 2
    assert "chunk_size" in str(err.value).split("Valid keys: ", 1)[1]
    assert options_from_config(compose_entry("conf/score", "score", ["model=m", "input=i", "output=o"])).top_k == 5


def test_export_config_typo_uses_the_standard_message(tmp_path):
    import export  # noqa: F401 - stores ExportConfig's defaults as the `export_options` node
    from serving.export.config import export_config

    cfg = compose_entry("conf", "export", [f"run_dir={tmp_path}", "+parity.batchs=1"])
    with pytest.raises(ConfigError) as err:
        export_config(cfg)
    assert standard("parity.batchs", "batches") in str(err.value) and err.value.exit_code == 2
    assert "batches" in str(err.value).split("Valid keys: ", 1)[1]
    assert export_config(compose_entry("conf", "export", [f"run_dir={tmp_path}"])).targets == ["torchscript",
                                                                                              "torch_export"]


def test_evaluate_config_typo_uses_the_standard_message(tmp_path):
    import evaluate  # noqa: F401 - stores EvaluateConfig's defaults as the `evaluate_options` node
    from evaluation.config import validate

    cfg = compose_entry("conf", "evaluate", [f"run_dir={tmp_path}", "+calibration.n_bin=5"])
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert standard("calibration.n_bin", "n_bins") in str(err.value) and err.value.exit_code == 2
    assert "n_bins" in str(err.value).split("Valid keys: ", 1)[1]
    assert validate(compose_entry("conf", "evaluate", [f"run_dir={tmp_path}"])).calibration.n_bins == 15


def test_train_and_slurm_typos_use_the_standard_message(tmp_path):
    from trainers.compose import compose_train
    from trainers.run import check_config

    for override, key, meant in (("+seeed=1", "seeed", "seed"), ("+cv.fodls=3", "cv.fodls", "folds"),
                                 ("+slurm.gpus_per_nod=2", "slurm.gpus_per_nod", "gpus_per_node")):
        with pytest.raises(ConfigError) as err:
            check_config(compose_train(["+experiment=digits_cnn", override], tmp_path))
        assert standard(key, meant) in str(err.value) and err.value.exit_code == 2, str(err.value)
    with pytest.raises(ConfigError, match=r"'slurm.nodes' must be int or None, got 'two'"):
        check_config(compose_train(["+experiment=digits_cnn", "slurm.nodes=two"], tmp_path))


def test_score_slurm_typo_uses_the_standard_message(tmp_path):
    import score  # noqa: F401 - stores the `score_options` and `slurm/score` nodes
    from serving.scoring.config import options_from_config

    cfg = compose_entry("conf/score", "score", ["model=m", "input=i", f"output={tmp_path}", "+slurm.arrray=4"])
    with pytest.raises(ConfigError) as err:
        options_from_config(cfg)
    assert standard("slurm.arrray", "array") in str(err.value) and err.value.exit_code == 2


def test_train_options_and_slurm_defaults_live_only_in_their_schemas(tmp_path):
    """conf/train.yaml picks groups and nothing else; the composed defaults are the dataclasses' own."""
    import yaml

    from trainers.compose import compose_train
    from trainers.slurm import SlurmConfig
    from trainers.train_options import TrainOptions
    from trainers.resolvers import REPO_ROOT

    assert set(yaml.safe_load((REPO_ROOT / "conf" / "train.yaml").read_text())) == {"defaults"}
    assert not (REPO_ROOT / "conf" / "slurm").exists()
    cfg = compose_train([], tmp_path)
    assert (cfg.seed, cfg.test_after_fit, cfg.cv.folds) == (TrainOptions.seed, TrainOptions.test_after_fit, None)
    assert (cfg.slurm.time, cfg.slurm.signal_seconds, cfg.slurm.job_name) == (
        SlurmConfig.time, SlurmConfig.signal_seconds, "shipyard-default")
