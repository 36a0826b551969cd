"""`python -m serving start|status|stop` against a real TorchServe: READY before start returns, one
instance per folder, stop waits for java and its workers, a model that cannot load fails start with the
server's log tail and leaves nothing running; config mistakes fail before anything starts."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import zipfile

import psutil
import pytest

from serving.torchserve.client import KEY_FILE, ServingError
from serving.torchserve.server import check_java
from serving.torchserve.server_config import ServeConfigError, compose_serve_config, resolve_ports
from tests.conftest import REPO
from tests.serving.servers import make_instance, require_torchserve
from tests.serving.stock_mar import build_stock_mar


def cli(root, instance: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m serving ARGS root=ROOT instance=INSTANCE`."""
    return subprocess.run([sys.executable, "-m", "serving", *args, f"root={root}", f"instance={instance}"],
                          cwd=REPO, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.torchserve
@pytest.mark.slow
def test_start_status_stop_through_the_cli(tmp_path):
    require_torchserve()
    mar = build_stock_mar(tmp_path / "mar")
    root = tmp_path / "serve"
    instance = make_instance(root, "life")
    try:
        started = cli(root, "life", "start", "--mar", str(mar), "model.workers=2")
        assert started.returncode == 0, started.stderr
        info = json.loads(started.stdout)
        pid = info["pid"]
        assert instance.pid() == pid and psutil.Process(pid).is_running()
        # start returned only once the workers were READY (no polling needed here)
        described = instance.client().describe("tiny", "1.0")[0]
        assert [w["status"] for w in described["workers"]] == ["READY", "READY"]
        workers = [psutil.Process(w["pid"]) for w in described["workers"]]
        assert (root / "life" / KEY_FILE).is_file()
        assert {p.name for p in (root / "life").iterdir()} >= {"config.properties", "logs", "tmp", "model-store"}

        second = cli(root, "life", "start")
        assert second.returncode == 1 and "already running" in second.stderr, second.stderr
        assert instance.pid() == pid

        stopped = cli(root, "life", "stop")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
        assert not (root / "life" / KEY_FILE).exists()
        status = cli(root, "life", "status")
        assert status.returncode == 3 and json.loads(status.stdout)["running"] is False
    finally:
        instance.stop(quiet=True)


@pytest.mark.torchserve
@pytest.mark.slow
def test_a_model_that_cannot_load_fails_start_with_the_log_tail(tmp_path):
    require_torchserve()
    good = build_stock_mar(tmp_path / "mar", "broken")
    bad = tmp_path / "broken.mar"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():  # same archive, but model.pt is garbage
            dst.writestr(item, b"not a torchscript file" if item.filename == "model.pt" else src.read(item))
    instance = make_instance(tmp_path / "serve", "bad", ["server.start_timeout=120"])
    try:
        with pytest.raises(ServingError) as err:
            instance.start([bad])
        message = str(err.value)
        assert "did not become ready" in message and "failed to load the model" in message
        assert "model_log.log" in message  # the tail of the worker's log comes with the error
        assert instance.pid() is None  # and nothing is left running
    finally:
        instance.stop(quiet=True)


def test_config_mistakes_fail_before_anything_starts(tmp_path):
    with pytest.raises(ServeConfigError, match="batch_sise"):
        compose_serve_config(["+model.batch_sise=4"])
    with pytest.raises(ServeConfigError, match="model.batch_size=0"):
        compose_serve_config(["model.batch_size=0"])
    with pytest.raises(ServeConfigError, match="loopback"):
        compose_serve_config(["host=0.0.0.0"])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = compose_serve_config([f"root={tmp_path}", f"ports.management={port}"])
        with pytest.raises(ServeConfigError, match=f"ports.management={port} is in use"):
            resolve_ports(cfg.ports, cfg.host)
    typo = cli(tmp_path, "x", "status", "server.start_timeot=3")
    assert typo.returncode == 2 and "start_timeot" in typo.stderr and "Traceback" not in typo.stderr


def test_missing_java_is_reported_not_ignored(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ServingError, match="java not found"):
        check_java()
