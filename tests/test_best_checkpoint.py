"""Issue 16 point 7: equal val/acc picks the epoch with the lower val/loss as the best checkpoint."""
from __future__ import annotations

import torch
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

from trainers.callbacks.best_checkpoint import BestCheckpoint


class Saturated(LightningModule):
    """val/acc is 1.0 every epoch while val/loss falls: 3.0, 2.0, 1.0."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum()

    def validation_step(self, batch, batch_idx):
        self.log("val/acc", 1.0)
        self.log("val/loss", 3.0 - self.current_epoch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(2, 2)), batch_size=2)

    val_dataloader = train_dataloader


def test_tie_on_the_monitor_is_broken_by_val_loss(tmp_path):
    best = BestCheckpoint(dirpath=tmp_path, filename="epoch{epoch}", monitor="val/acc", mode="max", save_top_k=1,
                          auto_insert_metric_name=False)
    Trainer(max_epochs=3, callbacks=[best], logger=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0, default_root_dir=tmp_path).fit(Saturated())
    assert best.best_model_path.endswith("epoch2.ckpt")
    assert [p.name for p in tmp_path.glob("*.ckpt")] == ["epoch2.ckpt"]
