"""User-facing errors: the entry point prints the message (no traceback) and exits with `exit_code`."""
from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (bad config, missing file, refused checkpoint); exit 2, no traceback."""

    exit_code = 2


class ConfigError(UserError, ValueError):
    """A config problem, with the key that is wrong and what would be right."""


class DiskFull(UserError, OSError):
    """A write found no space (ENOSPC/EDQUOT): the message names the file and its file system."""
