"""Train a model: python train.py +experiment=NAME [key=value ...]."""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from trainers.resolvers import register

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Check the config, then fit, test and write the run directory; returns `optimized_metric` (HPO sweeps)."""
    from trainers.config_check import ConfigError  # after Hydra parsed the command line: `--help` stays fast
    from trainers.slurm import check_job_environment, inside_allocation

    try:
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
    except ConfigError as err:
        print(f"train.py: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    from core.errors import UserError

    try:
        summary = train(cfg)
        if summary.get("evaluate"):  # rank 0 of a run with evaluate=true: report, calibration.json, MODEL_CARD.md
            from evaluation.after_training import evaluate_after_training

            summary["evaluation"] = evaluate_after_training(cfg, Path(summary["run_dir"]))
        return summary.get("objective")
    except UserError as err:  # e.g. a data check over its threshold: the message, no traceback
        print(f"train.py: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None


if __name__ == "__main__":
    from trainers.override_errors import run_with_config_errors

    run_with_config_errors(main, "train.py", "train")
