"""What a training run prints: each log line once, no vendor advertisements."""
from __future__ import annotations

import logging
import warnings

LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")
ADVERTISEMENT = "💡 Tip:"  # Lightning's litlogger / litmodels tips, printed at every Trainer construction


class DropAdvertisements(logging.Filter):
    """Drops Lightning's "💡 Tip: try installing ..." records."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ADVERTISEMENT)


_FILTER = DropAdvertisements()
# Lightning warns "srun is available but not used" each time it detects the cluster environment on a machine
# with srun (twice per run). Shipyard decides this itself: inside an allocation a multi-task job must run under
# srun (trainers.slurm.check_job_environment refuses it otherwise); outside one, launcher=local runs here by
# design and launcher=slurm submits. ("once" cannot do it: CPython forgets "once" when any filter changes.)
warnings.filterwarnings("ignore", message="The `srun` command is available on your system")


def tidy_lightning_logging() -> None:
    """Route Lightning's records through the application's handlers only, and drop its advertisements.

    `import lightning` attaches its own console handler to the "lightning" logger while its records also
    propagate to the root logger, which Hydra's job logging configures (console + train.log): every INFO
    line was printed twice. When the root logger has handlers, Lightning's own are removed; without them
    (a script calling trainers.run.train directly) Lightning keeps its console.
    """
    if logging.getLogger().hasHandlers() and logging.getLogger().handlers:
        for name in LIGHTNING_LOGGERS:
            logger = logging.getLogger(name)
            for handler in list(logger.handlers):
                if type(handler) is logging.StreamHandler:  # Lightning's own consoles (never a file handler)
                    logger.removeHandler(handler)
            logger.propagate = True
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
