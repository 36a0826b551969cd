"""The classifier's training metrics: a running confusion count with torchmetrics' values at a fraction of its cost."""
from __future__ import annotations

import pytest
import torch

from trainers.tasks.classification import RunningTrainMetrics, _metrics


def test_running_train_metrics_equal_torchmetrics() -> None:
    torch.manual_seed(0)
    ours, reference = RunningTrainMetrics(7, "train/"), _metrics(7, "train/")
    for _ in range(4):  # class 6 never occurs in the targets, class 5 only in some batches
        outputs, targets = torch.randn(33, 7), torch.randint(0, 6 if _ % 2 else 5, (33,))
        ours.update(outputs, targets)
        reference.update(outputs, targets)
    got, want = ours.compute(), reference.compute()
    assert set(got) == set(want) == {"train/acc", "train/f1_macro"}
    for key in want:
        assert float(got[key]) == pytest.approx(float(want[key]), abs=1e-6), key
    ours.reset()
    assert float(ours.compute()["train/acc"]) == 0.0


def test_classifier_trains_with_the_running_metrics() -> None:
    from torch import nn

    from trainers.tasks.classification import Classifier

    model = Classifier(nn.Linear(4, 3), num_classes=3, optimizer=torch.optim.SGD)
    assert isinstance(model.train_metrics, RunningTrainMetrics)
    assert type(model.val_metrics).__name__ == "MetricCollection"  # validation/test keep torchmetrics' checks
