"""Any Shipyard checkpoint → one fp32 state dict: the loader lives in `trainers.checkpoints` (re-exported here)."""
from __future__ import annotations

from trainers.checkpoints import (  # noqa: F401 - the public names of this module since before the one loader
    DCP_METADATA,
    DEEPSPEED_LATEST,
    NET_PREFIX,
    WRAPPER_PREFIXES,
    CheckpointKind,
    checkpoint_kind,
    consolidate_checkpoint,
    load_net_state_dict,
    write_consolidated,
)
