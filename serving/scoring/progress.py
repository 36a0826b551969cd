"""A progress bar with records/s (tqdm on a terminal; a periodic log line in batch jobs' log files)."""
from __future__ import annotations

import logging
import sys
import time
from types import TracebackType

from tqdm import tqdm

log = logging.getLogger(__name__)


class Progress:
    """Counts scored and rejected records; shows the rate as they come."""

    def __init__(self, total: int, enabled: bool = True, log_every_s: float = 30.0) -> None:
        self.total = total
        self.done = 0
        self.rejected = 0
        self.enabled = enabled
        self.interactive = enabled and sys.stderr.isatty()
        self.log_every_s = log_every_s
        self._bar: tqdm | None = None
        self._start = self._last_log = time.monotonic()

    def __enter__(self) -> "Progress":
        if self.interactive:
            self._bar = tqdm(total=self.total, unit="rec", unit_scale=True, desc="scoring", dynamic_ncols=True)
        return self

    def advance(self, records: int, rejected: int = 0) -> None:
        """`records` more are done, `rejected` of them rejected."""
        self.done += records
        self.rejected += rejected
        if self._bar is not None:
            self._bar.update(records)
            if rejected:
                self._bar.set_postfix(rejected=self.rejected, refresh=False)
        elif self.enabled and time.monotonic() - self._last_log >= self.log_every_s:
            self._last_log = time.monotonic()
            self._log()

    def rate(self) -> float:
        """Records per second so far."""
        elapsed = time.monotonic() - self._start
        return self.done / elapsed if elapsed > 0 else 0.0

    def _log(self) -> None:
        log.info("scoring: %d/%d records (%d rejected), %.1f records/s", self.done, self.total, self.rejected,
                 self.rate())

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.close()
        if self.enabled and not self.interactive:
            self._log()
