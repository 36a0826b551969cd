"""Issue 16 point 10: values that used to fail late (inside torch.optim, the DataLoader, setup) are config errors."""
from __future__ import annotations

import pytest

from core.errors import ConfigError
from trainers.compose import compose_train
from trainers.run import check_config


@pytest.mark.parametrize("overrides, message", [
    (["+experiment=digits_cnn", "model.optimizer.lr=abc"], "'model.optimizer.lr' must be float, got 'abc'"),
    (["+experiment=digits_cnn", "datamodule.batch_size=abc"], "'datamodule.batch_size' must be int, got 'abc'"),
    (["+experiment=imagefolder_cnn", "datamodule.root={tmp}", "datamodule.image_size=64"],
     "'datamodule.image_size' must be a list, got 64"),
    (["+experiment=imagefolder_cnn"], "'datamodule.root' is required: pass datamodule.root="),
    (["+experiment=text_transformer", "datamodule.train_file=nope/x.csv"], "datamodule.train_file=nope/x.csv does not exist"),
])
def test_late_failures_are_config_errors_before_any_work(overrides, message, tmp_path):
    cfg = compose_train([o.format(tmp=tmp_path) for o in overrides], tmp_path)
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert message in str(err.value)
