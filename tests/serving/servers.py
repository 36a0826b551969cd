"""Start a real TorchServe instance for a test module: free ports, own folder, always stopped.

    @pytest.fixture(scope="module")
    def server(tmp_path_factory, exported_digits):
        with running_server(tmp_path_factory.mktemp("ts"), [exported_digits.mar]) as instance:
            yield instance
"""
from __future__ import annotations

import io
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import psutil

from serving.torchserve.server import TorchServeInstance
from serving.torchserve.server_config import compose_serve_config
from tests.conftest import require_service

# every serving test module marks itself with these
MARKS = ("torchserve", "slow")


def require_torchserve() -> None:
    """Skip without Java (a failure under CI=true)."""
    require_service(shutil.which("java") is not None, "java (OpenJDK 17) is not installed: TorchServe cannot start")


def make_instance(root: Path, instance: str = "test", overrides: Sequence[str] = ()) -> TorchServeInstance:
    """An instance folder under root with free ports (not started)."""
    cfg = compose_serve_config([f"root={root}", f"instance={instance}", *overrides])
    return TorchServeInstance(cfg)


@contextmanager
def running_server(root: Path, archives: Sequence[Path] = (), instance: str = "test",
                   overrides: Sequence[str] = ()) -> Iterator[TorchServeInstance]:
    """A started instance with `archives` READY; stopped afterwards (and checked gone), also on failure."""
    require_torchserve()
    server = make_instance(root, instance, overrides)
    family: list[psutil.Process] = []
    try:
        server.start(list(archives))
        pid = server.pid()
        family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        yield server
    finally:
        server.stop(quiet=True)
        _, alive = psutil.wait_procs(family, timeout=5)
        assert not alive, f"TorchServe processes survived stop: {alive}"


def png_bytes(size: tuple[int, int] = (8, 8), colour: Any = 128, mode: str = "L") -> bytes:
    """A small PNG made in memory."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, format="PNG")
    return buf.getvalue()
