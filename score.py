"""Score a dataset with an exported model: python score.py model=PATH input=PATH output=PATH [k=v ...]."""
from __future__ import annotations

import json

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from core.schema import defaults
from serving.scoring.config import ScoreOptions
from serving.scoring.slurm_array import ScoreSlurmConfig
from trainers.override_errors import reports_user_errors, run_with_config_errors
from trainers.resolvers import register

register()
# the one place score.py's keys and defaults live is ScoreOptions (its slurm group: ScoreSlurmConfig);
# conf/score/score.yaml composes onto these nodes
ConfigStore.instance().store(name="score_options", node=defaults(ScoreOptions, exclude=ScoreOptions.GROUPS))
ConfigStore.instance().store(group="slurm", name="score", node=defaults(ScoreSlurmConfig))


@hydra.main(version_base="1.3", config_path="conf/score", config_name="score")
@reports_user_errors("score.py")  # a bad option, input or model, a refused sbatch: one line, exit 2
def main(cfg: DictConfig) -> None:
    """Check the config, then score this task's share of the input (or submit a Slurm array)."""
    from serving.scoring.config import options_from_config
    from trainers.slurm import inside_allocation

    opts = options_from_config(cfg)
    if cfg.launcher.name == "slurm" and not inside_allocation():  # submit the array, then exit
        from hydra.core.hydra_config import HydraConfig

        from serving.scoring.slurm_array import submit_scoring

        submit_scoring(cfg, list(HydraConfig.get().overrides.task))
        return
    from serving.scoring.runner import score

    summary = score(opts)
    print(json.dumps({k: summary[k] for k in ("shard_index", "num_shards", "scored", "rejected",
                                              "records_per_second")}))
    if summary["success"]:
        print(f"done: {opts.output}/_SUCCESS.json")


if __name__ == "__main__":
    run_with_config_errors(main, "score.py", "score", "conf/score")
