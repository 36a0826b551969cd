"""Per-step costs the default training path adds to a Lightning step (benchmarks/training_overhead.py measures them)."""
from __future__ import annotations

from hydra.utils import instantiate

from trainers.compose import compose_train


def test_the_progress_bar_redraws_a_few_times_a_second(tmp_path) -> None:
    # Lightning's RichProgressBar redraws 100 times a second from a thread that takes the GIL each time: it cost
    # a 17 ms digits step ~20 % (benchmarks/results/PROFILE.md); a person reads a bar at a few frames a second
    cfg = compose_train(["+experiment=digits_cnn"], tmp_path)
    bar = instantiate(cfg.callbacks.progress_bar)
    assert 1 <= bar.refresh_rate <= 10, bar.refresh_rate
