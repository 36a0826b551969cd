"""The best checkpoint by the task's monitor, with ties broken on a second metric (val/loss by default)."""
from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor


class BestCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that prefers, among equal monitor values, the lower (`tie_mode=min`) tie-breaker value.

    Lightning keeps the earliest of equal scores: two epochs at val/acc 0.95 chose epoch 0 (val/loss 0.44)
    over epoch 1 (0.15). Accuracy saturates on small validation sets, so ties are common.
    """

    def __init__(self, *args: Any, tie_breaker: str | None = "val/loss", tie_mode: str = "min", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tie_breaker = tie_breaker if tie_breaker != self.monitor else None
        self.tie_mode = tie_mode
        self.tie_values: dict[str, float] = {}  # checkpoint path → its tie-breaker value

    def _tie_value(self, trainer: Trainer) -> float | None:
        value = trainer.callback_metrics.get(self.tie_breaker) if self.tie_breaker else None
        return float(value) if value is not None else None

    def check_monitor_top_k(self, trainer: Trainer, current: Tensor | None = None) -> bool:
        """Save when better on the monitor, or equal on it and better on the tie-breaker."""
        if super().check_monitor_top_k(trainer, current):
            return True
        if current is None or not self.best_k_models or self.save_top_k < 1:
            return False
        kth = self.best_k_models[self.kth_best_model_path]
        new, old = self._tie_value(trainer), self.tie_values.get(self.kth_best_model_path)
        better = (bool(torch.eq(current.to(kth.device), kth)) and new is not None and old is not None
                  and (new < old if self.tie_mode == "min" else new > old))
        return trainer.strategy.reduce_boolean_decision(better)

    def _update_best_and_save(self, current: Tensor, trainer: Trainer, monitor_candidates: dict[str, Tensor]) -> None:
        before = set(self.best_k_models)
        super()._update_best_and_save(current, trainer, monitor_candidates)
        value = self._tie_value(trainer)
        for path in set(self.best_k_models) - before:
            if value is not None:
                self.tie_values[path] = value
        self.tie_values = {p: v for p, v in self.tie_values.items() if p in self.best_k_models}
        # equal scores: the best is the one with the better tie-breaker (max() alone keeps the first)
        sign = 1.0 if self.tie_mode == "min" else -1.0
        best = self.best_model_score
        tied = [p for p, v in self.best_k_models.items() if bool(torch.eq(v, best))]
        if len(tied) > 1:
            self.best_model_path = min(tied, key=lambda p: sign * self.tie_values.get(p, float("inf") * sign))

    def state_dict(self) -> dict[str, Any]:
        """Lightning's state plus the tie-breaker values (a resumed run keeps breaking ties the same way)."""
        return {**super().state_dict(), "tie_values": dict(self.tie_values)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore Lightning's state and the tie-breaker values."""
        super().load_state_dict(state_dict)
        self.tie_values = dict(state_dict.get("tie_values", {}))
