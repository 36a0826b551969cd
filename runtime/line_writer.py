"""A size-rotated text file that lines are appended to from the request path and written by one thread in bulk.

Ships inside every `.mar` (in the `runtime/` package): standard library only. The sampled prediction log
used logging's QueueHandler → QueueListener → RotatingFileHandler, which costs per record a LogRecord (with
findCaller), a thread wake-up, a size check and a flush: ~0.04 ms of a ~1.5 ms served request, averaged over
a 10 % sample (benchmarks/results/PROFILE.md, serving). Here `append` is a list append under a lock and the
thread writes what gathered every `interval` seconds in one `write` per file. A `kill -9` loses at most
`interval` seconds of lines; a normal exit writes them (atexit).
"""
from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path


class RotatingLineWriter:
    """`append(line)` never blocks on I/O and never raises; counts: written, dropped (buffer full), errors (I/O)."""

    def __init__(self, path: Path, max_bytes: int, backup_count: int, capacity: int,
                 interval: float = 0.25) -> None:
        self.path, self.max_bytes, self.backup_count = Path(path), max_bytes, backup_count
        self.capacity, self.interval = capacity, interval
        self.written = self.dropped = self.errors = 0
        self._pending: list[str] = []
        self._lock = threading.Lock()        # guards _pending and the counts
        self._io_lock = threading.Lock()     # one writer at a time: the thread, or flush() from a caller
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"line-writer:{self.path.name}", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def append(self, line: str) -> bool:
        """Queue one line (no newline); False (counted as dropped) when `capacity` lines already wait."""
        with self._lock:
            if len(self._pending) >= self.capacity:
                self.dropped += 1
                return False
            self._pending.append(line)
            return True

    @property
    def closed(self) -> bool:
        """True once `close()` was called."""
        return self._stop.is_set()

    def flush(self) -> None:
        """Write everything appended so far, now, in the calling thread."""
        with self._io_lock:
            with self._lock:
                lines, self._pending = self._pending, []
            if lines:
                self._write(lines)

    def close(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def _write(self, lines: list[str]) -> None:
        data = [(line + "\n").encode("utf-8") for line in lines]
        done = 0  # lines already on disk: an I/O error counts only the rest
        try:
            size = self.path.stat().st_size if self.path.exists() else 0
            chunk: list[bytes] = []
            for item in data:
                # RotatingFileHandler's rule: roll over before a line that would reach max_bytes
                if size and size + len(item) >= self.max_bytes:
                    done += self._append_file(chunk)
                    chunk, size = [], 0
                    self._rotate()
                chunk.append(item)
                size += len(item)
            done += self._append_file(chunk)
        except OSError:
            with self._lock:
                self.errors += len(data) - done
        with self._lock:
            self.written += done

    def _append_file(self, chunk: list[bytes]) -> int:
        if chunk:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as out:  # created with the process umask, as logging's handlers do
                out.write(b"".join(chunk))
        return len(chunk)

    def _rotate(self) -> None:
        if self.backup_count < 1:  # no backups kept: the file starts over
            os.remove(self.path)
            return
        for i in range(self.backup_count - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
