"""Bad-record bookkeeping: every unreadable item is reported with where and why, never dropped silently."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)


@dataclass
class BadRecord:
    """One item that could not be used: where it is (path or row) and why."""

    where: str
    reason: str


class TooManyBadRecords(RuntimeError):
    """More bad records than `max_bad_fraction` allows."""


def check_bad_records(bad: list[BadRecord], total: int, max_bad_fraction: float, what: str) -> None:
    """Log a summary of bad records; raise when their share exceeds max_bad_fraction."""
    if not bad:
        return
    share = len(bad) / max(total, 1)
    examples = "; ".join(f"{b.where}: {b.reason}" for b in bad[:5])
    log.warning("%s: %d of %d records are bad (%.1f%%), skipped: %s", what, len(bad), total, 100 * share, examples)
    if share > max_bad_fraction:
        raise TooManyBadRecords(
            f"{what}: {len(bad)} of {total} records ({100 * share:.1f}%) are bad, above "
            f"datamodule.max_bad_fraction={max_bad_fraction}. First ones: {examples}. "
            "Fix or remove them, or raise datamodule.max_bad_fraction."
        )


def as_dicts(bad: list[BadRecord]) -> list[dict[str, str]]:
    """JSON-ready form for the run directory's data report."""
    return [asdict(b) for b in bad]
