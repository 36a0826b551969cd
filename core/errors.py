"""User-facing errors: the entry point prints the message (no traceback) and exits with `exit_code`."""
from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (bad config, missing file, refused checkpoint); exit 2, no traceback."""

    exit_code = 2


class ConfigError(UserError, ValueError):
    """A config problem, with the key that is wrong and what would be right."""


class DiskFull(UserError, OSError):
    """A write found no space (ENOSPC/EDQUOT): the message names the file and its file system."""


class DataError(UserError, ValueError):
    """The data cannot serve the config (no rows, an empty split, a column without values): names the fix."""


class MissingPathError(UserError, FileNotFoundError):
    """A file or folder the config names does not exist."""


def user_error_in(err: BaseException) -> UserError | None:
    """The UserError that caused `err` (itself, or one wrapped by Hydra's instantiate or an OmegaConf resolver)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return current
        seen.add(id(current))
        # explicit causes only (`raise ... from`), so a bug raised while handling a UserError keeps its traceback;
        # OmegaConf drops the cause of a resolver's error (OC_CAUSE unset) and leaves it as the context
        wraps_silently = type(current).__module__.startswith("omegaconf.")
        current = current.__cause__ or (current.__context__ if wraps_silently else None)
    return None
