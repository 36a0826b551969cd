"""Parity: exported model vs the eager net on the run's own validation samples."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import torch


@dataclass
class Tolerance:
    """How close an export must stay to the eager net."""

    max_abs_diff: float = 1e-4     # on logits
    min_argmax_agreement: float = 1.0

    def __post_init__(self) -> None:
        if not self.max_abs_diff >= 0:
            raise ValueError(f"parity.max_abs_diff must be >= 0, got {self.max_abs_diff}")
        if not 0 <= self.min_argmax_agreement <= 1:
            raise ValueError(f"parity.min_argmax_agreement must be in [0, 1], got {self.min_argmax_agreement}")


@dataclass
class ParityResult:
    """Figures of one target's comparison."""

    samples: int = 0
    batches: int = 0
    max_abs_diff: float = 0.0
    mean_abs_diff: float = 0.0
    argmax_agreement: float = 1.0
    passed: bool = False
    batch_sizes: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return asdict(self)


class ParityError(RuntimeError):
    """An export differs from the eager net beyond tolerance."""


def compare(eager: Callable[..., torch.Tensor], exported: Callable[..., torch.Tensor],
            batches: Sequence[tuple[torch.Tensor, ...]], tolerance: Tolerance) -> ParityResult:
    """Run both on every batch; max/mean abs logit difference and argmax agreement."""
    result = ParityResult()
    total_abs, total_elems, agree = 0.0, 0, 0
    with torch.no_grad():
        for args in batches:
            a = eager(*args).float()
            b = exported(*args).float()
            if a.shape != b.shape:
                raise ParityError(f"exported output shape {tuple(b.shape)} != eager {tuple(a.shape)}")
            diff = (a - b).abs()
            if not torch.isfinite(b).all():
                diff = torch.full_like(diff, float("inf"))
            result.max_abs_diff = max(result.max_abs_diff, float(diff.max()))
            total_abs += float(diff.sum())
            total_elems += diff.numel()
            agree += int((a.argmax(-1) == b.argmax(-1)).sum())
            result.samples += a.shape[0]
            result.batches += 1
            result.batch_sizes.append(int(a.shape[0]))
    if result.samples == 0:
        raise ParityError("no validation samples to compare on: the run's val split is empty")
    result.mean_abs_diff = total_abs / max(total_elems, 1)
    result.argmax_agreement = agree / result.samples
    result.passed = (result.max_abs_diff <= tolerance.max_abs_diff
                     and result.argmax_agreement >= tolerance.min_argmax_agreement)
    return result


def failure_message(target: str, result: ParityResult, tolerance: Tolerance) -> str:
    """What failed, by how much, and which knob to turn if the difference is expected."""
    return (f"parity check FAILED for {target}: max |exported - eager| = {result.max_abs_diff:.3g} "
            f"(tolerance {tolerance.max_abs_diff:.3g}), argmax agreement {result.argmax_agreement:.4f} "
            f"(minimum {tolerance.min_argmax_agreement}) over {result.samples} validation samples. "
            "The export does not compute what the trained model computes; if a small numeric drift is "
            "expected, raise parity.max_abs_diff / lower parity.min_argmax_agreement explicitly")
