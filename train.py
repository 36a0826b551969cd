"""Train a model: python train.py +experiment=NAME [key=value ...]."""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from trainers.resolvers import register

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    """Check the config, then fit, test and write the run directory."""
    from trainers.config_check import ConfigError  # after Hydra parsed the command line: `--help` stays fast
    from trainers.run import check_config, train

    try:
        check_config(cfg)
    except ConfigError as err:
        print(f"train.py: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    train(cfg)


if __name__ == "__main__":
    main()
