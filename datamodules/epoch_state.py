"""Mid-epoch resume for any datamodule: the train sampler's position travels in every checkpoint."""
from __future__ import annotations

from typing import Any

from datamodules.splits import EpochShuffleSampler, EvalShardSampler


class EpochResumeMixin:
    """`state_dict`/`load_state_dict` for a LightningDataModule whose train loader uses `train_sampler`.

    Also `eval_sampler`: the val/test loaders' unpadded distributed share (datamodules.splits.EvalShardSampler).
    """

    batch_size: int
    seed: int
    _resume_position: tuple[int, int] | None = None  # (epoch, batches done) from a checkpoint

    def train_sampler(self, num_items: int, drop_last: bool = False) -> EpochShuffleSampler:
        """One seeded, set_epoch'ed sampler for 1 or N ranks (a DistributedSampler: Lightning keeps it)."""
        trainer = getattr(self, "trainer", None)
        sampler = EpochShuffleSampler(num_items, self.seed, num_replicas=getattr(trainer, "world_size", 1) or 1,
                                      rank=getattr(trainer, "global_rank", 0) or 0, drop_last=drop_last)
        if self._resume_position is not None:
            epoch, batches = self._resume_position
            sampler.resume_at(epoch, batches * self.batch_size)
            self._resume_position = None
        return sampler

    def eval_sampler(self, num_items: int) -> EvalShardSampler | None:
        """Val/test under N ranks: every item on exactly one rank (no padding), so metrics count it once."""
        trainer = getattr(self, "trainer", None)
        world = getattr(trainer, "world_size", 1) or 1
        # fewer items than ranks: a rank with no batch would miss the collectives; keep Lightning's padding
        if world == 1 or num_items < world:
            return None
        return EvalShardSampler(num_items, num_replicas=world, rank=getattr(trainer, "global_rank", 0) or 0)

    def state_dict(self) -> dict[str, Any]:
        """Where fitting stands in its epoch (saved in every checkpoint): a resume skips what was trained on."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.state.fn != "fit":
            return {}
        # `processed`: batches whose optimizer step is in the checkpoint (Lightning restarts counting from it)
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"train_epoch": trainer.current_epoch, "train_batches_done": done}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Remember the position; the next train_dataloader() starts its sampler there."""
        if "train_epoch" in state_dict:
            self._resume_position = (int(state_dict["train_epoch"]), int(state_dict["train_batches_done"]))
