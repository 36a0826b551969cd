"""Lifecycle of one real TorchServe instance living in its own folder.

`<root>/<instance>/` holds config.properties, instance.json (ports, pid), key_file.json (TorchServe's
tokens; never printed), logs/, metrics/, tmp/ (TEMP/TMPDIR: pid file, worker sockets, extracted models)
and model-store/. TorchServe 0.12's operational traps are handled here: the launcher's exit code is
not trusted (java is checked first, then the java pid must stay alive), readiness means a READY worker,
snapshots are off, every listener has its own port, and stop waits for the java process to be gone.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import psutil

from core.atomic import atomic_write_text  # temp + fsync + rename, umask honoured
from serving.torchserve.client import INSTANCE_FILE, KEY_FILE, ServingError, TorchServeClient
from serving.torchserve.log_config import render_log4j
from serving.torchserve.model_store import ArchiveInfo, register_archive
from serving.torchserve.server_config import ServeConfig, render_properties, resolve_ports

JAVA_MAIN = "org.pytorch.serve.ModelServer"
PID_FILE = ".model_server.pid"


def torchserve_bin() -> str:
    """The `torchserve` launcher of this interpreter's environment."""
    candidate = Path(sys.executable).parent / "torchserve"
    found = str(candidate) if candidate.exists() else shutil.which("torchserve")
    if not found:
        raise ServingError("the `torchserve` launcher is not installed: pip install torchserve==0.12.0")
    return found


def check_java() -> str:
    """`java -version` must work (the launcher exits 0 even when java is missing)."""
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else shutil.which("java")
    if not java:
        raise ServingError("java not found: TorchServe needs Java 17 (apt-get install openjdk-17-jre-headless)")
    proc = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise ServingError(f"`{java} -version` failed: {proc.stderr.strip()[-500:]}")
    return proc.stderr.splitlines()[0] if proc.stderr else "java"


class TorchServeInstance:
    """Start, stop and inspect the TorchServe whose state lives in `cfg.instance_dir`."""

    def __init__(self, cfg: ServeConfig) -> None:
        self.cfg = cfg
        self.dir = cfg.instance_dir
        self.logs = self.dir / "logs"
        self.tmp = self.dir / "tmp"
        self.metrics_dir = self.dir / "metrics"
        self.model_store = self.dir / "model-store"
        self.properties = self.dir / "config.properties"

    # ------------------------------------------------------------------ process state
    def env(self) -> dict[str, str]:
        """Per-instance temp/log/metrics folders so that two servers never share state."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TS_")}  # TS_* would be ignored anyway
        env.update(TEMP=str(self.tmp), TMPDIR=str(self.tmp), LOG_LOCATION=str(self.logs),
                   METRICS_LOCATION=str(self.metrics_dir))
        return env

    def pid(self) -> int | None:
        """The java pid from TMPDIR's pid file, if that process is alive and is TorchServe."""
        try:
            pid = int((self.tmp / PID_FILE).read_text().split()[0])
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE and JAVA_MAIN in proc.cmdline():
                return pid
        except (FileNotFoundError, ValueError, IndexError, psutil.Error):
            pass
        return None

    def is_running(self) -> bool:
        """True while this instance's java process is alive."""
        return self.pid() is not None

    def client(self, timeout: float = 30.0) -> TorchServeClient:
        """A REST client for this instance."""
        return TorchServeClient(self.dir, timeout=timeout)

    def setting(self, key: str) -> str | None:
        """A value of the config.properties this instance was started with."""
        if not self.properties.is_file():
            return None
        for line in self.properties.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() == key:
                return value.strip()
        return None

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the launcher, frontend and model logs (for error messages)."""
        parts = []
        for name in ("launcher.log", "ts_log.log", "model_log.log"):
            path = self.logs / name
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path} ---\n" + "\n".join(text))
        return "\n".join(parts) or f"(no logs in {self.logs})"

    # ------------------------------------------------------------------ start
    def start(self, archives: Sequence[Path] = ()) -> list[ArchiveInfo]:
        """Start the server, register `archives`, return once each has a READY worker (or raise with logs)."""
        check_java()
        if self.is_running():
            raise ServingError(f"instance {self.dir} is already running (pid {self.pid()}): "
                               "`python -m serving stop` first, or use another instance=")
        for folder in (self.logs, self.tmp, self.metrics_dir, self.model_store):
            folder.mkdir(parents=True, exist_ok=True)
        (self.tmp / PID_FILE).unlink(missing_ok=True)
        # TorchServe writes its keys with the process umask and chmods afterwards: an empty file created 0600
        # first keeps them private from the first byte (Files.write truncates it and keeps its mode); a
        # stale key file would pass the readiness wait, hence a fresh one
        (self.dir / KEY_FILE).unlink(missing_ok=True)
        os.close(os.open(self.dir / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        ports = resolve_ports(self.cfg.ports, self.cfg.host)
        atomic_write_text(self.properties, render_properties(self.cfg, ports, self.model_store))
        s = self.cfg.server
        log4j = self.dir / "log4j2.xml"
        atomic_write_text(log4j, render_log4j(self.logs, self.metrics_dir, s.log_level, s.log_max_mb, s.log_backups))
        _rotate(self.logs / "launcher.log", s.log_backups)  # java's stdout: start-up lines only (no console appender)
        deadline = time.monotonic() + self.cfg.server.start_timeout
        with open(self.logs / "launcher.log", "ab") as log:
            proc = subprocess.run(
                [torchserve_bin(), "--start", "--ncs", "--ts-config", str(self.properties),
                 "--model-store", str(self.model_store), "--log-config", str(log4j)],
                cwd=self.dir, env=self.env(), stdout=log, stderr=subprocess.STDOUT, timeout=60)
        try:
            if proc.returncode != 0:
                raise ServingError(f"`torchserve --start` exited {proc.returncode}")
            pid = self._wait_for_pid(deadline)
            atomic_write_text(self.dir / INSTANCE_FILE, json.dumps(
                {"host": self.cfg.host, "ports": vars(ports), "pid": pid, "started_at": time.time(),
                 "config": str(self.properties)}, indent=2) + "\n")
            client = self.client()
            self._wait_for_management(client, deadline)
            return [register_archive(client, Path(mar), self.cfg.model, deadline, self.is_running)
                    for mar in archives]
        except (ServingError, OSError) as err:
            tail = self.log_tail()
            self.stop(quiet=True)
            raise ServingError(f"TorchServe instance {self.dir} did not become ready: {err}\n{tail}") from err

    def _wait_for_pid(self, deadline: float) -> int:
        # the launcher exits 0 even when java dies at once (port taken, bad config): watch the pid for a moment
        pid = self.pid()
        if pid is None:
            raise ServingError(f"no live java process in {self.tmp / PID_FILE} after `torchserve --start`")
        stable_until = time.monotonic() + 1.0
        while time.monotonic() < min(stable_until, deadline):
            if not psutil.pid_exists(pid) or self.pid() != pid:
                raise ServingError(f"java (pid {pid}) exited right after start")
            time.sleep(0.1)
        return pid

    def _wait_for_management(self, client: TorchServeClient, deadline: float) -> None:
        last = ""
        while time.monotonic() < deadline:
            if not self.is_running():
                raise ServingError("java exited during start-up")
            if (self.dir / KEY_FILE).is_file() and (self.dir / KEY_FILE).stat().st_size:
                try:
                    resp = client.request("management", "GET", "models", timeout=5)
                    if resp.status_code == 200:
                        return
                    last = f"HTTP {resp.status_code}"
                except ServingError as err:
                    last = str(err)
            time.sleep(0.2)
        raise ServingError(f"management API not answering before the deadline ({last})")

    # ------------------------------------------------------------------ stop
    def stop(self, quiet: bool = False) -> bool:
        """Stop the server and wait until java and its workers are gone; False when it was not running."""
        pid = self.pid()
        if pid is None:
            (self.dir / KEY_FILE).unlink(missing_ok=True)
            return False
        try:
            family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            family = []
        timeout = self.cfg.server.stop_timeout
        with open(self.logs / "launcher.log", "ab") as log:
            try:  # --foreground makes the launcher wait for java instead of returning ~4 s early
                subprocess.run([torchserve_bin(), "--stop", "--foreground"], cwd=self.dir, env=self.env(),
                               stdout=log, stderr=subprocess.STDOUT, timeout=timeout + 10)
            except subprocess.TimeoutExpired:
                pass
        _, alive = psutil.wait_procs(family, timeout=timeout)
        for proc in alive:  # only our own java and its workers, and only after a graceful stop failed
            try:
                proc.kill()
            except psutil.Error:
                pass
        _, still = psutil.wait_procs(alive, timeout=10)
        (self.dir / KEY_FILE).unlink(missing_ok=True)
        if still and not quiet:
            raise ServingError(f"TorchServe processes {[p.pid for p in still]} survived stop and SIGKILL")
        return True


def readiness(client: TorchServeClient) -> dict:
    """Ready only when every registered model version has a READY worker (`/ping` says Healthy regardless)."""
    models, reasons = [], []
    for entry in client.list_models():
        for desc in client.describe(entry["modelName"]):
            states = [w.get("status") for w in desc.get("workers", [])]
            ok = "READY" in states
            models.append({"name": entry["modelName"], "version": desc["modelVersion"], "ready": ok,
                           "workers": states})
            if not ok:
                reasons.append(f"{entry['modelName']} {desc['modelVersion']}: no READY worker (workers {states})")
    if not models:
        reasons.append("no model registered")
    return {"ready": not reasons, "reasons": reasons, "models": models}


def _rotate(path: Path, backups: int) -> None:
    """path → path.1 → ... → path.<backups> (the oldest dropped)."""
    if not path.is_file() or not path.stat().st_size:
        return
    for n in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{n + 1}"))
    os.replace(path, path.with_name(f"{path.name}.1"))
