"""Train a model: python train.py +experiment=NAME [key=value ...]."""
from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from trainers.override_errors import reports_user_errors, run_with_config_errors
from trainers.resolvers import register

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@reports_user_errors("train.py")  # a wrong value, missing data, a refused checkpoint: one line, exit 2
def main(cfg: DictConfig) -> float | None:
    """Check the config, then fit, test and write the run directory; returns `optimized_metric` (HPO sweeps)."""
    from trainers.slurm import check_job_environment, inside_allocation

    # a job whose allocation does not fit the config fails before the heavy imports (every task pays them)
    check_job_environment(cfg.trainer.get("devices"), cfg.trainer.get("num_nodes"))
    from trainers.run import check_config, train
    from trainers.run_claim import distinct_trial_run_id

    distinct_trial_run_id(cfg)  # `-m ... run_id=fixed`: one directory per trial
    check_config(cfg)
    if cfg.launcher.name == "slurm" and not inside_allocation():  # submit from the login node, then exit
        from trainers.slurm_launch import submit_training

        submit_training(cfg)
        return None
    summary = train(cfg)
    if summary.get("evaluate"):  # rank 0 of a run with evaluate=true: report, calibration.json, MODEL_CARD.md
        from evaluation.after_training import evaluate_after_training

        summary["evaluation"] = evaluate_after_training(cfg, Path(summary["run_dir"]))
    return summary.get("objective")


if __name__ == "__main__":
    run_with_config_errors(main, "train.py", "train")
