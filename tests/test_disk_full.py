"""Issue 16 point 10: a full file system is a one-line error naming the file and the file system (real tmpfs)."""
from __future__ import annotations

import subprocess

import pytest

from core.atomic import atomic_write_bytes
from core.errors import DiskFull, UserError


@pytest.fixture
def tiny_fs(tmp_path):
    """A 64 KiB tmpfs (CI and this machine run as root)."""
    mount = tmp_path / "full"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_write_on_a_full_file_system_names_the_file_and_the_file_system(tiny_fs):
    target = tiny_fs / "run" / "checkpoints" / "last.ckpt"
    with pytest.raises(DiskFull) as err:
        atomic_write_bytes(target, b"x" * (1 << 20))
    message = str(err.value)
    assert isinstance(err.value, UserError) and "\n" not in message  # train.py prints it, exit 2
    assert f"file system at {tiny_fs} writing {target}" in message
    assert list(target.parent.iterdir()) == []  # no half-written temp file left
