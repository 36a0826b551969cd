"""A value the user can fix gives one message and exit 2, never a traceback: from the datamodules, from a
constructor Hydra instantiates (Lightning's Trainer), and from an OmegaConf resolver."""
from __future__ import annotations

import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from core.errors import ConfigError, DataError, MissingPathError, UserError, user_error_in
from tests.conftest import REPO, run_entry
from trainers.override_errors import user_facing

DIABETES = str(REPO / "data" / "tabular" / "diabetes.csv")


@pytest.mark.parametrize(("args", "says"), [
    # a datamodule reading its table (a UserError raised by our code)
    (["datamodule=tabular", f"datamodule.train_file={DIABETES}", "datamodule.target=progresion"],
     "datamodule.target='progresion' is not a column of the table; its columns: ['age'"),
    # Lightning's Trainer refusing a value (a ValueError inside Hydra's instantiate)
    (["+experiment=digits_cnn", "trainer.precision=fp33"], "invalid config:\n  - trainer: Precision 'fp33' is invalid"),
    # an OmegaConf resolver refusing a value (cv.folds → hydra.mode)
    (["+experiment=digits_cnn", "cv.folds=1"], "cv.folds=1: use an integer >= 2"),
], ids=["datamodule", "trainer", "resolver"])
def test_train_py_names_the_value_and_exits_2_without_a_traceback(args, says, tmp_path):
    proc = run_entry("train.py", *args, f"paths.output_root={tmp_path}", "evaluate=false", check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "Error executing job" not in proc.stderr  # reported inside the job (reports_user_errors), not after it
    assert not any(tmp_path.rglob("*.ckpt")) and not any(tmp_path.rglob("run.json"))


def _instantiation_error(config: dict) -> InstantiationException:
    with pytest.raises(InstantiationException) as err:
        instantiate(config)
    return err.value


@pytest.mark.parametrize(("config", "says"), [
    ({"_target_": "datamodules.digits.DigitsDataModule", "batch_size": 0},
     "datamodule.batch_size=0 must be a positive integer"),
    ({"_target_": "datamodules.text.TextClassificationDataModule", "train_file": DIABETES, "max_length": 1},
     "datamodule.max_length=1 must be an integer >= 2"),
    ({"_target_": "datamodules.tabular.TabularDataModule", "train_file": DIABETES, "target": "progression",
      "task": "regresion"}, "datamodule.task='regresion': use classification, regression"),
    ({"_target_": "datamodules.digits.DigitsDataModule", "cv_folds": 5, "cv_fold": 7}, "cv.fold=7 must be in 0..4"),
])
def test_our_constructors_raise_user_errors_that_survive_hydras_wrapping(config, says):
    err = _instantiation_error(config)
    assert isinstance(user_error_in(err), ConfigError)
    assert user_facing(err) == (2, str(user_error_in(err))) and says in user_facing(err)[1]


def test_a_foreign_constructors_value_error_names_the_config_node():
    err = _instantiation_error({"_target_": "lightning.pytorch.Trainer", "max_epochs": -5, "logger": False})
    code, message = user_facing(err)
    assert code == 2 and message.startswith("invalid config:\n  - ") and "`max_epochs` must be" in message


def test_a_bug_keeps_its_traceback():
    """Only what the user can fix is shortened: an AttributeError in a constructor, or a plain error, is re-raised."""
    err = _instantiation_error({"_target_": "builtins.getattr", "_args_": [object(), "missing"]})
    assert isinstance(err.__cause__, AttributeError) and user_facing(err) is None
    assert user_facing(RuntimeError("a bug")) is None


def test_data_and_path_errors_are_user_errors_of_the_right_builtin_kind(tmp_path):
    """Callers that catch ValueError / FileNotFoundError keep working; entry points see a UserError."""
    from datamodules.splits import stratified_split
    from datamodules.tables import read_table
    from datamodules.tabular import TabularDataModule

    with pytest.raises(MissingPathError) as missing:
        read_table(tmp_path / "absent.csv")
    assert isinstance(missing.value, FileNotFoundError) and isinstance(missing.value, UserError)
    with pytest.raises(ConfigError, match=r"datamodule.val_fraction \+ test_fraction < 1"):
        stratified_split([0, 1, 0, 1], {"train": 0.0, "val": 0.9, "test": 0.2}, seed=0)
    empty = tmp_path / "empty.csv"
    empty.write_text("id,x,y\n")
    with pytest.raises(DataError, match="has no rows"):
        TabularDataModule(train_file=str(empty), target="y").setup("fit")


def test_a_model_that_does_not_fit_the_data_is_refused_before_fit(tmp_path):
    """penguins' species (classification) under the regression MLP failed mid-step with KeyError 'target', and
    digit images under the MiniLM classifier with "forward() got an unexpected keyword argument 'pixel_values'"."""
    from datamodules.tabular import TabularDataModule
    from trainers.compose import compose_train
    from trainers.tasks import check_model_fits_data
    from trainers.tasks.classification import Classifier
    from trainers.tasks.regression import Regressor

    def model(name):
        return compose_train([f"+experiment={name}"], tmp_path).model

    penguins = TabularDataModule(train_file=str(REPO / "data" / "tabular" / "penguins.csv"), target="species")
    penguins.setup("fit")
    check_model_fits_data(Classifier, penguins, model("tabular_penguins_mlp"))
    with pytest.raises(ConfigError) as err:
        check_model_fits_data(Regressor, penguins, model("tabular_diabetes_mlp"))
    message = str(err.value)
    assert "the data is for classification but model._target_='trainers.tasks.regression.Regressor' trains " \
           "regression" in message
    assert "(model=tabular_mlp_classifier)" in message and "datamodule.task=regression" in message

    digits = instantiate(compose_train(["+experiment=digits_cnn"], tmp_path).datamodule)
    digits.setup("fit")
    check_model_fits_data(Classifier, digits, model("digits_cnn"))
    with pytest.raises(ConfigError) as err:
        check_model_fits_data(Classifier, digits, model("text_minilm"))
    message = str(err.value)
    assert "HFSequenceClassifier' does not take this data's inputs ['pixel_values']" in message
    assert "(model=cnn, model=resnet18)" in message


def test_an_optimizer_value_torch_refuses_is_a_config_error_naming_model_optimizer():
    """model.optimizer is a partial: lr=-1 reaches torch only in configure_optimizers, inside fit (a traceback before)."""
    import functools

    import torch

    from trainers.tasks.base import TaskModule

    params = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ConfigError, match="^model.optimizer: Invalid learning rate: -1"):
        TaskModule.build("optimizer", functools.partial(torch.optim.AdamW, lr=-1), params=params)
    assert isinstance(TaskModule.build("optimizer", functools.partial(torch.optim.AdamW, lr=1e-3), params=params),
                      torch.optim.AdamW)


def test_a_bug_raised_while_handling_a_user_error_is_not_reported_as_that_user_error():
    try:
        try:
            raise ConfigError("a wrong value")
        except ConfigError:
            raise RuntimeError("a bug in the handler")  # noqa: B904 - the implicit context is the point
    except RuntimeError as err:
        assert user_error_in(err) is None and user_facing(err) is None


def test_datamodules_validate_reports_a_wrong_column_without_a_traceback(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "datamodules.validate", "+experiment=tabular_diabetes_mlp",
                           "datamodule.target=progresion", f"paths.output_root={tmp_path}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "datamodules.validate: datamodule.target='progresion' is not a column" in proc.stderr
